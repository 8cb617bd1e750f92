"""The store's schema migrations (Alembic), run from code: no alembic.ini, the connection is passed in.

Revisions live in ``versions/`` as ``NNNN_what.py`` whose revision id is ``NNNN``; the history is linear.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection, MetaData

HERE = Path(__file__).parent
VERSIONS = HERE / "versions"
BASELINE = "0001"  # the schema as it was when stores began to be versioned


def revisions() -> list[str]:
    """The ids of the revisions this version knows, oldest first (read from the file names, without Alembic)."""
    names = (p.name for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    return sorted(name[:4] for name in names)


def head() -> str:
    """The newest revision: the one a store opened by this version must be at."""
    return revisions()[-1]


def _config(connection: Connection) -> Config:
    """An Alembic config for this package that runs on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply the revisions the store on ``connection`` lacks, up to ``revision`` (in the caller's transaction)."""
    from alembic import command

    command.upgrade(_config(connection), revision)


def stamp(connection: Connection, revision: str) -> None:
    """Record that the store on ``connection`` is at ``revision`` without running anything."""
    from alembic import command

    command.stamp(_config(connection), revision)


def baseline_schema() -> MetaData:
    """The tables of revision 0001, as written in that revision (not as the models are now)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import MetaData, Table

    config = _config(None)  # type: ignore[arg-type]
    module = ScriptDirectory.from_config(config).get_revision(BASELINE).module
    metadata = MetaData()
    module.define_tables(lambda name, *items: Table(name, metadata, *items))
    return metadata
