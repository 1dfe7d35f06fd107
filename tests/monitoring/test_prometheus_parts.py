# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shipped rules and the metrics file against Debian's real Prometheus tools, on loopback:
`promtool check rules` and `promtool test rules` (tests/monitoring/rules_test.yml: fires when
exposed, resolves when closed, staleness); `promtool check metrics` on a file write_report wrote;
a real node_exporter serving the file's series, and ignoring a half-written temporary beside it.

Run: .venv/bin/python -m pytest -q tests/monitoring/test_prometheus_parts.py
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from services import MISSING, PROMTOOL, SETUP_HINT, get, node_exporter, series, wait_until  # noqa: E402

from ansible_collections.sipguard.firewall.plugins.action import write_report as action_plugin  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "extensions", "prometheus", "sipguard-sips.rules.yml")
RULES_TEST = os.path.join(ROOT, "tests", "monitoring", "rules_test.yml")

FLEET = {
    "sbc1": {"address": "192.0.2.1", "result": {"exposed": True, "reasons": [
        "ipv4/tcp: kamailio listens on 0.0.0.0:5061", "ipv6/tcp: kamailio listens on [::]:5061"]}},
    "pbx2": {"address": "192.0.2.2", "result": {"exposed": False, "reasons": []}},
    "down3": {"address": "192.0.2.3", "unreachable": True, "msg": "ssh: connect to host: \"No route\""},
}
PROBES = [{"target": "192.0.2.1", "address": "192.0.2.1", "family": "ipv4", "protocol": "tcp", "port": 5061,
           "state": "open", "tls": {"not_after": "2027-01-01T00:00:00Z"}, "sip": None, "error": None},
          {"target": "192.0.2.2", "address": "192.0.2.2", "family": "ipv4", "protocol": "udp", "port": 5061,
           "state": "open|filtered", "tls": None, "sip": None, "error": None}]


@pytest.fixture(autouse=True)
def _tools():
    assert not MISSING, SETUP_HINT


def promtool(*args, stdin=None):
    return subprocess.run([PROMTOOL] + list(args), input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


def write_metrics(report_dir, metrics_file, hosts=None):
    params = dict(dir=str(report_dir), hosts=hosts or FLEET, run_id="run-1", mode="audit", port=5061,
                  check_mode=False, probe={"probes": PROBES}, controller_addresses=None, alert=False,
                  alert_format="generic", metrics_file=str(metrics_file))
    return action_plugin.write_run_report(params, lambda report: "<html/>")


def test_promtool_checks_the_shipped_rules():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_promtool_runs_the_rules_unit_tests():
    result = promtool("test", "rules", RULES_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_finds_a_broken_rule_test(tmp_path):
    """The rules test really evaluates the rules: an alert that cannot fire fails it."""
    broken = tmp_path / "broken.rules.yml"
    rules = open(RULES, encoding="utf-8").read()
    broken.write_text(rules.replace("sipguard_sips_exposed == 1", "sipguard_sips_exposed == 2"))
    test = tmp_path / "rules_test.yml"
    test.write_text(open(RULES_TEST, encoding="utf-8").read().replace(
        "../../extensions/prometheus/sipguard-sips.rules.yml", str(broken)))
    result = promtool("test", "rules", str(test))
    assert result.returncode != 0 and "SipsPortExposed" in result.stdout + result.stderr


def test_promtool_check_metrics_is_clean_on_the_written_file(tmp_path):
    metrics = tmp_path / "sipguard.prom"
    write_metrics(tmp_path / "report", metrics)
    result = promtool("check", "metrics", stdin=metrics.read_text())
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_node_exporter_serves_the_series_and_never_a_half_written_file(tmp_path):
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    os.chmod(tmp_path, 0o755)
    write_metrics(tmp_path / "report", textfile / "sipguard.prom")
    # what a writer leaves while it writes: the temporary name write_report uses, half of a file
    (textfile / ".sipguard.prom.k2j4x9").write_text('sipguard_sips_exposed{host="sbc1" 1\n')
    with node_exporter(str(tmp_path), str(textfile)) as url:
        text = get(url)
        exposed = series(text, "sipguard_sips_exposed")
        assert exposed['{family="ipv4",host="sbc1",port="5061",protocol="tcp"}'] == 1
        assert exposed['{family="ipv6",host="sbc1",port="5061",protocol="tcp"}'] == 1
        assert exposed['{family="ipv4",host="pbx2",port="5061",protocol="udp"}'] == 0
        assert series(text, "sipguard_sips_host_status")['{host="down3",port="5061",status="unreachable"}'] == 1
        assert series(text, "sipguard_sips_tls_not_after_timestamp_seconds")['{host="sbc1",port="5061"}'] \
            == 1798761600
        assert series(text, "sipguard_sips_hosts")['{port="5061",status="exposed"}'] == 1
        assert len(series(text, "sipguard_sips_run_info")) == 1
        assert series(text, "node_textfile_scrape_error") == {"": 0}
        # the same half-written text under a .prom name breaks the scrape: why the temporary name matters
        (textfile / "half.prom").write_text('sipguard_sips_exposed{host="sbc1" 1\n')
        assert wait_until(lambda: series(get(url), "node_textfile_scrape_error") == {"": 1}, timeout=10,
                          what="node_exporter reporting the half-written .prom file")
