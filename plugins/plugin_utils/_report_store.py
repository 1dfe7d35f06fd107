# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The report directory: one report per run, whatever the batches (serial) and slices (AWX).

Layout of ``sips_report_dir``::

    sips-report.json           the run's report: every host of every batch and slice so far
    sips-report.html           the same, for a person
    sips-report.previous.json  the previous run's last report (what "reopened" compares with)
    runs/<run id>/<part>.json  the host records of one batch or slice, written once, never edited
    .sips-report.lock          taken (fcntl) while a writer merges

A writer (one batch of one ``ansible-playbook`` run, or one AWX slice job) first writes its part
under a name no other writer uses (``<ns>-<pid>-<random>.json``, temporary file + fsync +
rename), then takes the lock, merges every part of the run and writes the report. So
concurrent writers never lose or tear a host's record: each part is whole or absent, and the
last writer to take the lock writes a report with every part written before it. The first
writer of a new run moves the last run's report to ``sips-report.previous.json`` (under the
lock, so exactly once per run). Parts of runs other than this one and the previous one are
removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from contextlib import contextmanager

from ansible_collections.sipguard.firewall.plugins.module_utils._atomic import write_atomic
from ansible_collections.sipguard.firewall.plugins.plugin_utils import _alert, _report

JSON_NAME = "sips-report.json"
HTML_NAME = "sips-report.html"
PREVIOUS_NAME = "sips-report.previous.json"
INVALID_NAME = "sips-report.invalid.json"
LOCK_NAME = ".sips-report.lock"
RUNS_DIR = "runs"
DIR_MODE = 0o750
FILE_MODE = 0o640
LOCK_TIMEOUT = 120  # seconds a writer waits for another writer's merge (a merge takes well under one)


class StoreError(Exception):
    """The report directory cannot be used; the message names the path."""


def paths(directory):
    """The report files of a directory, by role."""
    return {name: os.path.join(directory, file_name) for name, file_name in
            (("json", JSON_NAME), ("html", HTML_NAME), ("previous", PREVIOUS_NAME), ("invalid", INVALID_NAME))}


def new_run_id():
    """A run id for a run nobody named: sortable by time, unique across controllers."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def to_json(data):
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def read_report(path):
    """(report, problem): the report at path, None when absent; problem names what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, "%s cannot be read: %s" % (path, exc.strerror or exc)
    try:
        report = json.loads(text)
    except ValueError as exc:
        return None, "%s is not valid JSON (%s)" % (path, exc)
    if not isinstance(report, dict) or not str(report.get("schema", "")).startswith(_report.SCHEMA_FAMILY):
        return None, "%s is not a sipguard.firewall report" % path
    return report, None


def dir_problem(directory):
    """Why the report directory cannot be written, or None: it is writable, or can be created."""
    probe = directory
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return "sips_report_dir %s cannot be created: %s is not a directory" % (directory, probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        if probe == directory:
            return "sips_report_dir %s is not writable by this user (uid %d)" % (directory, os.getuid())
        return "sips_report_dir %s cannot be created: %s is not writable by this user (uid %d)" % (
            directory, probe, os.getuid())
    return None


def preflight(directory):
    """(error, warnings) for a run about to write into directory; nothing is written."""
    error = dir_problem(directory)
    warnings = []
    for path in (paths(directory)["json"], paths(directory)["previous"]):
        _found, problem = read_report(path)
        if problem:
            warnings.append("%s: it is set aside as %s and not compared with" % (problem, INVALID_NAME)
                            if path.endswith(JSON_NAME) else "%s: this run is compared with no earlier run" % problem)
    return error, warnings


@contextmanager
def locked(directory, timeout=LOCK_TIMEOUT):
    """The directory's merge lock (fcntl, released when the process ends whatever happens)."""
    path = os.path.join(directory, LOCK_NAME)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() > deadline:
                    raise StoreError("another writer holds %s for more than %d s" % (path, timeout))
                time.sleep(0.05)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _load_parts(run_dir, warnings):
    records, unmatched, summaries, names = {}, [], [], []
    for name in sorted(os.listdir(run_dir)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = os.path.join(run_dir, name)
        try:
            with open(path, encoding="utf-8") as stream:
                part = json.load(stream)
        except (OSError, ValueError) as exc:
            warnings.append("part %s of this run cannot be read (%s): its hosts are not in the report" % (path, exc))
            continue
        names.append(name)
        for record in part.get("records") or []:
            records[record["host"]] = record  # a later part's record of the same host wins
        unmatched.extend(part.get("unmatched_probes") or [])
        if part.get("probe_summary"):
            summaries.append(part["probe_summary"])
    return list(records.values()), unmatched, summaries, names


def _prune(runs_dir, keep):
    for name in os.listdir(runs_dir):
        if name not in keep:
            shutil.rmtree(os.path.join(runs_dir, name), ignore_errors=True)


def write_run(directory, run_id, records, mode, port, check_mode, generated, render_html,
              unmatched_probes=(), probe_summary=None, alert=False, on_written=None):
    """Add one batch's (or slice's) host records to the run's report and write it.

    Returns (report, details): details has created_dir, previous_kept (the last run's report became
    the previous one now), warnings, new_exposed_hosts (exposed hosts no earlier alert of this run
    named; they are recorded as alerted when alert is true), new_resolved_hosts (hosts closed again
    that no earlier alert of this run named; likewise) and parts (how many were merged).
    on_written(report), when given, runs under the lock after the report is written (the metrics
    file: concurrent slices write it in the order they merge, so the last one has every part).
    Raises StoreError or OSError (with the path).
    """
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise StoreError("run id %r cannot name a directory" % (run_id,))
    files = paths(directory)
    created = not os.path.isdir(directory)
    os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    run_dir = os.path.join(directory, RUNS_DIR, run_id)
    part = dict(run_id=run_id, written=generated, mode=mode, port=port, check_mode=check_mode,
                records=records, unmatched_probes=list(unmatched_probes), probe_summary=probe_summary)
    part_name = "%020d-%d-%s.json" % (time.time_ns(), os.getpid(), secrets.token_hex(3))

    warnings = []
    with locked(directory):
        # The part is written under the lock: another run writing here at the same time (the
        # watch's heals side by side) prunes every run but its own and the previous one.
        os.makedirs(run_dir, mode=DIR_MODE, exist_ok=True)
        write_atomic(os.path.join(run_dir, part_name), to_json(part), mode=FILE_MODE)
        current, problem = read_report(files["json"])
        previous_kept = False
        if problem:
            os.replace(files["json"], files["invalid"])
            warnings.append("%s: set aside as %s" % (problem, files["invalid"]))
        elif current is not None and (current.get("run") or {}).get("id") != run_id:
            os.replace(files["json"], files["previous"])  # a rename: the previous report is whole
            previous_kept, current = True, None
        previous, problem = read_report(files["previous"])
        if problem:
            warnings.append("%s: this run is compared with no earlier run" % problem)
        all_records, unmatched, summaries, names = _load_parts(run_dir, warnings)
        run = (current or {}).get("run") or {}
        alerted = list(run.get("alerted_hosts") or [])
        alerted_resolved = list(run.get("alerted_resolved_hosts") or [])
        report = _report.assemble(all_records, previous=previous, mode=mode, port=port, generated=generated,
                                  check_mode=check_mode, unmatched_probes=unmatched,
                                  probe_summary=summaries[-1] if summaries else None,
                                  run=dict(id=run_id, parts=len(names), alerted_hosts=alerted,
                                           alerted_resolved_hosts=alerted_resolved))
        new_exposed = [host for host in _alert.exposed_hosts(report) if host not in alerted]
        new_resolved = [host for host in _alert.resolved_hosts(report) if host not in alerted_resolved]
        if alert and (new_exposed or new_resolved):
            report["run"]["alerted_hosts"] = alerted + new_exposed
            report["run"]["alerted_resolved_hosts"] = alerted_resolved + new_resolved
        write_atomic(files["json"], to_json(report), mode=FILE_MODE)
        write_atomic(files["html"], render_html(report), mode=FILE_MODE)
        if on_written is not None:
            on_written(report)
        keep = {run_id, ((previous or {}).get("run") or {}).get("id")}
        _prune(os.path.join(directory, RUNS_DIR), keep)
    return report, dict(created_dir=created, previous_kept=previous_kept, warnings=warnings,
                        new_exposed_hosts=new_exposed, new_resolved_hosts=new_resolved, parts=len(names))
