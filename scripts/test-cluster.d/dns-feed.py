#!/usr/bin/env python3
"""Cluster DNS for the networked test cluster: feeds dnsmasq from the API server.

    dns-feed.py API_URL CA_FILE TOKEN_FILE HOSTS_FILE DNSMASQ_PID_FILE

A SUBSTITUTE for CoreDNS, which Debian does not package: every 1 s it lists Services and
Endpoints and writes an /etc/hosts-style file with
  <clusterIP>          <svc>.<ns>.svc.cluster.local   (ClusterIP Services)
  <endpoint address>   <svc>.<ns>.svc.cluster.local   (headless Services)
  <endpoint address>   <hostname>.<svc>.<ns>.svc.cluster.local (endpoints with a hostname)
and sends dnsmasq SIGHUP when it changed (dnsmasq re-reads --addn-hosts on SIGHUP). Pods
resolve short names through the search path the kubelet writes (<ns>.svc.cluster.local ...).
No SRV records, no PTR beyond what dnsmasq derives from the hosts file.
It only talks to the API server on 127.0.0.1 inside the test namespace.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys
import time
import urllib.request

DOMAIN = "svc.cluster.local"


def get(api: str, path: str, ctx: ssl.SSLContext, token: str) -> dict:
    req = urllib.request.Request(api + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
        return json.load(r)


def records(services: dict, endpoints: dict) -> list[str]:
    eps = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints["items"]}
    lines = []
    for s in services["items"]:
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        fqdn = f"{name}.{ns}.{DOMAIN}"
        ip = s["spec"].get("clusterIP")
        if ip and ip != "None":
            lines.append(f"{ip} {fqdn}")
            continue
        for subset in (eps.get((ns, name)) or {}).get("subsets") or []:
            for a in subset.get("addresses") or []:
                lines.append(f"{a['ip']} {fqdn}")
                if a.get("hostname"):
                    lines.append(f"{a['ip']} {a['hostname']}.{fqdn}")
    return sorted(set(lines))


def main() -> int:
    api, ca, token_file, hosts, pid_file = sys.argv[1:6]
    with open(token_file) as f:
        token = f.read().strip()
    ctx = ssl.create_default_context(cafile=ca)
    last = None
    while True:
        try:
            text = "\n".join(
                records(
                    get(api, "/api/v1/services", ctx, token),
                    get(api, "/api/v1/endpoints", ctx, token),
                )
            )
        except OSError as e:  # the API server may be stopped by a fault test
            print(f"dns-feed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            time.sleep(2)
            continue
        if text != last:
            tmp = hosts + ".tmp"
            with open(tmp, "w") as f:
                f.write(text + "\n")
            os.replace(tmp, hosts)
            try:
                with open(pid_file) as f:
                    os.kill(int(f.read().strip()), signal.SIGHUP)
                last = text
            except (OSError, ValueError):
                pass  # dnsmasq not (yet) running: retry on the next round
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
