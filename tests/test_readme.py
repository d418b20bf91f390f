"""The README's commands are true: every one names real subcommands and options, and the
blocks marked to run in CI run.

Conventions (README.md, section "This README's commands are tested"):

- every fenced ```bash block is checked by parsing: each `labcap ...` invocation's
  subcommand path and its options must exist in the CLI's click command tree (nothing is
  executed). Inline code spans that start with `labcap ` or with a top-level subcommand
  and an option (`gate --min-effect-ms`) are checked the same way, and every `--flag`
  written anywhere in the README must be an option of some labcap command or a listed flag
  of another tool (FOREIGN_FLAGS).
- a block fenced ```bash title="runs-in-ci" is also executed, in a fresh directory, with a
  `labcap` on PATH that runs this checkout, against loopback targets this test starts (two
  tests/support/target_server.py, their URLs in `$LAB_URL` and `$CANDIDATE_URL`). A block
  fenced with another language and `title="FILE"` (```python title="my_locustfile.py") is
  written to FILE there first. Each command must exit 0, except `labcap gate`, whose
  verdicts 0 (pass), 1 (regression) and 3 (inconclusive) are the measurement, not a broken
  command; its usage error 2 fails. Files the commands name (`--out` run directories,
  `--junit`, `report`'s HTML) must exist afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from tests.support.servers import loopback_server

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Flags the README names that belong to other tools (Locust, dockerd, docker build, npm, pip,
# mlflow, curl ...), not to labcap. A new one here must really be another tool's.
FOREIGN_FLAGS = {
    "--exit-code-on-error",  # Locust's, compared with --fail-on-slo
    "--bridge",  # dockerd --bridge=none
    "--network",  # docker build --network host
    "--app-name",  # mlflow server --app-name basic-auth
    "--prefix",  # npm install --prefix
    "--labcap",  # scripts/lab-images --labcap (builds labcap's own image)
}

FENCE = re.compile(r"^```(\S*)(.*)$")
TITLE = re.compile(r'title="([^"]+)"')
RUNS_IN_CI = "runs-in-ci"
# a labcap gate verdict is a measurement: pass, regression, inconclusive
GATE_VERDICTS = {0, 1, 3}
BLOCK_TIMEOUT_S = 150  # a bound for a hung block, not an expected duration


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    text: str
    line: int  # 1-based line of the opening fence


def fenced_blocks(markdown: str) -> list[Block]:
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        t = TITLE.search(m.group(2))
        blocks.append(Block(m.group(1), t.group(1) if t else None, "\n".join(body), start + 1))
        i += 1
    return blocks


def logical_lines(script: str) -> list[str]:
    """Join backslash continuations; drop blank and comment-only lines."""
    out, cur = [], ""
    for raw in script.splitlines():
        if raw.rstrip().endswith("\\"):
            cur += raw.rstrip()[:-1] + " "
            continue
        cur += raw
        if cur.strip() and not cur.strip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def simple_commands(line: str) -> list[list[str]]:
    """Split a shell line into simple commands (on ; && || | and redirections)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        tokens = list(lex)
    except ValueError:  # unbalanced quotes in prose: plain words
        tokens = line.split()
    cmds, cur = [], []
    for tok in tokens:
        if tok and set(tok) <= set(";&|<>()"):
            if cur:
                cmds.append(cur)
            cur = []
        else:
            cur.append(tok)
    if cur:
        cmds.append(cur)
    return cmds


def labcap_args(cmd: list[str]) -> list[str] | None:
    """The arguments after `labcap` when this simple command runs labcap, else None."""
    words = list(cmd)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value prefixes
        words.pop(0)
    if words and (words[0] == "labcap" or words[0].endswith("/labcap")):
        return words[1:]
    return None


def _opts(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in command.params:
        names.update(o for o in (*p.opts, *p.secondary_opts) if o.startswith("-"))
    return names


def cli_tree() -> click.Command:
    from labcap.cli import cli  # imported here: the test's subject

    return cli


def all_cli_options() -> set[str]:
    found: set[str] = set()

    def walk(c: click.Command) -> None:
        found.update(_opts(c))
        if isinstance(c, click.Group):
            for sub in c.commands.values():
                walk(sub)

    walk(cli_tree())
    return found


def check_invocation(args: list[str]) -> list[str]:
    """Problems with `labcap ARGS` against the command tree (empty when it is right)."""
    command: click.Command = cli_tree()
    path = ["labcap"]
    words = [w.strip("[]") for w in args]
    words = [w for w in words if w and w != "..."]
    problems = []
    i = 0
    # subcommands (options of a group, such as --version, may come first)
    while isinstance(command, click.Group) and i < len(words):
        w = words[i]
        if w.startswith("-"):
            if w.split("=", 1)[0] not in _opts(command):
                problems.append(f"`{' '.join(path)}` has no option {w}")
            i += 1
            continue
        sub = command.commands.get(w)
        if sub is None:
            problems.append(f"`{' '.join(path)}` has no subcommand {w!r}")
            return problems
        command, path = sub, [*path, w]
        i += 1
    known = _opts(command)
    for w in words[i:]:
        # `--expected-users/--growth-per-month/--policy` in prose lists several
        for opt in w.split("/") if w.startswith("--") else [w]:
            if re.fullmatch(r"--[a-z0-9][a-z0-9-]*(=.*)?|-[a-zA-Z]", opt):
                name = opt.split("=", 1)[0]
                if name not in known:
                    problems.append(f"`{' '.join(path)}` has no option {name}")
    return problems


def readme_invocations(markdown: str) -> list[tuple[int, str, list[str]]]:
    """(line, source, args) of every labcap invocation in bash blocks and inline code."""
    found = []
    for block in fenced_blocks(markdown):
        if block.lang != "bash":
            continue
        for line in logical_lines(block.text):
            for cmd in simple_commands(line):
                args = labcap_args(cmd)
                if args is not None:
                    found.append((block.line, line, args))
    top = set(cli_tree().commands)  # type: ignore[attr-defined]
    in_fence = False
    for n, text in enumerate(markdown.splitlines(), 1):
        if text.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for span in re.findall(r"`([^`]+)`", text):
            words = span.split()
            if not words:
                continue
            if words[0] == "labcap":
                for cmd in simple_commands(span):
                    args = labcap_args(cmd)
                    if args is not None:
                        found.append((n, span, args))
            elif words[0] in top and len(words) > 1 and any(w.startswith("--") for w in words):
                found.append((n, span, words))
    return found


def readme_problems(markdown: str) -> list[str]:
    problems = []
    invocations = readme_invocations(markdown)
    for line, source, args in invocations:
        problems += [f"README.md:{line}: {p}  [{source}]" for p in check_invocation(args)]
    known = all_cli_options() | FOREIGN_FLAGS
    for n, text in enumerate(markdown.splitlines(), 1):
        for flag in re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", text):
            if flag not in known:
                problems.append(f"README.md:{n}: no labcap command has {flag}")
    return problems


def test_readme_names_only_real_subcommands_and_options():
    markdown = README.read_text()
    assert len(readme_invocations(markdown)) > 50, "the README's commands were not found"
    assert readme_problems(markdown) == []


def test_the_check_catches_a_wrong_flag_and_a_wrong_subcommand():
    # the same check on a README with one broken command in a bash block and one inline
    broken = (
        "```bash\nlabcap run --host URL --userz 10\nlabcap lab upp\n```\n"
        "then `labcap gate A B --junitt x`\n"
    )
    problems = readme_problems(broken)
    assert any("`labcap run` has no option --userz" in p for p in problems)
    assert any("`labcap lab` has no subcommand 'upp'" in p for p in problems)
    assert any("`labcap gate` has no option --junitt" in p for p in problems)


def _runnable() -> list[Block]:
    return [
        b for b in fenced_blocks(README.read_text()) if b.lang == "bash" and b.title == RUNS_IN_CI
    ]


def test_the_readme_marks_blocks_to_run():
    assert 2 <= len(_runnable()) <= 4  # a few, short: the executed set stays near 2 minutes


def _labcap_on_path(bindir: Path) -> None:
    """A `labcap` executable as pip writes one: this interpreter, labcap from this checkout."""
    exe = bindir / "labcap"
    exe.write_text(f"#!{sys.executable}\nfrom labcap.cli import main\n\nmain()\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def _outputs(args: list[str]) -> list[tuple[str, str]]:
    """(kind, path) of the files a labcap invocation says it writes."""

    def after(*flags: str) -> str | None:
        for flag in flags:
            if flag in args[:-1]:
                return args[args.index(flag) + 1]
        return None

    cmd = args[:1]
    out = []
    if cmd == ["run"] and after("--out"):
        out.append(("run", after("--out")))
    if cmd in (["gate"], ["verify"]) and after("--junit"):
        out.append(("junit", after("--junit")))
    if cmd == ["report"]:
        rest = [a for a in args[1:] if not a.startswith("-")]
        out.append(("file", after("-o", "--output") or f"{rest[0]}/report.html"))
    return out


@pytest.mark.parametrize("block", _runnable(), ids=lambda b: f"README.md:{b.line}")
def test_readme_block_runs(block, tmp_path):
    work, bindir = tmp_path / "work", tmp_path / "bin"
    work.mkdir()
    bindir.mkdir()
    _labcap_on_path(bindir)
    for f in fenced_blocks(README.read_text()):
        if f.title and f.title != RUNS_IN_CI and f.lang != "bash":
            (work / f.title).parent.mkdir(parents=True, exist_ok=True)
            (work / f.title).write_text(f.text + "\n")
    commands = logical_lines(block.text)
    rc_file = tmp_path / "rc"
    script = [f"exec 3>{shlex.quote(str(rc_file))}"]
    for i, line in enumerate(commands):
        script += [line, f'echo "{i} $?" >&3']
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCAP_")}
    env["PATH"] = f"{bindir}:{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    # two deployments of the same service: the one in service and a candidate
    with loopback_server("target_server.py") as url, loopback_server("target_server.py") as new:
        env["LAB_URL"], env["CANDIDATE_URL"] = url, new
        proc = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
    codes = dict(line.split() for line in rc_file.read_text().splitlines())
    tail = f"\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    for i, line in enumerate(commands):
        rc = int(codes.get(str(i), -1))
        args = next((a for c in simple_commands(line) if (a := labcap_args(c)) is not None), None)
        ok = GATE_VERDICTS if args and args[:1] == ["gate"] else {0}
        assert rc in ok, f"`{line}` exited {rc} (expected {sorted(ok)}){tail}"
        for kind, path in _outputs(args or []):
            target = work / path
            if kind == "run":
                assert (target / "manifest.json").is_file(), f"`{line}`: no {path}/manifest.json"
                if "--candidate-host" not in args:  # a paired run's are per side, on read
                    assert (target / "steps.parquet").is_file(), f"`{line}`: no steps.parquet"
            elif kind == "junit":
                cases = list(ET.parse(target).getroot().iter("testcase"))
                assert cases, f"`{line}`: no testcase in {path}"
            else:
                assert target.is_file() and target.stat().st_size > 0, f"`{line}`: no {path}"
