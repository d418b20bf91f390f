"""How labcap's HTTP traffic finds its way: proxies and CA bundles from the environment.

Every client labcap uses (python-requests, its own ``loadtests.wire`` client, the kernel
websocket) follows the same conventions as curl and python-requests:

- ``HTTP_PROXY`` / ``HTTPS_PROXY`` (either case) name a proxy per scheme; ``NO_PROXY`` lists
  hosts (suffixes, ``*``) that are reached directly;
- ``REQUESTS_CA_BUNDLE``, then ``SSL_CERT_FILE``, name the CA bundle https is verified with
  (``labcap run --ca-bundle FILE`` sets ``REQUESTS_CA_BUNDLE`` for the run); without either
  the system's trust store is used.

Standard library only.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

CA_BUNDLE_ENVS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment names a proxy or a CA bundle (else clients may skip reading it)."""
    env = os.environ if env is None else env
    return any(v and (k.lower().endswith("_proxy") or k in CA_BUNDLE_ENVS) for k, v in env.items())


def ca_bundle(env: Mapping[str, str] | None = None) -> str | None:
    """The CA bundle file the environment names, or None (the system's trust store)."""
    env = os.environ if env is None else env
    for name in CA_BUNDLE_ENVS:
        if env.get(name):
            return env[name]
    return None


def ssl_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying TLS context trusting the environment's CA bundle (else the system's)."""
    return ssl.create_default_context(cafile=ca_bundle(env))


def requests_verify(env: Mapping[str, str] | None = None) -> bool | str:
    """python-requests' ``verify``: the CA bundle the environment names, else True."""
    return ca_bundle(env) or True


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: ``host:port``, optional basic credentials (never logged)."""

    host: str
    port: int
    auth_header: str | None = None  # "Basic ..." for Proxy-Authorization

    def __repr__(self) -> str:  # credentials stay out of reprs and tracebacks
        return f"Proxy({self.host}:{self.port})"


def proxy_for(url: str, env: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy that carries requests to ``url`` (None: go direct), after NO_PROXY."""
    import base64
    from urllib.parse import unquote

    env = os.environ if env is None else env
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname or ""
    named = [(k, v) for k, v in env.items() if k.lower().endswith("_proxy") and v]
    # the lower-case name wins over the upper-case one, as urllib and requests read them
    proxies = {k.lower(): v for k, v in named if not k.islower()}
    proxies.update((k, v) for k, v in named if k.islower())
    proxy_url = proxies.get(f"{scheme}_proxy") or proxies.get("all_proxy")
    if not proxy_url or _bypassed(host, parts.port, proxies.get("no_proxy", "")):
        return None
    if "://" not in proxy_url:
        proxy_url = "http://" + proxy_url
    p = urlsplit(proxy_url)
    if p.scheme != "http" or not p.hostname:
        return None  # https:// or socks proxies: not supported by labcap's own client
    auth = None
    if p.username:
        raw = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode("ascii")
    return Proxy(p.hostname, p.port or 80, auth)


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """NO_PROXY as curl and requests read it: ``*``, host names and domain suffixes,
    ``host:port``, IP addresses and CIDR ranges."""
    import ipaddress

    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port is not None and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
        except ValueError:
            pass
    return False


def urllib_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that follows the environment's proxies and CA bundle."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler(),
        urllib.request.HTTPSHandler(context=ssl_context()),
    )
