"""Home/project file trees: counts, sizes and sha256 of every file (or of a sample), compared
path by path between the old and the new tree. Read-only; symlinks are compared by target,
never followed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labcap.errors import LabcapError
from labcap.verify.records import Difference

Progress = Callable[[str], None]
_CHUNK = 1 << 20
_MAX_ENTRIES = 5_000_000  # bounds the walk


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, link
    size: int = 0
    target: str = ""  # a link's target


@dataclass(frozen=True)
class ChecksumPolicy:
    """``all`` files, ``none``, or a deterministic sample of ``sample`` files (the same paths
    on both sides: chosen by the hash of the path)."""

    mode: str = "all"
    sample: int = 0

    @classmethod
    def parse(cls, text: str) -> ChecksumPolicy:
        text = str(text).strip().lower()
        if text in ("all", "none"):
            return cls(text)
        if text.isdigit() and int(text) > 0:
            return cls("sample", int(text))
        raise LabcapError(f"--checksums {text!r}: use all, none or a number of files to sample")


def scan_tree(root: Path, ignore: Sequence[str] = ()) -> dict[str, Entry]:
    """Every entry under ``root`` by relative POSIX path; top-level names matching an
    ``ignore`` glob are left out with everything under them."""
    out: dict[str, Entry] = {}
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError as e:
            raise LabcapError(f"cannot read {current}: {e.strerror or e}") from None
        for de in entries:
            if current == root and any(fnmatch.fnmatchcase(de.name, p) for p in ignore):
                continue
            rel = Path(de.path).relative_to(root).as_posix()
            if de.is_symlink():
                out[rel] = Entry("link", target=os.readlink(de.path))
            elif de.is_dir(follow_symlinks=False):
                out[rel] = Entry("dir")
                stack.append(Path(de.path))
            else:
                out[rel] = Entry("file", de.stat(follow_symlinks=False).st_size)
            if len(out) > _MAX_ENTRIES:
                raise LabcapError(f"{root}: more than {_MAX_ENTRIES} entries; give a subtree")
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_or_error(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"


def _to_hash(common: list[str], policy: ChecksumPolicy) -> list[str]:
    if policy.mode == "none":
        return []
    if policy.mode == "all" or policy.sample >= len(common):
        return common
    ranked = sorted(common, key=lambda p: hashlib.sha1(p.encode()).hexdigest())
    return sorted(ranked[: policy.sample])


def compare_trees(
    old_root: Path,
    new_root: Path,
    policy: ChecksumPolicy = ChecksumPolicy(),
    progress: Progress = lambda _m: None,
    workers: int = 4,
    ignore: Sequence[str] = (),
) -> tuple[list[Difference], dict[str, object]]:
    """Every difference between the two trees, and their counts, sizes and hashing stats."""
    started = time.monotonic()
    old, new = scan_tree(old_root, ignore), scan_tree(new_root, ignore)
    label = f"{old_root} -> {new_root}"
    diffs = [
        Difference(f"missing-{old[p].kind}", f"{p} in {new_root}")
        for p in sorted(old.keys() - new.keys())
    ]
    diffs += [
        Difference(f"extra-{new[p].kind}", f"{p} in {new_root}")
        for p in sorted(new.keys() - old.keys())
    ]
    same_size: list[str] = []
    for p in sorted(old.keys() & new.keys()):
        o, n = old[p], new[p]
        if o.kind != n.kind:
            diffs.append(Difference("changed-type", f"{p} in {new_root}", o.kind, n.kind))
        elif o.kind == "link" and o.target != n.target:
            diffs.append(Difference("changed-link", f"{p} in {new_root}", o.target, n.target))
        elif o.kind == "file" and o.size != n.size:
            diffs.append(Difference("changed-size", f"{p} in {new_root}", o.size, n.size))
        elif o.kind == "file":
            same_size.append(p)
    hashed = _to_hash(same_size, policy)
    if hashed:
        progress(f"verify data: sha256 of {len(hashed)} files on each side ({label})")

    def both(p: str) -> tuple[str, str, str]:
        return p, _hash_or_error(old_root / p), _hash_or_error(new_root / p)

    with ThreadPoolExecutor(workers) as pool:
        for p, ho, hn in pool.map(both, hashed):
            if ho.startswith("unreadable") or hn.startswith("unreadable"):
                diffs.append(Difference("unreadable-file", f"{p} in {new_root}", ho, hn))
            elif ho != hn:
                diffs.append(
                    Difference(
                        "changed-checksum",
                        f"{p} in {new_root}",
                        f"sha256:{ho[:16]}",
                        f"sha256:{hn[:16]}",
                    )
                )
    details = {
        "old_root": str(old_root),
        "new_root": str(new_root),
        "files": {"old": _count(old, "file"), "new": _count(new, "file")},
        "dirs": {"old": _count(old, "dir"), "new": _count(new, "dir")},
        "bytes": {"old": _bytes(old), "new": _bytes(new)},
        "checksums": {"mode": policy.mode, "files_hashed": len(hashed)},
        "elapsed_s": round(time.monotonic() - started, 2),
    }
    progress(f"verify data: {label}: compared in {details['elapsed_s']:.1f} s")
    return diffs, details


def _count(tree: dict[str, Entry], kind: str) -> int:
    return sum(e.kind == kind for e in tree.values())


def _bytes(tree: dict[str, Entry]) -> int:
    return sum(e.size for e in tree.values() if e.kind == "file")
