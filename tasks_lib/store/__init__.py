"""The session store: tables, migrations, the Store (one session's record), questions across sessions and webhook
deliveries; every part of the project reads and writes through it."""

from tasks_lib.store.deliveries import forget_deliveries_before, forget_delivery, record_delivery
from tasks_lib.store.migrate import StoreError
from tasks_lib.store.queries import ended_before, orphaned, overdue_reviews, unsettled, usage_by
from tasks_lib.store.store import STEP_RESULT_CAP, SessionNotFound, Store, open_store
from tasks_lib.store.tables import (
    Base,
    CheckRow,
    DeliveryRow,
    DiffRow,
    ReviewRow,
    SessionRow,
    StepRow,
    SummaryRow,
    TransitionRow,
    utcnow,
)

__all__ = [
    "STEP_RESULT_CAP",
    "Base",
    "CheckRow",
    "DeliveryRow",
    "DiffRow",
    "ReviewRow",
    "SessionNotFound",
    "SessionRow",
    "StepRow",
    "Store",
    "StoreError",
    "SummaryRow",
    "TransitionRow",
    "ended_before",
    "forget_deliveries_before",
    "forget_delivery",
    "open_store",
    "orphaned",
    "overdue_reviews",
    "record_delivery",
    "unsettled",
    "usage_by",
    "utcnow",
]
