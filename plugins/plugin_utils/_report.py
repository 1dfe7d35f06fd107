# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report model: per-host records from module results and the probe, and the run's report.

Pure Python on the controller: it reads only its arguments. ``sips_report`` builds a whole
report from one batch (the ``sipguard.firewall.sips_report`` filter is a thin wrapper);
``host_records`` and ``assemble`` are its two halves, so that the ``write_report`` action can
merge the records of every batch and slice of a run (``_report_store``) before assembling.
One host's record is decided in ``_report_host``; the schema, modes and statuses are in
``_report_values``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.sipguard.firewall.plugins.plugin_utils._report_values import (
    MODES,
    ReportError,
    SCHEMA,
    SCHEMA_FAMILY,
    SEVERITY,
    SUMMARY_NAMES,
    TRENDS,
    _flag,
    _generated,
    _mapping,
    _natural_key,
    _plain,
    _port,
    _strings,
)
from ansible_collections.sipguard.firewall.plugins.plugin_utils._report_host import (
    _host_record,
    _host_settings,
    _probe_index,
    _targets,
)


def _previous_statuses(previous):
    if not previous:
        return {}, None
    schema = previous.get("schema")
    if schema is not None and not str(schema).startswith(SCHEMA_FAMILY):
        raise ReportError("sips_report: previous is not a sipguard.firewall report (schema %r)" % (schema,))
    statuses = {}
    for record in previous.get("hosts") or []:
        if isinstance(record, Mapping) and record.get("host") is not None:
            # A host whose run failed with its port known open (a close refused by a rule
            # outside UFW) was exposed: closed now, it is closed again.
            status = record.get("status")
            if status in ("failed", "unreachable") and record.get("exposed") is True:
                status = "exposed"
            statuses[str(record["host"])] = status
    generated = previous.get("generated")
    return statuses, None if generated is None else str(generated)


def _trend(status, previous_status, known):
    if status not in ("exposed", "closed"):
        return None
    if not known:
        return "new"
    if previous_status == "closed":
        return "reopened" if status == "exposed" else "still_closed"
    if previous_status == "exposed":
        return "still_exposed" if status == "exposed" else "newly_closed"
    return None


def _names(names):
    shown = ", ".join(names[:SUMMARY_NAMES])
    if len(names) > SUMMARY_NAMES:
        shown += ", +%d more" % (len(names) - SUMMARY_NAMES)
    return shown


def _summary_line(port, counts, exposed_hosts, reopened_hosts, mode, check_mode):
    line = "%d%s: %d exposed%s, %d closed, %d unreachable, %d failed" % (
        port, " (check mode)" if check_mode and mode != "audit" else "", counts["exposed"],
        " (%s)" % _names(exposed_hosts) if exposed_hosts else "", counts["closed"], counts["unreachable"],
        counts["failed"])
    if mode != "audit":
        line += "; %s: %d" % ("would change" if check_mode else "changed", counts["changed"])
    if reopened_hosts:
        line += "; reopened: %s" % _names(reopened_hosts)
    return line


def host_records(host_results, probe=None, mode="audit", port=5061, controller_trusted=False,
                 trusted_sources=None, check_mode=False, controller_addresses=None):
    """(records, unmatched probe targets) of one batch: a record per host, not yet sorted, no trend.

    Each host is judged with its own settings where its entry has them (trusted_sources,
    controller_trusted, protocols, families); controller_trusted is then computed from
    controller_addresses against the host's own trusted sources, when those addresses are given.
    """
    host_results = _mapping(host_results, "the input (host results by host name)")
    probe = _mapping(probe, "probe")
    if mode not in MODES:
        raise ReportError("sips_report: mode must be one of %s, not %r" % (", ".join(MODES), mode))
    port = _port(port)
    defaults = dict(trusted_sources=_strings(trusted_sources),
                    controller_trusted=_flag(controller_trusted, "controller_trusted"),
                    controller_addresses=None if controller_addresses is None else _strings(controller_addresses))
    check_mode = _flag(check_mode, "check_mode")
    index = _probe_index(probe)
    matched = set()
    records = []
    for name, entry in host_results.items():
        name = str(name)
        entry = _mapping(entry, "the result of host %s" % name)
        keys = _targets(name, entry)
        matched.update(keys)
        probes = [record for key in keys for record in index.get(key, [])]
        records.append(_host_record(name, entry, mode, port, probes, _host_settings(name, entry, defaults),
                                    check_mode))
    unmatched = sorted({str(found[0].get("target")) for key, found in index.items() if key not in matched})
    return records, unmatched


def assemble(records, previous=None, mode="audit", port=5061, generated=None, check_mode=False,
             unmatched_probes=None, probe_summary=None, run=None):
    """The report over host records (from one batch or merged over a run): trends, counts, summary."""
    previous = _mapping(previous, "previous")
    port = _port(port)
    check_mode = _flag(check_mode, "check_mode")
    previous_statuses, previous_generated = _previous_statuses(previous)
    hosts = []
    for record in records:
        record = dict(record)
        if mode == "audit":
            record["previous_status"] = previous_statuses.get(record["host"])
            record["trend"] = _trend(record["status"], record["previous_status"], record["host"] in previous_statuses)
        else:
            record["previous_status"], record["trend"] = None, None
        hosts.append(record)
    hosts.sort(key=lambda record: (SEVERITY[record["status"]], _natural_key(record["host"])))

    counts = dict(hosts=len(hosts))
    counts.update((status, sum(1 for record in hosts if record["status"] == status))
                  for status in ("exposed", "closed", "unreachable", "failed"))
    counts["changed"] = sum(1 for record in hosts if record["changed"])
    counts.update((trend, sum(1 for record in hosts if record["trend"] == trend)) for trend in TRENDS)
    exposed_hosts = [record["host"] for record in hosts if record["status"] == "exposed"]
    reopened_hosts = [record["host"] for record in hosts if record["trend"] == "reopened"]
    trusted = []
    for record in hosts:
        trusted.extend(item for item in record.get("trusted_sources") or [] if item not in trusted)
    report = dict(
        schema=SCHEMA, generated=_generated(generated), mode=mode, port=port, check_mode=check_mode,
        controller_trusted=any(record.get("controller_trusted") for record in hosts),
        trusted_sources=trusted, counts=counts, hosts=hosts, exposed_hosts=exposed_hosts,
        reopened_hosts=reopened_hosts, unmatched_probes=sorted(set(_strings(unmatched_probes))),
        probe_summary=probe_summary, previous_generated=previous_generated,
        summary_line=_summary_line(port, counts, exposed_hosts, reopened_hosts, mode, check_mode),
        run=None if run is None else _plain(run))
    return report


def probe_summary_text(probe):
    """The probe's one-sentence summary, or None."""
    summary = _mapping(probe, "probe").get("summary")
    return str(summary["message"]) if isinstance(summary, Mapping) and summary.get("message") else None


def sips_report(host_results, probe=None, previous=None, mode="audit", port=5061, generated=None,
                controller_trusted=False, trusted_sources=None, check_mode=False, controller_addresses=None):
    """The report (schema sipguard.firewall/report/v1) of one batch; see the filter's DOCUMENTATION."""
    records, unmatched = host_records(host_results, probe=probe, mode=mode, port=port,
                                      controller_trusted=controller_trusted, trusted_sources=trusted_sources,
                                      check_mode=check_mode, controller_addresses=controller_addresses)
    report = assemble(records, previous=previous, mode=mode, port=port, generated=generated, check_mode=check_mode,
                      unmatched_probes=unmatched, probe_summary=probe_summary_text(probe))
    if not records:  # no host: the settings given still describe the batch
        report.update(trusted_sources=_strings(trusted_sources),
                      controller_trusted=_flag(controller_trusted, "controller_trusted"))
    return report
