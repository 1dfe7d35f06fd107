# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The real receivers the monitoring tests start, each on 127.0.0.1 on a port of its own and
stopped by the test that started it: Debian's Alertmanager and node_exporter, and a capturing HTTP
receiver standing in for Slack and Teams (it answers as they do, or with an error, or not at all)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
MISSING = [path for path in (ALERTMANAGER, NODE_EXPORTER, PROMTOOL) if not os.path.exists(path)]
SETUP_HINT = ("missing %s: tests/harness/setup.sh installs Debian's prometheus, prometheus-alertmanager and "
              "prometheus-node-exporter" % ", ".join(MISSING))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_until(check, timeout=15.0, step=0.2, what="the condition"):
    """check() until it returns something true, for at most timeout seconds; that value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s did not hold within %.0f s" % (what, timeout))
        time.sleep(step)


@contextlib.contextmanager
def process(argv, url, log_path):
    """A service started with argv, ready when url answers; stopped (by its pid) on leaving."""
    with open(log_path, "wb") as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    try:
        wait_until(lambda: child.poll() is None and get(url), timeout=20, what="%s answering" % argv[0])
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


class Capture(http.server.ThreadingHTTPServer):
    """Keeps every request (path, content type, JSON body); answers by the path's first part:
    /slack/... 200 "ok" (as Slack does), /teams/... 202 (as a Workflows trigger does), /status/NNN/...
    that status, /slow/... nothing for longer than the role waits, anything else 200."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CaptureHandler)
        self.requests = []
        self.released = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def bodies(self, prefix):
        return [body for path, _kind, body in self.requests if path.startswith(prefix)]

    def stop(self):
        self.released.set()
        self.shutdown()
        self.server_close()


class CaptureHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server name)
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.server.requests.append((self.path, self.headers.get("Content-Type"), body))
        part = self.path.strip("/").split("/")
        if part[0] == "slow":
            self.server.released.wait(15)  # the role gives up after 10 s
            return
        status = int(part[1]) if part[0] == "status" else 202 if part[0] == "teams" else 200
        text = b"ok" if part[0] == "slack" else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


ALERTMANAGER_CONFIG = """
route:
  receiver: capture
  group_by: [alertname, instance, protocol, family]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: capture
    webhook_configs:
      - url: %s/am
        send_resolved: true
"""


@contextlib.contextmanager
def alertmanager(directory, capture):
    """A real Alertmanager on 127.0.0.1 (no gossip port) that notifies capture's /am, firing and resolved."""
    port = free_port()
    config = os.path.join(directory, "alertmanager.yml")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(ALERTMANAGER_CONFIG % capture.base)
    argv = [ALERTMANAGER, "--config.file=" + config, "--storage.path=" + os.path.join(directory, "am-data"),
            "--web.listen-address=127.0.0.1:%d" % port, "--cluster.listen-address="]
    base = "http://127.0.0.1:%d" % port
    with process(argv, base + "/api/v2/status", os.path.join(directory, "alertmanager.log")):
        yield base


@contextlib.contextmanager
def node_exporter(directory, textfile_directory):
    """A real node_exporter on 127.0.0.1 with only the textfile collector, reading textfile_directory."""
    port = free_port()
    argv = [NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % port, "--collector.disable-defaults",
            "--collector.textfile", "--collector.textfile.directory=" + textfile_directory]
    url = "http://127.0.0.1:%d/metrics" % port
    with process(argv, url, os.path.join(directory, "node_exporter.log")):
        yield url


def series(text, name):
    """{labels text: value} of one metric in the text format (what node_exporter serves)."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _space, value = line.rpartition(" ")
            found[labels[len(name):]] = float(value)
    return found
