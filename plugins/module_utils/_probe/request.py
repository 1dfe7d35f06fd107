# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What to probe: port_probe's argument spec and the checked request built from it.

Private to the sipguard.firewall collection: no compatibility promise outside it.

``ARGUMENT_SPEC`` is the one spec of port_probe's options (documented in the module's
DOCUMENTATION): the module hands it to AnsibleModule, and ``ProbeRequest.from_params`` checks
any parameters against it (types, choices, unknown options) before the checks no spec can say
(ranges, target syntax, SNI names). So the module, its in-process action plugin and code that
probes by itself check alike::

    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest
    request = ProbeRequest.from_params({"targets": ["192.0.2.10"], "timeout": 1})

The package's other rooms: ``sip`` (OPTIONS and answers), ``certificate`` (X.509 and the TLS
context), ``records`` (records, states, the summary), ``resolver`` (names to addresses),
``network`` (asyncio TCP/UDP/TLS, ``run_probe``), ``run`` (one task's result; the entry point).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.sipguard.firewall.plugins.module_utils._request import FAMILIES, PROTOCOLS, check_port

SIPS_PORT = 5061

# The port_probe module's options (its DOCUMENTATION describes them; the sanity test compares).
ARGUMENT_SPEC = dict(
    targets=dict(type="list", elements="str", required=True),
    port=dict(type="int", default=SIPS_PORT),
    protocols=dict(type="list", elements="str", choices=list(PROTOCOLS), default=list(PROTOCOLS)),
    families=dict(type="list", elements="str", choices=list(FAMILIES), default=list(FAMILIES)),
    timeout=dict(type="float", default=2.0),
    retries=dict(type="int", default=1),
    concurrency=dict(type="int", default=256),
    tls=dict(type="bool", default=True),
    sip=dict(type="bool", default=True),
    server_name=dict(type="str"),
    rtt_ports=dict(type="list", elements="int", default=[]),
    adapt_timeout=dict(type="bool", default=True),
)

HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


class ProbeRequestError(ValueError):
    """An option value the probe cannot use; the message names the value."""


def _default(name):
    value = ARGUMENT_SPEC[name].get("default")
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class ProbeRequest:
    """A checked request; build it with ``from_params`` (the defaults are the spec's)."""

    targets: Tuple[str, ...]
    port: int = _default("port")
    protocols: Tuple[str, ...] = _default("protocols")
    families: Tuple[str, ...] = _default("families")
    timeout: float = _default("timeout")
    retries: int = _default("retries")
    concurrency: int = _default("concurrency")
    tls: bool = _default("tls")
    sip: bool = _default("sip")
    server_name: Optional[str] = _default("server_name")
    rtt_ports: Tuple[int, ...] = _default("rtt_ports")
    adapt_timeout: bool = _default("adapt_timeout")

    @classmethod
    def from_params(cls, params):
        """Check parameters against the spec, then the ranges; raise ProbeRequestError naming the bad value."""
        params = validate_against_spec(params)
        targets = params["targets"]
        if not targets:
            raise ProbeRequestError("targets must name at least one host or address (got %r)" % (targets,))
        cleaned = []
        for target in targets:
            text = target.strip()
            check_target(text, original=target)
            if text not in cleaned:
                cleaned.append(text)
        try:
            check_port(params["port"])
        except ValueError as exc:
            raise ProbeRequestError(str(exc))
        timeout = params["timeout"]
        if timeout <= 0 or not math.isfinite(timeout):
            raise ProbeRequestError("timeout %r must be a number of seconds greater than 0" % (timeout,))
        for name, least in (("retries", 0), ("concurrency", 1)):
            if params[name] < least:
                raise ProbeRequestError("%s %r must be %d or more" % (name, params[name], least))
        server_name = params["server_name"]
        if server_name is not None:
            server_name = server_name.strip().rstrip(".")
            if not server_name or is_ip_literal(server_name) or not is_host_name(server_name):
                raise ProbeRequestError("server_name %r is not a DNS host name (SNI carries names only)"
                                        % (params["server_name"],))
        rtt_ports = []
        for rtt_port in params["rtt_ports"] or ():
            try:
                check_port(rtt_port)
            except ValueError as exc:
                raise ProbeRequestError("rtt_ports: %s" % exc)
            if rtt_port not in rtt_ports:
                rtt_ports.append(rtt_port)
        return cls(targets=tuple(cleaned), port=params["port"], protocols=_in_spec_order(params, "protocols"),
                   families=_in_spec_order(params, "families"), timeout=timeout, retries=params["retries"],
                   concurrency=params["concurrency"], tls=params["tls"], sip=params["sip"],
                   server_name=server_name, rtt_ports=tuple(rtt_ports), adapt_timeout=params["adapt_timeout"])


def validate_against_spec(params):
    """The parameters converted and completed by ARGUMENT_SPEC; ProbeRequestError on any spec error."""
    spec_result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(params))
    if spec_result.error_messages:
        messages = ["unsupported parameters: %s" % error.msg if isinstance(error, UnsupportedError) else error.msg
                    for error in spec_result.errors]
        # the validator's messages do not always quote the value: add what was given
        given = ["%s=%r" % (name, params[name]) for name in ARGUMENT_SPEC if name in params
                 and ArgumentSpecValidator({name: ARGUMENT_SPEC[name]}).validate({name: params[name]}).error_messages]
        raise ProbeRequestError("; ".join(messages) + (" (given %s)" % ", ".join(given) if given else ""))
    validated = spec_result.validated_parameters
    for name, option in ARGUMENT_SPEC.items():
        if option["type"] == "int" and isinstance(validated[name], bool):  # True is an int to Python
            raise ProbeRequestError("%s %r is not an integer" % (name, validated[name]))
    return validated


def _in_spec_order(params, name):
    """The chosen values of a list option, each once, in the order of its choices; at least one."""
    allowed = ARGUMENT_SPEC[name]["choices"]
    chosen = tuple(value for value in allowed if value in (params[name] or ()))
    if not chosen:
        raise ProbeRequestError("%s must name at least one of %s" % (name, ", ".join(allowed)))
    return chosen


def strip_brackets(text):
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    return text


def is_ip_literal(text):
    try:
        ipaddress.ip_address(strip_brackets(text).split("%", 1)[0])
    except ValueError:
        return False
    return True


def is_host_name(text):
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(HOST_LABEL_RE.match(label) for label in labels):
        return False
    # RFC 1123 2.1 / RFC 3696 2: a top-level label is never all digits ("10.0.0.300" is no name).
    return not labels[-1].isdigit()


def check_target(text, original=None):
    """Raise ProbeRequestError unless text is an IPv4/IPv6 address or a DNS host name."""
    shown = original if original is not None else text
    if not text:
        raise ProbeRequestError("target %r is empty" % (shown,))
    if is_ip_literal(text):
        return
    if strip_brackets(text) != text or ":" in text or "/" in text:
        raise ProbeRequestError("target %r is not an IP address (networks are not probed; list addresses)"
                                % (shown,))
    if not is_host_name(text):
        raise ProbeRequestError("target %r is neither an IP address nor a DNS host name" % (shown,))
