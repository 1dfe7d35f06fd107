# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of sipguard.firewall.write_report: the fleet report's files, on the controller.

Everything happens in the controller's own process - no module is sent anywhere - so the
JSON, the HTML and the previous report cost one task instead of four module runs.
``write_report_files`` is the whole job and is what the unit tests call.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_text
from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.action import ActionBase

JSON_NAME = "sips-report.json"
HTML_NAME = "sips-report.html"
PREVIOUS_NAME = "sips-report.previous.json"
DIR_MODE = 0o750
FILE_MODE = 0o640

ARGUMENT_SPEC = {
    "dir": {"type": "path", "required": True},
    "report": {"type": "dict", "required": True},
    "html": {"type": "str", "required": True},
}


def _write_atomically(path, text):
    """Replace path by text (a temporary file in the same directory, then rename)."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_report_files(directory, report, html, check_mode=False):
    """Write JSON + HTML into directory, the JSON there before becoming the previous report.

    Returns the module result (paths, whether a previous report was kept, whether the
    directory was created). Raises OSError with the path it could not write.
    """
    paths = {name: os.path.join(directory, file_name) for name, file_name in
             (("json", JSON_NAME), ("html", HTML_NAME), ("previous", PREVIOUS_NAME))}
    result = dict(changed=False, dir=directory, created_dir=not os.path.isdir(directory),
                  previous_kept=os.path.isfile(paths["json"]), written=[],
                  **{"%s_path" % name: path for name, path in paths.items()})
    text = json.dumps(report, cls=AnsibleJSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if check_mode:
        return result
    if result["created_dir"]:
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    if result["previous_kept"]:
        # a rename, so the previous report is exactly the last one written, never half of one
        os.replace(paths["json"], paths["previous"])
    _write_atomically(paths["json"], text)
    _write_atomically(paths["html"], html)
    result["written"] = [paths["json"], paths["html"]]
    return result


class ActionModule(ActionBase):
    """Runs on the controller whatever the task's host; never reports changed (see the docs)."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            raise AnsibleActionFail("write_report: %s" % "; ".join(validation.error_messages))
        params = validation.validated_parameters
        try:
            result.update(write_report_files(params["dir"], params["report"], params["html"],
                                             check_mode=bool(self._task.check_mode)))
        except OSError as exc:
            raise AnsibleActionFail("cannot write the report: %s: %s"
                                    % (to_text(exc.filename or params["dir"]), to_text(exc.strerror or exc)))
        return result
