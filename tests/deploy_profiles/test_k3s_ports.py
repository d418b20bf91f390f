"""Every port of a K3s profile names its protocol, as z2jh's templates do: Kubernetes 1.20's
server-side apply (`kubectl apply --server-side`) refuses a Service whose port omits it
("associative list with keys has an element that omits key field protocol", HTTP 500). The
real apply runs in tests/k8s/test_profile_deploy.py."""

from __future__ import annotations

import yaml

from labcap.deploy_profiles import ProfileSettings, build_profile


def test_every_service_and_container_port_names_its_protocol(lab_run, tmp_path):
    build_profile(lab_run, ProfileSettings("k3s", expected_users=20), tmp_path / "o")
    ports = []
    for f in sorted((tmp_path / "o/manifests").glob("*.yaml")):
        for o in yaml.safe_load_all(f.read_text()):
            if not o:
                continue
            if o["kind"] == "Service":
                ports += [(f.name, o["metadata"]["name"], p) for p in o["spec"]["ports"]]
            spec = o.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []):
                ports += [(f.name, c["name"], p) for p in c.get("ports", [])]
    assert len(ports) >= 8
    missing = [(f, name) for f, name, p in ports if p.get("protocol") != "TCP"]
    assert missing == []
