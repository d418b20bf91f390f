"""The CLI's options are its typed records' fields, and reading them stays light: ``labcap
--help`` imports none of the heavy libraries (numpy, pandas, jinja2, kubernetes ...)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from labcap.cli import cli
from labcap.deploy_profiles.settings import ProfileOptions
from labcap.lab.settings import LabOptions, LabUpOptions
from labcap.measure.settings import CleanupOptions, DemoOptions, SessionSettings, StartupOptions
from labcap.planner.settings import GateOptions, PlanOptions
from labcap.reports.settings import ReportOptions
from labcap.verify.settings import VerifyOptions

RECORDS = [
    (("run",), SessionSettings),
    (("demo",), DemoOptions),
    (("plan",), PlanOptions),
    (("report",), ReportOptions),
    (("gate",), GateOptions),
    (("verify",), VerifyOptions),
    (("probe", "startup"), StartupOptions),
    (("profile",), ProfileOptions),
    (("cleanup",), CleanupOptions),
    (("lab", "up"), LabUpOptions),
    (("lab", "down"), LabOptions),
    (("lab", "status"), LabOptions),
]


def _command(path: tuple[str, ...]):
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    return cmd


# how a command prints, not what it does: options of cli.py's own, not a record's fields
PRESENTATION = ("as_json", "resolve_only", "quiet", "verbose", "fail_on_slo")


@pytest.mark.parametrize(("path", "record"), RECORDS, ids=[" ".join(p) for p, _ in RECORDS])
def test_a_commands_parameters_are_its_records_fields_in_order(path, record):
    # the hidden deprecated spellings (labcap.cliopts) are not fields of their own
    params = [
        p
        for p in _command(path).params
        if p.name not in PRESENTATION and not p.name.startswith("_deprecated_")
    ]
    fields = [f for f in dataclasses.fields(record) if "cli" in f.metadata]
    assert [p.name for p in params] == [f.name for f in fields]
    for param, f in zip(params, fields, strict=True):
        how = f.metadata["cli"]
        assert (param.param_type_name == "argument") == how.get("argument", False)
        assert getattr(param, "help", None) == how.get("help")
        assert param.required == (f.default is dataclasses.MISSING)
        if f.default is not dataclasses.MISSING:
            assert param.default == f.default
        if "flags" in how:
            assert tuple(param.opts + param.secondary_opts) == tuple(
                flag for spec in how["flags"] for flag in spec.split("/")
            )


HEAVY = ("numpy", "pandas", "pyarrow", "jinja2", "yaml", "kubernetes", "docker", "plotly")
HEAVY += ("locust", "gevent", "requests", "psutil")
HEAVY += ("labcap.verify.checks", "labcap.deploy_profiles.render", "labcap.lab._reference")


def test_the_cli_imports_no_heavy_library_until_a_command_runs():
    code = (
        "import json, sys; import labcap.cli; "
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("package", ["labcap.verify", "labcap.deploy_profiles", "labcap.lab"])
def test_a_lazy_package_still_gives_every_public_name(package):
    code = (
        "import importlib, json; "
        f"pkg = importlib.import_module({package!r}); "
        "homes = {n: getattr(pkg, n).__module__ if hasattr(getattr(pkg, n), '__module__') "
        "and not isinstance(getattr(pkg, n), (str, int, tuple, dict)) else None "
        "for n in pkg.__all__}; print(json.dumps(homes))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    homes = json.loads(out.stdout)
    assert homes and all(m is None or m.startswith(package + ".") for m in homes.values())
    pkg = __import__(package, fromlist=["_"])
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        pkg.nothing_here  # noqa: B018


def test_every_sizing_option_reaches_the_profile_settings(tmp_path):
    from labcap.deploy_profiles.make import profile_settings
    from labcap.deploy_profiles.sizing import ProfileSettings

    opts = ProfileOptions(
        run_dir=tmp_path,
        platform="k3s",
        out=tmp_path / "out",
        expected_users=40,
        gpus=2,
        gpu_sharing="time-slicing",
        gpu_users=8,
        time_slicing_replicas=4,
        mig_profiles=("1g.10gb=4",),
        gpu_model="A100-80GB",
        domain="x.example.org",
        cpu_per_user=1.5,
        mem_per_user_gib=3.0,
        admin_users=("ada", "grace"),
        idle_timeout_s=1800,
        image_pins=("notebook=example.org/nb:1",),
    )
    settings = profile_settings(opts)
    shared = {f.name for f in dataclasses.fields(ProfileSettings)} & {
        f.name for f in dataclasses.fields(ProfileOptions)
    }
    assert len(shared) == 13
    assert settings.images == (("notebook", "example.org/nb:1"),)
    assert all(getattr(settings, n) == getattr(opts, n) for n in shared)
    assert settings.mem_per_user_gib == 3.0 and settings.domain == "x.example.org"
