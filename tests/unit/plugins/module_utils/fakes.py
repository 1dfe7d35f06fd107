# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host made of captured fixtures, for the ufw_port and port_audit unit tests.

FakeHost keeps files in a dict and emulates `iptables-save` and `iptables-restore -n` per
backend on dumps captured from real ufw 0.36 hosts (fixtures/netfilter), so every process
the modules would start is recorded and counted.
"""

from __future__ import annotations

import contextlib
import os
import re

from ansible_collections.sipguard.firewall.plugins.module_utils._host import HostError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
UFW_SCRIPT = '#!/usr/bin/python3\nversion = "0.36.2"\n'
UFW_CONF_ENABLED = "# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n"
UFW_DEFAULTS = ('IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n'
                'DEFAULT_FORWARD_POLICY="DROP"\nDEFAULT_APPLICATION_POLICY="SKIP"\n')
CHAINS = {"ipv4": "ufw-user-input", "ipv6": "ufw6-user-input"}


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


def with_user_chain(save_text, chain, rules_text):
    """A save dump whose user input chain holds what the rules file loads (iptables-restore -n)."""
    lines = [line for line in rules_text.splitlines() if line.startswith("-A %s " % chain)]
    kept = [line for line in save_text.splitlines() if not line.startswith("-A %s " % chain)]
    filter_commit = kept.index("COMMIT", kept.index("*filter"))
    return "\n".join(kept[:filter_commit] + lines + kept[filter_commit:]) + "\n"


class FakeHost:
    """Files in a dict, iptables-save/restore emulated per backend, every process recorded.

    saves: what the iptables-save and ip6tables-save the alternatives lead to print;
    realpath: the captured `readlink -f /usr/sbin/iptables /usr/sbin/ip6tables`, which says
    where they lead (nft or legacy); other_saves: what the other backend's commands print
    ({(backend, family): fixture}, nothing when not given); files: more files by path
    (/proc/net/ip_tables_names, ...); proc: a directory of fixtures/proc whose socket tables
    are the host's; nft: a fixture `nft list ruleset` prints (no nft command without it)."""

    def __init__(self, rules_dir="allow-5061", saves=("ufw_deny.v4.save", "ufw_deny.v6.save"), loaded=True,
                 conf=UFW_CONF_ENABLED, fail_on=None, defaults=UFW_DEFAULTS, realpath="ufw_deny.realpath",
                 other_saves=None, files=None, proc=None, nft=None, dockerd=False, modes=None):
        self.files = {
            "/usr/sbin/ufw": UFW_SCRIPT,
            "/etc/ufw/ufw.conf": conf,
            "/etc/default/ufw": defaults,
            "/etc/ufw/user.rules": fixture("ufw", rules_dir, "user.rules"),
            "/etc/ufw/user6.rules": fixture("ufw", rules_dir, "user6.rules"),
            "/lib/ufw/ufw-init": "#!/bin/sh\n",
        }
        if proc:
            for name in ("net/tcp", "net/tcp6", "net/udp", "net/udp6", "sys/net/ipv6/bindv6only"):
                self.files["/proc/" + name] = fixture("proc", proc, *name.split("/"))
        self.files.update(files or {})
        self.modes = {path: 0o644 for path in self.files}
        self.modes.update(modes or {})
        self.nft = nft
        self.dockerd = dockerd
        self.realpaths = dict(zip(("/usr/sbin/iptables", "/usr/sbin/ip6tables"),
                                  fixture("netfilter", realpath).split()))
        self.alternative = "legacy" if self.realpaths["/usr/sbin/iptables"].endswith("legacy-multi") else "nft"
        self.tables = {"nft": {}, "legacy": {}}
        self.saves = self.tables[self.alternative]
        for family, save in zip(("ipv4", "ipv6"), saves):
            self.saves[family] = self._loaded(fixture("netfilter", save), family, loaded)
        for (backend, family), save in (other_saves or {}).items():
            self.tables[backend][family] = self._loaded(fixture("netfilter", save), family, loaded)
        self.processes = []
        self.docker_loads = []
        self.fail_on = fail_on
        self.lock_taken = False

    def _loaded(self, text, family, loaded):
        """The dump with UFW's user chain as the rules file loads it, where that chain exists."""
        if not loaded or ":%s " % CHAINS[family] not in text:
            return text
        return with_user_chain(text, CHAINS[family], self.files[self.rules_path(family)])

    @staticmethod
    def rules_path(family):
        return "/etc/ufw/user.rules" if family == "ipv4" else "/etc/ufw/user6.rules"

    def find_executable(self, name):
        if (name == "nft" and self.nft is None) or (name == "dockerd" and not self.dockerd):
            return None
        return "/usr/sbin/" + name

    def read_text(self, path):
        return self.files.get(path)

    def realpath(self, path):
        return self.realpaths.get(path, path)

    def write_atomic(self, path, text, mode=None):
        if text is None:
            self.files.pop(path, None)
            self.modes.pop(path, None)
            return
        self.files[path] = text
        self.modes[path] = mode if mode is not None else self.modes.get(path, 0o640)

    def file_mode(self, path):
        return self.modes.get(path) if path in self.files else None

    @staticmethod
    def listdir(path):
        return []

    @staticmethod
    def readlink(path):
        return None

    @contextlib.contextmanager
    def ufw_lock(self, timeout):
        self.lock_taken = True
        yield

    def run(self, argv, data=None):
        self.processes.append(argv)
        name = os.path.basename(argv[0])
        if self.fail_on == name:
            raise HostError("%s failed (exit 1): simulated failure" % name)
        command = re.match(r"^(ip6?tables)(?:-(nft|legacy))?-(save|restore)$", name)
        if command:
            family = "ipv4" if command.group(1) == "iptables" else "ipv6"
            tables = self.tables[command.group(2) or self.alternative]
            if command.group(3) == "save":
                return tables.get(family, "")  # a backend without tables prints nothing
            assert argv[1:] == ["-n", "-w", "5"]
            if "sips-docker-" in data:
                self.docker_loads.append(data)  # the Docker block: recorded, judged by the tests
                return ""
            tables[family] = with_user_chain(tables[family], CHAINS[family], data)
            return ""
        if name == "ufw-init":
            return ""
        if name == "nft" and argv[1:] == ["list", "ruleset"]:
            return fixture("netfilter", self.nft)
        raise AssertionError("unexpected command %r" % argv)

    def live_chain(self, family):
        return [line for line in self.saves[family].splitlines() if line.startswith("-A %s " % CHAINS[family])]


IPV6_OFF_DEFAULTS = UFW_DEFAULTS.replace("IPV6=yes", "IPV6=no")


def ipv6_off_host(v6_save="ipv6_off.v6.save", v4_save="ipv6_off.v4.save", **overrides):
    """A host captured with IPV6=no, default deny, `allow 22/tcp`, `allow 5061` (fixtures ufw/ipv6-off)."""
    return FakeHost(rules_dir="ipv6-off", saves=(v4_save, v6_save), defaults=IPV6_OFF_DEFAULTS, **overrides)


def legacy_host(**overrides):
    """A host captured with both alternatives on iptables-legacy before UFW started."""
    values = dict(saves=("ufw_legacy_deny.v4.save", "ufw_legacy_deny.v6.save"), realpath="ufw_legacy_deny.realpath",
                  other_saves={("nft", "ipv4"): "ufw_legacy_deny.nft.v4.save",
                               ("nft", "ipv6"): "ufw_legacy_deny.nft.v6.save"},
                  files={"/proc/net/ip_tables_names": fixture("netfilter", "ufw_legacy_deny.ip_tables_names"),
                         "/proc/net/ip6_tables_names": fixture("netfilter", "ufw_legacy_deny.ip6_tables_names")})
    values.update(overrides)
    return FakeHost(**values)
