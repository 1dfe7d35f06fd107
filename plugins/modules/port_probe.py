#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_probe
short_description: See what the network sees of a port - TCP/UDP state, TLS certificate, SIP answer
version_added: 0.1.0
description:
  - "Probes one port (5061, SIP over TLS, by default) on many hosts at once from the host the task
    runs on - normally the controller (C(delegate_to: localhost) with C(run_once)), or a chosen
    vantage host - and reports, for every address and protocol, what answered."
  - B(TCP) - V(open) (connected), V(closed) (a reset or an ICMP port unreachable) or
    V(filtered) (no answer within O(timeout) to any of O(retries)+1 attempts; an ICMP host unreachable or
    administratively prohibited answer also counts as V(filtered)).
  - B(TLS) - on an open TCP port, a TLS handshake reports the protocol version, the cipher and
    the certificate (subject, issuer, SANs, not-after, days left). Nothing is verified - this
    is discovery - and old protocol versions are accepted so that an old server shows as what
    it is. Certificates are decoded with the C(cryptography) library when it is importable and
    with the Python ssl module's own decoder otherwise.
  - B(SIP) - an RFC 3261 C(OPTIONS) request, over TLS when O(tls=true), over plain TCP when
    O(tls=false), and as the UDP datagram. A TCP connect alone proves nothing (a proxy or a
    load balancer accepts it), so each record says whether SIP answered (RV(probes[].sip)).
    When the TLS handshake fails, the failure is reported and no plain-TCP C(OPTIONS) is sent.
  - B(UDP) - the C(OPTIONS) request is the datagram. A reply is V(open), an ICMP port
    unreachable is V(closed), silence is V(open|filtered).
  - Host names are resolved (in the host's resolver, bounded by O(timeout) x (O(retries)+1))
    and every address of the requested O(families) is probed.
  - Bounded - every wait has O(timeout), the O(retries)+1 attempts of a probe are sent within
    one silence window (evenly spaced, not one after another), and at most O(concurrency)
    probes are in flight. A probe knows its state after at most O(timeout) whatever
    O(retries) is; an open TCP port takes at most 2 x O(timeout) more (the handshake and the
    SIP answer). With no more probes than O(concurrency) that is the time of the whole run;
    beyond, the probes queue for a free slot.
  - "B(The silence window adapts to the round trip) (O(adapt_timeout), as nmap's timing does).
    Until something of an address has answered, a probe listens for O(timeout) before it calls
    silence V(filtered) (TCP) or V(open|filtered) (UDP). Once the round trip to the address is
    measured - a connect or a reset on one of O(rtt_ports) (the role passes the port it manages
    the host over), the probed port's own SYN-ACK or reset, an ICMP port unreachable - the
    window is derived from it with nmap's estimator (first sample r - srtt = r, rttvar = max(r,
    5 ms); then srtt += (r - srtt) / 8, rttvar += (|r - srtt| - rttvar) / 4; rto = srtt + 4 x
    rttvar) - TCP (O(retries)+1) x rto, UDP the same plus 0.5 s (RFC 3261's T1: a SIP server
    answers the datagram itself, a kernel answers a SYN) - never below 0.1 s (nmap's minimum
    round-trip timeout) and never above O(timeout). A connect's round trip is the kernel's own
    (TCP_INFO), and each attempt's window counts from the moment its SYN really leaves, so a busy
    controller that notices answers late neither stretches the windows it learns nor cuts an
    attempt short. A round trip learned while a probe waits
    shortens its window at once. An open port answers within one round trip, so a short
    window calls no open port filtered; on a lossy path, raise O(retries) (each attempt is one
    more chance for the SYN and its answer to get through). A host that answers on none of
    its ports keeps the full O(timeout)."
  - Read-only; never reports C(changed).
author:
  - sipguard maintainers (@sipguard)
options:
  targets:
    description:
      - Host names, IPv4 and IPv6 addresses to probe (IPv6 with or without brackets).
      - A host name is resolved and each of its addresses in O(families) is probed. A name with
        no such address gives records in state V(error); an address literal outside O(families)
        is skipped with a warning.
    type: list
    elements: str
    required: true
  port:
    description: The port to probe, 1-65535.
    type: int
    default: 5061
  protocols:
    description: The transport protocols to probe. At least one.
    type: list
    elements: str
    choices: [tcp, udp]
    default: [tcp, udp]
  families:
    description: The address families to probe. At least one.
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4, ipv6]
  timeout:
    description:
      - The most seconds a probe waits for the port to answer its connect attempts or
        datagrams (the window all O(retries)+1 attempts are sent in; shorter once the round
        trip is known, see O(adapt_timeout)), and then for each later step (TLS handshake, SIP
        answer). Greater than 0.
    type: float
    default: 2
  retries:
    description:
      - How many more attempts to send while nothing has answered, within the silence
        window - attempt k starts at k x window / (O(retries)+1), so a lost SYN or datagram
        does not decide the state and silence does not take longer. An answer to any attempt
        counts; a reset or an ICMP answer is final. A UDP retry resends the same request, as
        a SIP retransmission would.
    type: int
    default: 1
  concurrency:
    description: How many probes (one socket each) may be in flight at once. At least 1.
    type: int
    default: 256
  tls:
    description:
      - Whether to run a TLS handshake on open TCP ports and send C(OPTIONS) over TLS.
      - V(false) sends C(OPTIONS) over plain TCP (when O(sip=true)) - for plain SIP ports.
    type: bool
    default: true
  sip:
    description:
      - Whether to send a SIP C(OPTIONS) request on open TCP ports and to parse the answers.
      - UDP always sends the C(OPTIONS) request as its datagram (an empty datagram gets no
        answer from a SIP server); V(false) only leaves the answer out of the records.
    type: bool
    default: true
  server_name:
    description:
      - The name to send in the TLS Server Name Indication.
      - By default the target's name when the target is a host name, and none for addresses.
    type: str
  rtt_ports:
    description:
      - TCP ports of every target that answer - open or closed, either is a round trip - such
        as the SSH port the play manages the hosts over. For each probed address the probe
        connects once to each of them, beside its own first attempt, only to time the answer
        (the connection is closed at once; nothing is sent on it).
      - Empty - the probe learns the round trip only from the probed port's own answers.
      - Each 1-65535.
    type: list
    elements: int
    default: []
  adapt_timeout:
    description:
      - Whether the silence window adapts to the round trip measured to the address (see the
        description). V(false) - silence is concluded after O(timeout), always.
    type: bool
    default: true
notes:
  - Probes only from the host the task runs on. What a scanner on the Internet sees can differ
    (NAT, provider filters, a firewall in between); run it from a vantage point that matters.
  - Sends one TCP connection (and one C(OPTIONS) request) per open TCP address and up to
    O(retries)+1 datagrams per UDP address. No other traffic, apart from name resolution.
  - Without privileges, a TCP probe is a full connect (like C(nmap -sT)), so the probed
    service may log it.
  - When the task's connection is local (C(delegate_to=localhost), the usual case), the
    module's action plugin runs the probe in the Ansible worker's own process on the
    controller - the same code and checks, without a module process and its payload (about
    half a second less per run). The probe needs no privileges, so C(become) is not used there.
    On any other connection (a vantage host reached over SSH) the module runs on that host.
attributes:
  check_mode:
    support: full
    description: The module only reads; in check mode it probes exactly as it does otherwise.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  action:
    support: full
    description: On a local connection the action plugin does all of the work in the controller's process.
seealso:
  - module: sipguard.firewall.ufw_port
  - name: RFC 3261 - SIP, section 11 (OPTIONS)
    description: The request the probe sends and the answer it reads.
    link: https://www.rfc-editor.org/rfc/rfc3261#section-11
"""

EXAMPLES = r"""
- name: Is SIP over TLS exposed on the SIP hosts, seen from the controller?
  sipguard.firewall.port_probe:
    targets: "{{ groups['sip'] | map('extract', hostvars, 'ansible_host') | list }}"
  delegate_to: localhost
  run_once: true
  register: sips_probe

- name: Fail when any of them is open
  ansible.builtin.assert:
    that: not sips_probe.summary.exposed
    fail_msg: "{{ sips_probe.summary.message }}"
  run_once: true

- name: Certificates that expire within 30 days
  ansible.builtin.debug:
    msg: "{{ item.address }}: {{ item.tls.subject }} expires in {{ item.tls.days_left }} days"
  loop: "{{ sips_probe.probes | selectattr('tls') | list }}"
  when: item.tls.days_left is not none and item.tls.days_left < 30
  run_once: true

- name: Plain SIP on 5060, TCP over IPv6 only, from a chosen vantage host
  sipguard.firewall.port_probe:
    targets: [sbc1.example.org, 2001:db8::5060]
    port: 5060
    protocols: [tcp]
    families: [ipv6]
    tls: false
    timeout: 1
  delegate_to: bastion.example.org
  run_once: true
"""

RETURN = r"""
probes:
  description:
    - One record per target, address and protocol, in the order of O(targets), then the
      resolver's order of addresses, then V(tcp) before V(udp).
    - A target whose name does not resolve (or has no address in O(families)) gives one record
      per protocol with RV(probes[].address=null) and RV(probes[].state=error).
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The target as given.
      type: str
      sample: sbc1.example.org
    address:
      description: The address probed; null when the target did not resolve.
      type: str
      sample: 192.0.2.10
    family:
      description: V(ipv4) or V(ipv6); null when the target did not resolve.
      type: str
    protocol:
      description: V(tcp) or V(udp).
      type: str
    port:
      description: The port probed.
      type: int
      sample: 5061
    state:
      description:
        - V(open), V(closed), V(filtered) (TCP), V(open|filtered) (UDP silence), or V(error)
          (the target did not resolve, or the probe could not be sent, such as no route).
      type: str
      sample: open
    rtt_ms:
      description: Milliseconds to the answer that decided the state (connect, reset, reply, ICMP); null on silence.
      type: float
      sample: 1.52
    attempts:
      description: Connect attempts or datagrams sent.
      type: int
      sample: 1
    tls:
      description: The TLS handshake on an open TCP port; null when not tried or when it failed (see RV(probes[].error)).
      type: dict
      contains:
        version:
          description: The protocol version negotiated.
          type: str
          sample: TLSv1.3
        cipher:
          description: The cipher suite negotiated.
          type: str
          sample: TLS_AES_256_GCM_SHA384
        bits:
          description: The cipher's secret bits.
          type: int
          sample: 256
        server_name:
          description: The SNI name sent; null when none was sent.
          type: str
        handshake_ms:
          description: Milliseconds the handshake took.
          type: float
        subject:
          description: The certificate's subject (RFC 4514).
          type: str
          sample: CN=sbc1.example.org,O=Example
        issuer:
          description: The certificate's issuer (RFC 4514).
          type: str
          sample: CN=R11,O=Let's Encrypt,C=US
        san:
          description: The subject alternative names, each with its kind (C(DNS:), C(IP:), C(URI:), C(email:)).
          type: list
          elements: str
          sample: ["DNS:sbc1.example.org", "IP:192.0.2.10"]
        not_before:
          description: Start of validity, UTC, ISO 8601.
          type: str
          sample: "2026-01-01T00:00:00Z"
        not_after:
          description: End of validity, UTC, ISO 8601.
          type: str
          sample: "2026-04-01T00:00:00Z"
        days_left:
          description: Whole days until RV(probes[].tls.not_after); negative once expired.
          type: int
          sample: 42
        serial:
          description: The serial number, hexadecimal.
          type: str
        self_issued:
          description: Whether subject and issuer are the same name (typically self-signed).
          type: bool
        sha256:
          description: SHA-256 fingerprint of the certificate (DER), hexadecimal.
          type: str
        decoder:
          description: What decoded the certificate, V(cryptography) or V(ssl).
          type: str
        error:
          description: Why the certificate could not be decoded (the other fields are then null); null otherwise.
          type: str
    sip:
      description:
        - The answer to the C(OPTIONS) request; null when none came (or O(sip=false)). A final
          answer is preferred; a provisional one (1xx) is reported when no final one came.
      type: dict
      contains:
        status_code:
          description: The status code.
          type: int
          sample: 200
        reason:
          description: The reason phrase.
          type: str
          sample: OK
        server:
          description: The Server header; null when absent.
          type: str
          sample: Asterisk PBX 20.5.0
        user_agent:
          description: The User-Agent header; null when absent.
          type: str
        allow:
          description: The methods in the Allow header(s), upper case; null when absent.
          type: list
          elements: str
          sample: [INVITE, ACK, CANCEL, OPTIONS, BYE]
        transport:
          description: V(TLS), V(TCP) or V(UDP).
          type: str
        rtt_ms:
          description: Milliseconds from sending the request to the answer.
          type: float
    source:
      description:
        - The local address the probe sent from (the address the target sees, unless a NAT is
          in between); null when there is no route to the address.
      type: str
      sample: 192.0.2.1
    window_ms:
      description:
        - On silence (V(filtered), V(open|filtered)), the milliseconds after which silence was
          concluded - O(timeout), or shorter once the round trip was known; null when something answered.
      type: float
      sample: 100.0
    error:
      description: What went wrong or stayed silent, "; "-separated (TLS and SIP failures included); null when nothing did.
      type: str
      sample: "TLS: no handshake within 2s"
counts:
  description: How many records are in each state (every state is present).
  returned: always
  type: dict
  sample: {"open": 1, "closed": 2, "filtered": 1, "open|filtered": 3, "error": 0}
summary:
  description: The verdict over all records.
  returned: always
  type: dict
  contains:
    exposed:
      description: Whether any record is V(open).
      type: bool
    sip_answered:
      description: Whether SIP answered on any record.
      type: bool
    open:
      description: The open endpoints, as C(address:port/protocol) (IPv6 in brackets).
      type: list
      elements: str
      sample: ["192.0.2.10:5061/tcp"]
    message:
      description: One sentence for a person.
      type: str
      sample: "port 5061 is exposed: open on 192.0.2.10:5061/tcp (SIP 200 OK)"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ARGUMENT_SPEC
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.run import task_result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = task_result(module.params)
    for warning in result.pop("warnings", ()):
        module.warn(warning)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
