# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The report directory: one report per run over batches and concurrent slices, the previous run
kept once per run, bad files set aside and named, and no host lost when writers race."""

from __future__ import annotations

import json
import multiprocessing
import os

from ansible_collections.sipguard.firewall.plugins.plugin_utils import _report, _report_store


def records(names, exposed=()):
    entries = {name: {"address": "192.0.2.%d" % (index + 1),
                      "result": {"exposed": name in exposed, "reasons": ["ipv4/tcp: allow"] if name in exposed else []}}
               for index, name in enumerate(names)}
    return _report.host_records(entries, mode="audit")[0]


def write(directory, run_id, names, exposed=(), alert=False):
    return _report_store.write_run(str(directory), run_id, records(names, exposed), "audit", 5061, False,
                                   "2026-12-01T00:00:00Z", lambda report: "<p>%d</p>" % len(report["hosts"]),
                                   alert=alert)


def read(directory, name=_report_store.JSON_NAME):
    return json.loads((directory / name).read_text(encoding="utf-8"))


def test_batches_of_one_run_make_one_report(tmp_path):
    write(tmp_path, "run-1", ["a", "b"])
    report, details = write(tmp_path, "run-1", ["c"], exposed=["c"])
    assert sorted(item["host"] for item in read(tmp_path)["hosts"]) == ["a", "b", "c"]
    assert report["counts"]["hosts"] == 3 and report["exposed_hosts"] == ["c"]
    assert report["run"]["id"] == "run-1" and report["run"]["parts"] == 2
    assert details["previous_kept"] is False and not (tmp_path / _report_store.PREVIOUS_NAME).exists()
    assert (tmp_path / _report_store.HTML_NAME).read_text() == "<p>3</p>"


def test_the_next_run_compares_with_the_whole_last_run_not_its_last_batch(tmp_path):
    write(tmp_path, "run-1", ["a", "b"])
    write(tmp_path, "run-1", ["c"])
    first, details = write(tmp_path, "run-2", ["a"], exposed=["a"])
    assert details["previous_kept"] is True
    assert len(read(tmp_path, _report_store.PREVIOUS_NAME)["hosts"]) == 3
    assert _record(first, "a")["trend"] == "reopened"
    second, details = write(tmp_path, "run-2", ["c"])  # a later batch: still compared with run-1
    assert details["previous_kept"] is False
    assert _record(second, "c")["trend"] == "still_closed" and _record(second, "a")["trend"] == "reopened"
    assert sorted(os.listdir(tmp_path / "runs")) == ["run-1", "run-2"]
    write(tmp_path, "run-3", ["a"])
    assert sorted(os.listdir(tmp_path / "runs")) == ["run-2", "run-3"]  # older parts pruned


def _record(report, name):
    return next(item for item in report["hosts"] if item["host"] == name)


def test_a_later_batch_record_of_the_same_host_wins(tmp_path):
    write(tmp_path, "run-1", ["a"], exposed=["a"])
    report, _details = write(tmp_path, "run-1", ["a"])
    assert report["counts"]["hosts"] == 1 and _record(report, "a")["status"] == "closed"


def test_a_truncated_report_is_set_aside_and_named(tmp_path):
    write(tmp_path, "run-1", ["a"])
    text = (tmp_path / _report_store.JSON_NAME).read_text()
    (tmp_path / _report_store.JSON_NAME).write_text(text[:53])
    error, warnings = _report_store.preflight(str(tmp_path))
    assert error is None and len(warnings) == 1 and str(tmp_path / _report_store.JSON_NAME) in warnings[0]
    assert "not valid JSON" in warnings[0]
    report, details = write(tmp_path, "run-2", ["a"])
    assert report["counts"]["hosts"] == 1
    assert (tmp_path / _report_store.INVALID_NAME).read_text() == text[:53]
    assert any(_report_store.INVALID_NAME in warning for warning in details["warnings"])


def test_the_alert_is_due_once_per_run_and_again_only_for_new_exposures(tmp_path):
    _report1, first = write(tmp_path, "run-1", ["a"], exposed=["a"], alert=True)
    _report2, second = write(tmp_path, "run-1", ["b"], alert=True)
    report3, third = write(tmp_path, "run-1", ["c"], exposed=["c"], alert=True)
    assert (first["new_exposed_hosts"], second["new_exposed_hosts"], third["new_exposed_hosts"]) == (["a"], [], ["c"])
    assert report3["run"]["alerted_hosts"] == ["a", "c"]


def test_the_directory_problems_are_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    problem = _report_store.dir_problem(str(blocker / "report"))
    assert problem == "sips_report_dir %s cannot be created: %s is not a directory" % (blocker / "report", blocker)
    assert _report_store.dir_problem(str(tmp_path / "new" / "dir")) is None


def _slice(args):
    directory, index = args
    names = ["slice%d-host%03d" % (index, number) for number in range(40)]
    write(directory, "awx-42-audit", names, exposed=names[:2])
    return index


def test_concurrent_slices_lose_no_host(tmp_path):
    """Eight writers of one run at the same moment, 40 hosts each: one report with all 320."""
    with multiprocessing.get_context("fork").Pool(8) as pool:
        assert sorted(pool.map(_slice, [(str(tmp_path), index) for index in range(8)])) == list(range(8))
    report = read(tmp_path)
    assert report["counts"]["hosts"] == 320 and report["counts"]["exposed"] == 16
    assert report["run"]["parts"] == 8
    assert len(os.listdir(tmp_path / "runs" / "awx-42-audit")) == 8
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".sips-report.json.")]  # no temporaries


def _run(args):
    directory, index = args
    names = ["run%d-host%d" % (index, number) for number in range(3)]
    report, _details = write(directory, "heal-%d" % index, names, exposed=names[:1])
    return sorted(record["host"] for record in report["hosts"])


def test_different_runs_side_by_side_in_one_directory_each_get_their_whole_report(tmp_path):
    """The watch's heals write into one directory at the same time, each its own run: no run's
    part is pruned by another's write before it is merged."""
    with multiprocessing.get_context("fork").Pool(6) as pool:
        reports = pool.map(_run, [(str(tmp_path), index) for index in range(12)])
    assert reports == [["run%d-host%d" % (index, number) for number in range(3)] for index in range(12)]
    assert len(os.listdir(tmp_path / "runs")) <= 2  # the last run and the previous one
