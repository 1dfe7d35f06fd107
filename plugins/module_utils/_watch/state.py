# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watch's state file: what each endpoint was, kept across restarts, written atomically
(``_atomic.write_atomic``); an unusable file is set aside.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import json
import os

from ansible_collections.sipguard.firewall.plugins.module_utils._atomic import write_atomic
from ansible_collections.sipguard.firewall.plugins.module_utils._watch.arguments import (
    PortStateArgumentError,
)


STATE_VERSION = 1


def empty_state():
    return {"endpoints": {}, "hosts": {}}


def state_document(state, port):
    return {"version": STATE_VERSION, "source": "sipguard.firewall.port_state", "port": port,
            "endpoints": state["endpoints"], "hosts": state["hosts"]}


def state_from_document(document, port):
    """The state in a parsed state file, or raise ValueError saying why it is not one."""
    if not isinstance(document, dict) or document.get("source") != "sipguard.firewall.port_state":
        raise ValueError("not a port_state state file")
    if document.get("version") != STATE_VERSION:
        raise ValueError("state file version %r, this source writes %d" % (document.get("version"), STATE_VERSION))
    endpoints, hosts = document.get("endpoints"), document.get("hosts")
    if not isinstance(endpoints, dict) or not isinstance(hosts, dict):
        raise ValueError("endpoints or hosts is not a mapping")
    if document.get("port") != port:  # another port's state says nothing about this one
        return empty_state()
    return {"endpoints": {k: v for k, v in endpoints.items() if isinstance(v, dict)},
            "hosts": {k: v for k, v in hosts.items() if isinstance(v, dict)}}


def load_state(path, port):
    """(state, warning or None); an unreadable file is set aside as PATH.invalid."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return empty_state(), None
    except OSError as exc:
        raise PortStateArgumentError("port_state: state_file %r cannot be read: %s" % (path, exc.strerror or exc))
    try:
        return state_from_document(json.loads(text), port), None
    except ValueError as exc:
        aside = path + ".invalid"
        os.replace(path, aside)
        return empty_state(), "state_file %s is not usable (%s); set aside as %s, starting afresh" % (path, exc, aside)


def save_state(path, state, port):
    """Write the state atomically (``_atomic.write_atomic``), readable by its owner only."""
    write_atomic(path, json.dumps(state_document(state, port), sort_keys=True, separators=(",", ":")),
                 mode=0o600, prefix=".port_state.")


def prepare_state_file(path, port):
    """Create the directory, prove it is writable, load the state: at start, naming the path."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise PortStateArgumentError("port_state: state_file %r: cannot create its directory: %s"
                                     % (path, exc.strerror or exc))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PortStateArgumentError("port_state: state_file %r: its directory %s is not writable" % (path, directory))
    return load_state(path, port)
