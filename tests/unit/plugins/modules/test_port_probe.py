# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""port_probe's entry point: bad input fails naming the value before anything is probed;
a run against a SIP server on loopback returns the documented structure, in check mode too."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import run as probe_run
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.certificate import CERTIFICATE_FIELDS
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.records import STATES
from ansible_collections.sipguard.firewall.plugins.modules import port_probe


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            port_probe.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def no_probing(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("probed despite bad input")

    monkeypatch.setattr(probe_run, "run_probe", refuse)  # the one task function the module calls
    return attempts


@pytest.mark.parametrize("args, named", [
    (dict(targets=["127.0.0.1"], port=0), "0"),
    (dict(targets=["127.0.0.1"], port=65536), "65536"),
    (dict(targets=["127.0.0.1"], port="abc"), "abc"),
    (dict(targets=["127.0.0.1"], protocols=["icmp"]), "icmp"),
    (dict(targets=["127.0.0.1"], protocols=[]), "protocols"),
    (dict(targets=["127.0.0.1"], families=["ipv5"]), "ipv5"),
    (dict(targets=["127.0.0.1"], concurrency=0), "concurrency 0"),
    (dict(targets=["127.0.0.1"], timeout=0), "timeout 0"),
    (dict(targets=["127.0.0.1"], timeout=-2), "-2"),
    (dict(targets=["127.0.0.1"], retries=-1), "-1"),
    (dict(targets=[]), "targets"),
    (dict(), "targets"),
    (dict(targets=["10.0.0.300"]), "10.0.0.300"),
    (dict(targets=["192.0.2.0/24"]), "192.0.2.0/24"),
    (dict(targets=["127.0.0.1"], server_name="::1"), "::1"),
])
def test_bad_input_fails_naming_the_value_and_probes_nothing(capsys, no_probing, args, named):
    code, result = run_module(capsys, args)
    assert code == 1 and result["failed"] is True
    assert named in result["msg"]
    assert no_probing == []


class SipServerThread:
    """A plain-TCP and UDP SIP UAS on 127.0.0.1 and ::1 (same port), in its own thread and loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = None
        self.closers = []

    @staticmethod
    def answer(request):
        headers = {}
        for line in request.split("\r\n")[1:]:
            name, _sep, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        return ("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=1\r\nCall-ID: %s\r\nCSeq: %s\r\n"
                "User-Agent: LoopbackPBX/2\r\nAllow: OPTIONS, INVITE\r\nContent-Length: 0\r\n\r\n" % (
                    headers["via"], headers["from"], headers["to"], headers["call-id"], headers["cseq"])).encode()

    async def _handle(self, reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(self.answer(request.decode()))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _start(self):
        server_self = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(server_self.answer(data.decode()), addr)

        for _attempt in range(20):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            closers = []
            try:
                for host in ("127.0.0.1", "::1"):
                    server = await asyncio.start_server(self._handle, host, port)
                    closers.append(server.close)
                    transport, _protocol = await self.loop.create_datagram_endpoint(Udp, local_addr=(host, port))
                    closers.append(transport.close)
            except OSError:
                for close in closers:
                    close()
                continue
            self.port, self.closers = port, closers
            return
        raise RuntimeError("no free port on both loopbacks")

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc_info):
        async def close():
            for closer in self.closers:
                closer()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


RECORD_KEYS = {"target", "address", "family", "protocol", "port", "state", "rtt_ms", "attempts", "tls", "sip",
               "error", "source", "window_ms"}


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_run_against_a_loopback_sip_server_returns_the_documented_structure(capsys, check_mode):
    with SipServerThread() as server:
        code, result = run_module(capsys, dict(targets=["127.0.0.1", "[::1]"], port=server.port, tls=False,
                                               timeout=1, retries=0, _ansible_check_mode=check_mode))
    assert code == 0, result
    assert result["changed"] is False and "failed" not in result
    assert [(r["address"], r["protocol"]) for r in result["probes"]] == [
        ("127.0.0.1", "tcp"), ("127.0.0.1", "udp"), ("::1", "tcp"), ("::1", "udp")]
    for record in result["probes"]:
        assert set(record) == RECORD_KEYS
        assert record["state"] == "open" and record["port"] == server.port and record["error"] is None
        assert record["tls"] is None
        assert record["sip"] == {"status_code": 200, "reason": "OK", "server": None,
                                 "user_agent": "LoopbackPBX/2", "allow": ["OPTIONS", "INVITE"],
                                 "transport": record["protocol"].upper(), "rtt_ms": record["sip"]["rtt_ms"]}
    assert result["counts"] == {"open": 4, "closed": 0, "filtered": 0, "open|filtered": 0, "error": 0}
    assert result["summary"]["exposed"] is True and result["summary"]["sip_answered"] is True
    assert result["summary"]["open"] == ["127.0.0.1:%d/tcp" % server.port, "127.0.0.1:%d/udp" % server.port,
                                         "[::1]:%d/tcp" % server.port, "[::1]:%d/udp" % server.port]


def test_skipped_literal_is_a_warning(capsys, monkeypatch):
    # Captured at the source: how ansible-core delivers a warning depends on whether
    # controller code was imported into the same process (other tests do that).
    warned = []
    monkeypatch.setattr(port_probe.AnsibleModule, "warn", lambda self, warning: warned.append(warning))
    with SipServerThread() as server:
        code, result = run_module(capsys, dict(targets=["::1", "127.0.0.1"], port=server.port, families=["ipv4"],
                                               protocols=["tcp"], tls=False, sip=False, timeout=1))
    assert code == 0
    assert [r["address"] for r in result["probes"]] == ["127.0.0.1"]
    assert len(warned) == 1
    assert "target ::1 skipped: its family is not in families (ipv4)" in warned[0]


def test_documentation_matches_the_records():
    """RETURN documents every key a record, tls{} and sip{} carry; options match the spec's defaults."""
    returned = yaml.safe_load(port_probe.RETURN)
    contains = returned["probes"]["contains"]
    assert set(contains) == RECORD_KEYS
    assert set(contains["tls"]["contains"]) == {"version", "cipher", "bits", "server_name", "handshake_ms"} | set(
        CERTIFICATE_FIELDS) | {"sha256", "decoder", "error"}
    assert set(contains["sip"]["contains"]) == {"status_code", "reason", "server", "user_agent", "allow",
                                                "transport", "rtt_ms"}
    assert set(returned["counts"]["sample"]) == set(STATES)
    documented = yaml.safe_load(port_probe.DOCUMENTATION)
    assert documented["attributes"]["check_mode"]["support"] == "full"
    assert documented["attributes"]["diff_mode"]["support"] == "none"
    assert {name: option.get("default") for name, option in documented["options"].items()} == {
        "targets": None, "port": 5061, "protocols": ["tcp", "udp"], "families": ["ipv4", "ipv6"], "timeout": 2,
        "retries": 1, "concurrency": 256, "tls": True, "sip": True, "server_name": None,
        "rtt_ports": [], "adapt_timeout": True}


# A connection plugin that is the local one under another name: the action plugin then sends the
# module as it would over SSH (an AnsiballZ payload run by a new Python), on this machine.
NOT_LOCAL_CONNECTION = """from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = %r


class Connection(LocalConnection):
    transport = "sipguard_not_local"
"""


def test_the_module_runs_as_a_module_from_its_ansiballz_payload(tmp_path):
    """The payload carries module_utils/_probe/ (a package): the module imports and probes from it alone."""
    from ansible.plugins.connection import local

    plugins = tmp_path / "connection_plugins"
    plugins.mkdir()
    (plugins / "sipguard_not_local.py").write_text(
        NOT_LOCAL_CONNECTION % local.DOCUMENTATION.replace("name: local", "name: sipguard_not_local", 1))
    collections = pathlib.Path(port_probe.__file__).parents[5]  # .../ansible_collections/sipguard/firewall/...
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # the payload alone
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_CONNECTION_PLUGINS=str(plugins),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"), ANSIBLE_REMOTE_TMP=str(tmp_path / "remote"),
               ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    with SipServerThread() as server:
        completed = subprocess.run(
            [sys.executable, "-m", "ansible.cli.adhoc", "localhost", "-o", "-m", "sipguard.firewall.port_probe",
             "-e", "ansible_connection=sipguard_not_local",
             "-a", "targets=127.0.0.1 port=%d tls=false timeout=1 retries=0" % server.port],
            env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    line = [text for text in completed.stdout.splitlines() if text.startswith("localhost | ")][-1]
    result = json.loads(line.split(" => ", 1)[1])
    assert len(list((tmp_path / "remote").glob("*/AnsiballZ_port_probe.py"))) == 1  # sent as a module
    assert [(r["protocol"], r["state"], r["sip"]["status_code"]) for r in result["probes"]] == [
        ("tcp", "open", 200), ("udp", "open", 200)]
    assert result["changed"] is False and result["summary"]["exposed"] is True


# --------------------------------------------------------------------------------------------
# The action plugin: in-process on a local connection, the module everywhere else
# --------------------------------------------------------------------------------------------

def probe_action(transport, args, check_mode=False):
    from unittest.mock import MagicMock

    from ansible_collections.sipguard.firewall.plugins.action import port_probe as action_plugin

    task = MagicMock(args=args, async_val=0, check_mode=check_mode, action="sipguard.firewall.port_probe")
    connection = MagicMock(transport=transport)
    connection._shell.tmpdir = None
    action = action_plugin.ActionModule(task, connection, MagicMock(check_mode=check_mode), None, None, None)
    action._execute_module = MagicMock(return_value={"changed": False, "probes": ["from the module"]})
    return action, action.run(task_vars={})


@pytest.mark.parametrize("transport", ["local", "ansible.builtin.local"])
def test_on_a_local_connection_the_probe_runs_in_process_like_the_module(capsys, transport):
    args = dict(targets=["127.0.0.1", "::1"], timeout=1, retries=0, tls=False)
    with SipServerThread() as server:
        args["port"] = server.port
        code, module_result = run_module(capsys, dict(args))
        action, result = probe_action(transport, dict(args), check_mode=True)
    action._execute_module.assert_not_called()  # no module process, no payload
    assert code == 0 and result["changed"] is False and "failed" not in result
    for key in ("counts", "summary"):
        assert result[key] == module_result[key]
    assert [(r["address"], r["protocol"], r["state"], r["sip"]["status_code"]) for r in result["probes"]] == \
        [(r["address"], r["protocol"], r["state"], r["sip"]["status_code"]) for r in module_result["probes"]]
    assert result["summary"]["exposed"] is True


def test_on_any_other_connection_the_module_runs_on_the_task_host():
    args = dict(targets=["192.0.2.10"], timeout=1)
    action, result = probe_action("ssh", args)
    action._execute_module.assert_called_once_with(module_name="sipguard.firewall.port_probe", module_args=args,
                                                   task_vars={})
    assert result["probes"] == ["from the module"]


@pytest.mark.parametrize("args, named", [
    (dict(targets=["127.0.0.1"], timeout=0), "timeout 0.0"),
    (dict(targets=["127.0.0.1"], port=70000), "70000"),
    (dict(targets=["127.0.0.1"], concurrency="many"), "concurrency"),
    (dict(targets=["127.0.0.1"], speed=1), "speed"),
])
def test_in_process_bad_input_fails_naming_the_value_and_probes_nothing(monkeypatch, args, named):
    from ansible.errors import AnsibleActionFail

    monkeypatch.setattr(probe_run, "run_probe", lambda request: pytest.fail("probed despite bad input"))
    try:
        _action, result = probe_action("local", args)
    except AnsibleActionFail as exc:
        assert named in str(exc)
    else:
        assert result["failed"] is True and named in result["msg"]
