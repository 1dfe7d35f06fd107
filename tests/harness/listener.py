"""Test listener started inside target containers.

Listens on every port given, on TCP and UDP, IPv4 and IPv6 (one dual-stack socket
each), so a probe from the host can tell open from closed from filtered. TCP accepts
and answers one line then closes; UDP echoes each datagram. Runs until killed.
Test-only: never installed by the collection.
"""
import selectors
import socket
import sys


def dual_stack(kind, port):
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    sock.setblocking(False)
    return sock


def main(ports):
    selector = selectors.DefaultSelector()
    for port in ports:
        selector.register(dual_stack(socket.SOCK_STREAM, port), selectors.EVENT_READ, "tcp")
        selector.register(dual_stack(socket.SOCK_DGRAM, port), selectors.EVENT_READ, "udp")
    while True:
        for key, _events in selector.select():
            sock = key.fileobj
            try:
                if key.data == "tcp":
                    conn, _peer = sock.accept()
                    conn.sendall(b"sipguard-listener\n")
                    conn.close()
                else:
                    data, peer = sock.recvfrom(2048)
                    sock.sendto(data, peer)
            except OSError:
                continue


if __name__ == "__main__":
    main([int(port) for port in sys.argv[1:]])
