"""Server-side validation of a rendered K3s profile: every object is submitted to a live
API server with ``dryRun=All`` (a create; a replace for objects that already exist), so
admission, defaulting and the server's own validation run, and nothing is persisted.

- An object whose apiVersion/kind the server does not serve (Kubernetes 1.20 has no
  ``policy/v1``, CronJob only in ``batch/v1beta1``) is reported as "not served by this
  server (version X)", not as invalid: the offline schema check already covers it.
- Namespaced objects whose namespace does not exist on the server are checked in a
  temporary namespace ``labcap-dryrun-<random>`` (created, then deleted, also on Ctrl-C):
  a dry-run create of the profile's Namespace persists nothing, so its objects would
  otherwise fail with "namespace not found".
- Rejections are reported in one line per object (a ``ProfileValidationError``); a
  credential or a secret value never reaches a message.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labcap.deploy_profiles.validate import ProfileValidationError
from labcap.errors import LabcapError
from labcap.redact import scrub

FIELD_MANAGER = "labcap-validate"
TEMP_NS_PREFIX = "labcap-dryrun-"
TIMEOUT_S = 15.0


@dataclass
class ServerCheck:
    """What the API server said about a profile."""

    server: str
    version: str
    accepted: list[str] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    temp_namespaces: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = (
            f"server-side dry-run (dryRun=All) at {self.server} (Kubernetes {self.version}): "
            f"{len(self.accepted)} objects accepted"
        )
        if self.unserved:
            text += (
                f"; not served by this server (version {self.version}), not checked: "
                + ", ".join(self.unserved)
            )
        if self.temp_namespaces:
            text += "; checked in temporary namespaces (deleted): " + ", ".join(
                f"{ns} for {orig}" for orig, ns in sorted(self.temp_namespaces.items())
            )
        return text


def validate_on_server(
    objects: Iterable[tuple[str, Any]],
    kubeconfig: str | None = None,
    context: str | None = None,
) -> ServerCheck:
    """Connect (kubeconfig resolution as ``labcap run --target k8s``) and dry-run each object.

    Raises ``ProfileValidationError`` listing every rejected object, ``LabcapError`` when the
    server cannot be reached or refuses the credentials.
    """
    from labcap.clients.kube import connect

    target = connect(kubeconfig, context)
    try:
        return dry_run(
            target.api_client, list(objects), server=target.server, version=target.version
        )
    finally:
        target.api_client.close()


def dry_run(
    api_client: Any, objects: list[tuple[str, Any]], *, server: str, version: str
) -> ServerCheck:
    result = ServerCheck(server=server, version=version)
    session = _Session(api_client, server)
    plan: list[tuple[str, dict[str, Any], str, str | None]] = []
    for name, obj in objects:
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            raise ProfileValidationError(f"{name}: a document without kind/apiVersion")
        what = _what(name, obj)
        resource = session.resource(obj["apiVersion"], obj["kind"])
        if resource is None:
            result.unserved.append(f"{obj['kind']} {obj['apiVersion']} ({name})")
            continue
        plural, namespaced = resource
        ns = (obj.get("metadata") or {}).get("namespace") or ("default" if namespaced else None)
        plan.append((what, obj, plural, ns if namespaced else None))
    try:
        for ns in sorted({ns for _, _, _, ns in plan if ns}):
            if not session.namespace_exists(ns):
                result.temp_namespaces[ns] = session.create_temp_namespace()
        for what, obj, plural, ns in plan:
            body = json.loads(json.dumps(obj))  # a copy: the namespace may be rewritten
            if ns:
                ns = result.temp_namespaces.get(ns, ns)
                body.setdefault("metadata", {})["namespace"] = ns
            problem = session.apply(obj["apiVersion"], plural, ns, body)
            if problem is None:
                result.accepted.append(what)
            elif problem == "not served":
                result.unserved.append(f"{obj['kind']} {obj['apiVersion']} ({what})")
            else:
                result.rejected.append(f"{what}: {problem}")
    finally:
        for temp in result.temp_namespaces.values():
            session.delete_namespace(temp)
    if result.rejected:
        raise ProfileValidationError(
            f"the API server at {server} (Kubernetes {version}) rejected "
            f"{len(result.rejected)} object(s): " + "; ".join(result.rejected)
        )
    return result


def _what(name: str, obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{name}: {obj['kind']} {ns}{meta.get('name', '?')}"


class _Session:
    """Raw calls through the client's ApiClient (discovery, apply) with one-line errors."""

    def __init__(self, api_client: Any, server: str) -> None:
        self.api = api_client
        self.server = server
        self.discovered: dict[str, dict[str, tuple[str, bool]] | None] = {}

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request with the kubeconfig's credentials; the decoded JSON, or ApiException."""
        from kubernetes.client.rest import ApiException

        m, url, headers, _, post = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(
            m,
            url,
            header_params=headers,
            # JSON bodies are serialised by the client; the apply body (YAML, and JSON is YAML)
            # goes as a ready string, sent as it is
            body=json.dumps(body) if body is not None and "yaml" in content_type else body,
            post_params=post,
            _request_timeout=(TIMEOUT_S, TIMEOUT_S),
        )
        resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(http_resp=resp)
        return json.loads(resp.data or b"null")

    def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """(plural, namespaced) for a kind the server serves at that version, else None."""
        from kubernetes.client.rest import ApiException

        if api_version not in self.discovered:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = self._call("GET", path)
            except ApiException as e:
                if e.status != 404:
                    raise self._fail(e) from None
                listing = None
            except Exception as e:
                raise self._fail(e) from None
            self.discovered[api_version] = (
                None
                if listing is None
                else {
                    r["kind"]: (r["name"], bool(r.get("namespaced")))
                    for r in listing.get("resources", [])
                    if "/" not in r["name"]
                }
            )
        kinds = self.discovered[api_version]
        return None if kinds is None else kinds.get(kind)

    def namespace_exists(self, ns: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self._call("GET", f"/api/v1/namespaces/{ns}")
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise self._fail(e) from None
        except Exception as e:
            raise self._fail(e) from None

    def create_temp_namespace(self) -> str:
        name = TEMP_NS_PREFIX + secrets.token_hex(4)
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/managed-by": "labcap"},
                "annotations": {"labcap/purpose": "server-side dry-run of a profile; deletable"},
            },
        }
        try:
            self._call("POST", "/api/v1/namespaces", body=body)
        except Exception as e:
            raise self._fail(e) from None
        return name

    def delete_namespace(self, name: str) -> None:
        # best effort; it is labelled managed-by=labcap
        with contextlib.suppress(Exception):
            self._call("DELETE", f"/api/v1/namespaces/{name}")

    def apply(
        self, api_version: str, plural: str, ns: str | None, body: dict[str, Any]
    ) -> str | None:
        """Dry-run create (or, for an object that exists, dry-run replace at its current
        resourceVersion); None when accepted, else the server's reason.

        Not server-side apply: 1.20's SSA fails with a 500 on a Service or container port
        without an explicit protocol, which every server accepts on create."""
        from kubernetes.client.rest import ApiException

        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        name = (body.get("metadata") or {}).get("name", "")
        if not name:
            return "metadata.name: Required value"
        collection = f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"
        dry = [("dryRun", "All"), ("fieldManager", FIELD_MANAGER)]
        try:
            try:
                self._call("POST", collection, body=body, query=dry)
            except ApiException as e:
                if e.status != 409 or _status(e).get("reason") != "AlreadyExists":
                    raise
                current = self._call("GET", f"{collection}/{name}")
                replace = json.loads(json.dumps(body))
                replace["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self._call("PUT", f"{collection}/{name}", body=replace, query=dry)
            return None
        except ApiException as e:
            if e.status in (400, 409, 422) or _is_admission_denial(e):
                return _reason(e)
            if e.status == 404:
                return "not served"
            raise self._fail(e) from None
        except Exception as e:
            raise self._fail(e) from None

    def _fail(self, exc: BaseException) -> LabcapError:
        from labcap.clients.kube import describe_api_problem

        text = describe_api_problem(exc, self.server)
        if isinstance(getattr(exc, "status", None), int) and _status(exc).get("message"):
            text += f": {_reason(exc)}"
        return LabcapError(f"server-side validation stopped: {text}")


def _status(e: Any) -> dict[str, Any]:
    try:
        data = json.loads(e.body or "{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_admission_denial(e: Any) -> bool:
    """A 403 from an admission webhook or policy (not an RBAC refusal of our credentials)."""
    msg = str(_status(e).get("message") or "")
    return (
        e.status == 403 and ("admission webhook" in msg or "denied" in msg) and "cannot" not in msg
    )


def _reason(e: Any) -> str:
    msg = str(_status(e).get("message") or e.reason or e.status)
    return scrub(" ".join(msg.split()))[:600]


def profile_objects(profile: Any) -> list[tuple[str, Any]]:
    """The Kubernetes objects of a rendered K3s profile (manifests/*.yaml, secrets.yaml)."""
    from labcap.deploy_profiles.validate import parse_yaml

    return [
        (f.path, o)
        for f in profile.files
        if f.path.endswith(".yaml")
        and (f.path.startswith("manifests/") or f.path == "secrets.yaml")
        for o in parse_yaml(f.path, f.content)
    ]


def server_checker(kubeconfig: str | None, context: str | None):
    """For ``build_profile(server_check=...)``: dry-run the profile, return the summary line."""

    def check(profile: Any) -> str:
        if profile.sizing.platform != "k3s":
            raise LabcapError("--validate-server needs --platform k3s (Compose has no API server)")
        return validate_on_server(profile_objects(profile), kubeconfig, context).summary()

    return check
