# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The run's report as a node_exporter textfile-collector file (Prometheus text format 0.0.4).

Pure: ``render(report, previous_text)`` returns the file's text; the write_report action writes
it atomically. Names follow Prometheus' naming practices: the ``sipguard_sips_`` prefix, base
units (seconds), ``_timestamp_seconds`` for times, an ``_info`` series with value 1, and one series
per state with 0/1 for an enumeration. The host is the ``host`` label (``instance`` is the
scrape target's, node_exporter's own). The times of the other modes' last runs (an audit's when a
close writes the file) are carried over from the file written before, so the staleness alert on
the audit's time holds whatever ran last.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping

PREFIX = "sipguard_sips_"
STATUSES = ("exposed", "closed", "unreachable", "failed")
_PAIR = re.compile(r"^(ipv4|ipv6)/(tcp|udp): ")
_CARRIED = re.compile(r'^(%s(?:last_run|last_success)_timestamp_seconds)\{mode="([a-z]+)"\} (\S+)$' % PREFIX)

FAMILIES = [
    ("exposed", "gauge", "Whether the port is exposed on the host, per protocol and family (1 exposed, 0 not); "
                         "protocol and family are any when no reason names them."),
    ("host_status", "gauge", "The host's status in the run's report: 1 for its status, 0 for the others."),
    ("reopened", "gauge", "1 when the audit found the host exposed and the previous run found it closed."),
    ("tls_not_after_timestamp_seconds", "gauge", "When the certificate of what answers TLS on the port expires."),
    ("hosts", "gauge", "Hosts of the run per status."),
    ("last_run_timestamp_seconds", "gauge", "When the last run of this mode wrote its report."),
    ("last_success_timestamp_seconds", "gauge", "When the last run of this mode got a verdict for every host "
                                                "(none failed or unreachable)."),
    ("run_info", "gauge", "The run that wrote this file (value 1)."),
]


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels):
    return "{%s}" % ",".join('%s="%s"' % (name, _escape(value)) for name, value in labels.items())


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def timestamp(text):
    """Seconds since the epoch of an ISO 8601 time (a trailing Z or an offset; naive means UTC), or None."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def carried(previous_text):
    """{(metric, mode): value} of the run times in the file written before (other modes are kept)."""
    found = {}
    for line in (previous_text or "").splitlines():
        match = _CARRIED.match(line.strip())
        if match:
            try:
                found[(match.group(1), match.group(2))] = float(match.group(3))
            except ValueError:
                continue
    return found


def _pairs(record):
    """{(family, protocol): exposed 0/1} the record says something about."""
    pairs = {}
    for probe in record.get("probe") or []:
        if isinstance(probe, Mapping) and probe.get("family") in ("ipv4", "ipv6") \
                and probe.get("protocol") in ("tcp", "udp"):
            pairs[(probe["family"], probe["protocol"])] = 0
    for listener in record.get("listeners") or []:
        if isinstance(listener, Mapping) and listener.get("family") in ("ipv4", "ipv6") \
                and listener.get("protocol") in ("tcp", "udp"):
            pairs.setdefault((listener["family"], listener["protocol"]), 0)
    if record.get("exposed") or record.get("status") == "exposed":
        placed = False
        for reason in record.get("reasons") or []:
            match = _PAIR.match(str(reason))
            if match:
                pairs[(match.group(1), match.group(2))] = 1
                placed = True
        if not placed:
            pairs[("any", "any")] = 1
    return pairs


def is_success(report):
    """The run got a verdict for every host."""
    counts = report.get("counts") or {}
    return not counts.get("failed") and not counts.get("unreachable")


def render(report, previous_text=""):
    """The textfile-collector file of the run's report."""
    port = report.get("port")
    mode = report.get("mode")
    samples = {name: [] for name, _kind, _help in FAMILIES}
    for record in report.get("hosts") or []:
        host = record["host"]
        for (family, protocol), value in sorted(_pairs(record).items()):
            samples["exposed"].append((_labels(host=host, port=port, protocol=protocol, family=family), value))
        for status in STATUSES:
            samples["host_status"].append((_labels(host=host, port=port, status=status),
                                           int(record.get("status") == status)))
        samples["reopened"].append((_labels(host=host, port=port), int(record.get("trend") == "reopened")))
        not_after = timestamp((record.get("tls") or {}).get("not_after"))
        if not_after is not None:
            samples["tls_not_after_timestamp_seconds"].append((_labels(host=host, port=port), not_after))
    counts = report.get("counts") or {}
    for status in STATUSES:
        samples["hosts"].append((_labels(port=port, status=status), int(counts.get(status) or 0)))

    times = carried(previous_text)
    now = timestamp(report.get("generated"))
    if now is not None:
        times[(PREFIX + "last_run_timestamp_seconds", mode)] = now
        if is_success(report):
            times[(PREFIX + "last_success_timestamp_seconds", mode)] = now
    for (metric, run_mode), value in sorted(times.items()):
        samples[metric[len(PREFIX):]].append((_labels(mode=run_mode), value))
    run = report.get("run") or {}
    samples["run_info"].append((_labels(run_id=run.get("id") or "", mode=mode, port=port,
                                        check_mode=str(bool(report.get("check_mode"))).lower()), 1))

    lines = []
    for name, kind, text in FAMILIES:
        if not samples[name]:
            continue
        lines.append("# HELP %s%s %s" % (PREFIX, name, text))
        lines.append("# TYPE %s%s %s" % (PREFIX, name, kind))
        lines.extend("%s%s%s %s" % (PREFIX, name, labels, _number(value)) for labels, value in samples[name])
    return "\n".join(lines) + "\n"
