# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alert's POST from write_report: against receivers on 127.0.0.1 (taken, refused with a
status, never answering, nobody listening); the outcome never carries the URL."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from ansible_collections.sipguard.firewall.plugins.plugin_utils import _webhook


class Receiver(http.server.BaseHTTPRequestHandler):
    status = 204
    bodies = []

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        length = int(self.headers["Content-Length"])
        type(self).bodies.append((self.path, self.headers["Content-Type"], json.loads(self.rfile.read(length))))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.bodies = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status,taken", [(204, True), (200, True), (500, False), (404, False)])
def test_the_receivers_status_decides_and_the_body_is_json(receiver, status, taken):
    Receiver.status = status
    url = "http://user:s3cret@127.0.0.1:%d/hooks/T0KEN?x=1" % receiver.server_port
    sent = _webhook.post(url, {"hosts": ["sbc1"]})
    assert sent == {"taken": taken, "status": status, "outcome": "HTTP %d" % status}
    assert Receiver.bodies == [("/hooks/T0KEN?x=1", "application/json", {"hosts": ["sbc1"]})]
    assert "s3cret" not in repr(sent) and "T0KEN" not in repr(sent)


def test_nobody_listening_is_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _webhook.post("http://127.0.0.1:%d/x" % port, {}) == {
        "taken": False, "status": None, "outcome": "connection refused"}


def test_a_receiver_that_never_answers_is_no_answer_within_the_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # accepts the connection, never reads nor answers
        sent = _webhook.post("http://127.0.0.1:%d/x" % sock.getsockname()[1], {}, timeout=0.5)
    assert sent == {"taken": False, "status": None, "outcome": "no answer within 0.5 s"}
