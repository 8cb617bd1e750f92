"""Keep secrets out of Prefect: redact every run log line, and exceptions before they become state messages.

Prefect stores a failed run's exception text as its state message and ships run logs (tracebacks
included) to its server. Both are redacted here with the same Redactor as everything else.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from tasks_lib.security.secrets import Redactor

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.flows", "prefect.tasks")
F = TypeVar("F", bound=Callable)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        redact = Redactor.from_env()
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put the redacting filter on Prefect's run loggers (once per process)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def redact_exception(exc: BaseException) -> BaseException:
    """The exception with secrets masked in its message: the same object when its arguments can be rewritten."""
    redact = Redactor.from_env()
    text = str(exc)
    if redact(text) == text:
        return exc
    exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
    if redact(str(exc)) == str(exc):
        return exc
    return RuntimeError(f"{type(exc).__name__}: {redact(text)}")  # its text does not come from its arguments


def redacting(fn: F) -> F:
    """Wrap a step so any exception leaving it has its secrets masked first."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            clean = redact_exception(exc)
            if clean is exc:
                raise
            raise clean from None

    return wrapper  # type: ignore[return-value]
