# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run several ufw commands in one process, inside a differential-test target container.

Reads one JSON list per line on stdin, the arguments after ``ufw`` (``["allow", "5061/tcp"]``),
and does for each what /usr/sbin/ufw's main does: parse the command, build the frontend,
take /run/ufw.lock, run the action. The result of each, ``[argv, "ok"|"error", message]``, is
printed as one JSON list at the end. One Python start-up instead of one per command: ufw
itself costs about 0.1 s a command, which is most of a state's set-up time otherwise.
Test-only, copied into the container; never installed by the collection.
"""

from __future__ import annotations

import contextlib
import gettext
import io
import json
import sys

import ufw.common  # pylint: disable=import-error  # the container's ufw, not the controller's
import ufw.frontend  # pylint: disable=import-error
from ufw.common import UFWError  # pylint: disable=import-error
from ufw.util import create_lock, release_lock  # pylint: disable=import-error


def run_one(argv):
    parsed = ufw.frontend.parse_command(["ufw"] + argv)
    frontend = ufw.frontend.UFWFrontend(parsed.dryrun)
    lock = create_lock(lockfile="/run/ufw.lock", dryrun=parsed.dryrun)
    try:
        if "rule" in parsed.data:
            return frontend.do_action(parsed.action, parsed.data["rule"], parsed.data["iptype"], parsed.force)
        return frontend.do_action(parsed.action, "", "", parsed.force)
    finally:
        release_lock(lock)


def main():
    gettext.install(ufw.common.programName)
    results = []
    for line in sys.stdin:
        if not line.strip():
            continue
        argv = json.loads(line)
        # ufw prints some errors itself, as bytes to sys.stderr.buffer, and exits
        # (ufw.util.error): capture them into the result too.
        printed = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            try:
                outcome = ["ok", run_one(argv)]
            except UFWError as exc:
                outcome = ["error", exc.value]
            except ValueError as exc:  # parse_command's "invalid syntax"
                outcome = ["error", "invalid syntax: %s" % exc]
            except SystemExit as exc:
                outcome = ["ok" if exc.code in (0, None) else "error", ""]
        messages = (printed.buffer.getvalue().decode("utf-8", "replace"), outcome[1] or "")
        outcome[1] = "\n".join(message.strip() for message in messages if message.strip())
        results.append([argv] + outcome)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
