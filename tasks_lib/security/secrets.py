"""Recognise secrets in the environment and mask them in text before anything is logged or stored."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_NAME = re.compile(
    r"(^|_)(KEY|APIKEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH_STRING|PRIVATE_KEY)(_|$)",
    re.IGNORECASE,
)
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]+)@")
MASK = "***"
MIN_SECRET_LEN = 6
URL_PASSWORD_REACH = 1024  # characters of a URL password a cut text is assumed to possibly hold


def is_secret_name(name: str) -> bool:
    """True for variable names that hold credentials (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ...)."""
    return bool(SECRET_NAME.search(name))


_masked_values: set[str] = set()


def mask_variables(names: list[str] | tuple[str, ...]) -> None:
    """Treat the values of these variables as secrets from now on in this process (an agent's `env:`)."""
    _masked_values.update(v for v in (os.environ.get(n) for n in names) if v)


class Redactor:
    """Masks known secret values and URL passwords in any text before it is logged or stored."""

    def __init__(self, secrets: list[str]):
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Redactor:
        """A redactor for every secret value in the environment."""
        env = os.environ if env is None else env
        values = [v for k, v in env.items() if is_secret_name(k)] + sorted(_masked_values)
        values += [m.group("pw") for v in env.values() for m in URL_CREDENTIALS.finditer(v)]
        return cls(values)

    @property
    def reach(self) -> int:
        """The most characters one secret can span: the tail of a cut text that may hold a partial one."""
        return max([URL_PASSWORD_REACH] + [len(s) for s in self._secrets[:1]])

    def head(self, data: bytes, cap: int) -> tuple[str, bool]:
        """At most ``cap`` characters from the start of ``data``, masked; True when ``data`` was cut.

        Reads only ``cap`` + :attr:`reach` bytes, and leaves out the tail where a secret may be cut in two.
        """
        if len(data) <= cap:
            return self(data.decode("utf-8", errors="replace")), False
        masked = self(data[: cap + self.reach].decode("utf-8", errors="replace"))
        return masked[: min(cap, max(0, len(masked) - self.reach))], True

    def __call__(self, text: str) -> str:
        """The text with every secret replaced by ``***``."""
        if not text:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)

    def deep(self, value):
        """Redact strings inside nested dicts and lists (tool arguments, messages)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


def strip_credentials(url: str) -> str:
    """A URL without the user and password it may carry (``https://u:p@host/x`` → ``https://host/x``)."""
    return URL_CREDENTIALS.sub(lambda m: m["scheme"], url)
