# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The close (or restore) as one transaction: read -> plan -> apply -> verify.

Private to the sipguard.firewall collection: no compatibility promise outside it.

- read: one snapshot under UFW's lock (``_ufw.snapshot``);
- plan: pure, the whole ``Change`` (``_ufw.plan``), refusals before any write;
- apply: the only step that writes - every file (rule files, ``ufw.conf``, ``/etc/default/ufw``),
  the user chains and the start of UFW - and on any failure puts every one of them back;
- verify: the one exposure model (``_exposure``) over the rule set before and after.

In check mode the transaction holds a read-only host (``_host.ReadOnlyHost``): a write there
is impossible, not just avoided.
"""

from __future__ import annotations

from ansible_collections.sipguard.firewall.plugins.module_utils._exposure import assess
from ansible_collections.sipguard.firewall.plugins.module_utils._host import HostError, ReadOnlyHost
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import listener_record
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.plan import (
    FILES_ONLY,
    RUNNING,
    SKIP,
    plan_change,
    tables_after,
    ufw_facts,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import (
    format_status_line,
    render_rules_file,
    status_text,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import (
    FAMILY_FILES,
    UfwPortError,
    read_snapshot,
    read_tables,
)

IPTABLES_RESTORE_WAIT = "5"


def load_user_chains(host, snapshot, family, text):
    """Replace the running ufw user chains of one family with the file's, atomically.

    ``iptables-restore -n`` flushes each chain the file declares and refills it in one
    commit; the rest of the rule set stays. ufw itself loads user rules this way.
    """
    load_rules(host, snapshot, family, text)


def load_rules(host, snapshot, family, text):
    """One `iptables-restore -n` of text into the family's backend: one commit per table."""
    host.run([snapshot.restore_command(family), "-n", "-w", IPTABLES_RESTORE_WAIT], data=text)


def _original(snapshot, path):
    family = next((family for family, files in FAMILY_FILES.items() if files.rules_path == path), None)
    return snapshot.rules_text[family] if family else snapshot.texts[path]


def _put_back(host, snapshot, change, written, loaded, started):
    """Undo what was done, newest first; the problems met on the way."""
    problems = []
    if started:
        try:
            host.run([snapshot.ufw_init, "stop"])
        except HostError as exc:
            problems.append(str(exc))
    if "docker" in loaded:
        try:
            load_rules(host, snapshot, "ipv4", change.docker.undo)
        except HostError as exc:
            problems.append(str(exc))
    for family in (family for family in loaded if family != "docker"):
        if snapshot.loaded(family):
            try:
                load_user_chains(host, snapshot, family, snapshot.rules_text[family])
            except HostError as exc:
                problems.append(str(exc))
    for path in reversed(written):
        try:
            host.write_atomic(path, _original(snapshot, path), mode=snapshot.modes.get(path))
        except HostError as exc:
            problems.append(str(exc))
    return problems


def apply_change(host, snapshot, change):
    """Write every file, load the user chains and Docker's block, start UFW; on any failure put
    all of it back."""
    written, loaded, started = [], [], False
    docker = change.docker
    try:
        for path, text in change.writes:
            host.write_atomic(path, text)
            written.append(path)
        for path, text, mode in docker.writes if docker else ():
            host.write_atomic(path, text, mode=mode)
            written.append(path)
        for family in change.reload:
            # iptables-restore commits a table whole or not at all: only families
            # whose load succeeded need their old chains back.
            load_user_chains(host, snapshot, family, render_rules_file(change.plan(family).after))
            loaded.append(family)
        if docker and docker.load:
            load_rules(host, snapshot, "ipv4", docker.load)
            loaded.append("docker")
        if change.start:
            started = True
            host.run([snapshot.ufw_init, "start"])
    except HostError as exc:
        problems = _put_back(host, snapshot, change, written, loaded, started)
        if change.start:
            done = "the previous files were put back and UFW stopped again"
        else:
            done = "the previous rule files and chains were put back"
        raise UfwPortError("%s failed: %s; %s" % (
            "starting UFW" if change.start else "applying the rules", exc,
            done if not problems else "PUTTING BACK FAILED TOO: %s" % "; ".join(problems)))


def _diff(snapshot, change):
    diff = [dict(before_header=FAMILY_FILES[plan.family].rules_path,
                 after_header=FAMILY_FILES[plan.family].rules_path,
                 before="".join(format_status_line(rule) + "\n" for rule in plan.before.rules),
                 after="".join(format_status_line(rule) + "\n" for rule in plan.after.rules))
            for plan in change.plans]
    for path, text, _mode in change.docker.writes if change.docker else ():
        diff.append(dict(before_header=path, after_header=path, before=snapshot.texts.get(path) or "",
                         after=text or ""))
    return diff


class Transaction:
    """One close or restore of request.port on one host."""

    def __init__(self, host, request, check_mode=False, want_diff=False):
        self.host = ReadOnlyHost(host) if check_mode else host
        self.request = request
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.snapshot = None
        self.change = None

    def run(self):
        """The module result. Raises UfwPortError (refused, failed and put back) or HostError."""
        with self.host.ufw_lock(self.request.lock_timeout):
            self.read()
            self.plan()
            self.apply()
            return self.verify()

    def read(self):
        self.snapshot = read_snapshot(self.host, self.request)

    def plan(self):
        self.change = plan_change(self.snapshot, self.request)

    def apply(self):
        if self.change.changed and not self.check_mode:
            apply_change(self.host, self.snapshot, self.change)

    def _tables_after(self):
        """The rule set the change leaves; None when it is known only once UFW has started (check mode)."""
        if self.change.kind == RUNNING:
            return tables_after(self.snapshot, self.change)
        if self.check_mode:
            return None
        # ufw-init loads UFW where the alternatives lead.
        return {family: read_tables(self.host, FAMILY_FILES[family].save) for family in self.request.families}

    def _ufw_after(self):
        snapshot, request = self.snapshot, self.request
        if self.change.kind == RUNNING:
            return ufw_facts(snapshot, True, snapshot.enabled or (request.state == "closed" and not self.check_mode))
        if self.change.kind in (FILES_ONLY, SKIP) or self.check_mode:
            return ufw_facts(snapshot, False)
        return ufw_facts(snapshot, True, True)

    def verify(self):
        snapshot, request, change = self.snapshot, self.request, self.change
        result = dict(changed=change.changed, effective=None, exposed=None, reasons=[], drift=list(change.drift),
                      actions=list(change.actions), warnings=[],
                      rules_added=[status_text(rule) for plan in change.plans for rule in plan.added],
                      rules_removed=[status_text(rule) for plan in change.plans for rule in plan.removed],
                      conflicts=[dict(rule=status_text(rule), family=plan.family, handling=handling)
                                 for plan in change.plans for rule, handling in plan.conflicts])
        if self.want_diff:
            result["diff"] = _diff(snapshot, change)
        if request.state == "closed":
            # The state before and who listens: what a fleet report shows next to the result.
            before = assess(request, snapshot, snapshot.live, closing=True)
            result["before"] = dict(effective=before.closed, exposed=before.exposed, reasons=before.reasons)
            result["listeners"] = [listener_record(listener, snapshot.owners) for listener in snapshot.listeners]
            if snapshot.listeners_problem:
                result["warnings"].append(snapshot.listeners_problem)
        result["ufw"] = self._ufw_after()
        if change.kind == SKIP:  # nothing changes: the state after is the state before
            result.update(rules_added=[], rules_removed=[], skipped=True, effective=result["before"]["effective"],
                          exposed=result["before"]["exposed"],
                          reasons=["UFW is inactive and inactive=skip: nothing was changed"] + result["before"]["reasons"])
            result.pop("diff", None)
        if change.kind in (FILES_ONLY, SKIP):
            return result
        after = self._tables_after()
        if request.state == "closed" and after is not None:
            exposure = assess(request, snapshot, after, closing=True)
            result.update(reasons=exposure.reasons, effective=exposure.closed, exposed=exposure.exposed)
            result["warnings"].extend(exposure.warnings)
        return result


def run_ufw_port(host, request, check_mode, want_diff):
    """Close (or restore) the port; return the module result. Raises UfwPortError."""
    return Transaction(host, request, check_mode=check_mode, want_diff=want_diff).run()
