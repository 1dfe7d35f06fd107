# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The base of the collection's in-process action plugins (check_run, write_report): they run in
the controller's own process, need no connection, and validate their arguments against one spec."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """Subclasses set NAME and ARGUMENT_SPEC (and CONSTRAINTS: ArgumentSpecValidator's keyword
    arguments) and implement work(params, task_vars) -> the result's keys."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False
    NAME = ""
    ARGUMENT_SPEC: dict = {}
    CONSTRAINTS: dict = {}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validation = ArgumentSpecValidator(self.ARGUMENT_SPEC, **self.CONSTRAINTS).validate(self._task.args)
        if validation.error_messages:
            raise AnsibleActionFail("%s: %s" % (self.NAME, "; ".join(validation.error_messages)))
        result.update(self.work(validation.validated_parameters, task_vars))
        return result

    def work(self, params, task_vars):
        raise NotImplementedError
