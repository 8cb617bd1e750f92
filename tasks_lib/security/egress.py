"""The decisions of the egress proxy: may a command connect to this host and port, and — once the name is
resolved — to this address. Deny entries win; private, loopback, link-local and other special addresses are
refused after resolution unless that exact address is listed (so a name that resolves to 127.0.0.1 or the cloud
metadata address gets nowhere, whatever the allow-list says about the name)."""

from __future__ import annotations

import configparser
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from tasks_lib.domain.egress import Egress, HostEntry, parse_host_entry

PRESETS: dict[str, tuple[str, ...]] = {
    "python": ("pypi.org", "files.pythonhosted.org"),
    "node": ("registry.npmjs.org", "registry.yarnpkg.com", "nodejs.org"),
    "debian": ("deb.debian.org", "security.debian.org"),
    "rust": ("crates.io", "index.crates.io", "static.crates.io", "static.rust-lang.org"),
    "go": ("proxy.golang.org", "sum.golang.org", "storage.googleapis.com"),
}
# What the files at a repository's top level say about the registries its setup needs.
MANIFESTS: dict[str, tuple[str, ...]] = {
    "python": ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "Pipfile", "poetry.lock", "uv.lock"),
    "node": ("package.json",),
    "rust": ("Cargo.toml",),
    "go": ("go.mod",),
}


def configured_python_indexes(environ: dict[str, str] | None = None) -> list[str]:
    """The package indexes this worker's pip is configured with (http and https ones, without credentials)."""
    environ = dict(os.environ) if environ is None else environ
    urls = [environ.get("PIP_INDEX_URL", ""), *environ.get("PIP_EXTRA_INDEX_URL", "").split()]
    home = Path(environ.get("HOME", "/nonexistent"))
    for path in (Path("/etc/pip.conf"), home / ".config/pip/pip.conf", home / ".pip/pip.conf"):
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        for key in ("index-url", "extra-index-url"):
            urls += parser.get("global", key, fallback="").split()
    return [u for u in dict.fromkeys(urls) if urlsplit(u).scheme in ("http", "https") and not urlsplit(u).password]


def preset_hosts(name: str) -> list[str]:
    """The hosts (host or host:port) a preset allows; `python` adds the indexes this worker's pip uses."""
    hosts = list(PRESETS[name])
    if name == "python":
        for url in configured_python_indexes():
            parts = urlsplit(url)
            hosts.append(f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname))
    return hosts


def presets_for(workspace: Path) -> list[str]:
    """The presets a repository's setup is likely to need, from the manifests at its top level."""
    return [name for name, files in MANIFESTS.items() if any((workspace / f).exists() for f in files)]


def special_address(address: str) -> bool:
    """True for addresses a command must not reach unless listed: private, loopback, link-local, multicast,
    reserved, unspecified (and IPv4 mapped into IPv6 as any of them)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class EgressPolicy:
    """An Egress as the proxy applies it."""

    def __init__(self, egress: Egress):
        self.egress = egress
        self.allow: list[HostEntry] = [parse_host_entry(e) for e in egress.allow]
        for preset in egress.presets:
            self.allow += [parse_host_entry(h) for h in preset_hosts(preset)]
        self.deny = [parse_host_entry(e) for e in egress.deny]
        self.read_only = egress.methods == "read-only"

    def refuse_name(self, host: str, port: int) -> str | None:
        """Why a request for ``host``:``port`` is refused before resolving it; None when it may go on."""
        for entry in self.deny:
            if entry.names(host, port) or (entry.is_address and entry.host == host and entry.ports_match(port)):
                return "denied"
        if not any(entry.names(host, port) for entry in self.allow):
            return "not in the allow-list"
        return None

    def refuse_address(self, address: str, port: int) -> str | None:
        """Why a connection to a resolved ``address`` is refused; None when it may go on."""
        normal = str(ipaddress.ip_address(address))
        if any(entry.is_address and entry.host == normal and entry.ports_match(port) for entry in self.deny):
            return f"{normal} is denied"
        if special_address(normal):
            listed = any(entry.is_address and entry.host == normal and entry.ports_match(port) for entry in self.allow)
            if not listed:
                return f"resolves to {normal}, a private, loopback or link-local address that is not listed"
        return None

    def refuse_method(self, method: str, tunnel: bool) -> str | None:
        """Why a request with this method is refused under `methods: read-only`; None when it may go on."""
        if not self.read_only:
            return None
        if tunnel:
            return "read-only: no tunnels (HTTPS methods cannot be seen)"
        return None if method in ("GET", "HEAD") else f"read-only: {method} is not allowed"
