"""The schema's version, and the rule for opening a store written by another version.

Every backend keeps, inside its database, the number of the last migration step it applied
(SQLite: ``PRAGMA user_version``; PostgreSQL: a one-row table) and owns one step per version
in its own dialect. On open it asks :func:`migration_steps` which steps to run, and runs them
in the transaction that checks the version, so two processes starting at once migrate once.

A store written by a *newer* orderdeck is refused: its tables may mean things this version
does not know (a new status, a new constraint), and writing into them could break the newer
version's guarantees. An older store is brought forward; version 0 is a store from before
versioning, whose tables step 1 creates only if they are missing.
"""

from __future__ import annotations

from orderdeck.errors import OrderdeckError

#: The version of the schema this orderdeck writes; bump it with a new step in every backend.
SCHEMA_VERSION = 2


class StoreVersionError(OrderdeckError):
    """The store was written by a newer orderdeck than this one."""


def migration_steps(found: int, where: str) -> range:
    """The versions to apply, in order, to a store at version ``found`` (empty when current).

    ``where`` names the store in the error (a path, or a URL without its password).
    """
    if found > SCHEMA_VERSION:
        raise StoreVersionError(
            f"the store at {where} has schema version {found}, newer than this orderdeck's"
            f" {SCHEMA_VERSION}: it was written by a newer orderdeck; upgrade orderdeck"
            " (or point --store at another database)"
        )
    if found < 0:
        raise StoreVersionError(f"the store at {where} has an invalid schema version {found}")
    return range(found + 1, SCHEMA_VERSION + 1)
