"""The decision policy: the deployment guide's matrix as data, not code.

A policy is a YAML document::

    schema_version: 1
    startup_endpoints: [hub.spawn, "startup.*"]   # bindings labcap calls tunable
    confidence: {narrow_band_pct: 25, wide_band_pct: 100, ...}
    rules:
      - id: capacity-below-expected
        when: {metric: capacity_ratio, op: "<", value: 0.8}
        action: migrate-to-k3s
        weight: 3
        message: "Measured capacity {max_users_at_slo} is below the {expected_users} expected."

A condition (``when``) is a comparison ``{metric, op, value}`` over one of the
measured quantities in ``METRICS``, or ``{all: [...]}``, ``{any: [...]}``,
``{not: ...}`` over conditions. Nothing is evaluated as code. A quantity the
run did not measure makes a comparison *unknown*; ``all``/``any``/``not``
follow three-valued logic, and a rule whose condition is unknown is
``not-evaluated``, with the missing quantities named.

``labcap plan --policy FILE`` merges a lab's file over the default by rule
id: an entry with a known id replaces the keys it gives (``enabled: false``
turns a rule off), an entry with a new id adds a rule. Every problem is one
``LabcapError`` line naming the file, the rule and the key.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError

POLICY_SCHEMA_VERSION = 1
DEFAULT_POLICY = "default_policy.yaml"

DECISIONS = ("stay-on-compose", "tune-compose", "migrate-to-k3s", "scale-out-k3s")
INSUFFICIENT = "insufficient-data"
ACTIONS = (*DECISIONS, INSUFFICIENT)

BINDING_KINDS = ("latency", "error_rate", "startup", "none")
# planner.bottleneck.COMPONENTS, and "unknown" when no component was seen to saturate
BOTTLENECKS = ("hub", "proxy", "database", "mlflow", "spawner", "user-servers", "gpu", "unknown")
RUN_STATUS_VALUES = ("complete", "partial", "invalid", "failed", "running")

MAX_DEPTH = 8  # nested all/any/not levels; deeper is a mistake, not a policy


@dataclass(frozen=True)
class MetricSpec:
    """A measured quantity a condition can name."""

    name: str
    kind: str  # number | bool | enum
    description: str
    source: str  # where it comes from; "collector" ones are absent until that collector runs
    choices: tuple[str, ...] = ()


def _m(name: str, kind: str, description: str, source: str = "run", choices=()) -> MetricSpec:
    return MetricSpec(name, kind, description, source, tuple(choices))


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        _m("run_status", "enum", "status of the run", choices=RUN_STATUS_VALUES),
        _m("steps_planned", "number", "steps in the load plan"),
        _m("steps_not_run", "number", "planned steps without a steady measurement"),
        _m("steps_no_data", "number", "steps in which every request failed"),
        _m("steps_with_data", "number", "steps with at least one successful request"),
        _m(
            "steps_inconclusive",
            "number",
            "steps up to the limit with too few requests to judge an SLO (planner.capacity."
            "MIN_SAMPLES) and no breach",
        ),
        _m("error_pct_passing", "number", "failed requests, % of all, in the passing steps"),
        _m("error_pct_first_step", "number", "failed requests, %, in the first step"),
        _m("max_users_at_slo", "number", "largest step meeting every SLO (capacity)"),
        _m("capacity_upper_users", "number", "first failing step (top of the capacity band)"),
        _m("band_width_pct", "number", "capacity band width, % of max_users_at_slo"),
        _m("limit_reached", "bool", "a step failed its SLOs (else capacity is a lower bound)"),
        _m("knee_users", "number", "last step where throughput grew with users"),
        _m("binding_kind", "enum", "kind of the SLO that binds first", choices=BINDING_KINDS),
        _m(
            "bottleneck",
            "enum",
            "the component that saturates first (planner.bottleneck)",
            choices=BOTTLENECKS,
        ),
        _m(
            "bottleneck_scales_out",
            "enum",
            "whether more nodes relieve the bottleneck (no: one hub, proxy or database)",
            choices=("yes", "no", "unknown"),
        ),
        _m("expected_users", "number", "concurrent users the lab expects", "--expected-users"),
        _m("growth_pct_per_month", "number", "expected growth, % a month", "--growth-per-month"),
        _m("capacity_ratio", "number", "max_users_at_slo / expected_users", "--expected-users"),
        _m("headroom_users", "number", "max_users_at_slo - expected_users", "--expected-users"),
        _m("nodes_needed", "number", "ceil(expected_users / max_users_at_slo)", "--expected-users"),
        _m(
            "months_until_exhausted",
            "number",
            "months until demand exceeds capacity (inf: never)",
            "--expected-users",
        ),
        _m("gpu_count", "number", "GPUs on the node", "gpu collector"),
        _m("gpu_util_pct", "number", "mean GPU utilisation at the capacity step", "gpu collector"),
        _m("gpu_mem_used_pct", "number", "peak GPU memory used, %", "gpu collector"),
        _m("gpu_users_per_gpu", "number", "concurrent GPU users per physical GPU", "gpu collector"),
        _m(
            "gpu_idle_while_queued_s",
            "number",
            "seconds a GPU (or MIG instance) sat below 50 % while users waited for a server",
            "gpu collector",
        ),
        _m(
            "gpu_queue_wait_p95_ms",
            "number",
            "p95 wait of user servers the scheduler held for want of nvidia.com/gpu "
            "(FailedScheduling), creation to scheduled (planner.scheduling)",
            "kubernetes collector",
        ),
        _m(
            "pods_failed_scheduling",
            "number",
            "pods the scheduler reported FailedScheduling (insufficient cpu, memory, GPU)",
            "kubernetes collector",
        ),
        _m(
            "cpu_throttled_pct",
            "number",
            "CFS periods in which a container was CPU-throttled, % (the most throttled "
            "container, up to the capacity limit; CPU contention)",
            "container collector, or cAdvisor via --prometheus-url",
        ),
        _m(
            "mem_used_pct",
            "number",
            "peak container memory, % of its limit, up to the capacity limit",
            "container collector",
        ),
        _m("oom_kills", "number", "containers OOM-killed during the run", "container collector"),
        _m(
            "container_restarts",
            "number",
            "container restarts up to the capacity limit (crashes, failed health checks)",
            "container collector",
        ),
        _m(
            "host_cpu_pct",
            "number",
            "mean host CPU busy at the capacity limit, on the lab's own host",
            "host collector (lab on this host)",
        ),
        _m(
            "iowait_pct",
            "number",
            "mean CPU I/O wait at the capacity limit, on the lab's own host",
            "host collector (lab on this host) or node-exporter via --prometheus-url",
        ),
    )
}

OPS = ("<", "<=", ">", ">=", "==", "!=", "in", "not in")
_ORDERING = ("<", "<=", ">", ">=")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FORMAT_SPEC = re.compile(r"^[<>^]?\d{0,3}(\.\d{1,2})?[dfg%]?$")


# --- conditions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    metric: str
    op: str
    value: Any

    def text(self) -> str:
        v = (
            "[" + ", ".join(_show(x) for x in self.value) + "]"
            if self.op in ("in", "not in")
            else _show(self.value)
        )
        return f"{self.metric} {self.op} {v}"


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]

    def text(self) -> str:
        return " and ".join(_paren(c) for c in self.items)


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]

    def text(self) -> str:
        return " or ".join(_paren(c) for c in self.items)


@dataclass(frozen=True)
class Not:
    item: Condition

    def text(self) -> str:
        return f"not {_paren(self.item)}"


Condition = Compare | AllOf | AnyOf | Not


def _paren(c: Condition) -> str:
    return c.text() if isinstance(c, Compare) else f"({c.text()})"


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class Evaluation:
    """A condition's outcome: True, False or None (unknown: an input is missing)."""

    result: bool | None
    missing: tuple[str, ...]
    inputs: tuple[tuple[str, Any], ...]  # (metric, measured value) of every comparison


def evaluate(cond: Condition, values: Mapping[str, Any]) -> Evaluation:
    """Kleene three-valued evaluation over measured ``values`` (None = not measured)."""
    if isinstance(cond, Compare):
        v = values.get(cond.metric)
        if v is None:
            return Evaluation(None, (cond.metric,), ((cond.metric, None),))
        return Evaluation(_compare(v, cond.op, cond.value), (), ((cond.metric, v),))
    if isinstance(cond, Not):
        e = evaluate(cond.item, values)
        return Evaluation(None if e.result is None else not e.result, e.missing, e.inputs)
    parts = [evaluate(c, values) for c in cond.items]
    results = [p.result for p in parts]
    decisive = isinstance(cond, AnyOf)  # any: one True decides; all: one False decides
    if decisive in results:
        result: bool | None = decisive
    elif None in results:
        result = None
    else:
        result = not decisive
    missing = tuple(dict.fromkeys(m for p in parts for m in p.missing))
    inputs = tuple({m: v for p in parts for m, v in p.inputs}.items())
    return Evaluation(result, missing if result is None else (), inputs)


def _compare(v: Any, op: str, target: Any) -> bool:
    if op == "==":
        return v == target
    if op == "!=":
        return v != target
    if op == "in":
        return v in target
    if op == "not in":
        return v not in target
    if op == "<":
        return v < target
    if op == "<=":
        return v <= target
    if op == ">":
        return v > target
    return v >= target


# --- rules and policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    when: Condition
    action: str
    message: str
    weight: float = 1.0
    enabled: bool = True

    def render(self, values: Mapping[str, Any]) -> str:
        """The message with ``{metric}`` / ``{metric:.1f}`` filled from measured values."""

        def fill(m: re.Match[str]) -> str:
            name, _, spec = m.group(1).partition(":")
            v = values.get(name.strip())
            if v is None:
                return "n/a"
            if isinstance(v, bool):
                return "yes" if v else "no"
            if isinstance(v, float) and math.isinf(v):
                return "never"
            try:
                return (
                    format(v, spec) if spec else _show(round(v, 2) if isinstance(v, float) else v)
                )
            except (ValueError, TypeError):
                return str(v)

        return _PLACEHOLDER.sub(fill, self.message)


@dataclass(frozen=True)
class ConfidenceSettings:
    """When a recommendation is less than high confidence (see recommend.py)."""

    narrow_band_pct: float = 25.0  # band wider than this: medium
    wide_band_pct: float = 100.0  # wider than this: low
    close_vote_ratio: float = 0.75  # runner-up action's weight at least this share: medium
    noisy_error_pct: float = 1.0  # failed requests in passing steps above this: medium
    # requests beyond a percentile (samples x (1-q)) at the steps that set the capacity
    # below this: the percentile is barely estimated, medium
    min_tail_samples: float = 5.0


@dataclass(frozen=True)
class Policy:
    schema_version: int
    rules: tuple[Rule, ...]
    startup_endpoints: tuple[str, ...]
    confidence: ConfidenceSettings = field(default_factory=ConfidenceSettings)
    sources: tuple[str, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        valid = ", ".join(r.id for r in self.rules)
        raise LabcapError(f"policy has no rule {rule_id!r}; its rules are {valid}")

    def is_startup(self, endpoint: str) -> bool:
        return any(fnmatch.fnmatchcase(endpoint, p) for p in self.startup_endpoints)


# --- loading and validation ------------------------------------------------------------------

_TOP_KEYS = ("schema_version", "startup_endpoints", "confidence", "rules")
_RULE_KEYS = ("id", "when", "action", "message", "weight", "enabled")
_CONFIDENCE_KEYS = tuple(ConfidenceSettings.__dataclass_fields__)


class _Invalid(Exception):
    """Raised while validating; turned into one LabcapError line naming file and rule."""


def _keys_of(valid: tuple[str, ...]) -> str:
    return ", ".join(valid)


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    return abs(v) < 1e15 if isinstance(v, int) else math.isfinite(v)


def parse_condition(data: Any, where: str = "when", depth: int = 0) -> Condition:
    """Validate one condition mapping; ``where`` is its path inside the rule, for errors."""
    if depth > MAX_DEPTH:
        raise _Invalid(f"{where}: conditions nest deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise _Invalid(
            f"{where}: a condition is a mapping {{metric, op, value}} or {{all|any|not: ...}}, "
            f"not {type(data).__name__}"
        )
    combinators = [k for k in ("all", "any", "not") if k in data]
    if combinators:
        key = combinators[0]
        extra = [k for k in data if k != key]
        if extra:
            raise _Invalid(f"{where}: unknown key {_key(extra[0])} beside {key!r}")
        if key == "not":
            return Not(parse_condition(data["not"], f"{where}.not", depth + 1))
        items = data[key]
        if not isinstance(items, list) or not items:
            raise _Invalid(f"{where}.{key}: must be a non-empty list of conditions")
        parsed = tuple(
            parse_condition(c, f"{where}.{key}[{i}]", depth + 1) for i, c in enumerate(items)
        )
        return AllOf(parsed) if key == "all" else AnyOf(parsed)
    for k in data:
        if k not in ("metric", "op", "value"):
            raise _Invalid(
                f"{where}: unknown key {_key(k)} (valid keys: metric, op, value, all, any, not)"
            )
    for k in ("metric", "op", "value"):
        if k not in data:
            raise _Invalid(f"{where}: missing key {k!r}")
    metric, op, value = data["metric"], data["op"], data["value"]
    if not isinstance(metric, str) or metric not in METRICS:
        raise _Invalid(
            f"{where}.metric: unknown metric {_short(metric)} (valid metrics: "
            f"{_keys_of(tuple(METRICS))})"
        )
    if not isinstance(op, str) or op not in OPS:
        raise _Invalid(f"{where}.op: unknown op {_short(op)} (valid ops: {_keys_of(OPS)})")
    spec = METRICS[metric]
    _check_value(spec, op, value, f"{where}.value")
    if op in ("in", "not in"):
        value = tuple(value)
    return Compare(metric, op, value)


def _check_value(spec: MetricSpec, op: str, value: Any, where: str) -> None:
    if op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            raise _Invalid(f"{where}: op {op!r} needs a non-empty list")
        for i, v in enumerate(value):
            _check_scalar(spec, v, f"{where}[{i}]")
        return
    if op in _ORDERING and spec.kind != "number":
        raise _Invalid(f"{where}: op {op!r} compares numbers, but {spec.name} is a {spec.kind}")
    _check_scalar(spec, value, where)


def _check_scalar(spec: MetricSpec, v: Any, where: str) -> None:
    if spec.kind == "number" and not _is_number(v):
        raise _Invalid(f"{where}: {spec.name} is a number; {_short(v)} is not a finite number")
    if spec.kind == "bool" and not isinstance(v, bool):
        raise _Invalid(f"{where}: {spec.name} is true or false, not {_short(v)}")
    if spec.kind == "enum" and (not isinstance(v, str) or v not in spec.choices):
        raise _Invalid(f"{where}: {spec.name} is one of {_keys_of(spec.choices)}, not {_short(v)}")


def _check_message(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _Invalid("message: must be a non-empty string")
    for m in _PLACEHOLDER.finditer(text):
        name, _, spec = m.group(1).partition(":")
        if name.strip() not in METRICS:
            raise _Invalid(
                f"message: unknown metric {_short(name)} in placeholder {{{m.group(1)}}}"
            )
        if spec and not _FORMAT_SPEC.match(spec):
            raise _Invalid(f"message: bad format {_short(spec)} in placeholder {{{m.group(1)}}}")
    return " ".join(text.split())


def _parse_rule_fields(entry: dict[str, Any], base: Rule | None) -> Rule:
    """A rule from a mapping; with ``base``, only the given keys replace the base's."""
    for k in entry:
        if k not in _RULE_KEYS:
            raise _Invalid(f"unknown key {_key(k)} (valid keys: {_keys_of(_RULE_KEYS)})")
    if base is None:
        for k in ("when", "action", "message"):
            if k not in entry:
                raise _Invalid(f"missing key {k!r} (a new rule needs when, action and message)")
    changes: dict[str, Any] = {}
    if "when" in entry:
        changes["when"] = parse_condition(entry["when"])
    if "action" in entry:
        action = entry["action"]
        if not isinstance(action, str) or action not in ACTIONS:
            raise _Invalid(f"action: unknown action {_short(action)} (valid: {_keys_of(ACTIONS)})")
        changes["action"] = action
    if "message" in entry:
        changes["message"] = _check_message(entry["message"])
    if "weight" in entry:
        w = entry["weight"]
        if not _is_number(w) or w < 0 or w > 1000:
            raise _Invalid(f"weight: must be a number from 0 to 1000, not {_short(w)}")
        changes["weight"] = float(w)
    if "enabled" in entry:
        if not isinstance(entry["enabled"], bool):
            raise _Invalid(f"enabled: must be true or false, not {_short(entry['enabled'])}")
        changes["enabled"] = entry["enabled"]
    if base is not None:
        return replace(base, **changes)
    return Rule(id=entry["id"], **changes)


def _rule_id(entry: Any, index: int) -> str:
    if not isinstance(entry, dict):
        raise _Invalid(f"rules[{index}]: a rule is a mapping, not {type(entry).__name__}")
    rid = entry.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        raise _Invalid(
            f"rules[{index}].id: {_short(rid)} is not a rule id (lower-case letters, digits, "
            "'-', '_', '.'; at most 64)"
        )
    return rid


def _merge(base: Policy | None, data: Any, source: str) -> Policy:
    """Validate ``data`` (a parsed document) and merge it over ``base`` (None: a full policy)."""
    rule_id = ""
    try:
        if not isinstance(data, dict):
            raise _Invalid(f"a policy is a mapping with {_keys_of(_TOP_KEYS)}")
        for k in data:
            if k not in _TOP_KEYS:
                raise _Invalid(f"unknown key {_key(k)} (valid keys: {_keys_of(_TOP_KEYS)})")
        version = _check_version(data)
        rules = list(base.rules) if base else []
        by_id = {r.id: i for i, r in enumerate(rules)}
        entries = data.get("rules", [] if base else None)
        if not isinstance(entries, list):
            raise _Invalid("rules: must be a list of rules")
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            rule_id = ""
            rid = _rule_id(entry, i)
            rule_id = rid
            if rid in seen:
                raise _Invalid("id: the same id appears twice in this file")
            seen.add(rid)
            if rid in by_id:
                rules[by_id[rid]] = _parse_rule_fields(entry, rules[by_id[rid]])
            else:
                by_id[rid] = len(rules)
                rules.append(_parse_rule_fields(entry, None))
        rule_id = ""
        startup = base.startup_endpoints if base else ()
        if "startup_endpoints" in data:
            startup = _string_list(data["startup_endpoints"], "startup_endpoints")
        confidence = _confidence(data.get("confidence", {}), base)
    except _Invalid as e:
        where = f"rule {rule_id!r}: " if rule_id else ""
        raise LabcapError(f"policy {source}: {where}{e}") from None
    sources = (*base.sources, source) if base else (source,)
    return Policy(version, tuple(rules), startup, confidence, sources)


def _check_version(data: dict[str, Any]) -> int:
    if "schema_version" not in data:
        raise _Invalid(f"missing key 'schema_version' (this labcap reads {POLICY_SCHEMA_VERSION})")
    v = data["schema_version"]
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise _Invalid(
            f"schema_version: {_short(v)} is not a version (use {POLICY_SCHEMA_VERSION})"
        )
    if v > POLICY_SCHEMA_VERSION:
        raise _Invalid(
            f"schema_version: {v} is newer than this labcap reads ({POLICY_SCHEMA_VERSION}): "
            "upgrade labcap"
        )
    return v


def _string_list(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise _Invalid(f"{where}: must be a list of endpoint names or patterns")
    return tuple(v)


def _confidence(data: Any, base: Policy | None) -> ConfidenceSettings:
    settings = base.confidence if base else ConfidenceSettings()
    if not isinstance(data, dict):
        raise _Invalid("confidence: must be a mapping")
    changes = {}
    for k, v in data.items():
        if k not in _CONFIDENCE_KEYS:
            raise _Invalid(
                f"confidence: unknown key {_key(k)} (valid keys: {_keys_of(_CONFIDENCE_KEYS)})"
            )
        if not _is_number(v) or v < 0:
            raise _Invalid(f"confidence.{k}: must be a number >= 0, not {_short(v)}")
        changes[k] = float(v)
    return replace(settings, **changes)


def _key(k: Any) -> str:
    return repr(k) if isinstance(k, str) else _short(k)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise LabcapError(
            f"policy {source}: not valid YAML{where}: {' '.join(str(problem).split())}"
        ) from None
    except Exception as e:  # the YAML constructors raise ValueError & co on odd scalars
        why = " ".join(str(e).split())
        raise LabcapError(f"policy {source}: unreadable YAML ({type(e).__name__}: {why})") from None


@functools.lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The policy labcap ships: the deployment guide's decision matrix."""
    text = resources.files("labcap.planner").joinpath(DEFAULT_POLICY).read_text("utf-8")
    return _merge(None, _parse_yaml(text, "labcap default policy"), "labcap default policy")


def policy_from_data(data: Any, source: str = "<policy>") -> Policy:
    """Merge an already parsed override document over the default policy."""
    return _merge(default_policy(), data, source)


def load_policy(path: str | Path | None = None) -> Policy:
    """The default policy, with the lab's file at ``path`` merged over it."""
    if path is None:
        return default_policy()
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise LabcapError(f"policy {p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LabcapError(f"policy {p}: unreadable ({type(e).__name__}: {e})") from None
    return _merge(default_policy(), _parse_yaml(text, str(p)), str(p))


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    state: str  # fired | not-fired | not-evaluated
    missing: tuple[str, ...]
    inputs: tuple[tuple[str, Any], ...]


def evaluate_rules(policy: Policy, values: Mapping[str, Any]) -> tuple[RuleOutcome, ...]:
    """Every enabled rule against the measured ``values``."""
    out = []
    for rule in policy.rules:
        if not rule.enabled:
            continue
        e = evaluate(rule.when, values)
        state = "not-evaluated" if e.result is None else ("fired" if e.result else "not-fired")
        out.append(RuleOutcome(rule, state, e.missing, e.inputs))
    return tuple(out)


__all__ = [
    "ACTIONS",
    "DECISIONS",
    "INSUFFICIENT",
    "METRICS",
    "POLICY_SCHEMA_VERSION",
    "ConfidenceSettings",
    "Policy",
    "Rule",
    "RuleOutcome",
    "default_policy",
    "evaluate",
    "evaluate_rules",
    "load_policy",
    "parse_condition",
    "policy_from_data",
]
