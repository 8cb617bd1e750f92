"""The session store: tables, migrations and the Store that every part of the project reads and writes through."""

from tasks_lib.store.migrate import StoreError
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

__all__ = ["STEP_RESULT_CAP", "Base", "CheckRow", "DeliveryRow", "DiffRow", "ReviewRow", "SessionNotFound", "SessionRow",
           "StepRow", "Store", "StoreError", "SummaryRow", "TransitionRow", "open_store", "utcnow"]
