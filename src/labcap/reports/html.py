"""One self-contained HTML report per run: plotly.js inlined once, no network to view it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.model import ALL_ENDPOINTS, CANDIDATE_SIDE
from labcap.planner.capacity import CapacityPlan, plan_capacity
from labcap.planner.gpu_evidence import plan_gpu_evidence
from labcap.planner.plan_file import DecisionInputs, read_saved_inputs
from labcap.planner.policy import load_policy
from labcap.reports.decision import decide, decision_view
from labcap.reports.gpu import gpu_figures
from labcap.reports.wording import add_slo_lines, capacity_text, integer_axis, latency_slos
from labcap.store import RunDir, atomic_write_bytes

TEMPLATES = Path(__file__).with_name("templates")


def _figures(plan: CapacityPlan, windows: Any, host: Any) -> list[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    figs: list[tuple[str, str, Any]] = []
    endpoints = sorted({e.endpoint for e in plan.endpoints if e.endpoint != ALL_ENDPOINTS})
    lat = go.Figure()
    for ep in endpoints:
        rows = [e for e in plan.endpoints if e.endpoint == ep]
        lat.add_scatter(
            x=[r.users for r in rows], y=[r.p95_ms for r in rows], mode="lines+markers", name=ep
        )
    users = sorted({s.users for s in plan.steps if s.verdict != "not-run"})
    add_slo_lines(lat, latency_slos(plan.slos, "p95_ms", endpoints), users)
    lat.update_layout(
        xaxis_title="concurrent users (step)",
        yaxis_title="p95 latency (ms)",
        yaxis_type="log",
        xaxis=integer_axis(users),
    )
    figs.append(("latency", "p95 latency per endpoint vs users", lat))

    overall = [e for e in plan.endpoints if e.endpoint == ALL_ENDPOINTS]
    pct = go.Figure()
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        pct.add_scatter(
            x=[r.users for r in overall],
            y=[getattr(r, q) for r in overall],
            mode="lines+markers",
            name=q.replace("_ms", ""),
        )
    run_wide = [x for x in plan.slos if x.endpoint is None]
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        add_slo_lines(pct, latency_slos(run_wide, q, [ALL_ENDPOINTS]), users)
    pct.update_layout(
        xaxis_title="concurrent users (step)",
        yaxis_title="latency (ms)",
        yaxis_type="log",
        xaxis=integer_axis(users),
    )
    figs.append(("percentiles", "Latency percentiles, all endpoints", pct))

    thr = go.Figure()
    thr.add_bar(x=[str(r.users) for r in overall], y=[r.rps for r in overall], name="req/s")
    thr.add_bar(
        x=[str(r.users) for r in overall],
        y=[r.rps * r.error_pct / 100 for r in overall],
        name="failed req/s",
    )
    thr.update_layout(
        xaxis_title="concurrent users (step)", yaxis_title="requests per second", barmode="overlay"
    )
    figs.append(("throughput", "Throughput per step", thr))

    if len(windows):
        per_window = windows.groupby("window_index").agg(
            start_s=("start_s", "first"),
            end_s=("end_s", "first"),
            active=("active_users", "max"),
            requests=("requests", "sum"),
            p95=("p95_us", "max"),
        )
        tl = go.Figure()
        dur = (per_window["end_s"] - per_window["start_s"]).clip(lower=1e-9)
        tl.add_scatter(x=per_window["end_s"], y=per_window["requests"] / dur, name="req/s")
        tl.add_scatter(
            x=per_window["end_s"],
            y=per_window["active"],
            name="active users",
            yaxis="y2",
            line={"dash": "dot"},
        )
        tl.update_layout(
            xaxis_title="seconds since start",
            yaxis_title="requests per second",
            yaxis2={
                "title": "users",
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                **integer_axis([0, *per_window["active"].tolist()], at_values=False),
            },
        )
        figs.append(("timeline", "Timeline: throughput and users per window", tl))
    if host is not None and len(host) and "t_s" in host.columns:
        # psutil rows: this machine; prometheus rows: the lab's nodes (--prometheus-url)
        source = host["source"] if "source" in host.columns else None
        here = host if source is None else host[source != "prometheus"]
        if len(here):
            title = "Host resources (the machine labcap ran on)"
            figs.append(("resources", title, _host_figure(go, here)))
        if source is not None:
            lab = host[source == "prometheus"]
            for i, (instance, rows) in enumerate(lab.groupby("instance")):
                title = f"The lab's host {instance} (node-exporter, via its Prometheus)"
                figs.append((f"lab-host-{i}", title, _host_figure(go, rows)))
    figs.extend(_docker_figures(plan))
    figs.extend(_k8s_figures(plan))

    figs.extend(gpu_figures(RunDir(Path(plan.run)), windows))
    return figs


def _k8s_figures(plan: CapacityPlan) -> list[tuple[str, str, Any]]:
    """Kubernetes runs: node allocatable vs requested, and scheduling conflicts by reason."""
    import plotly.graph_objects as go

    run = RunDir(Path(plan.run))
    figs: list[tuple[str, str, Any]] = []
    nodes = run.table("node_inventory")
    if nodes is not None and len(nodes):
        last = nodes.sort_values("t_unix").groupby("node").tail(1)
        inv = go.Figure()
        for what, alloc, req, scale in (
            ("CPU (cores)", "cpu_allocatable_m", "cpu_requested_m", 1000),
            ("memory (GiB)", "mem_allocatable_bytes", "mem_requested_bytes", 2**30),
            ("GPUs", "gpu_allocatable", "gpu_requested", 1),
        ):
            x = [f"{n} {what}" for n in last["node"]]
            inv.add_bar(x=x, y=last[alloc] / scale, name=f"allocatable {what}")
            inv.add_bar(x=x, y=last[req] / scale, name=f"requested {what}")
        inv.update_layout(barmode="group", yaxis_title="amount (at the end of the run)")
        figs.append(("k8s-nodes", "Kubernetes nodes: allocatable vs requested", inv))
    conflicts = run.table("scheduling_conflicts")
    if conflicts is not None and len(conflicts):
        what = conflicts["kind"] + conflicts["resources"].map(lambda r: f" ({r})" if r else "")
        counts = what.value_counts()
        bar = go.Figure()
        bar.add_bar(x=list(counts.index), y=list(counts.values), name="pods")
        bar.update_layout(yaxis_title="records (one per pod and reason)")
        figs.append(("k8s-conflicts", "Kubernetes scheduling conflicts and pod trouble", bar))
    return figs


def _host_figure(go: Any, host: Any) -> Any:
    res = go.Figure()
    res.add_scatter(x=host["t_s"], y=host["cpu_pct"], name="CPU %")
    res.add_scatter(x=host["t_s"], y=host["iowait_pct"], name="I/O wait %")
    res.add_scatter(
        x=host["t_s"],
        y=100 * host["mem_used_bytes"] / host["mem_total_bytes"],
        name="memory used %",
    )
    res.update_layout(
        xaxis_title="seconds since start", yaxis_title="% of host", yaxis_range=[0, 100]
    )
    return res


def _docker_figures(plan: CapacityPlan) -> list[tuple[str, str, Any]]:
    """Startup phases per step and per-container resources, when the run has them."""
    import plotly.graph_objects as go

    run = RunDir(Path(plan.run))
    figs: list[tuple[str, str, Any]] = []
    recs = run.table("startup_records")
    if recs is not None and len(recs) and "step_index" in recs.columns:
        users = {s.index: s.users for s in plan.steps}
        recs = recs[recs["step_index"] >= 0]
        label = recs["step_index"].map(lambda i: str(users.get(int(i), i)))
        box = go.Figure()
        # Kubernetes records add the pod conditions (watch clock) to Docker's phases
        phases = ("scheduled", "initialized", "running", "healthy", "http_ready",
                  "containers_ready", "ready")  # fmt: skip
        for phase in (p for p in phases if f"{p}_s" in recs.columns):
            ms = recs[f"{phase}_s"] * 1000
            if ms.notna().any():
                box.add_box(x=label[ms.notna()], y=ms.dropna(), name=phase, boxpoints="all")
        box.update_layout(
            boxmode="group",
            xaxis_title="step (concurrent users, or containers started at once)",
            yaxis_title="ms after the container was created",
        )
        title = "Container startup phases per step (engine timestamps; pods: watch clock)"
        figs.append(("startup", title, box))
    samples = run.table("container_samples")
    if samples is not None and len(samples):
        t = samples["t_unix"]
        x = samples["t_s"] if "t_s" in samples.columns else t - t.min()
        top = samples.groupby("container")["cpu_pct"].max().nlargest(20).index
        cpu, mem = go.Figure(), go.Figure()
        for name in top:
            rows = samples["container"] == name
            cpu.add_scatter(x=x[rows], y=samples["cpu_pct"][rows], name=name, mode="lines")
            mem.add_scatter(
                x=x[rows], y=samples["mem_bytes"][rows] / 2**20, name=name, mode="lines"
            )
        cpu.update_layout(xaxis_title="seconds since start", yaxis_title="CPU % of one core")
        mem.update_layout(xaxis_title="seconds since start", yaxis_title="memory (MiB)")
        figs.append(("container-cpu", "Container CPU (cgroup counters)", cpu))
        figs.append(("container-memory", "Container memory, without page cache", mem))
    return figs


_OPTIONAL_MANIFEST_FIELDS: dict[str, Any] = {
    "tool": {"name": "labcap", "version": "unknown"},
    "target": "unknown",
    "started_at": "unknown",
    "hosts": {},
    "notes": [],
    "environment": {},
    "calibration": None,
    "lockstep": None,
    "search": None,
    "generator": None,
}
_ENVIRONMENT_FIELDS: dict[str, Any] = {
    "cpu_model": "unknown",
    "cpu_count": "?",
    "mem_total_bytes": 0,
    "os": "unknown",
    "python": "?",
    "packages": {},
}


def _with_defaults(manifest: dict[str, Any]) -> dict[str, Any]:
    """Fields the report shows but a run can lack (older or hand-edited manifests)."""
    out = {**_OPTIONAL_MANIFEST_FIELDS, **manifest}
    out["environment"] = {**_ENVIRONMENT_FIELDS, **(out.get("environment") or {})}
    return out


def chart_sections(figures: list[tuple[str, str, Any]], *, height: int) -> list[dict[str, str]]:
    """Each figure as an HTML fragment; plotly.js is inlined once, in the first."""
    import plotly.io as pio

    charts = []
    for i, (anchor, title, fig) in enumerate(figures):
        fig.update_layout(
            margin={"l": 60, "r": 40, "t": 30, "b": 50}, height=height, template="plotly_white"
        )
        html = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=(i == 0),
            config={"displaylogo": False, "responsive": True},
        )
        charts.append({"anchor": anchor, "title": title, "html": html})
    return charts


def template(name: str) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(name)


def render_run_report(
    run: RunDir, plan: CapacityPlan | None = None, inputs: DecisionInputs | None = None
) -> str:
    """The run's report; the recommendation first, weighed on ``inputs`` (default: what
    ``labcap plan`` saved beside the run, if anything). A paired run: each side's table,
    then the candidate's report."""
    inputs = inputs if inputs is not None else (read_saved_inputs(run.path) or DecisionInputs())
    outcome = decide(run.path, inputs)
    sides = []
    if run.side is None and run.sides():
        stored = run.manifest["sides"]
        for name in run.sides():
            side_plan = plan_capacity(run.side_view(name))
            endpoints = [e for e in side_plan.endpoints if e.endpoint != ALL_ENDPOINTS]
            host = stored[name].get("hosts", {}).get("default", "")
            sides.append({"name": name, "host": host, "endpoints": endpoints})
        run = run.side_view(CANDIDATE_SIDE)
        plan = plan or plan_capacity(run)
    plan = plan or outcome.capacity
    windows = run.windows()
    failures = run.failures()
    charts = chart_sections(_figures(plan, windows, run.table("host_samples")), height=360)

    gpu = (
        outcome.gpu if outcome.gpu is not None else plan_gpu_evidence(run, plan, load_policy(None))
    )
    top_failures = []
    if len(failures):
        agg = failures.groupby(["endpoint", "reason"], as_index=False)["count"].sum()
        top_failures = agg.sort_values("count", ascending=False).head(25).to_dict("records")
    return template("run.html.j2").render(
        plan=plan,
        decision=decision_view(outcome, inputs, run.path),
        capacity=capacity_text(plan),
        manifest=_with_defaults(run.manifest),
        charts=charts,
        failures=top_failures,
        endpoints=[e for e in plan.endpoints if e.endpoint != ALL_ENDPOINTS],
        slowest=slowest_endpoint(plan),
        gpu=gpu if gpu.available else None,
        sides=sides,
    )


def slowest_endpoint(plan: CapacityPlan) -> dict[int, tuple[float, str]]:
    """Per step, the highest p95 of any one endpoint and which: the steps table shows it
    instead of a p95 of all requests together (spawns and API calls mixed)."""
    out: dict[int, tuple[float, str]] = {}
    for e in plan.endpoints:
        if e.endpoint == ALL_ENDPOINTS or e.p95_ms is None:
            continue
        if e.step_index not in out or e.p95_ms > out[e.step_index][0]:
            out[e.step_index] = (e.p95_ms, e.endpoint)
    return out


def write_run_report(
    run_path: str | Path, out: str | Path | None = None, inputs: DecisionInputs | None = None
) -> Path:
    """Render a run's report to ``out`` (default: ``report.html`` in the run directory)."""
    run = RunDir.open(run_path)
    target = Path(out) if out else run.path / "report.html"
    if target.is_dir():
        raise LabcapError(f"{target} is a directory: give a file name such as report.html")
    if not target.parent.exists():
        raise LabcapError(f"{target.parent}: no such directory")
    atomic_write_bytes(target, render_run_report(run, inputs=inputs).encode("utf-8"))
    return target
