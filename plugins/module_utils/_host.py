# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one place where the collection touches a host: files, commands, UFW's lock.

Private to the sipguard.firewall collection: no stability guarantees for other users.
Everything else in module_utils is pure data in, data out; unit tests replace this
class (or its ``run`` method) and never touch a real system.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from contextlib import contextmanager

from ansible_collections.sipguard.firewall.plugins.module_utils._atomic import write_atomic

UFW_LOCK_PATH = "/run/ufw.lock"


class HostError(Exception):
    """A command failed or a file could not be read or written."""


class UfwLockTimeout(HostError):
    """Another process held UFW's lock for longer than we agreed to wait."""


class Host:
    """Files, commands and the UFW lock of the host the module runs on."""

    def __init__(self, module):
        self._module = module
        self.processes_started = 0

    def run(self, argv, data=None):
        """Run argv (a list, never a shell string) with LANG=C; return stdout as text.

        Raises HostError naming the command, its exit code and stderr on failure.
        """
        executable = self._module.get_bin_path(argv[0], required=True)
        self.processes_started += 1
        rc, out, err = self._module.run_command(
            [executable] + list(argv[1:]),
            data=data,
            binary_data=True,
            environ_update={"LANG": "C", "LC_ALL": "C"},
        )
        if rc != 0:
            raise HostError("%s failed (exit %d): %s" % (" ".join(argv), rc, (err or out).strip()))
        return out

    def find_executable(self, name):
        """Return the path of name in the module's search path, or None."""
        return self._module.get_bin_path(name)

    @staticmethod
    def read_text(path):
        """Return the file's text, or None when it does not exist."""
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise HostError("cannot read %s: %s" % (path, exc.strerror))

    @staticmethod
    def realpath(path):
        return os.path.realpath(path)

    @staticmethod
    def listdir(path):
        """Entries of a directory; [] when it does not exist or cannot be read (e.g. /proc/PID gone)."""
        try:
            return os.listdir(path)
        except OSError:
            return []

    @staticmethod
    def readlink(path):
        """The target of a symbolic link, or None when it cannot be read (a process that exited)."""
        try:
            return os.readlink(path)
        except OSError:
            return None

    @staticmethod
    def file_mode(path):
        """The permission bits of path; None when it does not exist."""
        try:
            return os.stat(path).st_mode & 0o7777
        except OSError:
            return None

    @staticmethod
    def write_atomic(path, text, mode=None):
        """Replace path with text atomically (``_atomic.write_atomic``), keeping the old file's
        mode (unless mode is given) and ownership; the temporary file is ``.sipguard-*`` in the
        same directory. text None removes the file (nothing to do when it is not there)."""
        try:
            current = os.stat(path)
            old_mode, owner = current.st_mode & 0o7777, (current.st_uid, current.st_gid)
        except OSError:
            old_mode, owner = 0o640, (0, 0)
        try:
            if text is None:
                if os.path.lexists(path):
                    os.unlink(path)
                return
            write_atomic(path, text, mode=old_mode if mode is None else mode, owner=owner, prefix=".sipguard-")
        except (IOError, OSError) as exc:
            raise HostError("cannot %s %s: %s" % ("remove" if text is None else "write", path, exc.strerror))

    @staticmethod
    @contextmanager
    def ufw_lock(timeout, path=UFW_LOCK_PATH, poll_interval=0.1):
        """Hold UFW's own lock (fcntl.lockf on /run/ufw.lock, as the ufw CLI takes it).

        Waits at most ``timeout`` seconds for another holder, then raises UfwLockTimeout.
        """
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path, "a")
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError) as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise HostError("cannot lock %s: %s" % (path, exc.strerror))
                    if time.monotonic() >= deadline:
                        raise UfwLockTimeout(
                            "UFW's lock %s is held by another process (a ufw command or another run); "
                            "gave up after %s s" % (path, timeout))
                    time.sleep(poll_interval)
            yield
        finally:
            handle.close()


class WriteRefused(RuntimeError):
    """A write through a read-only host: a defect of this collection, never the user's input.

    Not a HostError, so no roll-back or "cannot read" handler can take it for a host's failure."""


# What a read-only host may run: the rule set dumps. Nothing else is a reader.
_READERS = re.compile(r"^ip6?tables(-nft|-legacy)?-save$")


def reads_only(argv):
    """Whether argv only reads: an iptables-save dump or `nft list ruleset`."""
    name = os.path.basename(argv[0])
    return (bool(_READERS.match(name)) and len(argv) == 1) or (name == "nft" and list(argv[1:]) == ["list", "ruleset"])


class ReadOnlyHost:
    """The same host with every write refused: check mode and the audit get this one, so that
    a write there is impossible, not just avoided. Reads go to the host unchanged."""

    def __init__(self, host):
        self._host = host

    def run(self, argv, data=None):
        if not reads_only(argv):
            raise WriteRefused("read-only host (check mode or an audit): refused to run %s" % " ".join(argv))
        return self._host.run(argv, data=data)

    def write_atomic(self, path, text, mode=None):
        raise WriteRefused("read-only host (check mode or an audit): refused to write %s" % path)

    def file_mode(self, path):
        return self._host.file_mode(path)

    def find_executable(self, name):
        return self._host.find_executable(name)

    def read_text(self, path):
        return self._host.read_text(path)

    def realpath(self, path):
        return self._host.realpath(path)

    def listdir(self, path):
        return self._host.listdir(path)

    def readlink(self, path):
        return self._host.readlink(path)

    def ufw_lock(self, timeout):
        return self._host.ufw_lock(timeout)


NEEDS_ROOT = ("%s needs root on the host (it reads UFW's files and the netfilter tables%s), but runs as uid %d: "
              "run it with become - ansible-playbook -b, become: true, or the sips role's sips_become: true")


def root_problem(module_name, writes):
    """None when this process is root, else the message that says to use become."""
    uid = os.geteuid()
    if uid == 0:
        return None
    return NEEDS_ROOT % (module_name, " and changes them" if writes else "", uid)
