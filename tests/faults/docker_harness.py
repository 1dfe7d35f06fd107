# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A Docker host for the tests of tests/faults: a privileged container of the harness's docker
image (Debian's docker.io 20.10, ufw active with default deny and allow 22/tcp) in which dockerd
runs (storage driver vfs) with an inner image imported from the container's own root file system,
since no registry is reachable. dockerd never runs on this machine itself."""

from __future__ import annotations

import json

from fleet_harness import NETWORK, run  # pylint: disable=import-error  # tests/faults, on sys.path

DOCKER_IMAGE = "localhost/sipguard-target:bookworm-docker"
UFW_SETUP = "ufw default deny incoming >/dev/null && ufw allow 22/tcp >/dev/null && ufw --force enable >/dev/null"
START_DOCKERD = ("(setsid dockerd --storage-driver=vfs > /var/log/dockerd.log 2>&1 &); "
                 "for i in $(seq 150); do docker info >/dev/null 2>&1 && exit 0; sleep 0.2; done; "
                 "tail -20 /var/log/dockerd.log; exit 1")
STOP_DOCKERD = ("kill $(pidof dockerd); for i in $(seq 150); do [ -z \"$(pidof dockerd containerd)\" ] && exit 0; "
                "sleep 0.2; done; exit 1")
IMPORT = ("tar -C / -c --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./var/lib/docker "
          "--exclude=./run . 2>/dev/null | docker import - sipguard-inner >/dev/null")


def sh(name, script, check=True, timeout=120):
    return run(["podman", "exec", name, "sh", "-c", script], check=check, timeout=timeout)


def start(name, image, privileged=False):
    """Start a container on the test network (removed first if it exists); its (IPv4, IPv6)."""
    run(["podman", "rm", "-f", "-t", "0", name], check=False)
    run(["podman", "run", "-d", "--name", name, "--network", NETWORK] + (["--privileged"] if privileged else [
        "--cap-add", "NET_ADMIN"]) + [image])
    network = json.loads(run(["podman", "inspect", name]).stdout)[0]["NetworkSettings"]["Networks"][NETWORK]
    return network["IPAddress"], network["GlobalIPv6Address"]


def image_missing():
    return run(["podman", "image", "exists", DOCKER_IMAGE], check=False).returncode != 0
