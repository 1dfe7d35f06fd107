# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of sipguard.firewall.port_probe: probe in-process when the task runs locally.

The probe is normally run from the controller (``delegate_to: localhost``). Sent as a module
over the local connection it would cost a new Python process, the AnsiballZ payload and the
imports of ansible.module_utils.basic - about half a second per batch, every night, for a
probe that needs none of it. So when the task's connection is local the probe runs here, in
the worker's own process, through the same function as the module's ``main()``
(``module_utils/_probe/run.py``: the one argument spec, the checks, the probe, the result);
for any other connection (a vantage host reached over SSH) the module is sent as usual.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.run import task_result

MODULE = "sipguard.firewall.port_probe"
LOCAL_TRANSPORTS = frozenset(("local", "ansible.builtin.local"))


class ActionModule(ActionBase):
    """Local connection: probe here; otherwise run the module on the task's host."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if getattr(self._connection, "transport", None) in LOCAL_TRANSPORTS:
            result.update(task_result(self._task.args))
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=self._task.args,
                                           task_vars=task_vars))
        return result
