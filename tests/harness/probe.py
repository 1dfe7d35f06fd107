"""Probe one port of a test container from the host and print the state as JSON.

  probe.py [--timeout S] [--retries N] [--source ADDRESS] tcp|udp ADDRESS PORT

tcp: open (connected), closed (refused: RST or ICMP unreachable), filtered (no answer).
udp: open (a reply came back), closed (ICMP port unreachable), open|filtered (silence).
Every attempt is bounded by --timeout and there are at most --retries + 1 attempts.
--source sends from one of this machine's addresses (the differential test's vantage points).
Test-only harness code; the collection's own network probe is sipguard.firewall.port_probe.
"""
import argparse
import json
import socket
import sys


def _bind(sock, source):
    """Send from source: an address, or (address, port) for a fixed source port."""
    if source:
        if isinstance(source, tuple):
            # A chosen port may still be in TIME_WAIT from an earlier probe to another target.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(source if isinstance(source, tuple) else (source, 0))


def probe_tcp(address, port, timeout, source=None):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        _bind(sock, source)
        try:
            sock.connect((address, port))
        except ConnectionRefusedError:
            return "closed"
        except (socket.timeout, TimeoutError):
            return "filtered"
        except OSError as exc:  # EHOSTUNREACH / ENETUNREACH: an ICMP error, not silence
            return "unreachable: %s" % exc.strerror
    return "open"


def probe_udp(address, port, timeout, source=None):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        _bind(sock, source)
        sock.connect((address, port))
        try:
            sock.send(b"sipguard-probe\n")
            sock.recv(2048)
        except ConnectionRefusedError:
            return "closed"
        except (socket.timeout, TimeoutError):
            return "open|filtered"
        except OSError as exc:  # an earlier attempt's EHOSTUNREACH, reported on this socket
            return "unreachable: %s" % exc.strerror
    return "open"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--source", default=None)
    parser.add_argument("protocol", choices=["tcp", "udp"])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    probe = probe_tcp if args.protocol == "tcp" else probe_udp
    silent = "filtered" if args.protocol == "tcp" else "open|filtered"
    for _attempt in range(args.retries + 1):
        state = probe(args.address, args.port, args.timeout, args.source)
        if state != silent:
            break
    print(json.dumps({"address": args.address, "port": args.port,
                      "protocol": args.protocol, "state": state}))


if __name__ == "__main__":
    main(sys.argv[1:])
