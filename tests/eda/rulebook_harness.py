# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the rulebook tests (tests/eda) and bench/keep_closed.py share: ansible-rulebook started
and stopped as a process group, bounded waits, a receiver on 127.0.0.1, and the watch's log read
back (its times and heal events)."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JAVA_HOME = os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
START_TIMEOUT = 90  # seconds for ansible-rulebook (and its JVM) to start watching


def rulebook_env(base):
    """base (an environment) with Java 17, the venv's bin first and the built collection."""
    return dict(base, JAVA_HOME=JAVA_HOME, PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + base.get("PATH", ""),
                PYTHONPATH=os.path.join(ROOT, "build"))


def wait_for(predicate, timeout, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@contextlib.contextmanager
def serving(handler):
    """An HTTP server on 127.0.0.1 with handler, in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def start_rulebook(argv, work, env, log):
    """Start ansible-rulebook (argv after the program name) in work, its output in log, in its own
    process group; return the process once the source is watching (AssertionError otherwise)."""
    with open(str(log), "w") as out:
        process = subprocess.Popen(["ansible-rulebook"] + list(argv), cwd=str(work), env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    started = wait_for(lambda: "port_state: watching" in open(str(log)).read() or process.poll() is not None,
                       START_TIMEOUT)
    if not started or process.poll() is not None:
        stop_rulebook(process)
        raise AssertionError("ansible-rulebook did not start:\n" + open(str(log)).read()[-3000:])
    return process


def stop_rulebook(process):
    """Stop ansible-rulebook and every playbook run it started (its process group)."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def log_time(line):
    """The time of a line of ansible-rulebook's log (its logging prefix), or None."""
    match = LOG_TIME.match(line)
    if not match:
        return None
    return time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000.0


def heal_hosts(text):
    """The hosts of every heal event in a watch's log, in the event's order."""
    return [re.split(r" hosts?: ", line, 1)[1].split("; ")[0].split(", ")
            for line in text.splitlines() if "port_state: closing " in line]
