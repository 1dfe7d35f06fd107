# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one atomic file writer: on the hosts (UFW's files), on the controller (the reports, the
metrics file) and in the event source (its state file).

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import os
import tempfile


def write_atomic(path, text, mode=0o640, owner=None, prefix=None):
    """Replace path by text: a temporary file in the same directory, fsync, rename, fsync of the
    directory. A reader (or a crash) sees the old file or the new one, never a mix.

    mode: the new file's permissions; owner: (uid, gid) to give it, or None to leave the writer's;
    prefix: of the temporary name (default ``.<name>.``: it never ends like the file, so a reader
    of ``*.prom`` or ``*.json`` never sees half of one). Raises OSError; the temporary file is
    removed on any failure."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(prefix=prefix or ".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
