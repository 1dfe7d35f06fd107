# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The report's vocabulary: its schema, modes, statuses and trends, and how a value given by a
playbook (a templated string, a mapping, a list) is read. Pure; shared by the report model's parts.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.sipguard.firewall.plugins.module_utils._request import check_port


class ReportError(ValueError):
    """Input the report cannot be built from; the message names the value."""


SCHEMA = "sipguard.firewall/report/v1"


SCHEMA_FAMILY = "sipguard.firewall/report/"


MODES = ("audit", "close", "restore")


STATUSES = ("exposed", "failed", "unreachable", "closed")  # by severity, most severe first


SEVERITY = {status: rank for rank, status in enumerate(STATUSES)}


TRENDS = ("reopened", "still_exposed", "newly_closed", "still_closed", "new")


SUMMARY_NAMES = 10  # host names written out in the summary line before "+N more"


def _plain(value):
    """A plain copy (dict, list, scalars) of module output, detached from the caller's containers."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ReportError("sips_report: %s must be a dictionary, not %s" % (what, type(value).__name__))
    return value


def _flag(value, what):
    """A boolean given as a boolean or as a templated string ("False" is false)."""
    try:
        return boolean(value, strict=True) if value is not None else False
    except TypeError:
        raise ReportError("sips_report: %s must be a boolean, not %r" % (what, value))


def _strings(value):
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _natural_key(name):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", name) if part]


def _norm_address(value):
    if value is None:
        return None
    text = str(value).strip().lower()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    return text


def _generated(value):
    if value is None or value == "":
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _port(value):
    try:
        return check_port(value)
    except ValueError as exc:
        raise ReportError("sips_report: %s" % exc)
