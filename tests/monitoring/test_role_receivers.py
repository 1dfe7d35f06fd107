# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The role's alerts and metrics through the playbooks, against real receivers on loopback.

One target container of the harness image (UFW active, deny incoming, allow 22/tcp, allow 5061, a
listener on 5061), a real Alertmanager (which notifies a capturing receiver, firing and resolved),
a real node_exporter reading the textfile directory, and a capturing HTTP receiver answering as
Slack and Teams do (or with 500, or not at all). Every webhook URL carries the secret T0KEN in its
path: it must never be in the output. In order:

- bad input (an unknown format, a URL that is not http(s), a metrics file whose directory is missing,
  or not writable) stops the run naming the value, before the host changes and before any report;
- the audit (format alertmanager, Alertmanager's base URL with user:secret@, metrics on) -> Alertmanager lists the
  alert with its labels and notifies it; node_exporter serves the exposed series;
- the audit in the Slack and Teams formats -> bodies with their documented structure;
- a receiver answering 500 with sips_alert_fail_on_error -> the run fails naming the status and host;
- the close (format alertmanager, the full /api/v2/alerts URL) -> the alert resolves (endsAt) and
  Alertmanager notifies it resolved; the metrics show the port closed, the audit's time kept;
- restore, then a close whose receiver never answers -> the close still closes, the run passes and
  says that no answer came within 10 s.

Run: .venv/bin/python -m pytest -q tests/monitoring/test_role_receivers.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # --import-mode=importlib: not on the path
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "faults"))
from fleet_harness import IMAGE, LISTENER, NETWORK, PLAYBOOK, host_state, probe, run  # noqa: E402
from services import (MISSING, SETUP_HINT, Capture, alertmanager, get, node_exporter, series,  # noqa: E402
                      wait_until)
from structure import PROBLEMS  # noqa: E402

NAME = "sgm-target"
SETUP = ("ufw default deny incoming && ufw allow 22/tcp && ufw allow 5061 && ufw --force enable "
         "&& (setsid python3 /listener.py 5061 > /dev/null 2>&1 &)")
LABELS = {"alertname": "SipsPortExposed", "instance": NAME, "port": "5061", "protocol": "tcp", "family": "ipv4",
          "severity": "critical"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The target, its inventory, the receivers; removed afterwards whatever happens."""
    assert not MISSING, SETUP_HINT
    base = tmp_path_factory.mktemp("monitoring")
    os.chmod(base, 0o755)
    textfile = base / "textfile"
    textfile.mkdir(mode=0o755)
    capture = Capture()
    try:
        run(["podman", "rm", "-f", "-t", "0", NAME], check=False)
        run(["podman", "run", "-d", "--name", NAME, "--network", NETWORK, "--cap-add", "NET_ADMIN",
             "--cap-add", "NET_RAW", IMAGE])
        run(["podman", "cp", LISTENER, "%s:/listener.py" % NAME])
        run(["podman", "exec", NAME, "sh", "-c", SETUP + " > /dev/null"])
        address = json.loads(run(["podman", "inspect", NAME]).stdout)[0]["NetworkSettings"]["Networks"][NETWORK][
            "IPAddress"]
        wait_until(lambda: probe("tcp", address) == "open", what="the listener answering")
        inventory = base / "hosts.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {NAME: {
            "ansible_connection": "podman", "sips_probe_targets": [address], "sips_families": ["ipv4"]}}}}))
        with alertmanager(str(base), capture) as am_url, node_exporter(str(base), str(textfile)) as metrics_url:
            yield dict(base=base, inventory=str(inventory), address=address, capture=capture, am=am_url,
                       metrics_url=metrics_url, metrics_file=str(textfile / "sipguard.prom"),
                       report_dir=str(base / "report"))
    finally:
        capture.stop()
        run(["podman", "rm", "-f", "-t", "0", NAME], check=False)


def playbook(world, name, report_dir=None, **extra):
    values = dict(sips_report_dir=report_dir or world["report_dir"])
    values.update(extra)
    result = run([PLAYBOOK, "sipguard.firewall.%s" % name, "-i", world["inventory"], "-e", json.dumps(values)],
                 check=False, timeout=300)
    output = result.stdout + result.stderr
    assert "T0KEN" not in output, "the webhook's secret is in the output:\n" + output
    return result.returncode, output


def am_alerts(world):
    return json.loads(get(world["am"] + "/api/v2/alerts"))


def served(world, text):
    """What node_exporter serves, once it holds text; None before."""
    body = get(world["metrics_url"])
    return body if text in body else None


def notifications(world, status):
    """The alerts of Alertmanager's notifications to the capture receiver with that status."""
    return [alert for body in world["capture"].bodies("/am") for alert in body["alerts"]
            if alert["status"] == status]


def immutable(path):
    """A directory nobody can create files in, root included (chattr +i), or None where unsupported."""
    os.makedirs(path)
    if subprocess.run(["chattr", "+i", path], capture_output=True, check=False).returncode != 0:
        return None
    return path


BAD_INPUT = [
    ("unknown format", {"sips_alert_format": "pagerduty"}, "pagerduty"),
    ("a URL that is not http(s)", {"sips_alert_webhook_url": "gopher://hooks.example/T0KEN"},
     "gopher://hooks.example/..."),
    ("metrics directory missing", {"sips_metrics_file": "{base}/nowhere/sipguard.prom"},
     "sips_metrics_file {base}/nowhere/sipguard.prom: its directory {base}/nowhere does not exist"),
    ("metrics directory not writable", {"sips_metrics_file": "{base}/immutable/sipguard.prom"},
     "sips_metrics_file {base}/immutable/sipguard.prom: its directory {base}/immutable is not writable"),
]


@pytest.mark.parametrize("label,extra,expected", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_stops_before_the_host_changes(world, label, extra, expected, tmp_path):
    base = str(world["base"])
    if label == "metrics directory not writable" and not os.path.isdir(base + "/immutable"):
        if immutable(base + "/immutable") is None:
            pytest.skip("chattr +i is not supported here")
    extra = {key: value.format(base=base) for key, value in extra.items()}
    before = host_state(NAME)
    code, output = playbook(world, "close", report_dir=str(tmp_path / "report"), **extra)
    assert code != 0, output
    messages = "\n".join(re.findall(r"^fatal: .*$", output, re.MULTILINE))
    assert expected.format(base=base) in messages, output
    assert "Close or restore the port" not in output  # the host-side step never ran
    assert host_state(NAME) == before
    assert not (tmp_path / "report").exists()


def test_the_audit_raises_an_alertmanager_alert_and_writes_the_metrics(world):
    code, output = playbook(world, "audit", sips_alert_format="alertmanager", sips_metrics_file=world["metrics_file"],
                            sips_alert_webhook_url=world["am"].replace("http://", "http://sgm:T0KEN@"))
    assert code == 0, output
    assert "the alertmanager alert to http://127.0.0.1:%s was taken: HTTP 200" % world["am"].rsplit(":", 1)[1] \
        in output
    alerts = wait_until(lambda: [alert for alert in am_alerts(world) if alert["labels"] == LABELS],
                        what="Alertmanager listing the alert")
    assert alerts[0]["status"]["state"] == "active"
    assert alerts[0]["annotations"]["summary"] == "ipv4/tcp port 5061 is exposed on %s (new)" % NAME
    assert "ipv4/tcp" in alerts[0]["annotations"]["reason"]
    assert {alert["labels"]["protocol"] for alert in am_alerts(world)} == {"tcp", "udp"}
    firing = wait_until(lambda: [alert for alert in notifications(world, "firing") if alert["labels"] == LABELS],
                        what="Alertmanager notifying the alert")
    assert firing[0]["endsAt"].startswith("0001-01-01")  # open-ended: firing
    # the metrics: promtool's check is in test_prometheus_parts; here node_exporter serves this run's file
    text = wait_until(lambda: served(world, 'host="%s"' % NAME), what="node_exporter serving the run's series")
    exposed = series(text, "sipguard_sips_exposed")
    assert exposed['{family="ipv4",host="%s",port="5061",protocol="tcp"}' % NAME] == 1
    assert series(text, "sipguard_sips_host_status")['{host="%s",port="5061",status="exposed"}' % NAME] == 1
    assert list(series(text, "sipguard_sips_last_run_timestamp_seconds")) == ['{mode="audit"}']
    assert series(text, "node_textfile_scrape_error") == {"": 0}
    check = subprocess.run(["promtool", "check", "metrics"], input=open(world["metrics_file"], encoding="utf-8").read(),
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


@pytest.mark.parametrize("fmt,path,status", [("slack", "/slack/T0KEN", 200), ("teams", "/teams/T0KEN", 202)])
def test_the_audit_posts_slack_and_teams_bodies_they_take(world, fmt, path, status, tmp_path):
    capture = world["capture"]
    code, output = playbook(world, "audit", report_dir=str(tmp_path), sips_alert_format=fmt,
                            sips_alert_webhook_url=capture.base + path)
    assert code == 0, output
    assert "the %s alert to %s was taken: HTTP %d" % (fmt, capture.base, status) in output
    bodies = capture.bodies(path)
    assert len(bodies) == 1
    assert PROBLEMS[fmt](bodies[0]) == []
    assert [kind for got, kind, _body in capture.requests if got == path] == ["application/json"]
    assert NAME in json.dumps(bodies[0])


def test_a_refused_alert_fails_the_run_only_when_asked(world, tmp_path):
    capture = world["capture"]
    code, output = playbook(world, "audit", report_dir=str(tmp_path), sips_alert_fail_on_error=True,
                            sips_alert_webhook_url=capture.base + "/status/500/T0KEN")
    assert code != 0, output
    assert re.search(r"^fatal: .*the generic alert to %s was not taken: HTTP 500" % re.escape(capture.base),
                     output, re.MULTILINE), output
    generic = capture.bodies("/status/500/")[0]
    assert generic["exposed_hosts"] == [NAME] and generic["source"] == "sipguard.firewall"


def test_the_close_resolves_the_alert_in_alertmanager(world):
    code, output = playbook(world, "close", sips_alert_format="alertmanager", sips_metrics_file=world["metrics_file"],
                            sips_alert_webhook_url=world["am"] + "/api/v2/alerts?T0KEN")
    assert code == 0, output
    assert probe("tcp", world["address"]) == "filtered"
    wait_until(lambda: not [alert for alert in am_alerts(world) if alert["labels"]["instance"] == NAME],
               what="Alertmanager no longer listing the alert as active")
    resolved = wait_until(lambda: [alert for alert in notifications(world, "resolved") if alert["labels"] == LABELS],
                          what="Alertmanager notifying the alert resolved")
    assert not resolved[0]["endsAt"].startswith("0001-01-01")
    text = wait_until(lambda: served(world, '{mode="close"}'), what="node_exporter serving the close's series")
    assert series(text, "sipguard_sips_exposed")['{family="ipv4",host="%s",port="5061",protocol="tcp"}' % NAME] == 0
    assert series(text, "sipguard_sips_host_status")['{host="%s",port="5061",status="closed"}' % NAME] == 1
    assert set(series(text, "sipguard_sips_last_run_timestamp_seconds")) == {'{mode="audit"}', '{mode="close"}'}


def test_a_close_whose_receiver_never_answers_still_closes(world, tmp_path):
    code, output = playbook(world, "restore", report_dir=str(tmp_path))
    assert code == 0, output
    assert probe("tcp", world["address"]) == "open"
    capture = world["capture"]
    code, output = playbook(world, "close", report_dir=str(tmp_path),
                            sips_alert_webhook_url=capture.base + "/slow/T0KEN")
    assert code == 0, output
    assert "the generic alert to %s was NOT taken: no answer within 10 s - the run goes on" % capture.base in output
    assert probe("tcp", world["address"]) == "filtered"
    assert capture.bodies("/slow/")[0]["resolved_hosts"] == [NAME]
