"""The decorator every step of the card uses: a Prefect task, never cached, whose errors are redacted, announced to
in-process listeners as it starts (so a terminal can say what runs now)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks_lib import progress
from tasks_lib.security.redaction import redacting

F = TypeVar("F", bound=Callable)


def step(name: str) -> Callable[[F], F]:
    """Make ``fn`` the Prefect task ``name``: no result caching, secrets masked in any exception it raises, and a
    ``phase`` progress event with its name when it starts."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def announced(*args: Any, **kwargs: Any) -> Any:
            progress.publish("phase", name=name)
            return fn(*args, **kwargs)

        return task(name=name, cache_policy=NO_CACHE)(redacting(announced))  # type: ignore[return-value]

    return decorate
