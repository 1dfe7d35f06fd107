# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Emulated delay, jitter and loss for the packets an NFQUEUE hands over - run INSIDE a test
container (this kernel has no netem), never on the machine itself.

The container's iptables sends the packets of the emulated path to queue N (e.g. ``iptables -I
INPUT -p tcp --dport 5061 -j NFQUEUE --queue-num 1`` and the answers in OUTPUT); this program
holds each packet ``delay/2 +/- jitter/2`` (uniform; each direction is half the round trip) and
then accepts it, or drops a ``loss`` fraction, with a seeded random generator. Holds end from a
heap in one select() loop, so a held packet never delays the others.

Pure Python over nfnetlink_queue (socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)): nothing to
install in the container beyond Debian's python3. Prints "bound" once the queue is bound; on
SIGTERM it accepts what it holds and exits, printing its counts as JSON.

    python3 nfqueue_delay.py --queue 1 --delay-ms 100 --jitter-ms 40 --loss 0.05 --seed 5061
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_PF_BIND, NFQNL_CFG_CMD_PF_UNBIND = 1, 3, 4
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1


def attribute(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(kind, queue, family, attributes, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + b"".join(attributes)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def attributes_of(data):
    """{type: payload} of the attributes after the nfgenmsg of one message body."""
    found, offset = {}, 4
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x7FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def messages(data):
    """(type, body) of every netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        yield kind, data[offset + 16:offset + length]
        offset += (length + 3) & ~3


class Queue:
    def __init__(self, number):
        self.number = number
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def configure(self, attributes, family=socket.AF_UNSPEC, check=True):
        self.seq += 1
        self.sock.send(message(NFQNL_MSG_CONFIG, self.number, family, attributes, NLM_F_REQUEST | NLM_F_ACK, self.seq))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([self.sock], [], [], 1)
            if not ready:
                continue
            for kind, body in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", body)[0]
                    if code and check:
                        raise OSError(-code, "nfqueue config failed: %s" % os.strerror(-code))
                    return
        raise TimeoutError("no answer to the nfqueue config")

    def bind(self):
        for command, check in ((NFQNL_CFG_CMD_PF_UNBIND, False), (NFQNL_CFG_CMD_PF_BIND, False),
                               (NFQNL_CFG_CMD_BIND, True)):
            self.configure([attribute(NFQA_CFG_CMD, struct.pack("=BBH", command, 0, socket.htons(socket.AF_INET)))],
                           family=socket.AF_INET, check=check)
        self.configure([attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))], check=True)

    def verdict(self, packet_id, verdict):
        self.sock.send(message(NFQNL_MSG_VERDICT, self.number, socket.AF_UNSPEC,
                               [attribute(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))]))

    def packets(self):
        """The ids of the packets in one read."""
        ids = []
        for kind, body in messages(self.sock.recv(65536)):
            if kind & 0xFF == NFQNL_MSG_PACKET and kind >> 8 == NFNL_SUBSYS_QUEUE:
                header = attributes_of(body).get(NFQA_PACKET_HDR)
                if header:
                    ids.append(struct.unpack_from("!I", header)[0])
        return ids


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--queue", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=100.0, help="the round trip added (half each way)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="the round trip's spread (+/- half each way)")
    parser.add_argument("--loss", type=float, default=0.0, help="the fraction of packets dropped")
    parser.add_argument("--seed", type=int, default=5061)
    args = parser.parse_args(argv)
    chooser = random.Random(args.seed)
    queue = Queue(args.queue)
    queue.bind()
    held = []  # (release time, packet id)
    counts = {"accepted": 0, "dropped": 0}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    print("bound", flush=True)
    half, spread = args.delay_ms / 2000.0, args.jitter_ms / 2000.0
    while not stopping:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        try:
            ready, _w, _x = select.select([queue.sock], [], [], wait)
        except InterruptedError:
            continue
        if ready:
            try:
                ids = queue.packets()
            except OSError:  # ENOBUFS: the kernel dropped messages; go on
                ids = []
            now = time.monotonic()
            for packet_id in ids:
                if chooser.random() < args.loss:
                    queue.verdict(packet_id, NF_DROP)
                    counts["dropped"] += 1
                else:
                    heapq.heappush(held, (now + max(0.0, half + chooser.uniform(-spread, spread)), packet_id))
        now = time.monotonic()
        while held and held[0][0] <= now:
            queue.verdict(heapq.heappop(held)[1], NF_ACCEPT)
            counts["accepted"] += 1
    while held:
        queue.verdict(heapq.heappop(held)[1], NF_ACCEPT)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
