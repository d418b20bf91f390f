#!/usr/bin/env python3
"""A TCP forwarder from this machine's loopback into the test cluster's network namespace.

    nsforward.py NETNS_PATH LISTEN_PORT TARGET_HOST TARGET_PORT

It binds 127.0.0.1:LISTEN_PORT (0: any free port) in the namespace it is started in (the
machine's), prints the bound port on one line, then enters NETNS_PATH (setns) for good: every
socket it creates afterwards - the ones that connect to TARGET_HOST:TARGET_PORT - lives in the
test namespace, which has no route out. So the only sockets in the machine's namespace are the
listener and the accepted loopback connections. Bounded: at most 256 connections at once.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
MAX_CONNS = 256


def setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn: socket.socket, target: tuple[str, int], slots: threading.Semaphore) -> None:
    try:
        try:
            up = socket.create_connection(target, timeout=10)
        except OSError:
            conn.close()
            return
        up.settimeout(None)
        t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
        t.start()
        pipe(conn, up)
        t.join()
        up.close()
        conn.close()
    finally:
        slots.release()


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    netns, port, host, tport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(64)
    setns(netns)  # the main thread, before any other: every later thread inherits it
    print(lsock.getsockname()[1], flush=True)
    slots = threading.BoundedSemaphore(MAX_CONNS)
    while True:
        conn, _ = lsock.accept()
        slots.acquire()
        threading.Thread(target=serve, args=(conn, (host, tport), slots), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
