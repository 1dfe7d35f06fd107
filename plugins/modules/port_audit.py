#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_audit
short_description: What a host says about one port - who listens, what UFW decides, what bypasses UFW
version_added: 0.1.0
description:
  - Read-only audit of one port (5061, SIP over TLS, in the C(sipguard.firewall.sips) role) on the
    host it runs on. Never changes anything.
  - Listeners from C(/proc/net/tcp), C(tcp6), C(udp) and C(udp6) with their bind address and
    family, and the owning processes (pid, name, command line) found through C(/proc/*/fd) - no
    C(ss), C(netstat) or C(ps) needed.
  - UFW - installed, version, enabled in C(ufw.conf) and actually loaded in the kernel, default
    policies, the IPv6 setting, the rules in order, and the first-match verdict of UFW's own rules
    for the port per family and protocol, with the sources and interfaces it stays open from.
  - Paths around UFW - C(INPUT) rules ahead of UFW's chains, accepts in C(before.rules), nat
    DNAT/REDIRECT of the port (Docker-published ports, Kubernetes NodePort/hostPort), nft tables
    outside UFW (when the C(nft) command exists), rules in the other iptables backend's tables
    (iptables-legacy next to iptables-nft, or the reverse). Only rules UFW does not own are
    called foreign - UFW's backend is the one its chains are loaded in (see
    M(sipguard.firewall.ufw_port) for how it is found).
  - A summary per family and protocol - listening, the live firewall verdict, RV(summary[].exposed),
    and reasons a person can act on. It shares its rule parsing and verdict with
    M(sipguard.firewall.ufw_port), so the two never disagree.
author:
  - sipguard maintainers (@sipguard)
options:
  port:
    description: The port to audit, 1-65535.
    type: int
    default: 5061
notes:
  - Naming the process behind a socket needs root with C(CAP_SYS_PTRACE); without it the listener is
    reported with an empty process list.
  - A host is RV(exposed) on a family and protocol when the live rule set lets a new connection to
    the port in from a source outside O(trusted_sources) (or forwards it elsewhere), whether or not
    something listens there now - a service started later is reachable at once. Who listens is named
    first in the reasons; with nothing listening a note says so. M(sipguard.firewall.ufw_port) judges
    with the same model, so RV(exposed) here and its RV(sipguard.firewall.ufw_port#module:before.exposed)
    are the same statement about the same host.
  - The verdict comes from the loaded rules, not from UFW's settings - with C(IPV6=no) UFW loads no
    IPv6 rule and sets ip6tables to drop everything but loopback, so IPv6 is not exposed unless the
    loaded ip6tables rules let the port in; a note says that UFW does not manage IPv6.
extends_documentation_fragment:
  - sipguard.firewall.port_request
attributes:
  check_mode:
    support: full
    description: The module never changes anything; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
seealso:
  - module: sipguard.firewall.ufw_port
  - module: sipguard.firewall.port_probe
"""

EXAMPLES = r"""
- name: Who listens on 5061 and is it exposed?
  sipguard.firewall.port_audit:
  register: sips_audit

- name: Fail the hosts where it is exposed
  ansible.builtin.assert:
    that: not sips_audit.exposed
    fail_msg: "{{ sips_audit.reasons | join('; ') }}"
"""

RETURN = r"""
exposed:
  description: Whether the port is exposed on any audited family and protocol.
  returned: always
  type: bool
  sample: true
reasons:
  description: Why, one sentence a person can act on each, prefixed with family/protocol.
  returned: always
  type: list
  elements: str
  sample: ["ipv4/tcp: kamailio listens on 0.0.0.0:5061"]
summary:
  description: One record per family and protocol.
  returned: always
  type: list
  elements: dict
  contains:
    family:
      description: V(ipv4) or V(ipv6).
      type: str
    protocol:
      description: V(tcp) or V(udp).
      type: str
    listening:
      description: A socket not bound to loopback takes connections on the port.
      type: bool
    exposed:
      description: Reachable (or forwarded) and answered.
      type: bool
    firewall:
      description: The live first-match verdict for a new connection from an unknown source - V(accept), V(drop), V(reject) or V(uncertain).
      type: str
    deciding_rule:
      description: The live rule (as iptables-save prints it) that decided, or null for a chain policy.
      type: str
    ufw_verdict:
      description:
        - First match over UFW's own rule list - the action, the rule, and C(open_from) (source/interface-limited allows passed on the way).
        - Null when UFW loads no rule list for the family (IPv6 with C(IPV6=no)) or has no rule file.
      type: dict
    reasons:
      description: Why this family/protocol is exposed.
      type: list
      elements: str
    notes:
      description: Things to look at that do not expose the port by themselves.
      type: list
      elements: str
listeners:
  description: Sockets listening on the port with their processes.
  returned: always
  type: list
  elements: dict
  sample: [{"protocol": "tcp", "family": "ipv4", "address": "0.0.0.0", "port": 5061, "wildcard": true,
            "loopback_only": false, "dual_stack": false, "uid": 0,
            "processes": [{"pid": 812, "name": "kamailio", "cmdline": ["/usr/sbin/kamailio", "-DD"]}]}]
ufw:
  description:
    - UFW's state and its rules in order (as C(ufw status numbered) lines).
    - C(backend) is the iptables backend UFW's chains are loaded in, V(nft) or V(legacy); per family when
      the iptables and ip6tables alternatives differ, as in "legacy (ipv4), nft (ipv6)".
  returned: always
  type: dict
  sample: {"installed": true, "version": "0.36.2", "enabled": true, "loaded": true, "active": true,
           "backend": "nft", "ipv6": true, "default_policies": {"incoming": "deny"},
           "rules": ["[ 1] 5061/tcp DENY IN Anywhere # sipguard"]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sipguard.firewall.plugins.module_utils._audit import run_audit
from ansible_collections.sipguard.firewall.plugins.module_utils._host import Host, HostError, root_problem
from ansible_collections.sipguard.firewall.plugins.module_utils._request import REQUEST_ARGUMENT_SPEC, PortRequest, RequestError
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import UfwPortError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="int", default=5061),
            **REQUEST_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    problem = root_problem('port_audit', writes=False)
    if problem:
        module.fail_json(msg=problem)
    try:
        request = PortRequest.from_params(module.params)
    except RequestError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = run_audit(Host(module), request)
    except (UfwPortError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
