# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The `audit` playbook run through ansible-runner, the engine AWX runs jobs with.

One throwaway target container (the molecule harness's image, on its `sipguard-test`
network) listens on 5061 behind `ufw allow 5061`. The playbook runs by FQCN with the
nightly job template's extra vars (`sips_fail_on_exposure: true`), so the job fails - that
is what fires AWX's failure notifications - and its artifacts still carry the role's
`set_stats` results: AWX reads them from the `playbook_on_stats` event's `artifact_data`
(ansible-runner's callback fills it from the aggregate `set_stats` data).

Needs podman, the image `localhost/sipguard-target:bookworm` and the network
`sipguard-test` (`make setup` provides them); without them the test fails, it does not skip.
Run it with `make setup`'s environment: `python -m pytest -q tests/awx`.
The container is removed by name at the end, whatever happens. Nothing here touches the
firewall of the machine the test runs on; the only network probes go to that container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "tests" / "harness" / "containers.conf"
LISTENER = ROOT / "tests" / "harness" / "listener.py"
COLLECTIONS_PATH = ROOT / "build"
IMAGE = "localhost/sipguard-target:" + os.environ.get("SIPGUARD_SUITE", "bookworm")
NETWORK = "sipguard-test"
CONTAINER = "sipguard-runner-audit"
PORT = 5061

PODMAN_TIMEOUT = 120    # seconds, any one podman command
LISTENER_TIMEOUT = 20   # seconds until the listener inside the container accepts on 5061
RUNNER_TIMEOUT = 300    # seconds, the whole playbook run (ansible-runner kills it after that)

PODMAN_ENV = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))


# --- helpers -------------------------------------------------------------------------------
def podman(*args: str, check: bool = True, timeout: int = PODMAN_TIMEOUT) -> subprocess.CompletedProcess:
    """Run one podman command, bounded; fail the test with podman's own words when it fails."""
    try:
        result = subprocess.run(["podman", *args], env=PODMAN_ENV, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("podman %s did not finish within %d s" % (" ".join(args), timeout))
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        pytest.fail("podman %s failed (exit %d): %s" % (" ".join(args), result.returncode, output))
    return result


def in_container(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return podman("exec", CONTAINER, "sh", "-c", script, check=check)


def remove_container() -> None:
    """Remove the test's container by name (no error when it does not exist)."""
    subprocess.run(["podman", "rm", "--force", "--time", "0", CONTAINER], env=PODMAN_ENV,
                   capture_output=True, text=True, timeout=PODMAN_TIMEOUT, check=False)


def wait_for_listener() -> None:
    """Until the listener accepts on 5061 - checked from inside the container, on its loopback."""
    check = ("import socket; socket.create_connection(('127.0.0.1', %d), 1).close()" % PORT)
    deadline = time.monotonic() + LISTENER_TIMEOUT
    while True:
        if in_container("python3 -c \"%s\"" % check, check=False).returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail("the test listener in %s did not accept on %d within %d s"
                        % (CONTAINER, PORT, LISTENER_TIMEOUT))
        time.sleep(0.5)


def ensure_collection_link() -> None:
    """build/ansible_collections/sipguard/firewall -> the repository (what run-tests.sh makes)."""
    link = COLLECTIONS_PATH / "ansible_collections" / "sipguard" / "firewall"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():  # dangling
            link.unlink()
        link.symlink_to(Path("..") / ".." / "..")
    assert (link / "galaxy.yml").is_file(), "%s does not lead to the collection" % link


def forget_environment(private_data_dir: Path) -> None:
    """Remove ansible-runner's `command` artifact: it holds the run's whole environment."""
    for path in private_data_dir.glob("artifacts/*/command"):
        path.unlink()


def stats_event(runner) -> dict:
    """The run's `playbook_on_stats` event (where AWX reads set_stats from)."""
    events = [event for event in runner.events if event.get("event") == "playbook_on_stats"]
    assert len(events) == 1, "expected one playbook_on_stats event, got %d" % len(events)
    return events[0]["event_data"]


# --- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def target(request) -> dict:
    """Start the target: listener on 5060/5061/8080, UFW `default deny incoming` + `allow 5061`.

    Returns its name and IPv4 address. Removed by name in a finalizer.
    """
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make setup` (tests/harness/setup.sh) first")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail("image %s is missing: run `make setup` (tests/harness/build-image.sh) first" % IMAGE)
    if podman("network", "exists", NETWORK, check=False).returncode != 0:
        pytest.fail("podman network %s is missing: run `make setup` (tests/harness/network.sh) first" % NETWORK)

    remove_container()  # a leftover of an interrupted run
    request.addfinalizer(remove_container)
    podman("run", "-d", "--name", CONTAINER, "--network", NETWORK,
           "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", IMAGE)
    podman("cp", str(LISTENER), "%s:/usr/local/bin/sipguard-test-listener" % CONTAINER)
    in_container("setsid nohup python3 /usr/local/bin/sipguard-test-listener 5060 5061 8080"
                 " >/dev/null 2>&1 </dev/null &")
    in_container("ufw default deny incoming && ufw allow %d && ufw --force enable" % PORT)
    wait_for_listener()

    address = podman("inspect", CONTAINER, "-f",
                     "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.strip()
    assert address, "podman inspect gave no IPv4 address for %s" % CONTAINER
    return {"name": CONTAINER, "address": address}


# --- the test ------------------------------------------------------------------------------
def test_audit_job_artifacts_carry_set_stats(target, tmp_path, request):
    import ansible_runner  # imported here so a missing ansible-runner fails this test, not collection

    ensure_collection_link()
    report_dir = tmp_path / "report"
    inventory = tmp_path / "inventory.json"  # the yaml inventory plugin reads .json
    inventory.write_text(json.dumps({"all": {"hosts": {target["name"]: {
        "ansible_connection": "containers.podman.podman",
        "ansible_python_interpreter": "/usr/bin/python3",
        "sips_probe_targets": [target["address"]],
        "sips_report_dir": str(report_dir),
    }}}}))

    private_data_dir = tmp_path / "runner"
    private_data_dir.mkdir()
    # ansible-runner writes the whole environment of the run into artifacts/<ident>/command;
    # it is removed at the end, so no copy of this process's environment stays in /tmp.
    request.addfinalizer(lambda: forget_environment(private_data_dir))
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        playbook="sipguard.firewall.audit",           # by FQCN, as the README runs it
        inventory=str(inventory),
        extravars={"sips_fail_on_exposure": True},   # what the nightly job template sets
        envvars={
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
            # ansible-playbook and the podman connection's podman, from this interpreter's venv
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_TIMEOUT": "30",
        },
        timeout=RUNNER_TIMEOUT,
        quiet=True,
    )
    elapsed = time.monotonic() - started
    output = runner.stdout.read() if runner.stdout else ""
    context = "\n--- ansible-runner status %s, rc %s, %.0f s; output:\n%s" % (
        runner.status, runner.rc, elapsed, output[-6000:])

    # The nightly configuration fails the job on an exposed host: AWX's "failure" event.
    assert runner.status == "failed", "the audit of an exposed host must fail the job" + context
    assert runner.rc == 2, context
    stats = stats_event(runner)
    assert stats["failures"] == {target["name"]: 1}, context
    assert not stats["dark"], "the target was unreachable" + context

    # ... and the job's artifacts carry the results, where AWX reads them.
    artifact_data = stats["artifact_data"]
    assert "sipguard_sips" in artifact_data, "no set_stats data in artifact_data: %r%s" % (artifact_data, context)
    results = artifact_data["sipguard_sips"]
    assert results["port"] == PORT, results
    assert results["mode"] == "audit", results
    assert results["counts"]["hosts"] == 1, results
    assert results["counts"]["exposed"] == 1, results
    assert results["exposed_hosts"] == [target["name"]], results
    assert results["reopened_hosts"] == [], results  # first run: nothing to compare with
    assert results["report"] == str(report_dir / "sips-report.json"), results

    # The same data in the report the role wrote on the controller.
    report = json.loads((report_dir / "sips-report.json").read_text())
    assert report["counts"] == results["counts"]
    assert [host["host"] for host in report["hosts"] if host["status"] == "exposed"] == [target["name"]]

    # The artifacts on disk: what AWX stores with the job (job_events/*.json, status, rc).
    artifacts = Path(runner.config.artifact_dir)
    assert (artifacts / "status").read_text().strip() == "failed"
    assert (artifacts / "rc").read_text().strip() == "2"
    on_disk = [json.loads(path.read_text()) for path in sorted((artifacts / "job_events").glob("*.json"))]
    assert [event["event_data"]["artifact_data"]["sipguard_sips"]["exposed_hosts"]
            for event in on_disk if event.get("event") == "playbook_on_stats"] == [[target["name"]]]
