# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one atomic writer: whole files, the asked mode, no temporary left behind, a temporary name
no reader of the file's pattern picks up."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils import _atomic


def test_a_file_is_replaced_whole_with_the_mode_asked(tmp_path):
    path = tmp_path / "sips.prom"
    path.write_text("old\n")
    _atomic.write_atomic(str(path), "new\n", mode=0o644)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["sips.prom"]


def test_the_temporary_name_never_ends_like_the_file(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(source, target):
        seen.append(os.path.basename(source))
        real_replace(source, target)
    monkeypatch.setattr(_atomic.os, "replace", replace)
    _atomic.write_atomic(str(tmp_path / "sips.prom"), "x\n")
    _atomic.write_atomic(str(tmp_path / "user.rules"), "x\n", prefix=".sipguard-")
    assert seen[0].startswith(".sips.prom.") and not seen[0].endswith(".prom")
    assert seen[1].startswith(".sipguard-") and not seen[1].endswith(".rules")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "sips-report.json"
    path.write_text("{}\n")

    def broken(*_args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(_atomic.os, "fsync", broken)
    with pytest.raises(OSError, match="No space left"):
        _atomic.write_atomic(str(path), '{"new": 1}\n')
    assert path.read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == ["sips-report.json"]
