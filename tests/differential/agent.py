# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A request loop inside a differential-test container: one ``podman exec -i`` for a whole run.

A podman exec costs about 0.2 s of CPU; a state needs five container steps, so the test keeps
one of these per container and talks JSON lines over its stdin/stdout instead:

  {"op": "sh", "script": TEXT, "timeout": S}
      -> {"rc": N, "stdout": TEXT, "stderr": TEXT}   (bash; killed after S seconds)
  {"op": "probe", "probes": [[KEY, PROTOCOL, SOURCE, DESTINATION, PORT], ...], "timeout": S, "retries": N}
      -> {"results": {KEY: STATE}}   (tests/harness/probe.py, all at once, one source port each)

Run as ``agent.py [FIRST_SOURCE_PORT COUNT]``: each source address takes the ports of that
range in turn, so no probe reuses a recent connection's addresses and ports (the target's
conntrack would take it for that connection: a UDP "reply" entry lets the next datagram in
after the port was closed). Test-only; never installed by the collection.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import subprocess
import sys
import threading

import probe  # pylint: disable=import-error  # tests/harness/probe.py, copied next to this file


def run_shell(request):
    try:
        done = subprocess.run(["bash", "-c", request["script"]], capture_output=True, text=True,
                              timeout=request.get("timeout", 120), check=False)
    except subprocess.TimeoutExpired as exc:
        return {"rc": -1, "stdout": exc.stdout or "", "stderr": "timed out after %s s" % exc.timeout}
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


class Prober:
    def __init__(self, first_port, count):
        self._range = range(first_port, first_port + count)
        self._ports = {}  # source address -> its own turn through the range
        self._lock = threading.Lock()

    def _next_port(self, source):
        with self._lock:
            if source not in self._ports:
                self._ports[source] = itertools.cycle(self._range)
            return next(self._ports[source])

    def one(self, protocol, source, destination, port, timeout, retries):
        attempt = probe.probe_tcp if protocol == "tcp" else probe.probe_udp
        silent = "filtered" if protocol == "tcp" else "open|filtered"
        state = silent
        for _attempt in range(retries + 1):
            try:
                state = attempt(destination, port, timeout, source=(source, self._next_port(source)))
            except OSError as exc:  # the source port is still taken: try the next one
                state = "error: %s" % exc
                continue
            if state != silent:
                break
        return state

    def run(self, request):
        probes = request["probes"]
        timeout, retries = request.get("timeout", 0.6), request.get("retries", 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(probes), 128) or 1) as pool:
            futures = {key: pool.submit(self.one, protocol, source, destination, port, timeout, retries)
                       for key, protocol, source, destination, port in probes}
            return {"results": {key: future.result() for key, future in futures.items()}}


def main(argv):
    first, count = (int(argv[0]), int(argv[1])) if len(argv) == 2 else (20000, 10000)
    prober = Prober(first, count)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request["op"] == "sh":
            response = run_shell(request)
        elif request["op"] == "probe":
            response = prober.run(request)
        else:
            response = {"error": "unknown op %r" % request["op"]}
        response["id"] = request.get("id")
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
