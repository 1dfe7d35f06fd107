# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWX job slicing through ansible-runner: two slice jobs of one run, at the same time, over
disjoint halves of a fleet, writing into one report directory - one merged report with every host.

AWX runs a sliced job as one workflow job with a job per slice; every slice job gets the same
`awx_workflow_job_id`, which the sips role takes as the run id (`sips_run_id`). Here the two
slices are two ansible-runner jobs started together with that variable, as AWX would set it.
Four throwaway containers (UFW active, `allow 5061`, a listener on 5061), removed by name.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: no rootdir on the path
from test_runner_audit import (  # noqa: E402  the same harness as the audit job's test
    COLLECTIONS_PATH,
    CONTAINERS_CONF,
    IMAGE,
    LISTENER,
    NETWORK,
    RUNNER_TIMEOUT,
    ensure_collection_link,
    forget_environment,
    podman,
    stats_event,
)

NAMES = ["sipguard-slice-%d" % number for number in range(1, 5)]
WORKFLOW_JOB_ID = 4242


def remove_all() -> None:
    for name in NAMES:
        podman("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture(scope="module")
def fleet(request) -> dict:
    remove_all()
    request.addfinalizer(remove_all)
    addresses = {}
    for name in NAMES:
        podman("run", "-d", "--name", name, "--network", NETWORK, "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
               IMAGE)
        podman("cp", str(LISTENER), "%s:/usr/local/bin/sipguard-test-listener" % name)
        podman("exec", name, "sh", "-c", "setsid nohup python3 /usr/local/bin/sipguard-test-listener 5061"
               " >/dev/null 2>&1 </dev/null & ufw default deny incoming >/dev/null && ufw allow 5061 >/dev/null"
               " && ufw --force enable >/dev/null")
        addresses[name] = podman("inspect", name, "-f",
                                 "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.strip()
    return addresses


def start_slice(tmp_path: Path, number: int, hosts: dict, report_dir: Path, request):
    import ansible_runner

    inventory = tmp_path / ("slice%d.json" % number)
    inventory.write_text(json.dumps({"all": {"hosts": {name: {
        "ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3",
        "sips_probe_targets": [address]} for name, address in hosts.items()}}}))
    private_data_dir = tmp_path / ("runner%d" % number)
    private_data_dir.mkdir()
    request.addfinalizer(lambda: forget_environment(private_data_dir))
    _thread, runner = ansible_runner.run_async(
        private_data_dir=str(private_data_dir), playbook="sipguard.firewall.close", inventory=str(inventory),
        extravars={"awx_workflow_job_id": WORKFLOW_JOB_ID, "sips_report_dir": str(report_dir)},
        envvars={"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH), "CONTAINERS_CONF": str(CONTAINERS_CONF),
                 "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                 "ANSIBLE_NOCOLOR": "1", "ANSIBLE_TIMEOUT": "30"},
        timeout=RUNNER_TIMEOUT, quiet=True)
    return runner


def test_two_slices_at_the_same_time_make_one_report_with_every_host(fleet, tmp_path, request):
    ensure_collection_link()
    report_dir = tmp_path / "report"
    halves = [dict(list(fleet.items())[:2]), dict(list(fleet.items())[2:])]
    runners = [start_slice(tmp_path, number, hosts, report_dir, request) for number, hosts in enumerate(halves)]
    deadline = time.monotonic() + RUNNER_TIMEOUT
    while any(runner.status in ("unstarted", "starting", "running") for runner in runners):
        assert time.monotonic() < deadline, "the slices did not finish"
        time.sleep(0.5)
    for runner in runners:
        output = runner.stdout.read() if runner.stdout else ""
        assert (runner.status, runner.rc) == ("successful", 0), output[-4000:]

    report = json.loads((report_dir / "sips-report.json").read_text())
    assert sorted(item["host"] for item in report["hosts"]) == NAMES
    assert report["run"]["id"] == "%d-close" % WORKFLOW_JOB_ID and report["run"]["parts"] == 2
    assert report["counts"]["closed"] == 4 and report["counts"]["changed"] == 4
    # one run: no slice made the other's records "the previous run"
    assert not (report_dir / "sips-report.previous.json").exists()
    assert len(os.listdir(report_dir / "runs" / report["run"]["id"])) == 2  # one part per slice
    # each slice's artifacts name the run and its report; the later one carries every host
    results = [stats_event(runner)["artifact_data"]["sipguard_sips"] for runner in runners]
    assert {item["run_id"] for item in results} == {report["run"]["id"]}
    assert max(item["counts"]["hosts"] for item in results) == 4
    assert all(item["report"] == str(report_dir / "sips-report.json") for item in results)
