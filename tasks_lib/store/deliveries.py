"""Webhook delivery de-duplication: the relay remembers each delivery it accepted, so a redelivery starts nothing.

Plain functions over a Store; the deliveries table has nothing to do with sessions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from tasks_lib.store.store import Store
from tasks_lib.store.tables import DeliveryRow


def record_delivery(store: Store, delivery_id: str) -> bool:
    """Remember a webhook delivery; False when it was seen before (a redelivery)."""
    try:
        with store._db() as db:
            db.add(DeliveryRow(id=delivery_id))
    except IntegrityError:
        return False
    return True


def forget_delivery(store: Store, delivery_id: str) -> None:
    """Forget a delivery whose event could not be emitted, so a redelivery is accepted."""
    with store._db() as db:
        row = db.get(DeliveryRow, delivery_id)
        if row is not None:
            db.delete(row)


def forget_deliveries_before(store: Store, cutoff: datetime) -> int:
    """Forget webhook deliveries received before ``cutoff`` (redeliveries that old are not expected); how many."""
    with store._db() as db:
        return db.execute(delete(DeliveryRow).where(DeliveryRow.received_at < cutoff)).rowcount
