"""Test listener started inside target containers.

Listens on every port given, on TCP and UDP, IPv4 and IPv6 (one dual-stack socket
each), so a probe from the host can tell open from closed from filtered. TCP accepts
and answers one line then closes; UDP echoes each datagram from the address it was sent to
(as a server on a host with several interfaces must: the kernel would otherwise pick the
source by route, and the prober's connected socket drops a reply from another address).
Runs until killed. With ``--log FILE`` first, every datagram received is also noted there
("udp SOURCE DESTINATION PORT" a line): a datagram the host takes in but cannot answer
(its output dropped) still reached the server. Test-only: never installed by the collection.
"""
import selectors
import socket
import sys

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; not every Python names it


def dual_stack(kind, port):
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    if kind == socket.SOCK_DGRAM:
        # Where each datagram was sent to: IPV6_PKTINFO for IPv6, IP_PKTINFO for IPv4 (mapped).
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    sock.setblocking(False)
    return sock


def reply_from_destination(ancillary):
    """Ancillary data that sends the echo from the address the datagram was sent to."""
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
            return [(level, kind, value[:16] + bytes(4))]  # struct in6_pktinfo, any interface
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
            # struct in_pktinfo {ifindex; spec_dst; addr}: send from addr, any interface
            return [(level, kind, bytes(4) + value[8:12] + bytes(4))]
    return []


def unmapped(address):
    return address[7:] if address.startswith("::ffff:") else address


def destination_of(ancillary):
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
            return unmapped(socket.inet_ntop(socket.AF_INET6, value[:16]))
    return "?"


def main(ports, log=None):
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
                    data, ancillary, _flags, peer = sock.recvmsg(2048, 256)
                    if log:
                        log.write("udp %s %s %d\n" % (
                            unmapped(peer[0]), destination_of(ancillary), sock.getsockname()[1]))
                    sock.sendmsg([data], reply_from_destination(ancillary), 0, peer)
            except OSError:
                continue


if __name__ == "__main__":
    if sys.argv[1:2] == ["--log"]:
        # Line-buffered and appending: a reader may empty the file between writes.
        with open(sys.argv[2], "a", buffering=1, encoding="ascii") as log_file:
            main([int(port) for port in sys.argv[3:]], log_file)
    else:
        main([int(port) for port in sys.argv[1:]])
