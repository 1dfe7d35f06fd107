# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The metrics file (plugin_utils/_metrics) and how write_report writes it: names by Prometheus'
conventions, one 0/1 series per host/protocol/family, the run times of other modes kept, written
atomically from a temporary name that does not end in .prom. (promtool and a real node_exporter
read it in tests/monitoring.)"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from unittest import mock

from ansible_collections.sipguard.firewall.plugins.action import check_run
from ansible_collections.sipguard.firewall.plugins.action import write_report as action_plugin
from ansible_collections.sipguard.firewall.plugins.plugin_utils import _metrics, _report, _report_store

GENERATED = "2026-12-02T02:00:00Z"
EPOCH = 1796176800  # GENERATED in seconds


def probe(target, protocol, state, family="ipv4", tls=None):
    return {"target": target, "address": target, "family": family, "protocol": protocol, "port": 5061,
            "state": state, "tls": tls, "sip": None, "error": None}


def report_of(entries, mode="audit", previous=None, run_id="run-1", probes=()):
    records, _unmatched = _report.host_records(entries, probe={"probes": list(probes)}, mode=mode)
    return _report.assemble(records, previous=previous, mode=mode, generated=GENERATED,
                            run=dict(id=run_id, parts=1, alerted_hosts=[]))


def samples(text):
    """{'name{labels}': value} of the text format, every line checked against the format."""
    found = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = re.match(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*\}) (\S+)$', line)
        assert match, "not a sample line: %r" % line
        found[match.group(1) + match.group(2)] = float(match.group(3))
    return found


FLEET = {
    "sbc1": {"address": "192.0.2.1", "result": {"exposed": True, "reasons": [
        "ipv4/tcp: kamailio listens on 0.0.0.0:5061", "ipv6/udp: \"quoted\" \\ reason"]}},
    "pbx2": {"address": "192.0.2.2", "result": {"exposed": False, "reasons": []}},
    "down3": {"address": "192.0.2.3", "unreachable": True},
}
PROBES = [probe("192.0.2.1", "tcp", "open", tls={"not_after": "2027-01-01T00:00:00Z", "subject": "CN=sbc1"}),
          probe("192.0.2.2", "tcp", "filtered"), probe("192.0.2.2", "udp", "open|filtered")]


def test_series_per_host_protocol_family_status_and_run():
    report = report_of(FLEET, previous={"schema": _report.SCHEMA, "hosts": [{"host": "sbc1", "status": "closed"}]},
                       probes=PROBES)
    text = _metrics.render(report)
    found = samples(text)
    assert found['sipguard_sips_exposed{host="sbc1",port="5061",protocol="tcp",family="ipv4"}'] == 1
    assert found['sipguard_sips_exposed{host="sbc1",port="5061",protocol="udp",family="ipv6"}'] == 1
    assert found['sipguard_sips_exposed{host="pbx2",port="5061",protocol="tcp",family="ipv4"}'] == 0
    assert found['sipguard_sips_exposed{host="pbx2",port="5061",protocol="udp",family="ipv4"}'] == 0
    assert not any(key.startswith('sipguard_sips_exposed{host="down3"') for key in found)  # nothing known
    assert found['sipguard_sips_host_status{host="sbc1",port="5061",status="exposed"}'] == 1
    assert found['sipguard_sips_host_status{host="sbc1",port="5061",status="closed"}'] == 0
    assert found['sipguard_sips_host_status{host="down3",port="5061",status="unreachable"}'] == 1
    assert found['sipguard_sips_reopened{host="sbc1",port="5061"}'] == 1
    assert found['sipguard_sips_reopened{host="pbx2",port="5061"}'] == 0
    assert found['sipguard_sips_tls_not_after_timestamp_seconds{host="sbc1",port="5061"}'] == 1798761600
    assert found['sipguard_sips_hosts{port="5061",status="exposed"}'] == 1
    assert found['sipguard_sips_hosts{port="5061",status="unreachable"}'] == 1
    assert found['sipguard_sips_last_run_timestamp_seconds{mode="audit"}'] == EPOCH
    # down3 was unreachable: no verdict for every host, so no success time (none before either)
    assert not any(key.startswith("sipguard_sips_last_success_timestamp_seconds") for key in found)
    assert found['sipguard_sips_run_info{run_id="run-1",mode="audit",port="5061",check_mode="false"}'] == 1
    # every family has HELP and TYPE once, before its samples
    for name in {key.split("{")[0] for key in found}:
        assert text.count("# TYPE %s gauge\n" % name) == 1 and text.count("# HELP %s " % name) == 1
        assert text.index("# TYPE %s " % name) < text.index(name + "{")
    assert '\\"quoted\\" \\\\ reason' not in text  # reasons are not labels (no unbounded label values)


def test_label_values_are_escaped():
    text = _metrics.render(report_of({'we"ird\\host\nname': {"address": "192.0.2.9", "result": {"exposed": False}}},
                                     probes=[probe("192.0.2.9", "tcp", "filtered")]))
    assert 'host="we\\"ird\\\\host\\nname"' in text
    samples(text)


def test_a_successful_run_sets_the_success_time_and_other_modes_times_are_kept():
    earlier = ('sipguard_sips_last_run_timestamp_seconds{mode="audit"} 1700000000\n'
               'sipguard_sips_last_success_timestamp_seconds{mode="audit"} 1690000000\n'
               'sipguard_sips_last_run_timestamp_seconds{mode="close"} 1600000000\n')
    close = report_of({"pbx2": {"address": "192.0.2.2", "result": {"changed": True, "effective": True,
                                                                   "before": {"effective": False}}}}, mode="close")
    found = samples(_metrics.render(close, earlier))
    assert found['sipguard_sips_last_run_timestamp_seconds{mode="audit"}'] == 1700000000
    assert found['sipguard_sips_last_success_timestamp_seconds{mode="audit"}'] == 1690000000
    assert found['sipguard_sips_last_run_timestamp_seconds{mode="close"}'] == EPOCH  # replaced
    assert found['sipguard_sips_last_success_timestamp_seconds{mode="close"}'] == EPOCH
    # an unsuccessful audit keeps the audit's last success
    failed = report_of({"down3": {"address": "192.0.2.3", "unreachable": True}})
    found = samples(_metrics.render(failed, earlier))
    assert found['sipguard_sips_last_run_timestamp_seconds{mode="audit"}'] == EPOCH
    assert found['sipguard_sips_last_success_timestamp_seconds{mode="audit"}'] == 1690000000


def test_an_exposure_no_reason_places_is_any_any():
    report = report_of({"r": {"address": "192.0.2.4", "result": {"changed": True, "effective": None}}},
                       mode="restore")
    found = samples(_metrics.render(report))
    assert found['sipguard_sips_exposed{host="r",port="5061",protocol="any",family="any"}'] == 1


def test_timestamps_parse_z_offsets_and_naive_as_utc():
    assert _metrics.timestamp("2026-12-02T02:00:00Z") == EPOCH
    assert _metrics.timestamp("2026-12-02T03:00:00+01:00") == EPOCH
    assert _metrics.timestamp("2026-12-02T02:00:00") == EPOCH
    assert _metrics.timestamp("soon") is None and _metrics.timestamp(None) is None


def test_write_report_writes_the_file_atomically_from_a_name_not_ending_in_prom(tmp_path):
    metrics = tmp_path / "textfile" / "sipguard.prom"
    metrics.parent.mkdir()
    metrics.write_text('sipguard_sips_last_run_timestamp_seconds{mode="close"} 1600000000\n')
    renamed = []
    real_replace = os.replace

    def replace(source, target):
        renamed.append((os.path.basename(source), os.path.basename(target)))
        return real_replace(source, target)

    params = dict(dir=str(tmp_path / "report"), hosts=FLEET, run_id="run-1", mode="audit", port=5061,
                  check_mode=False, probe={"probes": PROBES}, controller_addresses=None, alert=False,
                  alert_format="generic", metrics_file=str(metrics))
    with mock.patch.object(_report_store.os, "replace", side_effect=replace):
        result = action_plugin.write_run_report(params, lambda report: "<html/>")
    prom = [pair for pair in renamed if pair[1] == "sipguard.prom"]
    assert len(prom) == 1 and prom[0][0].startswith(".sipguard.prom.") and not prom[0][0].endswith(".prom")
    assert result["metrics_path"] == str(metrics) and str(metrics) in result["written"]
    assert stat.S_IMODE(os.stat(metrics).st_mode) == 0o644  # node_exporter runs as its own user
    assert os.listdir(metrics.parent) == ["sipguard.prom"]  # no temporary left
    found = samples(metrics.read_text())
    assert found['sipguard_sips_last_run_timestamp_seconds{mode="close"}'] == 1600000000  # kept
    assert found['sipguard_sips_hosts{port="5061",status="exposed"}'] == 1


def test_without_a_metrics_file_nothing_is_written(tmp_path):
    params = dict(dir=str(tmp_path / "report"), hosts=FLEET, run_id="run-1", mode="audit", port=5061,
                  check_mode=False, probe=None, controller_addresses=None, alert=True, alert_format="slack",
                  metrics_file=None)
    result = action_plugin.write_run_report(params, lambda report: "<html/>")
    assert result["metrics_path"] is None and len(result["written"]) == 2
    assert result["alert"]["due"] is True and result["alert"]["format"] == "slack"
    assert result["alert"]["body"]["blocks"][0]["text"]["text"] == "SIPS port 5061 exposed on 1 host"


def _as_nobody(function, *args):
    """function(*args) in a child process running as uid/gid 65534 (root may write anywhere)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, answer through the pipe, never return into pytest
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            os.write(writer, repr(function(*args)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as stream:
        answer = stream.read()
    os.waitpid(pid, 0)
    return answer


def test_check_run_names_a_metrics_file_it_cannot_write(tmp_path):
    problem = check_run.metrics_file_problem
    assert problem(None) is None and problem("") is None
    assert problem(str(tmp_path / "sipguard.prom")) is None
    assert problem(str(tmp_path / "sipguard.txt")) == (
        "sips_metrics_file %s does not end in .prom: node_exporter's textfile collector reads only *.prom files"
        % (tmp_path / "sipguard.txt"))
    missing = tmp_path / "missing"
    assert problem(str(missing / "sipguard.prom")) == (
        "sips_metrics_file %s: its directory %s does not exist" % (missing / "sipguard.prom", missing))
    (tmp_path / "dir.prom").mkdir()
    assert problem(str(tmp_path / "dir.prom")) == "sips_metrics_file %s is a directory" % (tmp_path / "dir.prom")
    if os.getuid() == 0:  # a directory root owns (0755), seen by another user; /tmp/pytest-of-root is 0700
        locked = tempfile.mkdtemp(prefix="sgm-metrics-")
        try:
            os.chmod(locked, 0o755)
            answer = _as_nobody(problem, os.path.join(locked, "sipguard.prom"))
        finally:
            os.rmdir(locked)
        assert answer == repr("sips_metrics_file %s/sipguard.prom: its directory %s is not writable by this user "
                              "(uid 65534)" % (locked, locked))
    # and the whole check fails, naming it, before any host changes
    result = check_run.check_run(dict(settings={}, earlier={}, run_id="", earlier_run_id="", mode="audit",
                                      report_dir=str(tmp_path / "report"),
                                      metrics_file=str(tmp_path / "missing" / "sipguard.prom")))
    assert result["failed"] is True and "its directory %s does not exist" % (tmp_path / "missing") in result["msg"]
