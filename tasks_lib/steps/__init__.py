"""The decorator every step of the card uses: a Prefect task, never cached, whose errors are redacted."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks_lib.security.redaction import redacting

F = TypeVar("F", bound=Callable)


def step(name: str) -> Callable[[F], F]:
    """Make ``fn`` the Prefect task ``name``: no result caching, secrets masked in any exception it raises."""

    def decorate(fn: F) -> F:
        return task(name=name, cache_policy=NO_CACHE)(redacting(fn))  # type: ignore[return-value]

    return decorate
