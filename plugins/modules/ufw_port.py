#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ufw_port
short_description: Close one port in UFW for real, in one transaction, and prove it
version_added: 0.1.0
description:
  - Closes one port (5061, SIP over TLS, in the C(sipguard.firewall.sips) role) in UFW on TCP
    and/or UDP, IPv4 and/or IPv6, so that the port is really dropped or rejected; or removes
    exactly the rules it added (O(state=absent)).
  - Its rules go ahead of every existing rule that would let the port through (a plain
    C(allow 5061), a range such as C(5000:6000/tcp), a multiport list, an application
    profile, a C(limit) rule), so such a rule cannot shadow the close. Nothing else changes -
    rules for other ports keep their place and their text byte for byte.
  - Takes UFW's own lock (C(/run/ufw.lock)) before reading, reads C(/etc/ufw/user.rules)
    and C(/etc/ufw/user6.rules), writes both atomically (temporary file and rename) and loads
    the UFW user chains with one C(iptables-restore -n) per address family. It never runs
    C(ufw reload), which opens the firewall while it restarts. On any failure the previous
    files and chains are put back.
  - After applying, it evaluates the live rule set, including what UFW does not control -
    rules in C(INPUT) ahead of UFW's chains, accepts in C(/etc/ufw/before.rules), DNAT or
    REDIRECT of the port in the nat table (Docker, Kubernetes), rules in the other iptables
    backend's tables (iptables-legacy next to iptables-nft, or the reverse). If the port is
    still reachable, the task fails with RV(effective=false) and the RV(reasons); it never
    reports a port closed that is not.
  - The verdict comes from the rules that are loaded, not from UFW's settings. With C(IPV6=no)
    in C(/etc/default/ufw), UFW loads none of its IPv6 rules and sets ip6tables to drop
    everything but loopback, so IPv6 is closed when those loaded rules drop the port (and
    reported reachable, with the reason, when something such as an ip6tables policy
    C(ACCEPT) lets it in). No IPv6 rule is written then - UFW would neither load it nor keep
    it in C(/etc/ufw/user6.rules) - and a warning says that UFW does not manage IPv6.
  - Reports C(changed) only when the rule files differ from what is wanted or the running
    chains differ from the files (drift, for example after C(iptables -F ufw-user-input)).
author:
  - sipguard maintainers (@sipguard)
options:
  port:
    description: The port to close, 1-65535.
    type: int
    required: true
  state:
    description:
      - V(closed) puts the collection's rules for O(port) first in UFW's rule list.
      - V(absent) removes only the rules this collection added for O(port) (those carrying
        O(comment)), returning to the behaviour from before.
    type: str
    choices: [closed, absent]
    default: closed
  action:
    description:
      - V(deny) drops packets (the port looks filtered); V(reject) answers with a TCP reset or
        an ICMP port unreachable (the port looks closed).
    type: str
    choices: [deny, reject]
    default: deny
  conflicts:
    description:
      - What to do with existing rules that accept the port.
      - V(shadow) keeps them and puts the collection's rules first; a range such as
        C(5000:6000) keeps serving its other ports.
      - V(remove) deletes rules that accept only this port (and protocol) and shadows wider ones.
      - V(fail) fails, naming the rules, and changes nothing.
    type: str
    choices: [shadow, remove, fail]
    default: shadow
  inactive:
    description:
      - What to do when UFW is installed but inactive (not enabled, or its chains not loaded).
      - V(enable) writes the rules and starts UFW the way C(ufw enable) and the boot do
        (C(ufw-init start)), first setting the default policies so that every port reachable
        now stays reachable (incoming V(allow); routed and outgoing as the kernel has them now).
        It refuses, changing nothing, when existing rules would block other ports once UFW is
        active, and when C(IPV6=no) is set in C(/etc/default/ufw) while an interface other than
        loopback has an IPv6 address (UFW started so drops every IPv6 packet, SSH over IPv6
        included). RV(actions) lists exactly what was done.
      - V(fail) fails and changes nothing. V(skip) changes nothing and reports the port as it is (exposed, unless rules outside UFW keep it out).
    type: str
    choices: [enable, fail, skip]
    default: enable
  comment:
    description:
      - The tag this collection writes as the UFW comment of its rules; O(state=absent) removes
        the rules for O(port) that carry it. Letters, digits, space, C(.), C(_), C(:), C(-).
    type: str
    default: sipguard
  lock_timeout:
    description: Seconds to wait for UFW's lock when another ufw command or run holds it.
    type: int
    default: 30
  docker:
    description:
      - What to do on a host with Docker (a C(dockerd) executable, or Docker's C(DOCKER) or
        C(DOCKER-USER) chains loaded), where a container publishing O(port) (C(docker run -p 5061:...))
        is reached through Docker's DNAT and filter C(FORWARD), which UFW's rules for O(port) never see.
      - V(close) drops (V(reject) with O(action=reject)) every new IPv4 connection whose destination port
        before Docker's DNAT is O(port), except from O(trusted_sources) - C(-p 5061:15061) is closed,
        C(-p 15061:5061) is not, other published ports and the containers' own outbound traffic keep
        working. Only the opening direction is matched (C(--ctdir ORIGINAL)), so a trusted sender gets
        the container's replies. The rules live in a chain C(sips-docker-PORT) that C(/etc/ufw/after.rules) declares
        between C(BEGIN)/C(END) lines, so every load of UFW refills it; a block in C(/etc/ufw/after.init)
        (created, or added after the C(#!) line of yours and the file made executable) keeps the jump to
        it as the first rule of C(DOCKER-USER) at every load, creating C(DOCKER-USER) before dockerd
        starts at boot. Rules of your own in C(DOCKER-USER) are kept. It survives a restart of dockerd
        (which keeps C(DOCKER-USER)), C(ufw reload) and reboots, and covers containers started later.
      - Refused, changing nothing, when Docker's chains are loaded only in the other iptables backend
        than UFW's (a block in UFW's files would never see them), when dockerd uses its nftables firewall
        backend (table C(ip docker-bridges), no C(DOCKER-USER)), and when C(/etc/ufw/after.init) exists
        without a C(#!) line.
      - O(state=absent) removes exactly what V(close) added - both blocks, the jump, the chain; a file it
        created is removed and a mode it changed put back - whatever O(docker) says.
      - V(report) changes nothing of Docker's path; the verdict still names a published port that stays
        reachable through it. On a host without Docker neither value writes anything.
      - IPv6 - Docker 20.10 publishes over IPv6 through its userland proxy (C(docker-proxy) listening on
        C([::]:PORT)), which UFW's rules for O(port) govern like any local listener; with C(ip6tables)
        enabled in dockerd there is no C(DOCKER-USER) for IPv6, O(docker=close) does not close that path,
        and it is reported reachable with that reason.
    type: str
    choices: [close, report]
    default: close
notes:
  - Supports C(ufw) 0.35 and 0.36 (Debian 11-13, Ubuntu 20.04 and later) with the iptables-nft
    or iptables-legacy backend. The backend is the one UFW's chains are loaded in - where the
    C(iptables) and C(ip6tables) alternatives lead, unless UFW's chains are only in the other
    backend (the alternative was switched after UFW started; a warning says so), whose
    C(iptables-legacy-*) or C(iptables-nft-*) commands are then used. On the legacy backend
    the nft side is read with one C(iptables-nft-save) per family.
  - Counts of processes started on the host (see C(bench/)) - a no-op reads the running chains
    with one C(iptables-save) per family; a change adds one C(iptables-restore -n) per family.
extends_documentation_fragment:
  - sipguard.firewall.port_request
attributes:
  check_mode:
    support: full
    description: Computes the same answer, including the diff and RV(effective), and writes nothing.
  diff_mode:
    support: full
    description: Before and after as C(ufw status)-like rule lines, one file per family.
seealso:
  - name: UFW manual
    description: Rule syntax and the order in which UFW evaluates rules.
    link: https://manpages.debian.org/bookworm/ufw/ufw.8.en.html
"""

EXAMPLES = r"""
- name: Close SIP over TLS on TCP and UDP, IPv4 and IPv6
  sipguard.firewall.ufw_port:
    port: 5061

- name: Close it, but keep it open to the SBC network and remove plain allow rules for it
  sipguard.firewall.ufw_port:
    port: 5061
    trusted_sources:
      - 192.0.2.0/24
      - 2001:db8:5061::/48
    conflicts: remove
    action: reject

- name: Fail instead of enabling UFW on hosts where it is inactive
  sipguard.firewall.ufw_port:
    port: 5061
    inactive: fail

- name: Remove the rules this collection added for 5061
  sipguard.firewall.ufw_port:
    port: 5061
    state: absent
"""

RETURN = r"""
effective:
  description:
    - Whether the port is closed in the live rule set for every requested family and protocol
      (to every source outside O(trusted_sources)). With O(state=absent) always V(null).
    - In check mode, whether it would be after the change.
  returned: success or when the port stays reachable
  type: bool
  sample: true
exposed:
  description:
    - Whether the port is exposed after the task - the opposite of RV(effective), in the one meaning
      M(sipguard.firewall.port_audit) gives it (the firewall lets a source outside O(trusted_sources) in).
      With O(state=absent), and in check mode when UFW would be started, V(null).
  returned: success or when the port stays reachable
  type: bool
  sample: false
reasons:
  description: Why the port is (or would stay) reachable, one sentence a person can act on each.
  returned: always
  type: list
  elements: str
  sample: ["ipv4/tcp: INPUT rule 1 '-A INPUT -p tcp -m tcp --dport 5061 -j ACCEPT' accepts 5061 ahead of UFW's chains"]
rules_added:
  description: The rules added, as C(ufw status) lines, C((v6)) marking IPv6.
  returned: always
  type: list
  elements: str
  sample: ["5061/tcp DENY IN Anywhere # sipguard", "5061/tcp (v6) DENY IN Anywhere (v6) # sipguard"]
rules_removed:
  description: The rules removed, as C(ufw status) lines.
  returned: always
  type: list
  elements: str
  sample: ["5061 ALLOW IN Anywhere"]
conflicts:
  description: Existing rules that accept the port, as C(ufw status) lines, and what was done with each.
  returned: always
  type: list
  elements: dict
  contains:
    rule:
      description: The rule as C(ufw status) shows it.
      type: str
    family:
      description: V(ipv4) or V(ipv6).
      type: str
    handling:
      description: V(shadowed) or V(removed).
      type: str
  sample: [{"rule": "5000:6000/tcp ALLOW IN Anywhere", "family": "ipv4", "handling": "shadowed"}]
drift:
  description: Families whose running UFW user chains differed from the rule files (and were reloaded).
  returned: always
  type: list
  elements: str
  sample: ["ipv4"]
actions:
  description: Everything done besides the rule list, in order (default policies set, UFW started).
  returned: always
  type: list
  elements: str
  sample: ["set the default incoming policy to allow (was deny) so every port reachable now stays reachable"]
before:
  description: Whether the port was closed before the task, and why not (same form as RV(reasons)).
  returned: when O(state=closed)
  type: dict
  contains:
    effective:
      description: The port was closed before the task.
      type: bool
    exposed:
      description: The port was exposed before the task (not RV(before.effective)); what M(sipguard.firewall.port_audit)
        says of the same host.
      type: bool
    reasons:
      description: Why it was reachable.
      type: list
      elements: str
  sample: {"effective": false, "exposed": true, "reasons": ["ipv4/tcp: ufw's own filter ufw-user-input rule 1 accepts tcp port 5061 ..."]}
listeners:
  description:
    - Sockets listening on the port and their processes (see M(sipguard.firewall.port_audit) for the fields).
      Read from C(/proc), no extra process.
  returned: when O(state=closed)
  type: list
  elements: dict
  sample: [{"protocol": "tcp", "family": "ipv6", "address": "::", "port": 5061, "wildcard": true,
            "loopback_only": false, "dual_stack": null, "uid": 0,
            "processes": [{"pid": 812, "name": "kamailio", "cmdline": ["kamailio", "-f", "/etc/kamailio/kamailio.cfg"]}]}]
ufw:
  description: UFW's state after the task.
  returned: always
  type: dict
  contains:
    version:
      description: UFW's version.
      type: str
      sample: 0.36.2
    enabled:
      description: C(ENABLED=yes) in C(/etc/ufw/ufw.conf).
      type: bool
    loaded:
      description: UFW's chains are loaded in the kernel (IPv4).
      type: bool
    active:
      description: Enabled and loaded.
      type: bool
    backend:
      description:
        - The iptables backend UFW's chains are loaded in, V(nft) or V(legacy).
        - Per family in the rare case that the C(iptables) and C(ip6tables) alternatives differ,
          as in "legacy (ipv4), nft (ipv6)".
      type: str
    ipv6:
      description: C(IPV6=yes) in C(/etc/default/ufw).
      type: bool
    default_policies:
      description: The default policies for V(incoming), V(outgoing) and V(routed) traffic.
      type: dict
      sample: {"incoming": "deny", "outgoing": "allow", "routed": "deny"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sipguard.firewall.plugins.module_utils._host import Host, HostError, root_problem
from ansible_collections.sipguard.firewall.plugins.module_utils._request import REQUEST_ARGUMENT_SPEC, PortRequest, RequestError
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import UfwPortError
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.transaction import run_ufw_port


def main():
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="int", required=True),
            state=dict(type="str", choices=["closed", "absent"], default="closed"),
            action=dict(type="str", choices=["deny", "reject"], default="deny"),
            conflicts=dict(type="str", choices=["shadow", "remove", "fail"], default="shadow"),
            inactive=dict(type="str", choices=["enable", "fail", "skip"], default="enable"),
            comment=dict(type="str", default="sipguard"),
            lock_timeout=dict(type="int", default=30),
            docker=dict(type="str", choices=["close", "report"], default="close"),
            **REQUEST_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    problem = root_problem('ufw_port', writes=True)
    if problem:
        module.fail_json(msg=problem)
    try:
        request = PortRequest.from_params(module.params)
    except RequestError as exc:
        module.fail_json(msg=str(exc))

    try:
        result = run_ufw_port(Host(module), request, check_mode=module.check_mode, want_diff=module._diff)
    except (UfwPortError, HostError) as exc:
        module.fail_json(msg=str(exc), **getattr(exc, "result", {}))

    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result["effective"] is False and not result.get("skipped"):
        message = "port %d is still reachable: %s" % (request.port, "; ".join(result["reasons"]))
        if not module.check_mode:
            module.fail_json(msg=message, **result)
        module.warn("after this change, " + message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
