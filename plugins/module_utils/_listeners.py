# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Who listens on a port, read from /proc alone (no ss, netstat or ps).

Private to the sipguard.firewall collection: no stability guarantees for other users.

``parse_socket_table`` and ``listeners_on_port`` are pure (text in, data out);
``read_socket_tables``, ``read_bindv6only`` and ``find_socket_owners`` read through a
host object with ``read_text``, ``listdir`` and ``readlink`` (``_host.Host``), under a
/proc root given as a parameter so tests can point them at a directory tree.

What /proc cannot say:

* /proc/net/* shows the sockets of the reading process's network namespace only; a
  container with its own namespace (Docker, Podman) is not visible from the host's.
* Whether a socket bound to ``::`` also accepts IPv4 (IPV6_V6ONLY) is not in
  /proc/net. /proc/sys/net/ipv6/bindv6only is only the default for sockets that do
  not set the option, and many daemons set it (nginx, Go's net package, Python's
  socket.create_server), so ``Listener.dual_stack`` is ``None`` (unknown) for ``::``.
  Nor does an IPv4 ``0.0.0.0`` listener on the same port prove IPV6_V6ONLY: with
  SO_REUSEPORT a dual-stack ``::`` socket and a ``0.0.0.0`` one can both listen.
* Without root, /proc/PID/fd of other users' processes cannot be listed, so their
  sockets have no known owner.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from typing import List, Optional

from ansible_collections.sipguard.firewall.plugins.module_utils._host import HostError

TABLE_NAMES = ("tcp", "tcp6", "udp", "udp6")
TABLE_PROTOCOL = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp"}
TABLE_FAMILY = {"tcp": "ipv4", "tcp6": "ipv6", "udp": "ipv4", "udp6": "ipv6"}
ADDRESS_HEX_DIGITS = {"ipv4": 8, "ipv6": 32}

# Kernel socket states (include/net/tcp_states.h). UDP reuses two of them: a connected
# UDP socket is ESTABLISHED, an unconnected one is CLOSE (ss prints it as UNCONN).
TCP_ESTABLISHED = 0x01
TCP_CLOSE = 0x07
TCP_LISTEN = 0x0A
TCP_STATE_NAMES = {
    0x01: "ESTABLISHED", 0x02: "SYN_SENT", 0x03: "SYN_RECV", 0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2", 0x06: "TIME_WAIT", 0x07: "CLOSE", 0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK", 0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "NEW_SYN_RECV",
}
UDP_STATE_NAMES = {TCP_ESTABLISHED: "ESTABLISHED", TCP_CLOSE: "UNCONN"}
PROTOCOL_LISTEN_STATE = {"tcp": TCP_LISTEN, "udp": TCP_CLOSE}

# Columns after splitting a line on whitespace; the same in all four tables:
# sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
COLUMN_LOCAL, COLUMN_REMOTE, COLUMN_STATE, COLUMN_UID, COLUMN_INODE = 1, 2, 3, 7, 9
MINIMUM_COLUMNS = COLUMN_INODE + 1

IPV4_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
SOCKET_LINK_FORMAT = "socket:[%d]"


class ProcNetError(ValueError):
    """A /proc/net socket table line cannot be parsed; the message names the line."""


@dataclass(frozen=True)
class SocketEntry:
    """One line of /proc/net/{tcp,tcp6,udp,udp6}, decoded."""

    table: str
    line_number: int
    protocol: str
    family: str
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: int
    state_name: str
    uid: int
    inode: int


@dataclass(frozen=True)
class Listener:
    """A socket that accepts new peers on a port: TCP LISTEN or unconnected UDP.

    ``family`` is the socket's table (ipv6 for tcp6/udp6). ``dual_stack`` says whether
    the socket also receives IPv4: False for IPv4 sockets and IPv6 sockets bound to one
    address (an IPv4-mapped address reaches IPv4 only: see ``address``), None for ``::``
    because IPV6_V6ONLY is not visible in /proc (see the module docstring).
    """

    protocol: str
    family: str
    address: str
    port: int
    inode: int
    uid: int
    wildcard: bool
    loopback_only: bool
    dual_stack: Optional[bool]


@dataclass(frozen=True)
class SocketOwner:
    """A process holding a socket: ``name`` from /proc/PID/comm, ``cmdline`` its argv.

    ``name`` or ``cmdline`` is None when the file is not valid UTF-8 (both are set by
    the process itself) or could not be read; ``cmdline`` is [] for kernel threads.
    """

    pid: int
    name: Optional[str]
    cmdline: Optional[List[str]]


def _line_error(table, line_number, line, reason):
    return ProcNetError("/proc/net/%s line %d: %s: %r" % (table, line_number, reason, line.strip()))


def decode_address(hex_address, family, byteorder=sys.byteorder):
    """The text form of a /proc/net address (hex digits, no port).

    The kernel prints each 32-bit word of the address as a number in the CPU's byte
    order ("%08X"), so on little-endian hosts every 4-byte group is reversed. The
    IPv4-mapped form is spelled ``::ffff:a.b.c.d`` on every Python version.
    """
    packed = bytes.fromhex(hex_address)
    if len(packed) * 2 != ADDRESS_HEX_DIGITS[family]:
        raise ValueError("%s address must be %d hex digits" % (family, ADDRESS_HEX_DIGITS[family]))
    if byteorder == "little":
        packed = b"".join(packed[start:start + 4][::-1] for start in range(0, len(packed), 4))
    if family == "ipv4":
        return str(ipaddress.IPv4Address(packed))
    address = ipaddress.IPv6Address(packed)
    if address.ipv4_mapped is not None:
        return "::ffff:%s" % address.ipv4_mapped
    return str(address)


def _split_endpoint(table, line_number, line, endpoint, family, byteorder):
    hex_address, separator, hex_port = endpoint.partition(":")
    if not separator or len(hex_port) != 4:
        raise _line_error(table, line_number, line, "endpoint %r is not ADDRESS:PORT in hex" % endpoint)
    try:
        return decode_address(hex_address, family, byteorder), int(hex_port, 16)
    except ValueError as exc:
        raise _line_error(table, line_number, line, "endpoint %r: %s" % (endpoint, exc))


def parse_socket_table(table, text, byteorder=sys.byteorder):
    """Decode the text of /proc/net/``table`` (tcp, tcp6, udp or udp6) into SocketEntry.

    ``byteorder`` is the byte order of the CPU whose kernel wrote the text; the
    default suits reading the local /proc. Raises ProcNetError naming the line.
    """
    if table not in TABLE_NAMES:
        raise ValueError("unknown socket table %r (expected one of %s)" % (table, ", ".join(TABLE_NAMES)))
    protocol, family = TABLE_PROTOCOL[table], TABLE_FAMILY[table]
    state_names = TCP_STATE_NAMES if protocol == "tcp" else UDP_STATE_NAMES
    lines = text.splitlines()
    if not lines or lines[0].split()[:1] != ["sl"]:
        raise _line_error(table, 1, lines[0] if lines else "", "expected the header line starting with 'sl'")
    entries = []
    for line_number, line in enumerate(lines[1:], start=2):
        columns = line.split()
        if not columns:
            continue
        if len(columns) < MINIMUM_COLUMNS or not columns[0].endswith(":"):
            raise _line_error(table, line_number, line, "expected at least %d columns starting with 'N:'" % MINIMUM_COLUMNS)
        local_address, local_port = _split_endpoint(
            table, line_number, line, columns[COLUMN_LOCAL], family, byteorder)
        remote_address, remote_port = _split_endpoint(
            table, line_number, line, columns[COLUMN_REMOTE], family, byteorder)
        state_hex = columns[COLUMN_STATE]
        try:
            state = int(state_hex, 16)
            uid, inode = int(columns[COLUMN_UID]), int(columns[COLUMN_INODE])
        except ValueError:
            raise _line_error(table, line_number, line, "state, uid or inode is not a number")
        if len(state_hex) != 2:
            raise _line_error(table, line_number, line, "state %r is not two hex digits" % state_hex)
        entries.append(SocketEntry(
            table=table, line_number=line_number, protocol=protocol, family=family,
            local_address=local_address, local_port=local_port,
            remote_address=remote_address, remote_port=remote_port,
            state=state, state_name=state_names.get(state, "0x%02X" % state),
            uid=uid, inode=inode))
    return entries


def read_socket_tables(host, proc_root="/proc", tables=TABLE_NAMES, byteorder=sys.byteorder):
    """Read and parse /proc/net tables of the reading process's network namespace.

    Returns {table: [SocketEntry]}; a table whose file does not exist (tcp6 and udp6
    on a kernel booted with ipv6.disable=1) is left out, so callers can tell "no
    sockets" from "no IPv6".
    """
    parsed = {}
    for table in tables:
        text = host.read_text("%s/net/%s" % (proc_root, table))
        if text is not None:
            parsed[table] = parse_socket_table(table, text, byteorder)
    return parsed


def read_bindv6only(host, proc_root="/proc"):
    """The net.ipv6.bindv6only sysctl: the IPV6_V6ONLY default for new sockets.

    True or False, or None when IPv6 is disabled. Only a default: a socket that sets
    IPV6_V6ONLY itself is not affected, so this never proves a ``::`` listener's mode.
    """
    text = host.read_text("%s/sys/net/ipv6/bindv6only" % proc_root)
    if text is None:
        return None
    return text.strip() != "0"


def _classify_address(address):
    """(wildcard, loopback_only, dual_stack) for a local address as decode_address spells it."""
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        # An AF_INET6 socket bound to ::ffff:a.b.c.d only receives IPv4 for a.b.c.d.
        ipv4 = parsed.ipv4_mapped
        return ipv4.is_unspecified, ipv4 in IPV4_LOOPBACK, False
    if parsed.version == 4:
        return parsed.is_unspecified, parsed in IPV4_LOOPBACK, False
    if parsed.is_unspecified:
        return True, False, None
    return False, parsed.is_loopback, False


def listeners_on_port(tables, port, protocols=("tcp", "udp")):
    """Sockets accepting new peers on ``port``: TCP in LISTEN, UDP unconnected.

    ``tables`` maps table names to parsed entries (read_socket_tables' result, or any
    mapping of SocketEntry lists). A connected UDP socket (state ESTABLISHED, remote
    set) only receives from its peer, so it is not a listener. Sorted by protocol,
    family, address and inode.
    """
    wanted = set(protocols)
    unknown = wanted - set(PROTOCOL_LISTEN_STATE)
    if unknown:
        raise ValueError("unknown protocols %s (expected tcp, udp)" % ", ".join(sorted(unknown)))
    found = []
    for entries in tables.values():
        for entry in entries:
            if entry.protocol not in wanted or entry.local_port != port:
                continue
            if entry.state != PROTOCOL_LISTEN_STATE[entry.protocol]:
                continue
            if entry.protocol == "udp" and entry.remote_port != 0:
                continue
            wildcard, loopback_only, dual_stack = _classify_address(entry.local_address)
            found.append(Listener(
                protocol=entry.protocol, family=entry.family, address=entry.local_address,
                port=entry.local_port, inode=entry.inode, uid=entry.uid, wildcard=wildcard,
                loopback_only=loopback_only, dual_stack=dual_stack))
    return sorted(found, key=lambda item: (item.protocol, item.family, item.address, item.inode))


def _read_optional_text(host, path):
    """A /proc file's text; None when it vanished, is unreadable or is not UTF-8."""
    try:
        return host.read_text(path)
    except (HostError, UnicodeDecodeError):
        # comm and cmdline are written by the process itself and may hold any bytes.
        return None


def _describe_process(host, proc_root, pid):
    """SocketOwner for pid, or None when the process exited since its fds were read."""
    base = "%s/%d" % (proc_root, pid)
    try:
        comm = host.read_text(base + "/comm")
        if comm is None:
            return None
    except (HostError, UnicodeDecodeError):
        comm = None
    cmdline_text = _read_optional_text(host, base + "/cmdline")
    cmdline = None
    if cmdline_text is not None:
        # argv is NUL-terminated; a process that rewrote its argv may use spaces instead.
        cmdline = cmdline_text.split("\0")
        if cmdline[-1] == "":
            cmdline.pop()
    name = comm.rstrip("\n") if comm is not None else None
    return SocketOwner(pid=pid, name=name, cmdline=cmdline)


def find_socket_owners(host, inodes, proc_root="/proc", stop_early=False):
    """Map socket inodes to the processes holding them, from /proc/PID/fd links.

    Returns {inode: [SocketOwner sorted by pid]} with every wanted inode as a key ([]
    when no process was found: it exited, or its fds cannot be listed without root).

    Only numeric /proc entries are visited and only their fd links are read; comm and
    cmdline are read for the matching processes alone. A socket shared by several
    processes (forked workers) is reported with all of them, which requires walking
    every process; with ``stop_early`` the walk ends as soon as every inode has an
    owner (cheaper on hosts with many processes; sharers with higher pids than that
    point are missed). Processes exiting during the walk are skipped (readlink None,
    listdir []).
    """
    wanted = {SOCKET_LINK_FORMAT % inode: inode for inode in inodes if inode}
    if not wanted:  # nothing listens: no reason to walk every process
        return {inode: [] for inode in inodes}
    pids_by_inode = {inode: [] for inode in inodes if inode}
    unfound = set(wanted.values())
    pids = sorted(int(entry) for entry in host.listdir(proc_root) if entry.isdigit())
    for pid in pids:
        if stop_early and not unfound:
            break
        fd_directory = "%s/%d/fd" % (proc_root, pid)
        held = set()
        for fd in host.listdir(fd_directory):
            inode = wanted.get(host.readlink("%s/%s" % (fd_directory, fd)))
            if inode is not None:
                held.add(inode)
        for inode in held:
            pids_by_inode[inode].append(pid)
            unfound.discard(inode)
    owners_by_inode = {inode: [] for inode in inodes}
    descriptions = {}
    for inode, inode_pids in pids_by_inode.items():
        for pid in inode_pids:
            if pid not in descriptions:
                descriptions[pid] = _describe_process(host, proc_root, pid)
            if descriptions[pid] is not None:
                owners_by_inode[inode].append(descriptions[pid])
    return owners_by_inode


def find_listeners(host, port, protocols, proc_root="/proc"):
    """The sockets listening on port and their owners: (listeners, {inode: [SocketOwner]})."""
    listeners = listeners_on_port(read_socket_tables(host, proc_root), port, protocols)
    return listeners, find_socket_owners(host, [listener.inode for listener in listeners], proc_root)


def listener_record(listener, owners):
    """A listener and its processes as plain data for a module result."""
    return dict(protocol=listener.protocol, family=listener.family, address=listener.address,
                port=listener.port, wildcard=listener.wildcard, loopback_only=listener.loopback_only,
                dual_stack=listener.dual_stack, uid=listener.uid,
                processes=[dict(pid=owner.pid, name=owner.name, cmdline=owner.cmdline)
                           for owner in owners.get(listener.inode, [])])
