# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of sipguard.firewall.port_probe: probe in-process when the task runs locally.

The probe is normally run from the controller (``delegate_to: localhost``). Sent as a module
over the local connection it would cost a new Python process, the AnsiballZ payload and the
imports of ansible.module_utils.basic - about half a second per batch, every night, for a
probe that needs none of it. So when the task's connection is local the probe runs here, in
the worker's own process, with the module's own argument spec and code (module_utils/_probe);
for any other connection (a vantage host reached over SSH) the module is sent as usual.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import (
    ARGUMENT_SPEC,
    ProbeRequest,
    ProbeRequestError,
    run_probe,
)

MODULE = "sipguard.firewall.port_probe"
LOCAL_TRANSPORTS = frozenset(("local", "ansible.builtin.local"))


def probe_in_process(args):
    """The module's result for these task arguments, computed in this process."""
    validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(args)
    if validation.error_messages:
        raise AnsibleActionFail("port_probe: %s" % "; ".join(validation.error_messages))
    try:
        request = ProbeRequest.from_params(validation.validated_parameters)
    except ProbeRequestError as exc:
        return dict(failed=True, changed=False, msg=str(exc))
    result = run_probe(request)
    warnings = result.pop("warnings")
    if warnings:
        result["warnings"] = warnings
    return dict(changed=False, **result)


class ActionModule(ActionBase):
    """Local connection: probe here; otherwise run the module on the task's host."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if getattr(self._connection, "transport", None) in LOCAL_TRANSPORTS:
            result.update(probe_in_process(self._task.args))
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=self._task.args,
                                           task_vars=task_vars))
        return result
