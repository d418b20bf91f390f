"""Helpers of the migration rehearsal (test_migration_rehearsal.py): the Compose lab's data,
the generated runbook's bash blocks run as written (with the substitutes the test documents),
and where each side keeps its users' homes on this machine.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy_profiles.compose_lab import ComposeLab
from tests.support.mlflow_content import EXPERIMENTS, MODEL, Seeded, seed_mlflow

__all__ = ["EXPERIMENTS", "MODEL", "Seeded", "seed_mlflow"]

HOME_FILES = {  # per user: path -> content (the size varies with the user)
    "notes.md": "# {user}'s notes\n",
    "project/train.py": "print('training for {user}')\n" * 3,
    "project/data/part-0.csv": "x,y\n" + "1,2\n" * 40,
    "project/data/part-1.csv": "x,y\n" + "3,4\n" * 25,
}


def write_home(root: Path, user: str) -> int:
    """The user's files (owned by the notebook user 1000:100, as a server writes them)."""
    import os

    for rel, text in HOME_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(user=user))
    for p in [root, *root.rglob("*")]:
        os.chown(p, 1000, 100)
    return len(HOME_FILES)


def volume_dir(lab: ComposeLab, volume: str) -> Path:
    """Where the private engine keeps a named volume's files on this machine."""
    out = lab.docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()
    return Path(out)


def claim_dir(cluster, namespace: str, claim: str) -> Path:
    """The hostPath directory of the static PersistentVolume bound to a claim (the test's
    stand-in for K3s's local-path provisioner, whose volumes are directories too)."""
    core = cluster.core()
    pvc = core.read_namespaced_persistent_volume_claim(claim, namespace)
    assert pvc.status.phase == "Bound", f"{namespace}/{claim}: {pvc.status.phase}"
    return Path(core.read_persistent_volume(pvc.spec.volume_name).spec.host_path.path)


# -- the generated runbook ---------------------------------------------------------------------


def bash_blocks(runbook: Path, heading: str) -> list[str]:
    """Every ```bash block of the section whose heading starts with ``heading`` (up to the next
    heading of the same or a higher level; a '#' line inside a code block is no heading)."""
    blocks: list[str] = []
    level, fence, block = 0, False, []
    for line in runbook.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if fence and level and block is not None:
                blocks.append("".join(block))
            fence = not fence
            block = [] if fence and line.strip() == "```bash" else None
            continue
        if fence:
            if block is not None:
                block.append(line)
            continue
        m = re.match(r"(#+) ", line)
        if m and level and len(m[1]) <= level:
            break
        if m and not level and line[len(m[0]) :].startswith(heading):
            level = len(m[1])
    assert level, f"no section {heading!r} in {runbook}"
    assert blocks, f"section {heading!r} has no bash block"
    return blocks


def compose_prelude(lab: ComposeLab) -> str:
    """`docker compose` is Debian's docker-compose 1.29 (through the e2e test's shim) with the
    test's override: the same project, the same loopback ports."""
    argv = " ".join(shlex.quote(a) for a in lab.compose_argv()[:5])  # python3 -c SHIM -p NAME
    override = shlex.quote(str(lab.profile / "test-override.yml"))
    return (
        'docker() { if [ "$1" = compose ]; then shift; '
        f'{argv} -f docker-compose.yml -f {override} "$@"; '
        'else command docker "$@"; fi; }\n'
    )


def run_bash(script: str, cwd: Path, env: dict[str, str], what: str,
             timeout_s: float = 600) -> str:  # fmt: skip
    # -e -u: a failing command or an unset variable stops the block (an admin would stop
    # there too); no pipefail: `... | head -1` in the runbook is fine as written
    r = subprocess.run(["bash", "-c", "set -eu\n" + script], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
    assert r.returncode == 0, f"runbook {what} failed (exit {r.returncode}):\n{r.stderr[-4000:]}"
    return r.stdout


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


def verify_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout)
