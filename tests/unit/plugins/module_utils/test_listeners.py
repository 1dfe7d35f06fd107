# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Listeners from /proc: socket table parsing, listeners on a port, socket owners.

The fixtures are copies of /proc from containers with real listeners (see
fixtures/proc/README.md). The owner walk runs the real Host class on a temporary tree
built from them, with real symbolic links ``socket:[INODE]`` under PID/fd.
"""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._host import Host
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import (
    TABLE_NAMES,
    Listener,
    ProcNetError,
    SocketOwner,
    decode_address,
    find_socket_owners,
    listeners_on_port,
    parse_socket_table,
    read_bindv6only,
    read_socket_tables,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "proc")
SCENARIOS = ("dual_stack", "split", "prefork", "specific")
# The fixtures were captured on x86_64: every 32-bit address word is little-endian.
CAPTURED_BYTEORDER = "little"
PREFORK_CMDLINE = ["python3", "/root/scenarios.py", "prefork"]


def fixture_text(scenario, table):
    with open(os.path.join(FIXTURES, scenario, "net", table), encoding="utf-8") as handle:
        return handle.read()


def parsed_tables(scenario):
    return {table: parse_socket_table(table, fixture_text(scenario, table), CAPTURED_BYTEORDER)
            for table in TABLE_NAMES}


def build_proc_tree(scenario, root):
    """A directory shaped like /proc from a fixture: net/, sys/ and PID/{comm,cmdline,fd/N}.

    fd.txt lines become symbolic links; a link whose readlink failed at capture time
    (``!EACCES``) becomes a regular file, so readlink fails here too.
    """
    source = os.path.join(FIXTURES, scenario)
    for entry in os.listdir(source):
        if not entry.isdigit():
            shutil.copytree(os.path.join(source, entry), os.path.join(root, entry))
            continue
        target = os.path.join(root, entry)
        os.makedirs(os.path.join(target, "fd"))
        for name in ("comm", "cmdline"):
            shutil.copyfile(os.path.join(source, entry, name), os.path.join(target, name))
        with open(os.path.join(source, entry, "fd.txt"), encoding="utf-8") as listing:
            for line in listing:
                fd, link = line.rstrip("\n").split(" ", 1)
                if link.startswith("!"):
                    with open(os.path.join(target, "fd", fd), "w", encoding="utf-8"):
                        pass
                else:
                    os.symlink(link, os.path.join(target, "fd", fd))
    return str(root)


class RecordingHost(Host):
    """The real Host, recording every path it is asked about."""

    def __init__(self):
        super().__init__(module=None)
        self.calls = []

    def listdir(self, path):
        self.calls.append(("listdir", path))
        return super().listdir(path)

    def readlink(self, path):
        self.calls.append(("readlink", path))
        return super().readlink(path)

    def read_text(self, path):
        self.calls.append(("read_text", path))
        return super().read_text(path)

    def paths(self, method):
        return [path for called, path in self.calls if called == method]


class ExitingHost(RecordingHost):
    """Removes a process's /proc directory at a chosen moment, as if it had exited."""

    def __init__(self, proc_root, pid, when):
        super().__init__()
        self.pid_directory = os.path.join(proc_root, str(pid))
        self.when = when

    def _exit_process(self):
        shutil.rmtree(self.pid_directory, ignore_errors=True)

    def listdir(self, path):
        entries = super().listdir(path)
        if self.when == "after fd listing" and path == self.pid_directory + "/fd":
            self._exit_process()
        return entries

    def read_text(self, path):
        if self.when == "before comm" and path == self.pid_directory + "/comm":
            self._exit_process()
        return super().read_text(path)


# ---------------------------------------------------------------- parsing the tables


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("table", TABLE_NAMES)
def test_every_fixture_line_is_parsed(scenario, table):
    text = fixture_text(scenario, table)
    entries = parse_socket_table(table, text, CAPTURED_BYTEORDER)
    assert len(entries) == len(text.splitlines()) - 1
    assert [entry.line_number for entry in entries] == list(range(2, len(entries) + 2))
    assert {entry.table for entry in entries} <= {table}


@pytest.mark.parametrize("scenario, table, line_number, expected", [
    ("dual_stack", "tcp6", 2, ("::", 5061, "::", 0, "LISTEN", 0, 740345)),
    ("dual_stack", "udp6", 2, ("::", 5061, "::", 0, "UNCONN", 0, 740346)),
    ("split", "tcp", 2, ("0.0.0.0", 5061, "0.0.0.0", 0, "LISTEN", 0, 744932)),
    ("split", "tcp", 3, ("127.0.0.1", 15061, "0.0.0.0", 0, "LISTEN", 0, 744936)),
    ("split", "tcp", 4, ("127.0.0.1", 5061, "127.0.0.1", 54104, "ESTABLISHED", 0, 744940)),
    ("split", "tcp", 5, ("127.0.0.1", 54104, "127.0.0.1", 5061, "ESTABLISHED", 0, 744937)),
    ("split", "tcp", 6, ("127.0.0.1", 5061, "127.0.0.1", 54124, "TIME_WAIT", 0, 0)),
    ("split", "tcp", 7, ("127.0.0.1", 5061, "127.0.0.1", 54118, "ESTABLISHED", 0, 744942)),
    ("split", "tcp6", 2, ("::", 5061, "::", 0, "LISTEN", 0, 744933)),
    ("split", "tcp6", 3, ("::ffff:127.0.0.1", 54118, "::ffff:127.0.0.1", 5061, "ESTABLISHED", 0, 744939)),
    ("split", "tcp6", 4, ("::1", 36648, "::1", 5061, "ESTABLISHED", 0, 744938)),
    ("split", "tcp6", 5, ("::1", 5061, "::1", 36648, "ESTABLISHED", 0, 744941)),
    ("split", "udp", 2, ("127.0.0.1", 5061, "127.0.0.1", 9, "ESTABLISHED", 0, 744943)),
    ("split", "udp", 3, ("0.0.0.0", 5061, "0.0.0.0", 0, "UNCONN", 0, 744934)),
    ("split", "udp6", 2, ("::ffff:127.0.0.1", 43694, "::ffff:127.0.0.1", 5061, "ESTABLISHED", 0, 744944)),
    ("split", "udp6", 3, ("::", 5061, "::", 0, "UNCONN", 0, 744935)),
    ("specific", "tcp", 2, ("127.0.0.1", 5061, "0.0.0.0", 0, "LISTEN", 65534, 754178)),
    ("specific", "tcp", 3, ("10.89.7.28", 5061, "0.0.0.0", 0, "LISTEN", 65534, 754181)),
    ("specific", "tcp6", 2, ("fd00:5061::1c", 5061, "::", 0, "LISTEN", 65534, 754182)),
    ("specific", "tcp6", 3, ("::ffff:127.0.0.2", 5061, "::", 0, "LISTEN", 65534, 754180)),
    ("specific", "tcp6", 4, ("::1", 5061, "::", 0, "LISTEN", 65534, 754179)),
    ("specific", "udp6", 2, ("fd00:5061::1c", 5061, "::", 0, "UNCONN", 65534, 754185)),
])
def test_fixture_line_decoded(scenario, table, line_number, expected):
    entries = {entry.line_number: entry for entry in parsed_tables(scenario)[table]}
    entry = entries[line_number]
    assert (entry.local_address, entry.local_port, entry.remote_address, entry.remote_port,
            entry.state_name, entry.uid, entry.inode) == expected
    assert entry.protocol == table.rstrip("6")
    assert entry.family == ("ipv6" if table.endswith("6") else "ipv4")


def test_state_numbers_are_kept():
    states = {entry.line_number: entry.state for entry in parsed_tables("split")["tcp"]}
    assert states == {2: 0x0A, 3: 0x0A, 4: 0x01, 5: 0x01, 6: 0x06, 7: 0x01}


@pytest.mark.parametrize("hex_address, family, byteorder, expected", [
    ("0100007F", "ipv4", "little", "127.0.0.1"),
    ("7F000001", "ipv4", "big", "127.0.0.1"),
    ("1C07590A", "ipv4", "little", "10.89.7.28"),
    ("00000000", "ipv4", "little", "0.0.0.0"),
    ("00000000000000000000000000000000", "ipv6", "little", "::"),
    ("00000000000000000000000001000000", "ipv6", "little", "::1"),
    ("00000000000000000000000000000001", "ipv6", "big", "::1"),
    ("615000FD00000000000000001C000000", "ipv6", "little", "fd00:5061::1c"),
    ("FD00506100000000000000000000001C", "ipv6", "big", "fd00:5061::1c"),
    # IPv4-mapped: the v4 word is the last one, reversed like the others.
    ("0000000000000000FFFF00000100007F", "ipv6", "little", "::ffff:127.0.0.1"),
    ("0000000000000000FFFF00000200007F", "ipv6", "little", "::ffff:127.0.0.2"),
    ("00000000000000000000FFFF7F000001", "ipv6", "big", "::ffff:127.0.0.1"),
    ("0000000000000000FFFF000000000000", "ipv6", "little", "::ffff:0.0.0.0"),
    ("0000000000000000ffff00000100007f", "ipv6", "little", "::ffff:127.0.0.1"),
])
def test_decode_address(hex_address, family, byteorder, expected):
    assert decode_address(hex_address, family, byteorder) == expected


@pytest.mark.parametrize("hex_address, family", [
    ("0100007F", "ipv6"),
    ("00000000000000000000000001000000", "ipv4"),
    ("0100007", "ipv4"),
    ("0100007G", "ipv4"),
])
def test_decode_address_rejects(hex_address, family):
    with pytest.raises(ValueError):
        decode_address(hex_address, family, "little")


# ------------------------------------------------------------------- malformed input

SPLIT_TCP_LINES = fixture_text("split", "tcp").splitlines()
SPLIT_TCP6_LINES = fixture_text("split", "tcp6").splitlines()


def corrupted(lines, line_number, old, new):
    """The fixture's text with one replacement in line ``line_number`` (1-based)."""
    changed = list(lines)
    assert old in changed[line_number - 1]
    changed[line_number - 1] = changed[line_number - 1].replace(old, new, 1)
    return "\n".join(changed) + "\n"


@pytest.mark.parametrize("table, text, line_number, reason", [
    ("tcp", "", 1, "header"),
    ("tcp", "\n".join(SPLIT_TCP_LINES[1:]), 1, "header"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 3, "0100007F:3AD5", "0100007F3AD5"), 3, "ADDRESS:PORT"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 4, "0100007F:13C5", "0100007G:13C5"), 4, "non-hexadecimal"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 2, "00000000:13C5", "000000:13C5"), 2, "8 hex digits"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 5, "0100007F:13C5 01", "0100007F:13C5 0X"), 5, "not a number"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 2, " 0A ", " 00A "), 2, "two hex digits"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 7, " 744942 ", " inode "), 7, "not a number"),
    ("tcp", corrupted(SPLIT_TCP_LINES, 2, "   0: ", "   0 "), 2, "columns"),
    ("tcp", SPLIT_TCP_LINES[0] + "\n   0: 00000000:13C5 00000000:0000 0A\n", 2, "columns"),
    ("tcp6", corrupted(SPLIT_TCP6_LINES, 4, "00000000000000000000000001000000:8F28", "0100007F:8F28"), 4,
     "32 hex digits"),
    ("tcp6", SPLIT_TCP_LINES[0] + "\n" + SPLIT_TCP_LINES[1] + "\n", 2, "32 hex digits"),
])
def test_malformed_line_is_named(table, text, line_number, reason):
    with pytest.raises(ProcNetError) as caught:
        parse_socket_table(table, text, CAPTURED_BYTEORDER)
    message = str(caught.value)
    assert message.startswith("/proc/net/%s line %d: " % (table, line_number))
    assert reason in message
    offending = text.splitlines()[line_number - 1].strip() if text else ""
    assert repr(offending) in message


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="unknown socket table 'raw'"):
        parse_socket_table("raw", fixture_text("split", "tcp"))


def test_blank_lines_are_skipped():
    text = fixture_text("prefork", "tcp") + "\n\n"
    assert [entry.inode for entry in parse_socket_table("tcp", text, CAPTURED_BYTEORDER)] == [750777]


# ----------------------------------------------------------------- listeners on a port


def listener(protocol, family, address, inode, wildcard, loopback_only, dual_stack, uid=0):
    return Listener(protocol=protocol, family=family, address=address, port=5061, inode=inode, uid=uid,
                    wildcard=wildcard, loopback_only=loopback_only, dual_stack=dual_stack)


NOBODY = 65534


@pytest.mark.parametrize("scenario, protocols, expected", [
    # listener.py: one dual-stack socket per protocol; /proc cannot tell V6ONLY, so unknown.
    ("dual_stack", ("tcp", "udp"), [
        listener("tcp", "ipv6", "::", 740345, True, False, None),
        listener("udp", "ipv6", "::", 740346, True, False, None),
    ]),
    # Established, TIME_WAIT and connected-UDP sockets on local port 5061 are not listeners.
    ("split", ("tcp",), [
        listener("tcp", "ipv4", "0.0.0.0", 744932, True, False, False),
        listener("tcp", "ipv6", "::", 744933, True, False, None),
    ]),
    ("split", ("udp",), [
        listener("udp", "ipv4", "0.0.0.0", 744934, True, False, False),
        listener("udp", "ipv6", "::", 744935, True, False, None),
    ]),
    ("split", ("tcp", "udp"), [
        listener("tcp", "ipv4", "0.0.0.0", 744932, True, False, False),
        listener("tcp", "ipv6", "::", 744933, True, False, None),
        listener("udp", "ipv4", "0.0.0.0", 744934, True, False, False),
        listener("udp", "ipv6", "::", 744935, True, False, None),
    ]),
    ("prefork", ("tcp", "udp"), [
        listener("tcp", "ipv4", "0.0.0.0", 750777, True, False, False),
        listener("udp", "ipv6", "::", 750778, True, False, None),
    ]),
    # Bound to single addresses: loopback ones (including the v4-mapped one) are loopback-only.
    ("specific", ("tcp",), [
        listener("tcp", "ipv4", "10.89.7.28", 754181, False, False, False, NOBODY),
        listener("tcp", "ipv4", "127.0.0.1", 754178, False, True, False, NOBODY),
        listener("tcp", "ipv6", "::1", 754179, False, True, False, NOBODY),
        listener("tcp", "ipv6", "::ffff:127.0.0.2", 754180, False, True, False, NOBODY),
        listener("tcp", "ipv6", "fd00:5061::1c", 754182, False, False, False, NOBODY),
    ]),
    ("specific", ("udp",), [
        listener("udp", "ipv4", "127.0.0.1", 754183, False, True, False, NOBODY),
        listener("udp", "ipv6", "::1", 754184, False, True, False, NOBODY),
        listener("udp", "ipv6", "fd00:5061::1c", 754185, False, False, False, NOBODY),
    ]),
])
def test_listeners_on_5061(scenario, protocols, expected):
    assert listeners_on_port(parsed_tables(scenario), 5061, protocols) == expected


def test_listeners_on_another_port():
    found = listeners_on_port(parsed_tables("split"), 15061, ("tcp", "udp"))
    assert found == [Listener(protocol="tcp", family="ipv4", address="127.0.0.1", port=15061, inode=744936,
                              uid=0, wildcard=False, loopback_only=True, dual_stack=False)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_listeners_on_an_unused_port(scenario):
    assert listeners_on_port(parsed_tables(scenario), 5060) == []


def test_listeners_need_known_protocols():
    with pytest.raises(ValueError, match="sctp"):
        listeners_on_port(parsed_tables("split"), 5061, ("tcp", "sctp"))


def test_mapped_wildcard_is_an_ipv4_wildcard():
    text = ("  sl  local_address                         remote_address                        st\n"
            "   0: 0000000000000000FFFF000000000000:13C5 00000000000000000000000000000000:0000 0A"
            " 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n")
    tables = {"tcp6": parse_socket_table("tcp6", text, CAPTURED_BYTEORDER)}
    assert listeners_on_port(tables, 5061) == [
        listener("tcp", "ipv6", "::ffff:0.0.0.0", 4242, True, False, False)]


# ------------------------------------------------------------------ reading via a host


def test_read_socket_tables_from_a_proc_tree(tmp_path):
    root = build_proc_tree("split", tmp_path)
    tables = read_socket_tables(Host(module=None), root, byteorder=CAPTURED_BYTEORDER)
    assert tables == parsed_tables("split")


def test_missing_ipv6_tables_are_left_out(tmp_path):
    root = build_proc_tree("split", tmp_path)
    os.remove(os.path.join(root, "net", "tcp6"))
    os.remove(os.path.join(root, "net", "udp6"))
    shutil.rmtree(os.path.join(root, "sys"))
    host = Host(module=None)
    assert sorted(read_socket_tables(host, root, byteorder=CAPTURED_BYTEORDER)) == ["tcp", "udp"]
    assert read_bindv6only(host, root) is None


@pytest.mark.parametrize("text, expected", [("0\n", False), ("1\n", True)])
def test_read_bindv6only(tmp_path, text, expected):
    root = build_proc_tree("dual_stack", tmp_path)
    assert read_bindv6only(Host(module=None), root) is False
    with open(os.path.join(root, "sys", "net", "ipv6", "bindv6only"), "w", encoding="utf-8") as handle:
        handle.write(text)
    assert read_bindv6only(Host(module=None), root) is expected


# --------------------------------------------------------------------- socket owners


def prefork_owner(pid, name):
    return SocketOwner(pid=pid, name=name, cmdline=PREFORK_CMDLINE)


PREFORK_OWNERS = [prefork_owner(30, "sip-master"), prefork_owner(31, "sip-worker"),
                  prefork_owner(32, "sip-worker")]


@pytest.mark.parametrize("scenario, inodes, expected", [
    ("prefork", [750777, 750778], {750777: PREFORK_OWNERS, 750778: PREFORK_OWNERS}),
    ("dual_stack", [740345, 740346], {
        740345: [SocketOwner(pid=28, name="python3", cmdline=["python3", "/root/listener.py", "5061"])],
        740346: [SocketOwner(pid=28, name="python3", cmdline=["python3", "/root/listener.py", "5061"])],
    }),
    ("split", [744933, 744944], {
        744933: [SocketOwner(pid=28, name="python3", cmdline=["python3", "/root/scenarios.py", "split"])],
        744944: [SocketOwner(pid=28, name="python3", cmdline=["python3", "/root/scenarios.py", "split"])],
    }),
    # Root in the container could not readlink nobody's fds: the owner is unknown.
    ("specific", [754178], {754178: []}),
    # TIME_WAIT sockets have inode 0 and no fd; an inode nobody holds has no owner.
    ("split", [0, 999999], {0: [], 999999: []}),
])
def test_owners_from_a_captured_proc(tmp_path, scenario, inodes, expected):
    root = build_proc_tree(scenario, tmp_path)
    assert find_socket_owners(Host(module=None), inodes, root) == expected


def test_owner_walk_reads_only_fd_links_and_owners_files(tmp_path):
    root = build_proc_tree("prefork", tmp_path)
    os.symlink("30", os.path.join(root, "self"))
    os.makedirs(os.path.join(root, "sysvipc"))
    host = RecordingHost()
    find_socket_owners(host, [750777], root)
    assert host.paths("listdir") == [root] + ["%s/%d/fd" % (root, pid) for pid in (1, 30, 31, 32)]
    assert all("/fd/" in path for path in host.paths("readlink"))
    assert len(host.paths("readlink")) == 3 + 5 * 3
    assert host.paths("read_text") == ["%s/%d/%s" % (root, pid, name)
                                       for pid in (30, 31, 32) for name in ("comm", "cmdline")]


def test_stop_early_ends_the_walk_at_the_first_owner(tmp_path):
    root = build_proc_tree("prefork", tmp_path)
    host = RecordingHost()
    owners = find_socket_owners(host, [750777, 750778], root, stop_early=True)
    assert owners == {750777: [prefork_owner(30, "sip-master")], 750778: [prefork_owner(30, "sip-master")]}
    assert host.paths("listdir") == [root, root + "/1/fd", root + "/30/fd"]


def test_stop_early_walks_on_until_every_inode_is_found(tmp_path):
    root = build_proc_tree("prefork", tmp_path)
    host = RecordingHost()
    owners = find_socket_owners(host, [750777, 123], root, stop_early=True)
    # Inode 123 is never found, so every process is walked and every sharer reported.
    assert owners == {750777: PREFORK_OWNERS, 123: []}
    assert len(host.paths("listdir")) == 5


@pytest.mark.parametrize("when", ["after fd listing", "before comm"])
def test_process_exiting_mid_walk_is_skipped(tmp_path, when):
    root = build_proc_tree("prefork", tmp_path)
    host = ExitingHost(root, 31, when)
    owners = find_socket_owners(host, [750777, 750778], root)
    expected = [prefork_owner(30, "sip-master"), prefork_owner(32, "sip-worker")]
    assert owners == {750777: expected, 750778: expected}


def test_process_gone_before_its_fds_are_listed(tmp_path):
    root = build_proc_tree("prefork", tmp_path)
    shutil.rmtree(os.path.join(root, "32", "fd"))
    owners = find_socket_owners(Host(module=None), [750777], root)
    assert owners == {750777: PREFORK_OWNERS[:2]}


@pytest.mark.parametrize("comm, cmdline, name, argv", [
    (b"sip\xffworker\n", b"python3\x00worker\x00", None, ["python3", "worker"]),
    (b"sip-worker\n", b"python3\x00\xff\x00", "sip-worker", None),
    # A kernel thread or zombie has an empty cmdline.
    (b"sip-worker\n", b"", "sip-worker", []),
    # A process that rewrote its argv (nginx, postgres) often leaves spaces, not NULs.
    (b"nginx\n", b"nginx: worker process", "nginx", ["nginx: worker process"]),
    (b"nginx\n", b"nginx: worker process\x00\x00", "nginx", ["nginx: worker process", ""]),
])
def test_owner_names_written_by_the_process(tmp_path, comm, cmdline, name, argv):
    root = build_proc_tree("prefork", tmp_path)
    for file_name, content in (("comm", comm), ("cmdline", cmdline)):
        with open(os.path.join(root, "31", file_name), "wb") as handle:
            handle.write(content)
    owners = find_socket_owners(Host(module=None), [750777], root)
    assert owners[750777][1] == SocketOwner(pid=31, name=name, cmdline=argv)


# --- the host's own addresses (what a rule's -d can match) ---------------------------------------

def _address_fixture(name):
    path = os.path.join(os.path.dirname(__file__), "fixtures", "proc", "addresses", name)
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def test_the_host_addresses_come_from_fib_trie_and_if_inet6():
    from ansible_collections.sipguard.firewall.plugins.module_utils._addresses import parse_fib_trie, parse_if_inet6
    assert parse_fib_trie(_address_fixture("fib_trie")) == ["10.89.7.81"]
    assert parse_if_inet6(_address_fixture("if_inet6")) == ["fd00:5061::51", "fe80::1c5f:cdff:fe27:5843"]
    assert parse_fib_trie("") == [] and parse_if_inet6(None) == []


def test_the_host_interfaces_come_from_net_dev():
    from ansible_collections.sipguard.firewall.plugins.module_utils._addresses import parse_net_dev
    assert parse_net_dev(_address_fixture("net_dev")) == ["eth0"]
    assert parse_net_dev(None) == []
