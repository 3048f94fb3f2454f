"""Resetting the offsets of a group whose consumers are this process's own services.

A reset is refused under live members (their next commit would undo it), so the runtime
stops its own workers of the group, applies the plan and starts them again; they then replay
from the new offsets, and the services' idempotent writes make the replay change nothing.
A member that is not one of ours (another ``orderdeck serve``, a script) is never stopped
from here: the reset is refused and names it, before anything is touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orderdeck.errors import OrderdeckError
from orderdeck.kafka.offset_reset import (
    ActiveMembersError,
    OffsetResetter,
    PlannedOffset,
    ResetTarget,
    TopicSelection,
)

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupInspector, GroupSnapshot
    from orderdeck.services.supervisor import Supervisor

#: How long our stopped workers' LeaveGroup may take to show in the coordinator's answer.
MEMBERS_GONE_WITHIN_S = 10.0


def _own_service(supervisor: Supervisor, group: str) -> tuple[str, int] | None:
    """The service consuming as ``group`` in this process and how many instances it runs."""
    for status in supervisor.statuses():
        if status.group == group:
            return status.name, status.instances
    return None


def _refuse_foreign(snapshot: GroupSnapshot, own_instances: int) -> None:
    """More members than our own workers means someone else consumes too: refuse."""
    if len(snapshot.members) > own_instances:
        raise ActiveMembersError(snapshot.group, snapshot.members)


async def preview(
    supervisor: Supervisor,
    inspector: GroupInspector,
    group: str,
    target: ResetTarget,
    topics: TopicSelection | None = None,
) -> list[PlannedOffset]:
    """The plan for ``group``; our own members are allowed, anyone else's refuses."""
    own = _own_service(supervisor, group)
    (snapshot,) = await inspector.describe([group])
    _refuse_foreign(snapshot, own[1] if own else 0)
    return await OffsetResetter(inspector).plan(group, target, topics, refuse_members=False)


async def apply(
    supervisor: Supervisor, inspector: GroupInspector, group: str, plan: Sequence[PlannedOffset]
) -> None:
    """Stop our consumers of ``group``, commit ``plan``, start them again (always)."""
    if any(row.group != group for row in plan):
        raise OrderdeckError(f"the plan is not for group {group!r}")
    own = _own_service(supervisor, group)
    (snapshot,) = await inspector.describe([group])
    _refuse_foreign(snapshot, own[1] if own else 0)
    if own is None:
        await OffsetResetter(inspector).apply(group, plan)
        return
    name, _ = own
    instances = await supervisor.stop_service(name)
    try:
        await _wait_members_gone(inspector, group)
        await OffsetResetter(inspector).apply(group, plan)
    finally:
        await supervisor.start_service(name, instances)


async def _wait_members_gone(inspector: GroupInspector, group: str) -> None:
    """Our workers left the group; wait (bounded) until the coordinator says so."""
    deadline = time.monotonic() + MEMBERS_GONE_WITHIN_S
    while True:
        (snapshot,) = await inspector.describe([group])
        if not snapshot.members:
            return
        if time.monotonic() >= deadline:
            raise ActiveMembersError(group, snapshot.members)
        await asyncio.sleep(0.1)
