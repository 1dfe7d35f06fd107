# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Render roles/sips/templates/report.html.j2 from a realistic sample fleet report.

The sample goes through the real filter (sipguard.firewall.sips_report) from module results
shaped as port_audit, ufw_port and port_probe return them. The template is rendered the way
the template module does it - plain Jinja2 with trim_blocks, undefined variables an error -
and, for comparison, through ansible-core's own Templar.

    python tests/report/render_report.py OUT.html        # audit sample
    python tests/report/render_report.py --mode close OUT.html
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "roles", "sips", "templates", "report.html.j2")
TEMPLATE_VAR = "sips_report"  # the variable the template reads the report from (else "report", as the role has it)

if os.path.join(ROOT, "build") not in sys.path:  # run as a script, outside pytest's pythonpath
    sys.path.insert(0, os.path.join(ROOT, "build"))

from ansible_collections.sipguard.firewall.plugins.filter.sips_report import sips_report  # noqa: E402

GENERATED = "2026-03-02T02:15:07Z"
PREVIOUS_GENERATED = "2026-03-01T02:15:04Z"


def _listener(name, pid, address, family="ipv4", protocol="tcp", dual_stack=False, cmdline=None):
    return {"protocol": protocol, "family": family, "address": address, "port": 5061,
            "wildcard": address in ("0.0.0.0", "::"), "loopback_only": False,
            "dual_stack": dual_stack if family == "ipv6" else False, "uid": 0 if name != "asterisk" else 107,
            "processes": [{"pid": pid, "name": name, "cmdline": cmdline or ["/usr/sbin/" + name]}]}


def _ufw(rules, active=True, incoming="deny"):
    return {"installed": True, "version": "0.36.2", "enabled": active, "loaded": active, "active": active,
            "backend": "nft", "ipv6": True,
            "default_policies": {"incoming": incoming, "outgoing": "allow", "routed": "disabled"},
            "rules": rules}


def _summary(exposed_on=(), listening_on=(), notes=None, firewall="drop"):
    items = []
    for family in ("ipv4", "ipv6"):
        for protocol in ("tcp", "udp"):
            key = "%s/%s" % (family, protocol)
            exposed = key in exposed_on
            items.append({
                "family": family, "protocol": protocol, "listening": key in listening_on, "exposed": exposed,
                "firewall": "accept" if exposed else firewall, "deciding_rule": None,
                "ufw_verdict": {"action": "allow" if exposed else "deny", "rule": None, "open_from": []},
                "reasons": [], "notes": list((notes or {}).get(key, []))})
    return items


def _audit(exposed, reasons=(), listeners=(), summary=None, rules=()):
    return {"changed": False, "port": 5061, "exposed": exposed, "reasons": list(reasons),
            "summary": summary if summary is not None else _summary(), "listeners": list(listeners),
            "ufw": _ufw(list(rules))}


def _tls(subject, issuer, not_after, days_left, self_issued=False, version="TLSv1.3"):
    return {"version": version, "cipher": "TLS_AES_256_GCM_SHA384", "bits": 256, "server_name": None,
            "handshake_ms": 4.1, "subject": subject, "issuer": issuer, "san": [], "not_before": None,
            "not_after": not_after, "days_left": days_left, "serial": "03a1", "self_issued": self_issued,
            "sha256": "9f" * 32, "decoder": "cryptography", "error": None}


def _sip(status_code=200, reason="OK", server=None, user_agent=None, transport="TLS"):
    return {"status_code": status_code, "reason": reason, "server": server, "user_agent": user_agent,
            "allow": ["INVITE", "ACK", "OPTIONS", "BYE", "CANCEL"], "transport": transport, "rtt_ms": 3.2}


def _probe(target, protocol, state, family="ipv4", tls=None, sip=None, error=None, rtt_ms=1.4):
    return {"target": target, "address": target, "family": family, "protocol": protocol, "port": 5061,
            "state": state, "rtt_ms": rtt_ms if state in ("open", "closed") else None,
            "attempts": 1 if state in ("open", "closed") else 2, "tls": tls, "sip": sip, "error": error}


def sample_inputs():
    """(host_results, probe, previous): one night's audit of a small SIP fleet."""
    edge_reasons = [
        "ipv4/tcp: kamailio listens on 0.0.0.0:5061",
        "ipv4/tcp: ufw's own filter ufw-user-input rule 2 accepts tcp port 5061 "
        "`-A ufw-user-input -p tcp -m multiport --dports 5000:6000 -j ACCEPT`; see `ufw status numbered`",
    ]
    lab_reasons = [
        "ipv4/tcp: asterisk listens on [::]:5061",
        "ipv4/tcp: ufw's own filter ufw-user-input rule 1 accepts tcp port 5061 "
        "`-A ufw-user-input -p tcp --dport 5061 -j ACCEPT`; see `ufw status numbered`",
    ]
    host_results = {
        "sip-edge-01": {"address": "203.0.113.10", "unreachable": False, "failed": False, "msg": None,
                        "result": _audit(True, edge_reasons,
                                         [_listener("kamailio", 812, "0.0.0.0",
                                                    cmdline=["/usr/sbin/kamailio", "-DD", "-f",
                                                             "/etc/kamailio/kamailio.cfg"])],
                                         _summary(("ipv4/tcp",), ("ipv4/tcp",)),
                                         ["[ 1] 22/tcp ALLOW IN Anywhere", "[ 2] 5000:6000/tcp ALLOW IN Anywhere"])},
        "pbx-lab-02": {"address": "203.0.113.22", "unreachable": False, "failed": False, "msg": None,
                       "result": _audit(True, lab_reasons,
                                        [_listener("asterisk", 1207, "::", family="ipv6", dual_stack=True)],
                                        _summary(("ipv4/tcp",), ("ipv4/tcp", "ipv6/tcp")),
                                        ["[ 1] 5061/tcp ALLOW IN Anywhere"])},
        "sbc-04": {"address": "203.0.113.40", "unreachable": False, "failed": False, "msg": None,
                   "result": _audit(False, rules=["[ 1] 5061/tcp DENY IN Anywhere # sipguard"])},
        "media-03": {"address": "203.0.113.31", "unreachable": False, "failed": False, "msg": None,
                     "result": _audit(False, summary=_summary(notes={"ipv4/udp": [
                         "the firewall lets udp/5061 in, but nothing listens on it now"]}),
                         rules=["[ 1] 5061/tcp DENY IN Anywhere # sipguard",
                                "[ 2] 5061/udp DENY IN Anywhere # sipguard"])},
        "web-07": {"address": "203.0.113.77", "unreachable": False, "failed": False, "msg": None,
                   "result": _audit(False, rules=["[ 1] 443/tcp ALLOW IN Anywhere"])},
        "old-pbx-05": {"address": "203.0.113.55", "unreachable": True, "failed": False,
                       "msg": "Failed to connect to the host via ssh: ssh: connect to host 203.0.113.55 port 22: "
                              "Connection timed out", "result": {}},
        "voip-gw-06": {"address": "203.0.113.66", "unreachable": False, "failed": True,
                       "msg": "Missing sudo password", "result": {"changed": False}},
    }
    cert_edge = _tls("CN=sip-edge-01.example.net", "CN=R11,O=Let's Encrypt,C=US", "2026-03-25T09:12:44Z", 23)
    cert_lab = _tls("CN=asterisk,O=Lab PBX", "CN=asterisk,O=Lab PBX", "2026-02-18T00:00:00Z", -12,
                    self_issued=True, version="TLSv1.2")
    probes = [
        _probe("203.0.113.10", "tcp", "open", tls=cert_edge, sip=_sip(server="kamailio (5.6.3 (x86_64/linux))")),
        _probe("203.0.113.10", "udp", "open|filtered", error="no answer within 2s (2 datagrams)"),
        _probe("203.0.113.22", "tcp", "open", tls=cert_lab, sip=_sip(user_agent="Asterisk PBX 20.5.0")),
        _probe("203.0.113.22", "udp", "open|filtered", error="no answer within 2s (2 datagrams)"),
        _probe("203.0.113.31", "tcp", "filtered", error="no answer within 2s (2 attempts)"),
        _probe("203.0.113.31", "udp", "open|filtered", error="no answer within 2s (2 datagrams)"),
        _probe("203.0.113.40", "tcp", "open", tls=_tls("CN=sbc.example.net", "CN=E6,O=Let's Encrypt,C=US",
                                                       "2026-05-20T11:00:00Z", 79),
               sip=_sip(server="OpenSIPS (3.4.4 (x86_64/linux))")),
        _probe("203.0.113.40", "udp", "open|filtered", error="no answer within 2s (2 datagrams)"),
        _probe("203.0.113.55", "tcp", "filtered", error="no answer within 2s (2 attempts)"),
        _probe("203.0.113.55", "udp", "open|filtered", error="no answer within 2s (2 datagrams)"),
        _probe("203.0.113.66", "tcp", "closed"),
        _probe("203.0.113.66", "udp", "closed"),
        _probe("203.0.113.77", "tcp", "closed"),
        _probe("203.0.113.77", "udp", "closed"),
    ]
    probe = {"changed": False, "probes": probes,
             "counts": {"open": 3, "closed": 4, "filtered": 2, "open|filtered": 5, "error": 0},
             "summary": {"exposed": True, "sip_answered": True,
                         "open": ["203.0.113.10:5061/tcp", "203.0.113.22:5061/tcp", "203.0.113.40:5061/tcp"],
                         "message": "port 5061 is exposed: open on 203.0.113.10:5061/tcp (SIP 200 OK), "
                                    "203.0.113.22:5061/tcp (SIP 200 OK), 203.0.113.40:5061/tcp (SIP 200 OK)"}}
    previous = {"schema": "sipguard.firewall/report/v1", "generated": PREVIOUS_GENERATED, "mode": "audit",
                "port": 5061,
                "hosts": [{"host": "sip-edge-01", "status": "exposed"}, {"host": "pbx-lab-02", "status": "closed"},
                          {"host": "media-03", "status": "closed"}, {"host": "old-pbx-05", "status": "closed"},
                          {"host": "voip-gw-06", "status": "closed"}, {"host": "web-07", "status": "closed"}]}
    return host_results, probe, previous


def sample_report():
    """The audit report of the sample fleet, through the real filter."""
    host_results, probe, previous = sample_inputs()
    return sips_report(host_results, probe=probe, previous=previous, mode="audit", port=5061,
                       generated=GENERATED, controller_trusted=False, trusted_sources=["198.51.100.0/24"])


def sample_close_report(check_mode=False):
    """A close of two hosts: one with a conflicting range rule (shadowed), one already closed."""
    before_reasons = ["ipv4/tcp: ufw's own filter ufw-user-input rule 2 accepts tcp port 5061 "
                      "`-A ufw-user-input -p tcp -m multiport --dports 5000:6000 -j ACCEPT`; see `ufw status numbered`"]
    edge = {"changed": True, "effective": True, "exposed": False, "reasons": [],
            "rules_added": ["5061/tcp DENY IN Anywhere # sipguard", "5061/udp DENY IN Anywhere # sipguard",
                            "5061/tcp (v6) DENY IN Anywhere (v6) # sipguard",
                            "5061/udp (v6) DENY IN Anywhere (v6) # sipguard"],
            "rules_removed": [],
            "conflicts": [{"rule": "5000:6000/tcp ALLOW IN Anywhere", "family": "ipv4", "handling": "shadowed"}],
            "drift": [], "actions": [], "ufw": _ufw(None), "before": {"effective": False, "exposed": True, "reasons": before_reasons},
            "listeners": [_listener("kamailio", 812, "0.0.0.0")]}
    media = {"changed": False, "effective": True, "exposed": False, "reasons": [], "rules_added": [], "rules_removed": [],
             "conflicts": [], "drift": [], "actions": [], "ufw": _ufw(None),
             "before": {"effective": True, "exposed": False, "reasons": []}, "listeners": []}
    host_results = {
        "sip-edge-01": {"address": "203.0.113.10", "unreachable": False, "failed": False, "result": edge},
        "media-03": {"address": "203.0.113.31", "unreachable": False, "failed": False, "result": media},
    }
    probe = {"probes": [_probe("203.0.113.10", "tcp", "filtered"), _probe("203.0.113.10", "udp", "open|filtered"),
                        _probe("203.0.113.31", "tcp", "filtered"), _probe("203.0.113.31", "udp", "open|filtered")]}
    return sips_report(host_results, probe=probe, mode="close", port=5061, generated=GENERATED,
                       check_mode=check_mode)


def _template_text(path=TEMPLATE):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def render_jinja2(report, path=TEMPLATE, variable=TEMPLATE_VAR):
    """The page as the template module renders it: plain Jinja2, trim_blocks, strict undefined."""
    import jinja2

    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=False, keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined, autoescape=False)
    return environment.from_string(_template_text(path)).render({variable: report})


def render_ansible(report, path=TEMPLATE, variable=TEMPLATE_VAR):
    """The page through ansible-core's Templar, with the template action's overrides."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    templar = Templar(loader=DataLoader(), variables={variable: report})
    return templar.template(trust_as_template(_template_text(path)), escape_backslashes=False,
                            overrides=dict(trim_blocks=True, lstrip_blocks=False))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="where to write the HTML page")
    parser.add_argument("--mode", choices=["audit", "close"], default="audit")
    parser.add_argument("--json", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = sample_report() if args.mode == "audit" else sample_close_report()
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write(render_jinja2(report))
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
    print(report["summary_line"])


if __name__ == "__main__":
    main()
