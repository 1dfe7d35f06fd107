"""Verify each target of a scenario from the outside and from the inside (testinfra).

The scenarios whose verifier is testinfra run this module. Reachability is judged from
the molecule host (tests/harness/probe.py, bounded by timeouts), never from inside the
target; files, processes, chains and `ufw status` are read inside the target through
the scenario's own connection (podman exec, or SSH for the ssh scenario).

What each target must show comes from its inventory variables, the same sipguard_test_*
variables the shared playbooks use:

- sipguard_test_closed_after: [[port, protocol], ...] not reachable from the host
  (default 5061 on tcp and udp); [] when the scenario expects the port to stay open.
- sipguard_test_open_after: [[port, protocol], ...] still reachable from the host.
- sipguard_test_action: deny (silence: filtered) or reject (refused: closed).
- sipguard_test_backend: nft or legacy, the iptables backend the rules must live in.
- sipguard_test_ufw_ipv6: "no" for IPV6=no in /etc/default/ufw: UFW loads no IPv6 chain and
  drops all IPv6 (ip6tables INPUT DROP, loopback only), so the other ports answer on IPv4
  only and are filtered on IPv6.
- sipguard_test_report_closed: the role's report must call the host closed, with the
  backend UFW uses and none of UFW's own rules called foreign; port_audit agrees.
- sipguard_test_trusted_client: the client host that must still reach the closed
  port, with sipguard_test_trusted_cases the cases it probes.
- sipguard_test_expect_failure: a text the host's failure in the role must contain
  (the converge records it in the report); the port is then expected to be exposed.
- sipguard_test_ssh_control: an SSH control socket opened before the converge that
  must still carry commands afterwards (no lock-out of an established session).

Hosts in the group `clients` are probe sources, not targets: every test skips them.
"""

import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import testinfra

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
PROBE = os.path.join(PROJECT, "tests", "harness", "probe.py")
NO_ROUTE = "unreachable: No route to host"
EXPECT_STATES = {
    "open": {"tcp": ("open",), "udp": ("open",)},
    "filtered": {"tcp": ("filtered",), "udp": ("open|filtered",)},
    "closed": {"tcp": ("closed",), "udp": ("closed",)},
    # Every packet to the target dropped, its neighbour advertisements too (UFW's IPV6=no drops
    # IPv6 output as well): the host's own kernel then answers "No route to host".
    "dropped": {"tcp": ("filtered", NO_ROUTE), "udp": ("open|filtered", NO_ROUTE)},
}
DEFAULT_CLOSED = [[5061, "tcp"], [5061, "udp"]]
DEFAULT_OPEN = [[5060, "tcp"], [8080, "tcp"]]


def _vars(host):
    return host.ansible.get_variables()


def _target(host):
    """The host's inventory variables and a testinfra host to look inside it; skips probe clients.

    testinfra runs commands through a podman connection by calling Ansible once per
    command (seconds each); a podman:// backend is the same container, directly.
    """
    variables = _vars(host)
    if "clients" in variables.get("group_names", []):
        pytest.skip("%s is a probe client, not a target" % variables["inventory_hostname"])
    if variables.get("ansible_connection") == "podman":
        host = testinfra.get_host("podman://" + variables["inventory_hostname"])
    return variables, host


def _addresses(host):
    """The target's global IPv4 and IPv6 addresses, read inside it."""
    addresses = [
        address for address in host.interface("eth0").addresses
        if not address.startswith("fe80") and address != "::1"
    ]
    assert any(":" not in a for a in addresses) and any(":" in a for a in addresses), addresses
    return addresses


def _probe(protocol, address, port):
    """Probe from the molecule host: open, closed, filtered or open|filtered."""
    completed = subprocess.run(
        [sys.executable, PROBE, "--timeout=1", "--retries=1", protocol, address, str(port)],
        capture_output=True, text=True, timeout=30, check=True)
    return json.loads(completed.stdout)["state"]


def _wrong_states(addresses, cases, expect):
    """Probe every case on every address (in parallel: silence costs the timeout)."""
    probes = [(protocol, address, int(port)) for port, protocol in cases for address in addresses]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda probe: _probe(*probe), probes))
    return ["%s/%s on %s is %s, expected %s" % (protocol, port, address, state, expect)
            for (protocol, address, port), state in zip(probes, states)
            if state not in EXPECT_STATES[expect][protocol]]


def _is_ipv6(status_line):
    """`ufw status` marks rules for any IPv6 source "(v6)"; a rule from an IPv6 address shows it."""
    source = re.search(r"(?:ALLOW|DENY|REJECT|LIMIT)(?: IN| OUT| FWD)? +(\S+)", status_line)
    return "(v6)" in status_line or bool(source and ":" in source.group(1))


def _ipv6_off(variables):
    return str(variables.get("sipguard_test_ufw_ipv6", "yes")).lower() == "no"


def _closed_expectation(variables):
    return "closed" if variables.get("sipguard_test_action", "deny") == "reject" else "filtered"


def test_closed_port_is_unreachable_from_outside(host):
    variables, host = _target(host)
    if variables.get("sipguard_test_expect_failure"):
        pytest.skip("the role must have refused to call this host closed")
    cases = variables.get("sipguard_test_closed_after", DEFAULT_CLOSED)
    addresses = _addresses(host)
    if _ipv6_off(variables):
        ipv6 = [address for address in addresses if ":" in address]
        assert _wrong_states([a for a in addresses if a not in ipv6], cases, _closed_expectation(variables)) + \
            _wrong_states(ipv6, cases, "dropped") == []
    else:
        assert _wrong_states(addresses, cases, _closed_expectation(variables)) == []


def test_every_other_port_is_still_reachable(host):
    variables, host = _target(host)
    cases = variables.get("sipguard_test_open_after", DEFAULT_OPEN)
    addresses = _addresses(host)
    if _ipv6_off(variables):
        # UFW's IPV6=no drops every IPv6 connection, before the close as after it.
        ipv6 = [address for address in addresses if ":" in address]
        assert _wrong_states([a for a in addresses if a not in ipv6], cases, "open") + \
            _wrong_states(ipv6, cases, "dropped") == []
    else:
        assert _wrong_states(addresses, cases, "open") == []


def test_ufw_is_active_with_the_collection_rules_first(host):
    variables, host = _target(host)
    status = host.check_output("ufw status numbered")
    assert "Status: active" in status
    numbered = re.findall(r"^\[ *\d+\] (.*)$", status, re.MULTILINE)
    # UFW lists the IPv4 rules, then the IPv6 ones: in each family the collection's
    # rules (its deny or reject, and an allow per trusted source) come first. With IPV6=no
    # it lists no IPv6 rule at all.
    for family in (False,) if _ipv6_off(variables) else (False, True):
        rules = [line.rstrip() for line in numbered if _is_ipv6(line) == family]
        ours = [line.endswith("# sipguard") for line in rules]
        assert any(ours) and ours == sorted(ours, reverse=True), \
            "the collection's rules are not first:\n" + status
    action = variables.get("sipguard_test_action", "deny").upper()
    assert re.search(r"^\[ *\d+\] 5061/tcp +%s IN +Anywhere +# sipguard$" % action, status, re.MULTILINE), status


def test_rules_are_in_the_files_ufw_loads_at_boot(host):
    variables, host = _target(host)
    for path, anywhere in (("/etc/ufw/user.rules", "0.0.0.0/0"), ("/etc/ufw/user6.rules", "::/0")):
        content = host.file(path).content_string
        # With IPV6=no UFW loads no IPv6 rule and rewrites user6.rules without any: none is written.
        expected = 0 if path.endswith("user6.rules") and _ipv6_off(variables) else 1
        for protocol in ("tcp", "udp"):
            tuple_line = "### tuple ### deny %s 5061 %s any %s in comment=7369706775617264" % (
                protocol, anywhere, anywhere)
            assert content.count(tuple_line) == expected, "%s: %r not there %d times" % (path, tuple_line, expected)


def test_rules_are_live_in_the_selected_iptables_backend(host):
    variables, host = _target(host)
    backend = variables.get("sipguard_test_backend", "nft")
    other = "legacy" if backend == "nft" else "nft"
    assert host.check_output("readlink -f /usr/sbin/iptables").endswith("xtables-%s-multi" % backend)
    for tool, chain in (("iptables", "ufw-user-input"), ("ip6tables", "ufw6-user-input")):
        rules = host.check_output("%s-%s-save" % (tool, backend))
        if tool == "ip6tables" and _ipv6_off(variables):
            # IPV6=no: no chain of UFW's, only its drop-all-but-loopback policy.
            assert chain not in rules and chain not in host.run("%s-%s-save" % (tool, other)).stdout
            assert re.search(r"^:INPUT DROP ", rules, re.MULTILINE), rules
            assert re.findall(r"^-A INPUT .*", rules, re.MULTILINE) == ["-A INPUT -i lo -j ACCEPT"], rules
            continue
        for protocol in ("tcp", "udp"):
            pattern = r"^-A %s -p %s (-m %s )?--dport 5061 -j DROP$" % (chain, protocol, protocol)
            assert len(re.findall(pattern, rules, re.MULTILINE)) == 1, rules
        assert chain not in host.run("%s-%s-save" % (tool, other)).stdout


def test_services_are_still_running(host):
    _variables, host = _target(host)
    assert host.run("pgrep -f sipguard-test-listener").rc == 0


def test_trusted_client_still_reaches_the_port(host):
    variables, host = _target(host)
    client = variables.get("sipguard_test_trusted_client")
    if not client:
        pytest.skip("no trusted source in this situation")
    subprocess.run(["podman", "cp", PROBE, "%s:/usr/local/bin/sipguard-probe" % client],
                   check=True, timeout=60)
    wrong = []
    for port, protocol in variables["sipguard_test_trusted_cases"]:
        for address in _addresses(host):
            completed = subprocess.run(
                ["podman", "exec", client, "python3", "/usr/local/bin/sipguard-probe",
                 "--timeout=1", "--retries=1", protocol, address, str(port)],
                capture_output=True, text=True, timeout=30, check=True)
            state = json.loads(completed.stdout)["state"]
            if state != "open":
                wrong.append("from %s: %s/%s on %s is %s" % (client, protocol, port, address, state))
    assert wrong == []


def _report():
    paths = glob.glob(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "report", "*.json"))
    reports = [json.load(open(path, encoding="utf-8")) for path in sorted(paths)]
    reports = [r for r in reports if r.get("schema") == "sipguard.firewall/report/v1"]
    assert reports, "no report written by the role"
    return max(reports, key=lambda r: r["generated"])


FOREIGN = "neither shows nor manages"


def test_the_report_and_the_audit_say_closed_on_the_backend_ufw_uses(host):
    variables, target = _target(host)
    if not variables.get("sipguard_test_report_closed"):
        pytest.skip("no report expected for this host")
    backend = variables.get("sipguard_test_backend", "nft")
    name = variables["inventory_hostname"]
    records = [r for r in _report()["hosts"] if r["host"] == name]
    assert len(records) == 1, records
    record = records[0]
    assert record["status"] == "closed" and record["exposed"] is False, record
    assert record["ufw"]["backend"] == backend, record["ufw"]
    assert not any(FOREIGN in text for text in record["reasons"] + record["notes"]), record
    # What port_audit says on the host, as the audit playbook would read it (read-only).
    audit = host.ansible("sipguard.firewall.port_audit", "", check=True)
    assert audit["exposed"] is False, audit["reasons"]
    assert audit["ufw"]["backend"] == backend and audit["ufw"]["active"] is True, audit["ufw"]
    notes = [note for item in audit["summary"] for note in item["notes"]]
    assert not any(FOREIGN in note for note in notes), notes
    ipv6 = [item for item in audit["summary"] if item["family"] == "ipv6"]
    assert all(item["firewall"] == "drop" and item["listening"] for item in ipv6), ipv6
    unmanaged = [item["notes"][:1] == ["UFW does not manage IPv6 on this host (IPV6=no in /etc/default/ufw): it "
                                       "loads no IPv6 rule (and drops any from /etc/ufw/user6.rules when it next "
                                       "writes its rules), so IPv6 is judged from the ip6tables rules loaded now "
                                       "(with IPV6=no, UFW sets them to drop everything but loopback when it "
                                       "starts)"] for item in ipv6]
    assert unmanaged == [_ipv6_off(variables)] * len(ipv6), ipv6
    assert target.file("/etc/default/ufw").contains("^IPV6=%s$" % ("no" if _ipv6_off(variables) else "yes"))


def test_a_bypassed_host_is_never_reported_closed(host):
    variables, host = _target(host)
    expected = variables.get("sipguard_test_expect_failure")
    if not expected:
        pytest.skip("the close is expected to hold on this host")
    name = variables["inventory_hostname"]
    hosts = _report()["hosts"]
    record = [r for r in hosts if r["host"] == name]
    assert len(record) == 1, hosts
    record = record[0]
    assert record["status"] in ("exposed", "failed") and record["exposed"] is True, record
    assert any(expected in reason for reason in record["reasons"]), record["reasons"]
    failure = host.file("/root/sipguard-role-failure.txt").content_string
    assert expected in failure
    # The truth from the network: the port the report calls exposed is reachable.
    assert _wrong_states(_addresses(host), [[5061, "tcp"]], "open") == []


def test_ssh_session_opened_before_still_works(host):
    variables, host = _target(host)
    control = variables.get("sipguard_test_ssh_control")
    if not control:
        pytest.skip("not managed over SSH")
    common = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
              "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
              "-i", variables["ansible_ssh_private_key_file"]]
    target = "root@%s" % variables["ansible_host"]
    # The master connection opened in prepare (before check, converge and idempotence).
    subprocess.run(common + ["-S", control, "-O", "check", target], check=True, timeout=30)
    through_master = subprocess.run(common + ["-S", control, target, "cat /proc/sys/kernel/hostname"],
                                    capture_output=True, text=True, timeout=30, check=True)
    assert through_master.stdout.strip()
    # And a brand-new connection.
    fresh = subprocess.run(common + ["-o", "ControlPath=none", target, "ufw status"],
                           capture_output=True, text=True, timeout=30, check=True)
    assert "Status: active" in fresh.stdout
