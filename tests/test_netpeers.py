"""The peer watch the network-rule checks use (tests/support/netpeers.py): it sees a
process tree's sockets and flags a peer that is not loopback. The non-loopback case is a
UDP socket connected to 192.0.2.1 (TEST-NET-1): connect() on UDP sends no packet."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.netpeers import PeerWatch, descendants, is_loopback, peer_host


def test_peer_addresses_and_loopback():
    assert peer_host("127.0.0.1:5000") == "127.0.0.1"
    assert peer_host("[::1]:80") == "::1"
    assert peer_host("[::ffff:127.0.0.2]:8") == "::ffff:127.0.0.2"
    assert peer_host("[fe80::1%eth0]:22") == "fe80::1"
    for host in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "*", "0.0.0.0", "::"):
        assert is_loopback(host), host
    for host in ("10.0.0.1", "192.0.2.1", "fe80::1", "::ffff:10.0.0.1", "example.org"):
        assert not is_loopback(host), host


def test_descendants_include_a_grandchild():
    code = "import subprocess, sys; subprocess.run(['sleep', '30'])"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        import time

        for _ in range(100):
            tree = descendants([os.getpid()])
            if len(tree) >= 3:
                break
            time.sleep(0.05)
        assert os.getpid() in tree and child.pid in tree
        assert len(tree - {os.getpid(), child.pid}) >= 1, tree  # the sleep below the child
    finally:
        child.kill()
        child.wait()
        subprocess.run(["pkill", "-P", str(child.pid)], check=False)


def test_watch_sees_loopback_peers_and_flags_any_other():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept()
    try:
        watch = PeerWatch(lambda: [os.getpid()])
        watch.sample()
        assert "127.0.0.1" in watch.peers and watch.offenders == [], watch.summary()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.connect(("192.0.2.1", 9))  # sets the peer; no packet is sent
        except OSError as e:  # a machine without any route out
            udp.close()
            pytest.skip(f"no route to give a UDP socket a non-loopback peer: {e}")
        try:
            watch.sample()
        finally:
            udp.close()
        assert [peer_host(o[2]) for o in watch.offenders] == ["192.0.2.1"], watch.summary()
        assert watch.samples == 2 and not watch.errors
    finally:
        for s in (conn, client, server):
            s.close()
