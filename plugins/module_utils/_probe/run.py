# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One port_probe task, written once: parameters in, the task's result out.

Private to the sipguard.firewall collection: no compatibility promise outside it.

The port_probe module (on the task's host) and its action plugin (in the controller's own
process on a local connection) both return ``task_result(params)``, so they check, probe and
answer alike. Code that probes by itself (the Event-Driven Ansible source, the bench) imports
from the rooms that define what it needs::

    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest
    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all, run_probe
"""

from __future__ import annotations

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import run_probe
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import (
    ProbeRequest,
    ProbeRequestError,
)


def task_result(params):
    """port_probe's result for these parameters: failed with a message naming the bad value, or
    ``changed=False`` with probes, counts and summary (and ``warnings`` when there are any)."""
    try:
        request = ProbeRequest.from_params(params)
    except ProbeRequestError as exc:
        return dict(failed=True, changed=False, msg=str(exc))
    result = run_probe(request)
    if not result["warnings"]:
        del result["warnings"]
    return dict(changed=False, **result)
