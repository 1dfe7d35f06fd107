# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Close one port in UFW in one transaction: lock, read, plan, write, load, verify.

Private to the sipguard.firewall collection: no stability guarantees for other users.

Data flows one way: the host is read once under UFW's lock into a ``UfwSnapshot``;
``plan_family`` and ``evaluate_exposure`` are pure functions over it; ``apply_plan``
is the only step that writes, and it puts everything back when a step fails.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._host import HostError
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import (
    ProcNetError,
    find_listeners,
    listener_record,
    NET_DEV,
    host_addresses,
    parse_net_dev,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.bypasses import (
    find_bypasses,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import (
    BYPASS_LEGACY_RULES,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import (
    parse_chain_lines,
    parse_iptables_save,
    replace_chain_rules,
    same_rules,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import (
    has_ufw_chains,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw_rules import (
    RulesFile,
    UfwRulesError,
    format_status_line,
    make_rule,
    parse_rules_file,
    render_rules_file,
)

UFW_CONF = "/etc/ufw/ufw.conf"
UFW_DEFAULTS = "/etc/default/ufw"
UFW_INIT_CANDIDATES = ("/lib/ufw/ufw-init", "/usr/lib/ufw/ufw-init")
UFW_SCRIPT_VERSION_RE = re.compile(r'^version\s*=\s*"([^"]+)"', re.MULTILINE)
COMMENT_RE = re.compile(r"^[A-Za-z0-9 ._:-]{1,64}$")
PROTOCOLS = ("tcp", "udp")
FAMILIES = ("ipv4", "ipv6")
# ufw's words for its default policies and the iptables policy each one sets.
POLICY_WORDS = {"ACCEPT": "allow", "DROP": "deny", "REJECT": "reject"}
POLICY_KEYS = {"incoming": "DEFAULT_INPUT_POLICY", "outgoing": "DEFAULT_OUTPUT_POLICY",
               "routed": "DEFAULT_FORWARD_POLICY"}
IPTABLES_RESTORE_WAIT = "5"


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

    @property
    def restore(self):
        return self.command + "-restore"

    def tools(self, backend=None):
        """(save, restore) of one backend, or of the one the alternative leads to (None)."""
        suffix = "-%s" % backend if backend else ""
        return (self.command + suffix + "-save", self.command + suffix + "-restore")


FAMILY_FILES = {
    "ipv4": FamilyFiles("/etc/ufw/user.rules", "iptables", "ufw", "/proc/net/ip_tables_names"),
    "ipv6": FamilyFiles("/etc/ufw/user6.rules", "ip6tables", "ufw6", "/proc/net/ip6_tables_names"),
}


class RequestError(ValueError):
    """The task's parameters are invalid; nothing was read or changed."""


class UfwPortError(Exception):
    """The transaction cannot proceed or failed; ``result`` carries what is known."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result or {}


@dataclass(frozen=True)
class PortRequest:
    port: int
    protocols: Tuple[str, ...]
    families: Tuple[str, ...]
    state: str
    action: str
    trusted_sources: Tuple[str, ...]
    conflicts: str
    inactive: str
    comment: str
    lock_timeout: int

    @classmethod
    def from_params(cls, params):
        """Validate and normalise module parameters, naming the bad value on error."""
        port = params["port"]
        if not 1 <= port <= 65535:
            raise RequestError("port must be from 1 to 65535, got %s" % port)
        protocols = _unique(params["protocols"], "protocols", PROTOCOLS)
        families = _unique(params["families"], "families", FAMILIES)
        comment = params["comment"]
        if not COMMENT_RE.match(comment):
            raise RequestError(
                "comment %r must be 1-64 letters, digits, spaces or . _ : - (it tags this collection's rules)"
                % comment)
        if params["lock_timeout"] < 0:
            raise RequestError("lock_timeout must be 0 or more seconds, got %s" % params["lock_timeout"])
        sources = tuple(_normalize_source(source, families) for source in params["trusted_sources"])
        return cls(port=port, protocols=protocols, families=families, state=params["state"],
                   action=params["action"], trusted_sources=tuple(dict.fromkeys(sources)),
                   conflicts=params["conflicts"], inactive=params["inactive"], comment=comment,
                   lock_timeout=params["lock_timeout"])

    def sources_for(self, family):
        return [source for source in self.trusted_sources if _family_of(source) == family]


def _unique(values, name, allowed):
    if not values:
        raise RequestError("%s must name at least one of %s; got an empty list" % (name, ", ".join(allowed)))
    # Keep the canonical order so the rules do not move when the list is reordered.
    return tuple(value for value in allowed if value in values)


def _family_of(network_text):
    return "ipv6" if ":" in network_text else "ipv4"


def _normalize_source(source, families):
    try:
        network = ipaddress.ip_network(source.strip(), strict=True)
    except ValueError as exc:
        raise RequestError("trusted source %r is not an IPv4/IPv6 address or network: %s" % (source, exc))
    family = "ipv%d" % network.version
    if family not in families:
        raise RequestError("trusted source %r is %s, but families is %s" % (source, family, list(families)))
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


# ----------------------------------------------------------------------------------
# Reading the host (under UFW's lock)
# ----------------------------------------------------------------------------------

@dataclass
class UfwSnapshot:
    """Everything the transaction needs, read once from the host.

    Per family: ``live`` is the rule set of the backend UFW runs on (``backends``), with
    ``tools`` the save and restore commands that reach it; ``other`` the other backend's
    tables when it holds any, a second rule set the kernel applies that UFW never sees.
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


def _read_tables(host, command):
    return parse_iptables_save(host.run([command])) if host.find_executable(command) else {}


def _read_other_backend(host, files, backend):
    """(tables, problem) of the backend the alternative does not lead to; {} when it holds none."""
    if backend == "legacy" and not (host.read_text(files.legacy_names) or "").strip():
        return {}, None  # no legacy table exists: nothing to run
    save = files.tools(backend)[0]
    try:
        return _read_tables(host, save), None
    except HostError as exc:
        # A kernel without nf_tables, say: what that backend may hold stays unknown, not fatal.
        return {}, "cannot read the %s backend's tables, so rules there are not judged: %s" % (backend, exc)


def read_snapshot(host, families, require_ufw=True):
    """Read UFW's configuration, its rule files and the running rule set of each family.

    The backend is the one UFW's chains are loaded in: the one the iptables alternative
    leads to, unless UFW's chains are only in the other one (the alternative was switched
    after UFW started), which the family's commands then address by name.

    With require_ufw=False (the read-only audit) a host without UFW gives a snapshot with
    installed=False and no rules, and a host without iptables gives no live tables.
    """
    ufw = host.find_executable("ufw")
    conf_text = host.read_text(UFW_CONF)
    installed = ufw is not None and conf_text is not None
    if not installed and require_ufw:
        raise UfwPortError("UFW is not installed on this host (no ufw command or no %s)" % UFW_CONF)
    script = (host.read_text(host.realpath(ufw)) or "") if installed else ""
    version_match = UFW_SCRIPT_VERSION_RE.search(script)

    rules_text, rules, live, other, backends, tools, notes = {}, {}, {}, {}, {}, {}, {}
    for family in families:
        files = FAMILY_FILES[family]
        text = host.read_text(files.rules_path) if installed else None
        if text is None and installed:
            raise UfwPortError("%s is missing: UFW's installation is incomplete" % files.rules_path)
        if text is not None:
            try:
                rules[family] = parse_rules_file(text)
            except UfwRulesError as exc:
                raise UfwPortError("cannot parse %s: %s; nothing was changed" % (files.rules_path, exc))
            rules_text[family] = text
        alternative = command_backend(host, files.command) or "nft"
        backend, tables = alternative, _read_tables(host, files.save)
        other_backend = BACKENDS[1 - BACKENDS.index(alternative)]
        other_tables, problem = _read_other_backend(host, files, other_backend)
        notes[family] = (problem,) if problem else ()
        if not has_ufw_chains(tables, family) and has_ufw_chains(other_tables, family):
            backend, tables, other_tables = other_backend, other_tables, tables
            tools[family] = files.tools(backend)
            notes[family] += ("UFW's chains are loaded in %s-%s, but `%s` now leads to %s-%s (the alternative was "
                              "switched after UFW started): they are judged and changed where they are loaded; the "
                              "next `ufw reload` or boot loads UFW into %s-%s and leaves these chains behind"
                              % (files.command, backend, files.command, files.command, alternative,
                                 files.command, alternative),)
        backends[family], live[family] = backend, tables
        if other_tables:
            other[family] = other_tables
    local, ipv6_interfaces = host_addresses(host)
    return UfwSnapshot(
        version=version_match.group(1) if version_match else None,
        conf=parse_key_values(conf_text),
        defaults=parse_key_values(host.read_text(UFW_DEFAULTS)),
        backends=backends, rules_text=rules_text, rules=rules, live=live, other=other, tools=tools,
        notes=notes, installed=installed, local=local, ipv6_interfaces=ipv6_interfaces,
        interfaces=parse_net_dev(host.read_text(NET_DEV)))


# ----------------------------------------------------------------------------------
# Planning (pure)
# ----------------------------------------------------------------------------------

def _status(rule):
    """A rule as one `ufw status` line with the column padding squeezed out."""
    return " ".join(format_status_line(rule).split())


def port_in_spec(port, spec):
    """Whether port is in a ufw port field: 'any', '5061', '5000:6000', '80,443,5000:6000'."""
    if spec == "any":
        return True
    for part in spec.split(","):
        low, _sep, high = part.partition(":")
        if int(low) <= port <= int(high or low):
            return True
    return False


def accepts_port(rule, port, protocols):
    """Whether an incoming ufw rule lets the port through for one of the protocols."""
    return (rule.direction == "in" and not rule.route and rule.action in ("allow", "limit")
            and (rule.protocol == "any" or rule.protocol in protocols)
            and port_in_spec(port, rule.dport))


def is_ours(rule, request):
    return (rule.comment == request.comment and rule.direction == "in" and not rule.route
            and rule.dport == str(request.port))


def accepts_only_this_port(rule, request):
    """A rule whose removal loses nothing but this port on the requested protocols."""
    protocol_covered = (rule.protocol in request.protocols
                        or (rule.protocol == "any" and set(request.protocols) == set(PROTOCOLS)))
    return rule.dport == str(request.port) and rule.sport == "any" and protocol_covered


@dataclass(frozen=True)
class FamilyPlan:
    family: str
    before: RulesFile
    after: RulesFile
    added: Tuple = ()
    removed: Tuple = ()
    conflicts: Tuple = ()

    @property
    def files_change(self):
        return render_rules_file(self.before) != render_rules_file(self.after)


def desired_rules(request, family):
    v6 = family == "ipv6"
    rules = []
    for protocol in request.protocols:
        for source in request.sources_for(family):
            rules.append(make_rule("allow", protocol, request.port, src=source, comment=request.comment, v6=v6))
        rules.append(make_rule(request.action, protocol, request.port, comment=request.comment, v6=v6))
    return rules


def plan_family(rules_file, request, family):
    """The rule list wanted for one family: ours first, everything else kept in order."""
    ours = [rule for rule in rules_file.rules if is_ours(rule, request)]
    others = [rule for rule in rules_file.rules if not is_ours(rule, request)]
    if request.state == "absent":
        return FamilyPlan(family, rules_file, replace(rules_file, rules=tuple(others)), removed=tuple(ours))

    acceptors = [rule for rule in others if accepts_port(rule, request.port, request.protocols)]
    if acceptors and request.conflicts == "fail":
        raise UfwPortError(
            "%s: existing rules accept port %d and conflicts=fail: %s; nothing was changed"
            % (family, request.port, "; ".join(_status(rule) for rule in acceptors)))
    removable = [rule for rule in acceptors
                 if request.conflicts == "remove" and accepts_only_this_port(rule, request)]
    wanted = desired_rules(request, family)
    # A first rule of the file has ufw's blank line before it just like the others,
    # so the rule objects of ours compare equal to freshly made ones.
    kept = [rule for rule in others if rule not in removable]
    conflicts = tuple((rule, "removed" if rule in removable else "shadowed") for rule in acceptors)
    return FamilyPlan(
        family, rules_file, replace(rules_file, rules=tuple(wanted + kept)),
        added=tuple(rule for rule in wanted if rule not in ours),
        removed=tuple([rule for rule in ours if rule not in wanted] + removable),
        conflicts=conflicts)


def blocking_rules(rules_file, request):
    """Rules that would block other traffic once an inactive UFW is started."""
    return [rule for rule in rules_file.rules
            if rule.action in ("deny", "reject") and not is_ours(rule, request)]


def user_input_chain(family):
    return "%s-user-input" % FAMILY_FILES[family].chain_prefix


def user_input_lines(rules_file, family):
    """The `-A` lines a rules file loads into the ufw user input chain."""
    prefix = "-A %s " % user_input_chain(family)
    return [line for rule in rules_file.rules for line in rule.iptables_lines if line.startswith(prefix)]


def user_chain_drifted(snapshot, family, rules_file):
    """Whether the running ufw user input chain differs from what the file loads."""
    chain = user_input_chain(family)
    expected = parse_chain_lines("filter", chain, user_input_lines(rules_file, family))
    return not same_rules(expected, snapshot.live[family]["filter"].chains[chain].rules)


# ----------------------------------------------------------------------------------
# Applying (the only step that writes)
# ----------------------------------------------------------------------------------

def load_user_chains(host, snapshot, family, text):
    """Replace the running ufw user chains of one family with the file's, atomically.

    ``iptables-restore -n`` flushes each chain the file declares and refills it in one
    commit; the rest of the rule set stays. ufw itself loads user rules this way.
    """
    host.run([snapshot.restore_command(family), "-n", "-w", IPTABLES_RESTORE_WAIT], data=text)


def apply_active(host, snapshot, plans, reload_families):
    """Write the rule files and load the user chains; on failure put both back."""
    written, loaded = [], []
    try:
        for plan in plans:
            if plan.files_change:
                host.write_atomic(FAMILY_FILES[plan.family].rules_path, render_rules_file(plan.after))
                written.append(plan.family)
        for plan in plans:
            if plan.family in reload_families:
                # iptables-restore commits a table whole or not at all: only families
                # whose load succeeded need their old chains back.
                load_user_chains(host, snapshot, plan.family, render_rules_file(plan.after))
                loaded.append(plan.family)
    except HostError as exc:
        problems = _roll_back(host, snapshot, written, loaded)
        raise UfwPortError("applying the rules failed: %s; %s" % (
            exc, "the previous rule files and chains were put back" if not problems
            else "PUTTING BACK FAILED TOO: %s" % "; ".join(problems)))


def _roll_back(host, snapshot, written, loaded):
    problems = []
    for family in written:
        try:
            host.write_atomic(FAMILY_FILES[family].rules_path, snapshot.rules_text[family])
        except HostError as exc:
            problems.append(str(exc))
    for family in loaded:
        if snapshot.loaded(family):
            try:
                load_user_chains(host, snapshot, family, snapshot.rules_text[family])
            except HostError as exc:
                problems.append(str(exc))
    return problems


def start_ufw_plan(snapshot, request):
    """What enabling an inactive UFW must change so that nothing reachable now is cut off.

    Returns (defaults updates, human-readable actions).
    """
    updates, actions = {}, []
    live = snapshot.live.get("ipv4") or snapshot.live.get("ipv6") or {}
    filter_chains = live["filter"].chains if "filter" in live else {}
    wanted = {"incoming": "ACCEPT"}
    for name, chain in (("routed", "FORWARD"), ("outgoing", "OUTPUT")):
        # No filter table loaded at all means the kernel's default: ACCEPT.
        wanted[name] = filter_chains[chain].policy if chain in filter_chains else "ACCEPT"
    for name, policy in wanted.items():
        key = POLICY_KEYS[name]
        current = snapshot.defaults.get(key, "").upper()
        if current != policy:
            updates[key] = policy
            actions.append("set the default %s policy to %s (was %s) so that what is reachable now stays reachable"
                           % (name, POLICY_WORDS.get(policy, policy), POLICY_WORDS.get(current, current or "unset")))
    return updates, actions


def apply_start(host, snapshot, plans, defaults_updates):
    """Write rules and policies, mark UFW enabled and start it the way boot does."""
    ufw_init = next((path for path in UFW_INIT_CANDIDATES if host.read_text(path) is not None), None)
    if ufw_init is None:
        raise UfwPortError("cannot start UFW: no ufw-init in %s" % ", ".join(UFW_INIT_CANDIDATES))
    originals = {UFW_CONF: host.read_text(UFW_CONF), UFW_DEFAULTS: host.read_text(UFW_DEFAULTS) or ""}
    changed_paths = []
    try:
        for plan in plans:
            path = FAMILY_FILES[plan.family].rules_path
            originals[path] = snapshot.rules_text[plan.family]
            host.write_atomic(path, render_rules_file(plan.after))
            changed_paths.append(path)
        if defaults_updates:
            host.write_atomic(UFW_DEFAULTS, set_key_values(originals[UFW_DEFAULTS], defaults_updates))
            changed_paths.append(UFW_DEFAULTS)
        host.write_atomic(UFW_CONF, set_key_values(originals[UFW_CONF], {"ENABLED": "yes"}))
        changed_paths.append(UFW_CONF)
        host.run([ufw_init, "start"])
    except HostError as exc:
        problems = []
        for path in changed_paths:
            try:
                host.write_atomic(path, originals[path])
            except HostError as write_error:
                problems.append(str(write_error))
        try:
            host.run([ufw_init, "stop"])
        except HostError as stop_error:
            problems.append(str(stop_error))
        raise UfwPortError("starting UFW failed: %s; %s" % (
            exc, "the previous files were put back and UFW stopped again" if not problems
            else "PUTTING BACK FAILED TOO: %s" % "; ".join(problems)))


# ----------------------------------------------------------------------------------
# Verifying (pure)
# ----------------------------------------------------------------------------------

def ufw_ipv6_unmanaged(snapshot, tables, family):
    """Why UFW has no chains in the family's loaded rules when that is IPV6=no; else None."""
    if family != "ipv6" or not snapshot.installed or snapshot.ipv6 or has_ufw_chains(tables, family):
        return None
    return "UFW does not manage IPv6 on this host (IPV6=no in %s)" % UFW_DEFAULTS


def family_notes(snapshot, tables, family, closing=False):
    """What a reader should know about the family that does not decide the verdict."""
    notes = list(snapshot.notes.get(family, ()))
    unmanaged = ufw_ipv6_unmanaged(snapshot, tables, family)
    if unmanaged:
        notes.append("%s: it loads no IPv6 rule (and drops any from %s when it next writes its rules), so IPv6 is "
                     "judged from the ip6tables rules loaded now (with IPV6=no, UFW sets them to drop everything "
                     "but loopback when it starts)%s"
                     % (unmanaged, FAMILY_FILES[family].rules_path, "; no IPv6 rule was written" if closing else ""))
    return notes


def exposure_findings(request, snapshot, tables, family, protocol, nft_tables=None):
    """What lets the port in on one family/protocol for a source outside the trusted ones.

    Judged from the loaded rule set alone (tables, the backend UFW runs on), so a family UFW
    does not manage (IPv6 with IPV6=no) is as closed as its ip6tables rules make it.
    Returns (bypasses, warnings): each bypass means the port is not closed (a Bypass with
    a kind and a reason a person can act on); a warning is something to look at that does
    not open the port by itself (rules in the other backend's tables matter through their
    NAT, which is a bypass of its own).
    """
    bypasses, warnings = [], []
    for bypass in find_bypasses(tables, family, protocol, request.port, nft_tables=nft_tables,
                                other_tables=snapshot.other.get(family),
                                backend=snapshot.backends.get(family, "nft"),
                                ufw_absent_reason=ufw_ipv6_unmanaged(snapshot, tables, family),
                                trusted=request.sources_for(family),
                                local_addresses=snapshot.local.get(family),
                                interfaces=snapshot.interfaces):
        if bypass.kind == BYPASS_LEGACY_RULES:
            warnings.append(bypass.reason)
        else:  # an allow from trusted sources is none: the walk judges a sender outside them
            bypasses.append(bypass)
    return bypasses, warnings


def evaluate_exposure(request, snapshot, tables_by_family):
    """Reasons and warnings over every requested family and protocol, prefixed with both
    (a note about the whole family with the family alone)."""
    reasons, warnings = [], []
    for family in request.families:
        warnings.extend("%s: %s" % (family, note)
                        for note in family_notes(snapshot, tables_by_family[family], family, closing=True))
        for protocol in request.protocols:
            found, noted = exposure_findings(request, snapshot, tables_by_family[family], family, protocol)
            reasons.extend("%s/%s: %s" % (family, protocol, bypass.reason) for bypass in found)
            warnings.extend("%s/%s: %s" % (family, protocol, warning) for warning in noted)
    return list(dict.fromkeys(reasons)), list(dict.fromkeys(warnings))


def tables_after(snapshot, plans):
    """The running rule set as it is once the plans' user chains are loaded."""
    result = dict(snapshot.live)
    for plan in plans:
        if snapshot.loaded(plan.family):
            result[plan.family] = replace_chain_rules(snapshot.live[plan.family], "filter",
                                                      user_input_chain(plan.family),
                                                      user_input_lines(plan.after, plan.family))
    return result


# ----------------------------------------------------------------------------------
# The transaction
# ----------------------------------------------------------------------------------

def _diff(plans):
    return [dict(before_header=FAMILY_FILES[plan.family].rules_path,
                 after_header=FAMILY_FILES[plan.family].rules_path,
                 before="".join(format_status_line(rule) + "\n" for rule in plan.before.rules),
                 after="".join(format_status_line(rule) + "\n" for rule in plan.after.rules))
            for plan in plans]


def _ufw_facts(snapshot, active_after, enabled_after=None):
    enabled = snapshot.enabled if enabled_after is None else enabled_after
    return dict(version=snapshot.version, enabled=enabled, loaded=active_after, active=active_after and enabled,
                backend=snapshot.backend, ipv6=snapshot.ipv6, default_policies=snapshot.policies())


def _describe_before(host, snapshot, request, result):
    """The state before the change and who listens: what a fleet report shows next to
    the result, without a second module run on the host."""
    before_reasons, _notes = evaluate_exposure(request, snapshot, snapshot.live)
    result["before"] = dict(effective=not before_reasons, reasons=before_reasons)
    try:
        listeners, owners = find_listeners(host, request.port, request.protocols)
        result["listeners"] = [listener_record(listener, owners) for listener in listeners]
    except ProcNetError as exc:
        result["listeners"] = []
        result["warnings"].append("cannot read the socket tables: %s" % exc)


def _change_running_ufw(host, snapshot, plans, request, result, check_mode):
    """UFW is loaded: write the files, reload changed or drifted chains. Returns (tables after, ufw facts)."""
    # A family UFW does not load (IPv6 with IPV6=no) has nothing to reload.
    loaded = [plan for plan in plans if snapshot.loaded(plan.family)]
    drift = [plan.family for plan in loaded if user_chain_drifted(snapshot, plan.family, plan.before)]
    reload_families = [plan.family for plan in loaded if plan.files_change or plan.family in drift]
    result.update(drift=drift, changed=bool(reload_families) or any(plan.files_change for plan in plans))
    if result["changed"] and not check_mode:
        apply_active(host, snapshot, plans, reload_families)
    if not snapshot.enabled and request.state == "closed":
        # Loaded but not enabled: the close would vanish at the next boot.
        result["actions"].append("set ENABLED=yes in %s so the rules are loaded again at boot" % UFW_CONF)
        result["changed"] = True
        if not check_mode:
            host.write_atomic(UFW_CONF, set_key_values(host.read_text(UFW_CONF), {"ENABLED": "yes"}))
    enabled_after = snapshot.enabled or (request.state == "closed" and not check_mode)
    return tables_after(snapshot, plans), _ufw_facts(snapshot, True, enabled_after)


def _edit_files_of_stopped_ufw(host, snapshot, plans, request, result, check_mode):
    """UFW is not loaded and not to be started: state=absent edits the files only (a later
    start of UFW loads them); inactive=skip changes nothing and claims nothing."""
    if request.state == "absent":
        changed_plans = [plan for plan in plans if plan.files_change]
        result["changed"] = bool(changed_plans)
        if changed_plans and not check_mode:
            apply_active(host, snapshot, changed_plans, reload_families=[])
    else:
        result.update(rules_added=[], rules_removed=[], skipped=True, effective=False,
                      reasons=["UFW is inactive and inactive=skip: nothing was changed"])
        result.pop("diff", None)
    result["ufw"] = _ufw_facts(snapshot, False)


def _start_stopped_ufw(host, snapshot, plans, request, result, check_mode):
    """inactive=enable: refuse if starting would block other traffic, else set the policies,
    write the rules and start UFW. Returns (tables after or None in check mode, ufw facts)."""
    # With IPV6=no UFW starts without its IPv6 rules: those block nothing.
    blockers = [rule for plan in plans for rule in blocking_rules(plan.after, request)
                if plan.family != "ipv6" or snapshot.ipv6]
    if blockers:
        raise UfwPortError(
            "UFW is inactive and starting it would also activate rules that block other traffic: %s; "
            "nothing was changed (remove them, or use inactive=fail/skip)"
            % "; ".join(_status(rule) for rule in blockers),
            dict(ufw=_ufw_facts(snapshot, False)))
    interfaces = snapshot.ipv6_interfaces
    if not snapshot.ipv6 and interfaces:
        raise UfwPortError(
            "UFW is inactive and IPV6=no in %s: starting it would drop every IPv6 packet (UFW's policy when it "
            "does not manage IPv6), cutting off whatever is reachable over IPv6 on %s now; nothing was changed "
            "(set IPV6=yes there, or use inactive=fail/skip)" % (UFW_DEFAULTS, ", ".join(interfaces)),
            dict(ufw=_ufw_facts(snapshot, False)))
    updates, actions = start_ufw_plan(snapshot, request)
    result["actions"] = actions + ["set ENABLED=yes in %s and started UFW (ufw-init start)" % UFW_CONF]
    result["changed"] = True
    if check_mode:
        # What UFW loads at start is known only once it has started.
        return None, _ufw_facts(snapshot, False)
    apply_start(host, snapshot, plans, updates)
    # ufw-init loads UFW where the alternatives lead.
    after = {family: parse_iptables_save(host.run([FAMILY_FILES[family].save])) for family in request.families}
    return after, _ufw_facts(snapshot, True, True)


def plan_for(snapshot, request, family):
    """The family's plan; none for IPv6 that UFW does not manage (IPV6=no): UFW loads no rule
    of user6.rules then, and rewrites the file without them at its next save."""
    if request.state == "closed" and ufw_ipv6_unmanaged(snapshot, snapshot.live.get(family), family):
        return FamilyPlan(family, snapshot.rules[family], snapshot.rules[family])
    return plan_family(snapshot.rules[family], request, family)


def run_ufw_port(host, request, check_mode, want_diff):
    """Close (or restore) the port; return the module result. Raises UfwPortError."""
    with host.ufw_lock(request.lock_timeout):
        snapshot = read_snapshot(host, request.families)
        plans = [plan_for(snapshot, request, family) for family in request.families]
        result = dict(changed=False, effective=None, reasons=[], drift=[], actions=[], warnings=[],
                      rules_added=[_status(rule) for plan in plans for rule in plan.added],
                      rules_removed=[_status(rule) for plan in plans for rule in plan.removed],
                      conflicts=[dict(rule=_status(rule), family=plan.family, handling=handling)
                                 for plan in plans for rule, handling in plan.conflicts])
        if want_diff:
            result["diff"] = _diff(plans)
        if request.state == "closed":
            _describe_before(host, snapshot, request, result)

        running = all(snapshot.loaded(family) for family in request.families if family != "ipv6" or snapshot.ipv6)
        if running:
            after, result["ufw"] = _change_running_ufw(host, snapshot, plans, request, result, check_mode)
        elif request.state == "absent" or request.inactive == "skip":
            _edit_files_of_stopped_ufw(host, snapshot, plans, request, result, check_mode)
            return result
        elif request.inactive == "fail":
            raise UfwPortError("UFW is inactive on this host and inactive=fail; nothing was changed",
                               dict(ufw=_ufw_facts(snapshot, False)))
        else:
            after, result["ufw"] = _start_stopped_ufw(host, snapshot, plans, request, result, check_mode)

        if request.state == "closed" and after is not None:
            result["reasons"], warnings = evaluate_exposure(request, snapshot, after)
            result["warnings"].extend(warnings)
            result["effective"] = not result["reasons"]
        return result
