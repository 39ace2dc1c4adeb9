#!/usr/bin/env python3
# bench/udp.py - the two ends of bench/udp.sh's UDP relay benchmark
#
#   python3 bench/udp.py echo PORT
#       a UDP echo origin on 127.0.0.1:PORT: every datagram goes back to
#       its sender unchanged; runs until killed
#   python3 bench/udp.py client PORT N [WINDOW] [SIZE]
#       sends N datagrams of SIZE bytes (64) to 127.0.0.1:PORT, WINDOW (8)
#       in flight, each a sequence number and a pattern derived from it,
#       and checks every reply byte for byte; a datagram unanswered for a
#       second is sent again (counted).  Prints
#       "replies N retransmits R bad B seconds S" and exits 0 when every
#       datagram came back intact, 1 otherwise (60 s at most)
#
# Exit codes: 0 pass, 1 fail, 2 usage.

import select
import socket
import struct
import sys
import time


def payload(seq, size):
    head = struct.pack("!Q", seq)
    body = bytes((seq * 7 + i) & 0xff for i in range(size - len(head)))
    return head + body


def echo(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)


def client(port, n, window, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    # the pattern depends on seq only through seq * 7 & 0xff: 256 bodies
    bodies = [payload(i, size)[8:] for i in range(256)]
    pending = {}
    nxt = replies = retrans = bad = 0
    t0 = time.monotonic()
    deadline = t0 + 60

    def send(seq):
        # a refused send (an earlier datagram met a closed port) is lost:
        # the timeout sends it again
        try:
            s.send(struct.pack("!Q", seq) + bodies[seq & 0xff])
        except ConnectionRefusedError:
            pass
        pending[seq] = time.monotonic()

    while replies < n:
        while nxt < n and len(pending) < window:
            send(nxt)
            nxt += 1
        now = time.monotonic()
        if now > deadline:
            break
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            for seq, sent in list(pending.items()):
                if time.monotonic() - sent > 1.0:
                    send(seq)
                    retrans += 1
            continue
        while True:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                continue
            if len(data) != size:
                bad += 1
                continue
            seq = struct.unpack("!Q", data[:8])[0]
            if seq not in pending:
                continue  # a late reply to a retransmitted datagram
            if data[8:] != bodies[seq & 0xff]:
                bad += 1
                continue
            del pending[seq]
            replies += 1

    el = time.monotonic() - t0
    print("replies %d retransmits %d bad %d seconds %.3f" % (replies, retrans, bad, el))
    return 0 if replies == n and bad == 0 else 1


def main(argv):
    try:
        if argv[1] == "echo" and len(argv) == 3:
            echo(int(argv[2]))
        elif argv[1] == "client" and 4 <= len(argv) <= 6:
            return client(int(argv[2]), int(argv[3]),
                          int(argv[4]) if len(argv) > 4 else 8,
                          int(argv[5]) if len(argv) > 5 else 64)
    except (IndexError, ValueError):
        pass
    sys.stderr.write("usage: udp.py echo PORT | client PORT N [WINDOW] [SIZE]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
