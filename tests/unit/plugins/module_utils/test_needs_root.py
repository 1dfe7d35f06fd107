# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Without root the host-side modules say what to do (become), instead of a bare EACCES."""

from __future__ import annotations

from ansible_collections.sipguard.firewall.plugins.module_utils import _host


def test_root_needs_nothing(monkeypatch):
    monkeypatch.setattr(_host.os, "geteuid", lambda: 0)
    assert _host.root_problem("ufw_port", writes=True) is None


def test_another_user_is_told_to_become(monkeypatch):
    monkeypatch.setattr(_host.os, "geteuid", lambda: 1000)
    message = _host.root_problem("ufw_port", writes=True)
    assert message.startswith("ufw_port needs root on the host")
    assert "uid 1000" in message and "become" in message and "sips_become: true" in message
    assert "and changes them" in message
    assert "changes" not in _host.root_problem("port_audit", writes=False)
