"""Where an agent's commands may connect with `network: allow`: hosts allowed and denied, presets of package
registries, and whether only reading is allowed — as agent files, workflows and requests write them."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

PresetName = Literal["python", "node", "debian", "rust", "go"]
HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class HostEntry(BaseModel):
    """One entry of an allow or deny list: a host (``*.x``: any subdomain of x) or an address, and a port
    (None: the web's ports, 80 and 443)."""

    host: str
    port: int | None = None
    subdomains: bool = False

    @property
    def is_address(self) -> bool:
        """True when the entry names an IP address rather than a host name."""
        try:
            ipaddress.ip_address(self.host)
            return True
        except ValueError:
            return False

    def ports_match(self, port: int) -> bool:
        """True when ``port`` is the entry's port (80 or 443 when it names none)."""
        return port == self.port if self.port is not None else port in (80, 443)

    def names(self, host: str, port: int) -> bool:
        """True when a request for ``host``:``port`` is what this entry names."""
        host = host.lower().rstrip(".")
        if not self.ports_match(port):
            return False
        return host.endswith("." + self.host) if self.subdomains else host == self.host


def parse_host_entry(text: str) -> HostEntry:
    """`example.com`, `*.example.com`, `pypi.internal:8080`, `10.0.0.5:3141`, `[fd00::1]:443` as an entry."""
    raw = str(text).strip().lower()
    if "/" in raw or "@" in raw:
        raise ValueError(f"{text!r} is not a host: write the host alone (pypi.org), not a URL")
    host, port = raw, None
    if raw.startswith("["):  # [v6]:port
        inside, _, rest = raw[1:].partition("]")
        host, port = inside, rest.removeprefix(":") or None
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    try:
        number = int(port) if port is not None else None
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number") from None
    if number is not None and not 0 < number < 65536:
        raise ValueError(f"{text!r}: the port must be from 1 to 65535")
    try:
        return HostEntry(host=str(ipaddress.ip_address(host)), port=number)
    except ValueError:
        pass
    if not HOST.match(host):
        raise ValueError(f"{text!r} is not a host, *.host, host:port or address (write e.g. pypi.org, *.npmjs.org)")
    if host.startswith("*."):
        return HostEntry(host=host[2:], port=number, subdomains=True)
    return HostEntry(host=host, port=number)


class Egress(BaseModel):
    """The allow-list of `network: allow` (deny first; private, loopback and link-local addresses only when
    listed exactly); only the lists set here are used — presets add their registries' hosts."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list, description="Hosts (host, *.host, host:port, address[:port]).")
    deny: list[str] = Field(default_factory=list, description="Hosts refused even when allowed or in a preset.")
    presets: list[PresetName] = Field(default_factory=list, description="Package registries: python, node, ...")
    methods: Literal["any", "read-only"] = Field(
        default="any", description="read-only: only GET and HEAD over plain HTTP, and no tunnels (HTTPS)."
    )

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
        for entry in value or []:
            parse_host_entry(entry)
        return list(dict.fromkeys(str(v).strip().lower() for v in value or []))

    def over(self, layer: Egress | dict | None) -> Egress:
        """These lists with ``layer``'s added (a later level can add hosts, presets and denials, and narrow the
        methods, never widen them)."""
        if layer is None:
            return self
        layer = layer if isinstance(layer, Egress) else Egress.model_validate(layer)
        return Egress(
            allow=[*self.allow, *layer.allow],
            deny=[*self.deny, *layer.deny],
            presets=list(dict.fromkeys([*self.presets, *layer.presets])),
            methods="read-only" if "read-only" in (self.methods, layer.methods) else "any",
        )

    def describe(self) -> str:
        """The allow-list in one line."""
        parts = [*(f"preset {p}" for p in self.presets), *self.allow]
        allowed = ", ".join(parts) if parts else "nothing"
        denied = f"; denied {', '.join(self.deny)}" if self.deny else ""
        return f"allowed {allowed}{denied}" + ("; read-only" if self.methods == "read-only" else "")


def egress_layer(value: Any) -> Any:
    """An `egress:` mapping as written, checked; None when absent."""
    if value is None or isinstance(value, Egress):
        return value
    if not isinstance(value, dict):
        raise ValueError("egress: expected a mapping such as {allow: [pypi.org], presets: [python]}")
    return Egress.model_validate(value)


# `egress:` as an agent file, a workflow or a request writes it.
EgressLayer = Annotated[Egress | None, BeforeValidator(egress_layer)]
