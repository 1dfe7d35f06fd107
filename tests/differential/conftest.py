# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Options of the differential test: --seed, --count, --only, --workers, --states (or SIPGUARD_DIFF_*).

The seed is drawn at random unless given, and printed in pytest's header and summary, so
every run can be repeated: ``make differential SIPGUARD_DIFF_SEED=<seed>``.
"""

from __future__ import annotations

import os
import random

OPTIONS = (
    # (option, environment variable, default, help)
    ("seed", "SIPGUARD_DIFF_SEED", None, "seed of the state generator (default: random, printed)"),
    ("count", "SIPGUARD_DIFF_COUNT", "200", "number of random states"),
    ("only", "SIPGUARD_DIFF_ONLY", "", "comma-separated state indexes to run alone (with the run's seed)"),
    ("workers", "SIPGUARD_DIFF_WORKERS", "6", "target containers working in parallel"),
    ("states", "SIPGUARD_DIFF_STATES", "", "JSON file: a list of states (grammar.State fields) to run instead"),
)


def pytest_addoption(parser):
    group = parser.getgroup("differential", "sipguard differential test (tests/differential)")
    for name, variable, _default, text in OPTIONS:
        group.addoption("--" + name, dest="differential_" + name, default=None,
                        help="%s; or %s" % (text, variable))


def pytest_configure(config):
    settings = {}
    for name, variable, default, _text in OPTIONS:
        value = config.getoption("differential_" + name) or os.environ.get(variable) or default
        settings[name] = value
    settings["seed"] = int(settings["seed"]) if settings["seed"] else random.SystemRandom().randrange(2 ** 31)
    settings["count"] = int(settings["count"])
    settings["workers"] = int(settings["workers"])
    settings["only"] = [int(part) for part in str(settings["only"]).split(",") if part.strip()]
    settings["summary"] = []
    config.differential = settings


def pytest_report_header(config):
    settings = config.differential
    if settings["states"]:
        return "differential: the states in %s, %d workers" % (settings["states"], settings["workers"])
    return "differential: seed %d, %s, %d workers (repeat with --seed %d)" % (
        settings["seed"], "states %s" % settings["only"] if settings["only"] else "%d states" % settings["count"],
        settings["workers"], settings["seed"])


def pytest_terminal_summary(terminalreporter, config):
    settings = config.differential
    # Always, even when the run stopped early: the seed is what repeats it.
    for line in settings["summary"] or ["differential: seed %d (repeat with SIPGUARD_DIFF_SEED=%d)" % (
            settings["seed"], settings["seed"])]:
        terminalreporter.write_line(line)
