# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the close or restore will change, decided from the snapshot alone (pure).

Private to the sipguard.firewall collection: no compatibility promise outside it.

``plan_change`` gives one ``Change``: every file it writes with its new text, the user chains
it reloads, whether it starts UFW, and what a person reads about it. A request that cannot be
carried out without harm is refused here, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._exposure import ufw_ipv6_unmanaged
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import (
    parse_chain_lines,
    replace_chain_rules,
    same_rules,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._request import PROTOCOLS
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.docker import (
    DockerChange,
    DockerRefused,
    plan_docker,
    tables_with_chain,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import (
    RulesFile,
    accepts_port,
    make_rule,
    render_rules_file,
    status_text,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import (
    FAMILY_FILES,
    POLICY_KEYS,
    POLICY_WORDS,
    UFW_CONF,
    UFW_DEFAULTS,
    UFW_INIT_CANDIDATES,
    UfwPortError,
    set_key_values,
)

RUNNING, FILES_ONLY, SKIP, START = "running", "files", "skip", "start"


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


@dataclass(frozen=True)
class Change:
    """Everything one transaction does, in the order it does it."""

    kind: str  # RUNNING, FILES_ONLY (UFW stopped, state=absent), SKIP (inactive=skip) or START
    plans: Tuple[FamilyPlan, ...]
    writes: Tuple[Tuple[str, str], ...] = ()  # (path, new text)
    reload: Tuple[str, ...] = ()  # families whose running user chains are loaded from the new file
    start: bool = False  # ufw-init start once the files are written
    actions: Tuple[str, ...] = ()
    drift: Tuple[str, ...] = ()  # families whose running user chains differed from their file
    docker: Optional[DockerChange] = None  # Docker-published port: after.rules, after.init, DOCKER-USER

    @property
    def changed(self):
        return bool(self.writes or self.reload or self.start or (self.docker and (self.docker.writes or self.docker.load)))

    def plan(self, family):
        return next(plan for plan in self.plans if plan.family == family)


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
            % (family, request.port, "; ".join(status_text(rule) for rule in acceptors)))
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


def plan_for(snapshot, request, family):
    """The family's plan; none for IPv6 that UFW does not manage (IPV6=no): UFW loads no rule
    of user6.rules then, and rewrites the file without them at its next save."""
    if request.state == "closed" and ufw_ipv6_unmanaged(snapshot, snapshot.live.get(family), family):
        return FamilyPlan(family, snapshot.rules[family], snapshot.rules[family])
    return plan_family(snapshot.rules[family], request, family)


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


def ufw_facts(snapshot, active_after, enabled_after=None):
    """The module's ``ufw`` return value."""
    enabled = snapshot.enabled if enabled_after is None else enabled_after
    return dict(version=snapshot.version, enabled=enabled, loaded=active_after, active=active_after and enabled,
                backend=snapshot.backend, ipv6=snapshot.ipv6, default_policies=snapshot.policies())


def _rule_writes(plans):
    return tuple((FAMILY_FILES[plan.family].rules_path, render_rules_file(plan.after))
                 for plan in plans if plan.files_change)


def _plan_start(snapshot, request, plans):
    """inactive=enable: refuse if starting would cut off other traffic, else the policies, the rules,
    ENABLED=yes and ufw-init start."""
    # With IPV6=no UFW starts without its IPv6 rules: those block nothing.
    blockers = [rule for plan in plans for rule in blocking_rules(plan.after, request)
                if plan.family != "ipv6" or snapshot.ipv6]
    if blockers:
        raise UfwPortError(
            "UFW is inactive and starting it would also activate rules that block other traffic: %s; "
            "nothing was changed (remove them, or use inactive=fail/skip)"
            % "; ".join(status_text(rule) for rule in blockers), dict(ufw=ufw_facts(snapshot, False)))
    if not snapshot.ipv6 and snapshot.ipv6_interfaces:
        raise UfwPortError(
            "UFW is inactive and IPV6=no in %s: starting it would drop every IPv6 packet (UFW's policy when it "
            "does not manage IPv6), cutting off whatever is reachable over IPv6 on %s now; nothing was changed "
            "(set IPV6=yes there, or use inactive=fail/skip)" % (UFW_DEFAULTS, ", ".join(snapshot.ipv6_interfaces)),
            dict(ufw=ufw_facts(snapshot, False)))
    if snapshot.ufw_init is None:
        raise UfwPortError("cannot start UFW: no ufw-init in %s; nothing was changed" % ", ".join(UFW_INIT_CANDIDATES),
                           dict(ufw=ufw_facts(snapshot, False)))
    updates, actions = start_ufw_plan(snapshot, request)
    writes = _rule_writes(plans)
    if updates:
        writes += ((UFW_DEFAULTS, set_key_values(snapshot.texts[UFW_DEFAULTS], updates)),)
    writes += ((UFW_CONF, set_key_values(snapshot.texts[UFW_CONF], {"ENABLED": "yes"})),)
    return Change(START, plans, writes, start=True, actions=tuple(
        actions + ["set ENABLED=yes in %s and started UFW (ufw-init start)" % UFW_CONF]))


def plan_change(snapshot, request):
    """The whole change for the request on this snapshot. Raises UfwPortError for a refusal."""
    change = _plan_ufw(snapshot, request)
    if change.kind == SKIP:
        return change
    try:
        docker = plan_docker(snapshot, request, running=change.kind == RUNNING and snapshot.loaded("ipv4"))
    except DockerRefused as exc:
        raise UfwPortError(str(exc), dict(ufw=ufw_facts(snapshot, change.kind == RUNNING)))
    if docker is None:
        return change
    return replace(change, docker=docker, actions=change.actions + docker.actions)


def _plan_ufw(snapshot, request):
    """The change of UFW's own rules and state."""
    plans = tuple(plan_for(snapshot, request, family) for family in request.families)
    # A family UFW does not load (IPv6 with IPV6=no) has nothing to reload.
    running = all(snapshot.loaded(family) for family in request.families if family != "ipv6" or snapshot.ipv6)
    if running:
        loaded = [plan for plan in plans if snapshot.loaded(plan.family)]
        drift = tuple(plan.family for plan in loaded if user_chain_drifted(snapshot, plan.family, plan.before))
        writes, actions = _rule_writes(plans), ()
        if not snapshot.enabled and request.state == "closed":
            # Loaded but not enabled: the close would vanish at the next boot.
            actions = ("set ENABLED=yes in %s so the rules are loaded again at boot" % UFW_CONF,)
            writes += ((UFW_CONF, set_key_values(snapshot.texts[UFW_CONF], {"ENABLED": "yes"})),)
        return Change(RUNNING, plans, writes, reload=tuple(
            plan.family for plan in loaded if plan.files_change or plan.family in drift), actions=actions, drift=drift)
    if request.state == "absent":
        return Change(FILES_ONLY, plans, _rule_writes(plans))  # a later start of UFW loads them
    if request.inactive == "skip":
        return Change(SKIP, plans)
    if request.inactive == "fail":
        raise UfwPortError("UFW is inactive on this host and inactive=fail; nothing was changed",
                           dict(ufw=ufw_facts(snapshot, False)))
    return _plan_start(snapshot, request, plans)


def tables_after(snapshot, change):
    """The running rule set as it is once the change's user chains are loaded."""
    result = dict(snapshot.live)
    for plan in change.plans:
        if snapshot.loaded(plan.family):
            result[plan.family] = replace_chain_rules(snapshot.live[plan.family], "filter",
                                                      user_input_chain(plan.family),
                                                      user_input_lines(plan.after, plan.family))
    if change.docker is not None and change.docker.lines is not None and "ipv4" in result:
        result["ipv4"] = tables_with_chain(result["ipv4"], change.docker.lines, change.docker.port)
    return result
