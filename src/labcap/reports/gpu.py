"""GPU timelines for the run report: activity and memory per GPU / MIG instance, beside users."""

from __future__ import annotations

from typing import Any

from labcap.store import GPU_SAMPLES


def _label(row: Any) -> str:
    name = f"GPU {int(row['gpu_index'])}"
    mig = row["mig_instance"]
    if mig is not None and mig == mig:  # NaN is not equal to itself
        profile = row.get("mig_profile")
        name += f" / MIG {int(mig)}" + (f" ({profile})" if isinstance(profile, str) else "")
    pod = row.get("pod")
    if isinstance(pod, str) and pod:
        name += f" · {pod}"
    return f"{name} [{row['source']}]"


def gpu_figures(run: Any, windows: Any) -> list[tuple[str, str, Any]]:
    """Activity % and memory % per device over time, with the active users on a second axis."""
    import plotly.graph_objects as go

    samples = run.table(GPU_SAMPLES)
    if samples is None or not len(samples) or "t_s" not in samples.columns:
        return []
    samples = samples.sort_values("t_s", kind="stable")
    labels = [_label(r) for _, r in samples.iterrows()]
    samples = samples.assign(_label=labels)
    # whole GPUs report utilisation; MIG instances only engine activity
    act = samples["util_gpu_pct"].astype(float).fillna(samples["engine_active_pct"].astype(float))
    samples = samples.assign(_act=act)
    activity, memory = go.Figure(), go.Figure()
    for label, part in samples.groupby("_label", sort=True):
        if part["_act"].notna().any():
            activity.add_scatter(x=part["t_s"], y=part["_act"], name=label, mode="lines")
        mem = 100 * part["mem_used_bytes"].astype(float) / part["mem_total_bytes"].astype(float)
        if mem.notna().any():
            memory.add_scatter(x=part["t_s"], y=mem, name=label, mode="lines")
    for fig in (activity, memory):
        if len(windows):
            users = windows.groupby("window_index").agg(
                end_s=("end_s", "first"), active=("active_users", "max")
            )
            fig.add_scatter(
                x=users["end_s"],
                y=users["active"],
                name="active users",
                yaxis="y2",
                line={"dash": "dot", "color": "#444"},
            )
        fig.update_layout(
            xaxis_title="seconds since start",
            yaxis_range=[0, 100],
            yaxis2={"title": "users", "overlaying": "y", "side": "right"},
        )
    activity.update_layout(yaxis_title="% busy (utilisation; MIG: engine active)")
    memory.update_layout(yaxis_title="GPU memory used, %")
    return [
        ("gpu-activity", "GPU activity per device / MIG instance, beside users", activity),
        ("gpu-memory", "GPU memory per device / MIG instance, beside users", memory),
    ]
