"""The review pages' sign-in cookie: who signed in, with which token, until when, signed with a server secret.

A cookie reads ``v1.<payload>.<signature>``: the payload is base64url JSON ``{"p": person, "t": token id,
"e": expiry (Unix seconds)}`` and the signature base64url HMAC-SHA256 of ``v1.<payload>`` under the server's
secret. The token id ties the cookie to the token the person signed in with, so replacing their token (or removing
them) ends every session they had; the expiry ends it after `COOKIE_LIFETIME_S` in any case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

VERSION = "v1"
COOKIE_LIFETIME_S = 12 * 3600
SECRET_FILE = "web-secret"  # in the agent-tasks home, mode 0600
SECRET_BYTES = 32


class SignedIn(BaseModel):
    """What a valid cookie says: the person, the id of the token they signed in with, and when it expires."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: str
    token_id: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def sign_cookie(secret: bytes, person: str, token_id: str, now: float | None = None) -> str:
    """The cookie value for ``person`` signed in with the token ``token_id``, valid for `COOKIE_LIFETIME_S`."""
    expires = int(now if now is not None else time.time()) + COOKIE_LIFETIME_S
    payload = json.dumps({"p": person, "t": token_id, "e": expires}, separators=(",", ":")).encode()
    signed = f"{VERSION}.{_b64(payload)}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


def read_cookie(secret: bytes, value: str | None, now: float | None = None) -> SignedIn | None:
    """What ``value`` says when its signature is this server's and it has not expired; else None (forged,
    tampered, malformed, signed by another secret, or expired)."""
    if not value or value.count(".") != 2:
        return None
    version, payload, signature = value.split(".")
    if version != VERSION:
        return None
    try:
        given = _unb64(signature)
        if not hmac.compare_digest(given, _mac(secret, f"{version}.{payload}")):
            return None
        data = json.loads(_unb64(payload))
        found = SignedIn(person=data["p"], token_id=data["t"], expires=data["e"])
    except (ValueError, KeyError, TypeError, ValidationError):
        return None
    if found.expires <= (now if now is not None else time.time()):
        return None
    return found


def keep_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path`` (mode 0600), made with ``make`` and written whole on first use; when two
    processes make one at once, the first written is the one both keep."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        try:
            os.link(draft, path)  # atomic, and never replaces a secret another process kept first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def server_secret(home: Path) -> bytes:
    """The secret cookies are signed with: kept in ``home``/web-secret (mode 0600), made on first use."""
    path = home / SECRET_FILE
    data = keep_secret(path, lambda: secrets.token_hex(SECRET_BYTES)).encode()
    if len(data) < SECRET_BYTES:
        raise ValueError(f"{path} is too short to be a signing secret: remove it and a new one is made")
    return data
