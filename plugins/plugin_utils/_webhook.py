# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alert's one POST, from the controller's own process (write_report), and what the receiver
did with it - said without the URL, which often carries a token.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import json
import socket

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

TAKEN = (200, 201, 202, 204)
TIMEOUT = 10


def outcome_text(status, problem, timeout=TIMEOUT):
    """'HTTP 500', 'no answer within 10 s', 'connection refused' or 'no connection'."""
    if status is not None:
        return "HTTP %d" % status
    text = str(problem or "").lower()
    if "timed out" in text or "timeout" in text:
        return "no answer within %g s" % timeout
    if "refused" in text:
        return "connection refused"
    return "no connection"


def post(url, body, timeout=TIMEOUT, opener=open_url):
    """POST body as JSON to url: {taken, status, outcome}; never raises for the receiver's sake
    and never says the URL (only the status or the kind of failure)."""
    status, problem = None, None
    try:
        response = opener(url, data=json.dumps(body).encode("utf-8"), method="POST", timeout=timeout,
                          headers={"Content-Type": "application/json"}, follow_redirects="safe")
        try:
            status = response.getcode()
            response.read()
        finally:
            response.close()
    except HTTPError as exc:
        status = exc.code
    except URLError as exc:
        problem = exc.reason
    except (socket.timeout, OSError, ValueError) as exc:
        problem = exc
    return dict(taken=status in TAKEN, status=status, outcome=outcome_text(status, problem, timeout))
