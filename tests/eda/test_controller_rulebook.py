# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The keep_closed_controller rulebook end to end: real ansible-rulebook against a fake AWX.

ansible-rulebook runs `sipguard.firewall.keep_closed_controller` as an EDA controller starts it
(`-r ... -i INVENTORY --vars FILE --controller-url URL --controller-token T`); its
run_job_template actions go to a fake AWX/controller API served here on 127.0.0.1, which
implements just what ansible-rulebook's client (ansible_rulebook/job_template_runner.py and
shared_job_monitor.py) calls, and records every request:

- GET  api/v2/config/                          (at start: the version)
- GET  api/v2/unified_job_templates/?name=N    (the template by name and organization)
- POST api/v2/job_templates/ID/launch/         (the launch: its JSON body is recorded)
- GET  api/v2/jobs/?id__in=ID,...              (the job monitor's poll: "successful")

The watched hosts are three inventory names at 127.0.0.1, on a port where this test listens
(TCP). All three are exposed when the watch starts: one heal event names them all, and the
close template is launched once with the limit "pbx-a,pbx-b,pbx-c" (the event's hosts, joined).
Then the listener stops: the hosts close after a few seconds open, which asks for no audit.
Only loopback traffic; every wait is bounded.

Run: .venv/bin/python -m pytest -q tests/eda/test_controller_rulebook.py
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib
from rulebook_harness import (ROOT, heal_hosts, rulebook_env, serving,  # noqa: E402
                              start_rulebook, stop_rulebook, wait_for)

INTERVAL = 1
TOKEN = "sipguard-test-token"
ORGANIZATION = "Default"
CLOSE_TEMPLATE = "sipguard watch close"
AUDIT_TEMPLATE = "sipguard watch audit"
TEMPLATES = {1: CLOSE_TEMPLATE, 2: AUDIT_TEMPLATE}
# Not in sorted order: the heal event sorts its hosts, the limit must keep the event's order.
HOSTS = ("pbx-c", "pbx-a", "pbx-b")
EVENT_TIMEOUT = 20  # seconds for what one round or two must show


class Controller(http.server.BaseHTTPRequestHandler):
    """The few AWX endpoints ansible-rulebook's run_job_template calls; everything recorded."""
    requests = []  # every request: method, path, query, authorization
    launches = []  # every launch: template name, job id, JSON body
    unexpected = []  # requests for anything else (answered 404) or without the token
    lock = threading.Lock()

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        with Controller.lock:
            Controller.requests.append({"method": method, "path": url.path, "query": query,
                                        "authorization": self.headers.get("Authorization")})
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            Controller.unexpected.append((method, self.path, "no token"))
            return self._reply(401, {"detail": "Authentication credentials were not provided."})
        if method == "GET" and url.path == "/api/v2/config/":
            return self._reply(200, {"version": "4.6.0", "ansible_version": "2.19"})
        if method == "GET" and url.path == "/api/v2/unified_job_templates/":
            results = [template(number) for number, name in sorted(TEMPLATES.items())
                       if query.get("name") in (None, name)]
            return self._reply(200, {"count": len(results), "next": None, "previous": None, "results": results})
        launch = re.fullmatch(r"/api/v2/job_templates/(\d+)/launch/", url.path)
        if method == "POST" and launch and int(launch.group(1)) in TEMPLATES:
            with Controller.lock:
                job = 100 + len(Controller.launches)
                Controller.launches.append({"template": TEMPLATES[int(launch.group(1))], "job": job, "body": body})
            return self._reply(201, dict(job_record(job), status="pending"))
        if method == "GET" and url.path == "/api/v2/jobs/":
            ids = [int(text) for text in query.get("id__in", "").split(",") if text.isdigit()]
            known = {launched["job"] for launched in Controller.launches}
            results = [dict(job_record(job), status="successful") for job in ids if job in known]
            return self._reply(200, {"count": len(results), "next": None, "previous": None, "results": results})
        Controller.unexpected.append((method, self.path))
        return self._reply(404, {"detail": "Not found."})

    def do_GET(self):  # noqa: N802 - http.server's name
        self._route("GET")

    def do_POST(self):  # noqa: N802 - http.server's name
        self._route("POST")

    def log_message(self, *args):  # quiet
        pass


def template(number):
    """A job template as api/v2/unified_job_templates/ lists it (the fields ansible-rulebook reads)."""
    return {
        "id": number, "type": "job_template", "name": TEMPLATES[number],
        "url": "/api/v2/job_templates/%d/" % number,
        "related": {"launch": "/api/v2/job_templates/%d/launch/" % number},
        "summary_fields": {"organization": {"id": 1, "name": ORGANIZATION}},
        "ask_limit_on_launch": True, "ask_variables_on_launch": True,
        "ask_inventory_on_launch": False, "ask_labels_on_launch": False,
    }


def job_record(job):
    return {"id": job, "type": "job", "url": "/api/v2/jobs/%d/" % job,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(), "artifacts": {}}


class Listener:
    """A TCP port on 127.0.0.1 that accepts and closes every connection, until stopped."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.close()

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


def launches_of(name):
    return [launch for launch in Controller.launches if launch["template"] == name]


@pytest.fixture(scope="module")
def controller():
    Controller.requests, Controller.launches, Controller.unexpected = [], [], []
    with serving(Controller) as url:
        yield url


@pytest.fixture(scope="module")
def listener():
    port = Listener()
    try:
        yield port
    finally:
        if port.running:
            port.stop()


@pytest.fixture(scope="module")
def rulebook(controller, listener, tmp_path_factory):
    """ansible-rulebook running keep_closed_controller against the fake controller; its log."""
    work = tmp_path_factory.mktemp("controller-watch")
    inventory = work / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {name: {"ansible_host": "127.0.0.1"} for name in HOSTS}}}))
    variables = work / "watch.yml"
    variables.write_text(json.dumps({
        "sips_watch_targets": [{"host": name, "address": "127.0.0.1"} for name in HOSTS],
        "sips_port": listener.port,
        "sips_protocols": ["tcp"],
        "sips_families": ["ipv4"],
        "sips_watch_interval": INTERVAL,
        "sips_probe_timeout": 0.5,
        "sips_watch_state_file": str(work / "state.json"),
    }))
    env = rulebook_env(dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build"), ANSIBLE_NOCOLOR="1",
                            ANSIBLE_FORCE_COLOR="0", EDA_JOB_TEMPLATE_REFRESH_DELAY="1"))
    for name in ("CONTROLLER_URL", "CONTROLLER_TOKEN", "EDA_CONTROLLER_URL", "EDA_CONTROLLER_TOKEN"):
        env.pop(name, None)  # only the command line's controller
    log = work / "rulebook.log"
    process = start_rulebook(["-r", "sipguard.firewall.keep_closed_controller", "-i", str(inventory),
                              "--vars", str(variables), "--controller-url", controller, "--controller-token", TOKEN,
                              "-v"], work, env, log)
    try:
        yield {"log": log, "process": process}
    finally:
        stop_rulebook(process)


def test_exposed_hosts_are_closed_by_one_close_job_limited_to_all_of_them(rulebook, listener):
    log = rulebook["log"]
    launched = wait_for(lambda: launches_of(CLOSE_TEMPLATE), EVENT_TIMEOUT)
    assert launched, "no launch of %r:\n%s" % (CLOSE_TEMPLATE, log.read_text()[-6000:])
    assert wait_for(lambda: "Job template '%s' completed successfully" % CLOSE_TEMPLATE in log.read_text(),
                    EVENT_TIMEOUT), log.read_text()[-6000:]
    time.sleep(3 * INTERVAL + 1)  # more rounds over the same open hosts: no second heal, no audit
    text = log.read_text()
    assert rulebook["process"].poll() is None, text[-6000:]
    for name in HOSTS:
        assert "is exposed on %s (127.0.0.1, ipv4)" % name in text, (name, text[-6000:])
    # One heal event naming every host, and one close job for it, limited to all of them.
    heals = heal_hosts(text)
    assert heals == [sorted(HOSTS)], text[-6000:]
    launches = launches_of(CLOSE_TEMPLATE)
    assert len(launches) == 1, Controller.launches
    body = launches[0]["body"]
    assert body["limit"] == ",".join(heals[0]) == "pbx-a,pbx-b,pbx-c", body
    extra_vars = body["extra_vars"]
    assert extra_vars["sips_port"] == listener.port, extra_vars
    settings = extra_vars["sips_watch_settings"]
    assert settings["sips_protocols"] == ["tcp"] and settings["sips_families"] == ["ipv4"], settings
    assert set(settings) == {"sips_trusted_sources", "sips_protocols", "sips_families", "sips_become",
                             "sips_alert_webhook_url", "sips_alert_format"}, settings
    assert extra_vars["ansible_eda"]["event"]["port_state"]["kind"] == "heal", extra_vars
    # Nothing closed: no audit; and ansible-rulebook asked the controller only what it serves.
    assert launches_of(AUDIT_TEMPLATE) == [], Controller.launches
    assert Controller.unexpected == [], Controller.unexpected
    paths = [(request["method"], request["path"]) for request in Controller.requests]
    assert paths[0] == ("GET", "/api/v2/config/"), paths
    assert ("GET", "/api/v2/jobs/") in paths, paths
    lookups = [request["query"] for request in Controller.requests
               if request["path"] == "/api/v2/unified_job_templates/"]
    assert lookups and all(query.get("name") == CLOSE_TEMPLATE for query in lookups), lookups


def test_closed_after_seconds_open_asks_for_no_audit(rulebook, listener):
    log = rulebook["log"]
    listener.stop()

    def closed():
        text = log.read_text()
        return all("%d/tcp closed on %s" % (listener.port, name) in text for name in HOSTS)

    assert wait_for(closed, EVENT_TIMEOUT), log.read_text()[-6000:]
    time.sleep(3 * INTERVAL + 1)  # a few rounds over the closed hosts
    text = log.read_text()
    assert rulebook["process"].poll() is None, text[-6000:]
    assert launches_of(AUDIT_TEMPLATE) == [], Controller.launches
    assert len(launches_of(CLOSE_TEMPLATE)) == 1, Controller.launches
    assert len(heal_hosts(text)) == 1, text[-6000:]
    assert Controller.unexpected == [], Controller.unexpected
