# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a host-side run is asked: the port, protocols, families, trusted sources, and for the
close what to do with UFW. One request type for ufw_port and port_audit, checked once.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._networks import family_of, normalize_network

COMMENT_RE = re.compile(r"^[A-Za-z0-9 ._:-]{1,64}$")
PROTOCOLS = ("tcp", "udp")
FAMILIES = ("ipv4", "ipv6")
# The options ufw_port and port_audit share (documented in doc_fragments/port_request.py).
REQUEST_ARGUMENT_SPEC = dict(
    protocols=dict(type="list", elements="str", choices=list(PROTOCOLS), default=list(PROTOCOLS)),
    families=dict(type="list", elements="str", choices=list(FAMILIES), default=list(FAMILIES)),
    trusted_sources=dict(type="list", elements="str", default=[]),
)
# What the audit asks of the close's options: it never changes anything.
AUDIT_DEFAULTS = dict(state="closed", action="deny", conflicts="shadow", inactive="skip", comment="sipguard",
                      lock_timeout=0, docker="report")
DOCKER_CHOICES = ("close", "report")


class RequestError(ValueError):
    """The task's parameters are invalid; nothing was read or changed."""


def check_port(value):
    """The port as an int from 1 to 65535 (given as a number or its text); ValueError naming the
    value otherwise. The one range check of every module, action and the report."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("port must be an integer from 1 to 65535, not %r" % (value,))
    return int(text)


@dataclass(frozen=True)
class PortRequest:
    port: int
    protocols: Tuple[str, ...]
    families: Tuple[str, ...]
    state: str
    action: str
    trusted_sources: Tuple[str, ...]
    conflicts: str
    inactive: str
    comment: str
    lock_timeout: int
    docker: str = "report"

    @classmethod
    def from_params(cls, params):
        """Validate and normalise module parameters, naming the bad value on error."""
        params = dict(AUDIT_DEFAULTS, **params)
        try:
            port = check_port(params["port"])
        except ValueError as exc:
            raise RequestError(str(exc))
        protocols = _unique(params["protocols"], "protocols", PROTOCOLS)
        families = _unique(params["families"], "families", FAMILIES)
        comment = params["comment"]
        if not COMMENT_RE.match(comment):
            raise RequestError(
                "comment %r must be 1-64 letters, digits, spaces or . _ : - (it tags this collection's rules)"
                % comment)
        if params["lock_timeout"] < 0:
            raise RequestError("lock_timeout must be 0 or more seconds, got %s" % params["lock_timeout"])
        sources = tuple(_normalize_source(source, families) for source in params["trusted_sources"])
        return cls(port=port, protocols=protocols, families=families, state=params["state"],
                   action=params["action"], trusted_sources=tuple(dict.fromkeys(sources)),
                   conflicts=params["conflicts"], inactive=params["inactive"], comment=comment,
                   lock_timeout=params["lock_timeout"], docker=params["docker"])

    def sources_for(self, family):
        return [source for source in self.trusted_sources if family_of(source) == family]


def _unique(values, name, allowed):
    if not values:
        raise RequestError("%s must name at least one of %s; got an empty list" % (name, ", ".join(allowed)))
    # Keep the canonical order so the rules do not move when the list is reordered.
    return tuple(value for value in allowed if value in values)


def _normalize_source(source, families):
    try:
        text = normalize_network(source)
    except ValueError as exc:
        raise RequestError("trusted source %s" % exc)
    if family_of(text) not in families:
        raise RequestError("trusted source %r is %s, but families is %s" % (source, family_of(text), list(families)))
    return text
