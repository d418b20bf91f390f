"""``labcap probe startup`` as one call: spawn storms on Docker or Kubernetes.

``probe_startup`` checks the options, builds the probe's settings and runs it on the
chosen back-end (``labcap.measure.probes``); ``describe_startup`` is the table it prints.
"""

from __future__ import annotations

import shlex
from typing import Any

from labcap.errors import LabcapError
from labcap.measure.probes import docker, k8s
from labcap.measure.run import Progress
from labcap.measure.session import default_out, interrupt_on_sigterm
from labcap.measure.settings import StartupOptions
from labcap.units import parse_duration, parse_user_steps


def probe_startup(opts: StartupOptions, progress: Progress) -> Any:
    """Run the spawn storms ``opts`` ask for; returns the probe's result (its run directory,
    status, per-concurrency rows)."""
    if opts.target == "k8s":
        return _probe_k8s(opts, progress)
    if opts.target != "docker":
        raise LabcapError(f"--target {opts.target!r}: choose one of docker, k8s")
    if opts.kubeconfig or opts.kube_context:
        raise LabcapError("--kubeconfig and --context need --target k8s")
    settings = docker.StartupProbeSettings(
        image=opts.image,
        concurrency=parse_user_steps(opts.concurrency),
        repeat=opts.repeat,
        command=tuple(shlex.split(opts.command)) if opts.command else (),
        env=tuple(opts.env),
        port=opts.port,
        path=opts.path,
        timeout_s=parse_duration(opts.timeout, what="--timeout"),
        interval_s=parse_duration(opts.interval, what="--interval"),
        slos=tuple(opts.slos) or docker.DEFAULT_SLOS,
    )
    interrupt_on_sigterm()
    out = opts.out or default_out("probe-startup")
    return docker.run_startup_probe(settings, out, overwrite=opts.overwrite, progress=progress)


def _probe_k8s(opts: StartupOptions, progress: Progress) -> Any:
    if opts.port is not None:
        raise LabcapError(
            "--port is for --target docker; with k8s, readiness is the pod's Ready condition"
        )
    settings = k8s.K8sProbeSettings(
        image=opts.image,
        concurrency=parse_user_steps(opts.concurrency),
        repeat=opts.repeat,
        command=tuple(shlex.split(opts.command)) if opts.command else (),
        env=tuple(opts.env),
        timeout_s=parse_duration(opts.timeout, what="--timeout"),
        interval_s=parse_duration(opts.interval, what="--interval"),
        slos=tuple(opts.slos) or docker.DEFAULT_SLOS,
        kubeconfig=opts.kubeconfig,
        context=opts.kube_context,
        pull_policy=opts.pull_policy,
    )
    interrupt_on_sigterm()
    out = opts.out or default_out("probe-startup-k8s")
    return k8s.run_k8s_startup_probe(settings, out, overwrite=opts.overwrite, progress=progress)


def describe_startup(result: Any, target: str) -> str:
    """The startup percentiles per concurrency, then the run directory and its status."""
    table = (k8s if target == "k8s" else docker).format_table(result.rows)
    return f"{table}\nrun directory: {result.path} ({result.status})"
