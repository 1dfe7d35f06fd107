# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read a host once: UFW's files, the running rule sets (both backends, nft), who listens.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Everything the audit and the close decide from is in one ``UfwSnapshot``; nothing after the
read looks at the host again, except the close's own writes and its re-read once UFW has
been started (what UFW loads at start is known only then).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._addresses import NET_DEV, host_addresses, parse_net_dev
from ansible_collections.sipguard.firewall.plugins.module_utils._host import HostError
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import ProcNetError, find_listeners
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import (
    parse_iptables_save,
    parse_nft_ruleset,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import has_ufw_chains
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.docker import (
    AFTER_INIT,
    AFTER_RULES,
    docker_state,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import (
    RulesFile,
    UfwRulesError,
    parse_rules_file,
)

UFW_CONF = "/etc/ufw/ufw.conf"
UFW_DEFAULTS = "/etc/default/ufw"
UFW_INIT_CANDIDATES = ("/lib/ufw/ufw-init", "/usr/lib/ufw/ufw-init")
UFW_SCRIPT_VERSION_RE = re.compile(r'^version\s*=\s*"([^"]+)"', re.MULTILINE)
# ufw's words for its default policies and the iptables policy each one sets.
POLICY_WORDS = {"ACCEPT": "allow", "DROP": "deny", "REJECT": "reject"}
POLICY_KEYS = {"incoming": "DEFAULT_INPUT_POLICY", "outgoing": "DEFAULT_OUTPUT_POLICY",
               "routed": "DEFAULT_FORWARD_POLICY"}
BACKENDS = ("nft", "legacy")


@dataclass(frozen=True)
class FamilyFiles:
    rules_path: str
    command: str  # iptables or ip6tables: the alternative that decides ufw's backend
    chain_prefix: str
    legacy_names: str  # lists the legacy tables the kernel holds; empty when there are none

    @property
    def save(self):
        return self.command + "-save"

    def tools(self, backend=None):
        """(save, restore) of one backend, or of the one the alternative leads to (None)."""
        suffix = "-%s" % backend if backend else ""
        return (self.command + suffix + "-save", self.command + suffix + "-restore")


FAMILY_FILES = {
    "ipv4": FamilyFiles("/etc/ufw/user.rules", "iptables", "ufw", "/proc/net/ip_tables_names"),
    "ipv6": FamilyFiles("/etc/ufw/user6.rules", "ip6tables", "ufw6", "/proc/net/ip6_tables_names"),
}


class UfwPortError(Exception):
    """The host cannot be read, the close cannot proceed or it failed; ``result`` carries what is known."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result or {}


@dataclass
class UfwSnapshot:
    """Everything the audit and the close decide from, read once from the host.

    Per family: ``live`` is the rule set of the backend UFW runs on (``backends``), with
    ``tools`` the save and restore commands that reach it; ``other`` the other backend's
    tables when it holds any, a second rule set the kernel applies that UFW never sees.
    ``texts`` holds the configuration files as read (the close's roll-back puts them back).
    """

    version: Optional[str]
    conf: Dict[str, str]
    defaults: Dict[str, str]
    backends: Dict[str, str]
    rules_text: Dict[str, str]
    rules: Dict[str, RulesFile]
    live: Dict[str, dict]
    other: Dict[str, dict] = field(default_factory=dict)
    tools: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    notes: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    installed: bool = True
    # The host's own addresses by family (/proc/net/fib_trie, /proc/net/if_inet6); empty when unknown.
    local: Dict[str, list] = field(default_factory=dict)
    # The host's interfaces other than lo (/proc/net/dev), and those with an IPv6 address; empty when unknown.
    interfaces: List[str] = field(default_factory=list)
    ipv6_interfaces: List[str] = field(default_factory=list)
    # `nft list ruleset` parsed (None without nft); the sockets on the port and their processes.
    nft: Optional[list] = None
    listeners: List = field(default_factory=list)
    owners: Dict = field(default_factory=dict)
    listeners_problem: Optional[str] = None
    texts: Dict[str, Optional[str]] = field(default_factory=dict)
    modes: Dict[str, Optional[int]] = field(default_factory=dict)  # of texts' files that keep a mode of their own
    ufw_init: Optional[str] = None
    # Docker on the host (IPv4): dockerd, its chains, the port's DOCKER-USER block (_ufw.docker).
    docker: Optional[object] = None

    @property
    def enabled(self):
        return self.conf.get("ENABLED", "no").lower() == "yes"

    def loaded(self, family):
        return has_ufw_chains(self.live.get(family), family)

    @property
    def ipv6(self):
        return self.defaults.get("IPV6", "yes").lower() == "yes"

    @property
    def backend(self):
        """nft or legacy; both, per family, in the rare case iptables and ip6tables differ."""
        if len(set(self.backends.values())) > 1:
            return ", ".join("%s (%s)" % (backend, family) for family, backend in sorted(self.backends.items()))
        return next(iter(self.backends.values()), "nft")

    def save_command(self, family):
        return self.tools.get(family, FAMILY_FILES[family].tools())[0]

    def restore_command(self, family):
        return self.tools.get(family, FAMILY_FILES[family].tools())[1]

    def policies(self):
        return {name: POLICY_WORDS.get(self.defaults.get(key, "").upper(), self.defaults.get(key, "").lower())
                for name, key in POLICY_KEYS.items()}


def parse_key_values(text):
    """KEY=value lines of ufw.conf and /etc/default/ufw, quotes removed."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _sep, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def set_key_values(text, updates):
    """Rewrite KEY=value lines in place (keeping comments and order); append missing keys."""
    lines = text.splitlines()
    remaining = dict(updates)
    for index, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in remaining:
            value = remaining.pop(key)
            quoted = '"' in line.split("=", 1)[1]
            lines[index] = '%s="%s"' % (key, value) if quoted else "%s=%s" % (key, value)
    lines.extend("%s=%s" % item for item in remaining.items())
    return "\n".join(lines) + "\n"


def command_backend(host, command):
    """The backend the command (iptables, ip6tables) leads to, as UFW runs it; None without it.

    Debian's alternatives end in xtables-nft-multi or xtables-legacy-multi (iptables-nft,
    iptables-nft-save, ... are links to them); an iptables older than 1.8 (xtables-multi or a
    plain binary) has only the legacy backend."""
    path = host.find_executable(command)
    if path is None:
        return None
    return "nft" if "nft" in os.path.basename(host.realpath(path)) else "legacy"


def read_tables(host, command):
    """The tables an iptables-save command prints; {} when the command is not there."""
    return parse_iptables_save(host.run([command])) if host.find_executable(command) else {}


def _read_other_backend(host, files, backend):
    """(tables, problem) of the backend the alternative does not lead to; {} when it holds none."""
    if backend == "legacy" and not (host.read_text(files.legacy_names) or "").strip():
        return {}, None  # no legacy table exists: nothing to run
    save = files.tools(backend)[0]
    try:
        return read_tables(host, save), None
    except HostError as exc:
        # A kernel without nf_tables, say: what that backend may hold stays unknown, not fatal.
        return {}, "cannot read the %s backend's tables, so rules there are not judged: %s" % (backend, exc)


def _read_family(host, family, installed):
    """(rules text, rules, backend, live tables, other tables, tools or None, notes) of one family."""
    files = FAMILY_FILES[family]
    text, rules = host.read_text(files.rules_path) if installed else None, None
    if text is None and installed:
        raise UfwPortError("%s is missing: UFW's installation is incomplete" % files.rules_path)
    if text is not None:
        try:
            rules = parse_rules_file(text)
        except UfwRulesError as exc:
            raise UfwPortError("cannot parse %s: %s; nothing was changed" % (files.rules_path, exc))
    alternative = command_backend(host, files.command) or "nft"
    backend, tables, tools = alternative, read_tables(host, files.save), None
    other_backend = BACKENDS[1 - BACKENDS.index(alternative)]
    other_tables, problem = _read_other_backend(host, files, other_backend)
    notes = (problem,) if problem else ()
    if not has_ufw_chains(tables, family) and has_ufw_chains(other_tables, family):
        backend, tables, other_tables = other_backend, other_tables, tables
        tools = files.tools(backend)
        notes += ("UFW's chains are loaded in %s-%s, but `%s` now leads to %s-%s (the alternative was "
                  "switched after UFW started): they are judged and changed where they are loaded; the "
                  "next `ufw reload` or boot loads UFW into %s-%s and leaves these chains behind"
                  % (files.command, backend, files.command, files.command, alternative,
                     files.command, alternative),)
    return text, rules, backend, tables, other_tables, tools, notes


def _read_docker(host, snapshot, port):
    """after.rules, after.init (text and mode) and what the IPv4 tables say of Docker."""
    snapshot.texts[AFTER_RULES] = host.read_text(AFTER_RULES)
    snapshot.texts[AFTER_INIT] = host.read_text(AFTER_INIT)
    snapshot.modes[AFTER_INIT] = host.file_mode(AFTER_INIT)
    try:
        snapshot.docker = docker_state(snapshot.live.get("ipv4"), snapshot.other.get("ipv4"),
                                       host.find_executable("dockerd"), snapshot.texts[AFTER_RULES], port)
    except ValueError as exc:
        raise UfwPortError("%s: %s; nothing was changed" % (AFTER_RULES, exc))


def read_snapshot(host, request, require_ufw=True):
    """Read UFW's configuration, its rule files, the running rule sets of request.families,
    `nft list ruleset` and the sockets on request.port: what the audit and the close judge.

    The backend is the one UFW's chains are loaded in: the one the iptables alternative
    leads to, unless UFW's chains are only in the other one (the alternative was switched
    after UFW started), which the family's commands then address by name.

    With require_ufw=False (the audit) a host without UFW gives a snapshot with
    installed=False and no rules, and a host without iptables gives no live tables.
    """
    ufw = host.find_executable("ufw")
    conf_text = host.read_text(UFW_CONF)
    installed = ufw is not None and conf_text is not None
    if not installed and require_ufw:
        raise UfwPortError("UFW is not installed on this host (no ufw command or no %s)" % UFW_CONF)
    script = (host.read_text(host.realpath(ufw)) or "") if installed else ""
    version_match = UFW_SCRIPT_VERSION_RE.search(script)
    defaults_text = host.read_text(UFW_DEFAULTS)

    snapshot = UfwSnapshot(
        version=version_match.group(1) if version_match else None,
        conf=parse_key_values(conf_text), defaults=parse_key_values(defaults_text),
        backends={}, rules_text={}, rules={}, live={}, installed=installed,
        texts={UFW_CONF: conf_text or "", UFW_DEFAULTS: defaults_text or ""},
        ufw_init=next((path for path in UFW_INIT_CANDIDATES if host.read_text(path) is not None), None)
        if installed else None)
    for family in request.families:
        text, rules, backend, tables, other_tables, tools, notes = _read_family(host, family, installed)
        if text is not None:
            snapshot.rules_text[family], snapshot.rules[family] = text, rules
        snapshot.backends[family], snapshot.live[family], snapshot.notes[family] = backend, tables, notes
        if other_tables:
            snapshot.other[family] = other_tables
        if tools:
            snapshot.tools[family] = tools
    if installed and "ipv4" in request.families:
        _read_docker(host, snapshot, request.port)
    snapshot.local, snapshot.ipv6_interfaces = host_addresses(host)
    snapshot.interfaces = parse_net_dev(host.read_text(NET_DEV))
    nft = host.find_executable("nft")
    snapshot.nft = parse_nft_ruleset(host.run([nft, "list", "ruleset"])) if nft else None
    try:
        snapshot.listeners, snapshot.owners = find_listeners(host, request.port, request.protocols)
    except ProcNetError as exc:
        snapshot.listeners_problem = "cannot read the socket tables: %s" % exc
    return snapshot
