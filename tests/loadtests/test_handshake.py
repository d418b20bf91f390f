"""The remote workers' handshake pieces: MACs bind role, nonces and body; secrets and
addresses are checked with one clear line each; a lost worker stops holding windows back."""

from __future__ import annotations

import io

import pytest

from labcap.errors import LabcapError
from labcap.loadtests import handshake as hs
from labcap.loadtests.merge import MessageJournal, WindowMerger
from labcap.loadtests.recorder import WindowRecorder
from labcap.model import build_plan

KEY = b"k" * 32


def test_a_signed_message_verifies_only_with_its_key_role_nonces_and_body():
    msg = hs.signed(KEY, "worker", "nm", "nw", {"version": "0.1.0", "n": 1})
    assert hs.verify(KEY, "worker", "nm", "nw", msg)
    assert not hs.verify(b"x" * 32, "worker", "nm", "nw", msg)  # another secret
    assert not hs.verify(KEY, "master", "nm", "nw", msg)  # replayed in the other direction
    assert not hs.verify(KEY, "worker", "nm2", "nw", msg)  # replayed into another handshake
    assert not hs.verify(KEY, "worker", "nm", "nw", {**msg, "version": "0.0.1"})  # altered
    assert not hs.verify(KEY, "worker", "nm", "nw", {k: v for k, v in msg.items() if k != "mac"})
    assert hs.session_key(KEY, "a", "b") != hs.session_key(KEY, "a", "c")


def test_the_secret_must_be_set_and_long_enough():
    with pytest.raises(LabcapError, match="LABCAP_WORKER_SECRET is not set"):
        hs.read_secret({})
    with pytest.raises(LabcapError, match="shorter than 16 characters"):
        hs.read_secret({"LABCAP_WORKER_SECRET": "short"})
    assert hs.read_secret({"LABCAP_WORKER_SECRET": "x" * 16}) == b"x" * 16


@pytest.mark.parametrize("text", ["host", "host:", ":5557", "h:0", "h:65535", "h:port"])
def test_bad_addresses_are_one_line(text):
    with pytest.raises(LabcapError, match=r"--master .*: use HOST:PORT"):
        hs.parse_address(text, what="--master")


def test_addresses_parse():
    assert hs.parse_address("10.0.0.5:5557", what="x") == ("10.0.0.5", 5557)
    assert hs.parse_address("[::1]:5557", what="x") == ("::1", 5557)


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_lost_worker_no_longer_holds_back_the_windows_it_did_not_deliver():
    plan = build_plan((4,), 4.0, settle_s=1.0, window_s=1.0, spawn_rate=4)
    out = io.StringIO()
    out.fileno = lambda: -1  # type: ignore[method-assign]
    merger = WindowMerger(plan, out, 2, sync=lambda fd: None, grace_s=1000)
    recorders = {}
    for name in ("w1", "w2"):
        c = Clock()
        rec = WindowRecorder(plan, MessageJournal(lambda r, n=name: merger.add(n, r)), clock=c,
                             sync=lambda fd: None, worker=name, emit_bins=True)  # fmt: skip
        rec.t0 = 0.0
        recorders[name] = (rec, c)

    def close_until(name: str, t: float) -> None:
        rec, c = recorders[name]
        c.t = t - 0.5
        rec.on_request("GET", "api.a", 5.0)
        c.t = t
        rec.advance()

    close_until("w1", 1.0)
    close_until("w2", 1.0)
    close_until("w1", 2.0)
    close_until("w2", 2.0)  # w2 delivered windows 0 and 1, then its machine went away
    close_until("w1", 3.0)
    close_until("w1", 4.0)
    merger.poll(4.0)
    assert merger.pos == 2  # windows 2 and 3 wait for w2 (grace 1000 s)
    assert merger.lose("w2") == 2
    merger.poll(4.0)
    assert merger.finished
    assert merger.gaps == [
        "window 2: 1 of 2 workers sent no data (lost: w2)",
        "window 3: 1 of 2 workers sent no data (lost: w2)",
    ]
    import json

    windows = [json.loads(ln) for ln in out.getvalue().splitlines() if '"window"' in ln]
    by_index = {w["window_index"]: w["requests"] for w in windows if w["kind"] == "window"}
    assert by_index == {0: 2, 1: 2, 2: 1, 3: 1}  # its windows before the loss are kept
