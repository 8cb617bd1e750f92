"""Personal tokens: made at random, shown once, kept only as a salted scrypt hash, compared in constant time.

A token reads ``at_<id>_<secret>``: the id finds the one stored hash to check (no scan over everyone's), the
secret is what is hashed. Grants (one decision's proof that a person was checked) are plain random ids.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from pydantic import BaseModel, ConfigDict

PREFIX = "at_"
TOKEN = re.compile(r"^at_([0-9a-f]{12})_([A-Za-z0-9_-]{32,})$")
# scrypt parameters: 16 MiB and about 50 ms per check, stored with each hash so they can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class NewToken(BaseModel):
    """A token just made: the whole token (shown once), its id and the hash to store."""

    model_config = ConfigDict(frozen=True)

    token: str
    token_id: str
    token_hash: str


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The scrypt hash of ``secret`` with ``salt``."""
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$<salt hex>$<hash hex>`` of ``secret`` with a new random salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored`` (from `hash_secret`); compared in constant time."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = _scrypt(secret, bytes.fromhex(salt), int(n), int(r), int(p))
        return hmac.compare_digest(found, bytes.fromhex(digest))
    except ValueError:
        return False


def new_token() -> NewToken:
    """A new random token, its id and the hash to keep."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewToken(token=f"{PREFIX}{token_id}_{secret}", token_id=token_id, token_hash=hash_secret(secret))


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    found = TOKEN.match(token.strip())
    return (found.group(1), found.group(2)) if found else None


def new_grant_id() -> str:
    """A random id for a decision grant (unguessable, used for one review pause)."""
    return secrets.token_urlsafe(24)
