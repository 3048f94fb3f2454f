"""Every aiokafka internal orderdeck relies on, in one place, and why each is needed.

aiokafka's public API covers producing, consuming and the admin calls orderdeck makes, but
two things are not public in aiokafka 0.14, and this module is the only code that reaches
past the API for them:

**Stopping within a bound** (:func:`stop_within`). ``AIOKafkaConsumer.stop()`` waits for the
group coordinator and ``AIOKafkaProducer.stop()`` for every pending batch, both forever while
the cluster is unreachable; a service must still stop within the supervisor's grace period
and leave no task behind. After the grace period the client is closed by force: its background
tasks are cancelled, then its connections closed. That needs

* ``<AIOKafkaClient>._sync_task``, the metadata synchroniser. It is taken before the stop
  begins: aiokafka forgets it once it has tried to cancel it, even when the routine swallowed
  the cancellation (it can, while reconnecting), and it would then run on, retrying.
* of a consumer: ``_client``; ``_coordinator`` with its ``_coordination_task``,
  ``_heartbeat_task`` and ``_commit_refresh_task`` (``_reset_committed_task`` for a consumer
  outside a group); ``_fetcher`` with its ``_fetch_task`` and ``_pending_tasks``.
* of a producer: ``_message_accumulator`` with ``_batches``, ``_pending_batches``,
  ``fail_all()`` and each batch's ``future``, ``_msg_futures`` and ``retry_count``, so that
  pending sends fail (their callers get a KafkaConnectionError) and aiokafka's stop can
  finish; and ``_sender.sender_task`` for when it still hangs. (``client`` is public.)

**ListOffsets and Metadata requests** (:func:`send_request`): ``AIOKafkaAdminClient`` has no
ListOffsets call and only asks for metadata with ``allow_auto_topic_creation``, so
``kafka/admin.py`` sends those requests through the admin client's ``_send_request`` (or, to
any broker, its ``_client``: see :func:`send_request`). The public
alternatives were weighed and do not give the numbers the official ``kafka-consumer-groups``
tool gives: ``AIOKafkaConsumer.end_offsets()`` waits for a partition without a leader until its
request timeout and then raises (the tool shows ``-`` for that partition and goes on), and blocks
indefinitely for a partition that does not exist; ``describe_topics(names)`` would create a
missing topic on a broker with ``auto.create.topics.enable``, and asking for every topic instead
(``describe_topics()``) costs a whole cluster's metadata once a second in the control center.

:data:`REQUIRED` names every internal by the object it is read from;
``tests/kafka/test_aiokafka_compat.py`` checks them on real clients with
:func:`missing_internals`, so an aiokafka upgrade that renames one fails there, naming it,
rather than in a stop while Kafka is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine, Sequence
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, NodeNotReadyError

log = logging.getLogger(__name__)

#: How long each forced closing step may take.
FORCE_CLOSE_S = 0.5

#: The internals read here, as dotted paths from the object named by the key.
REQUIRED: dict[str, tuple[str, ...]] = {
    "AIOKafkaConsumer": (
        "_client._sync_task",
        "_coordinator._coordination_task",
        "_coordinator._heartbeat_task",
        "_coordinator._commit_refresh_task",
        "_fetcher._fetch_task",
        "_fetcher._pending_tasks",
    ),
    "AIOKafkaProducer": (
        "client._sync_task",
        "_message_accumulator._batches",
        "_message_accumulator._pending_batches",
        "_message_accumulator.fail_all",
        "_sender.sender_task",
    ),
    #: Of each batch queued in a producer's accumulator.
    "MessageBatch": ("future", "_msg_futures", "_drain_waiter", "retry_count"),
    "AIOKafkaAdminClient": ("_send_request", "_client"),
}

#: Coordinator tasks, of a group consumer and of one outside any group; absent ones are skipped.
_COORDINATOR_TASKS = (
    "_coordination_task",
    "_heartbeat_task",
    "_commit_refresh_task",
    "_reset_committed_task",
)

#: Either client whose stop this module bounds.
KafkaClient: TypeAlias = "AIOKafkaConsumer | AIOKafkaProducer"


def missing_internals(obj: KafkaClient | AIOKafkaAdminClient) -> list[str]:
    """The internals of :data:`REQUIRED` that ``obj`` (a started client) lacks, as
    ``Class.path`` strings; for a producer also those of each batch it has queued."""
    kind = type(obj).__name__
    missing = [f"{kind}.{path}" for path in REQUIRED.get(kind, ()) if not _has_path(obj, path)]
    if isinstance(obj, AIOKafkaProducer) and not missing:
        for batch in queued_batches(obj):
            for attr in REQUIRED["MessageBatch"]:
                if not hasattr(batch, attr):
                    missing.append(f"MessageBatch.{attr}")
    return sorted(set(missing))


def queued_batches(producer: AIOKafkaProducer) -> list[Any]:
    """The record batches a producer holds that no broker has acknowledged yet."""
    accumulator = producer._message_accumulator
    queued = [b for deque in accumulator._batches.values() for b in deque]
    return queued + [b for b in accumulator._pending_batches if b not in queued]


async def send_request(admin: AIOKafkaAdminClient, request: Any, node_id: int | None = None) -> Any:
    """Send a protocol request through ``admin``'s connections (to ``node_id``, or any broker).

    "Any broker" tries each one the client knows, in random order: aiokafka would pick one at
    random and fail when it is a broker that just died, which its metadata names until the
    next refresh — on a three-broker cluster, every third Cluster-screen refresh after a kill.
    """
    if node_id is not None:
        return await admin._send_request(request, node_id)
    return await send_to_any_broker(admin._client, request)


async def send_to_any_broker(client: Any, request: Any) -> Any:
    """Send ``request`` to the first broker of ``client`` (an AIOKafkaClient) that answers."""
    nodes = [broker.nodeId for broker in client.cluster.brokers()]
    random.shuffle(nodes)
    failure: KafkaError = KafkaConnectionError("no broker is known")
    for node in nodes:
        try:
            return await client.send(node, request)
        except (KafkaConnectionError, NodeNotReadyError) as exc:
            failure = exc
            client.force_metadata_update()  # learn that it is gone
    raise failure


async def stop_within(kafka: KafkaClient, grace: float, what: str) -> None:
    """Stop an aiokafka consumer or producer within about ``grace`` seconds, by force after.

    A consumer leaves its group (committing nothing more); a producer flushes. When that does
    not finish in time, breaks off half way, or the caller is cancelled, the client is closed
    by force (:func:`force_close`), so nothing is left running either way. ``what`` names the
    client in the warning logged then (``"<what> did not stop cleanly; closing it"``).
    """
    metadata_task = _client_of(kafka)._sync_task
    stopping = asyncio.ensure_future(kafka.stop())
    try:
        done, _ = await asyncio.wait({stopping}, timeout=grace)
    except asyncio.CancelledError:
        await finish(force_close(kafka, stopping, metadata_task))
        raise
    if _stopped_cleanly(stopping, done):
        await cancel_tasks([metadata_task], FORCE_CLOSE_S)
        return
    # Timed out, or stop() broke off half way (with Kafka away a consumer's coordinator can
    # end cancelled, and stop() then raises CancelledError before closing the client).
    log.warning("%s did not stop cleanly; closing it", what)
    await finish(force_close(kafka, stopping, metadata_task))


async def force_close(
    kafka: KafkaClient, stopping: asyncio.Future[Any], metadata_task: asyncio.Future[Any] | None
) -> None:
    """Close ``kafka`` for sure, whatever its ``stopping`` (the ``stop()`` under way) does.

    A producer's pending sends are failed first, which lets its stop finish by itself; when
    it still hangs (and for a consumer at once) the stop and every background task of the
    client are cancelled, then its connections closed.
    """
    if isinstance(kafka, AIOKafkaProducer):
        _fail_pending_sends(kafka)
        done, _ = await asyncio.wait({stopping}, timeout=FORCE_CLOSE_S)
        if _stopped_cleanly(stopping, done):
            await cancel_tasks([metadata_task], FORCE_CLOSE_S)
            return
    # Cancelling the stop cancels whatever it awaits (a consumer's coordination routine).
    await cancel_tasks([stopping, metadata_task, *_background_tasks(kafka)], FORCE_CLOSE_S)
    await close_client(_client_of(kafka))


async def close_client(client: Any) -> None:
    """Close an ``AIOKafkaClient`` for sure: its metadata task first, then its connections."""
    await cancel_tasks([client._sync_task], FORCE_CLOSE_S)
    client._sync_task = None
    with contextlib.suppress(Exception):
        async with asyncio.timeout(FORCE_CLOSE_S):
            await client.close()


async def cancel_tasks(tasks: Sequence[asyncio.Future[Any] | None], within: float) -> None:
    """Cancel ``tasks`` and wait (up to ``within`` s) until they are done.

    Cancels again while waiting: an aiokafka routine can swallow one cancellation (a
    connection attempt racing it) and go on retrying against an absent broker.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    deadline = asyncio.get_running_loop().time() + within
    while pending and asyncio.get_running_loop().time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)


async def finish(closing: Coroutine[Any, Any, None]) -> None:
    """Run a (bounded) forced close to its end even if the caller is cancelled meanwhile.

    Used on the way out of a cancelled stop: returning at once would leave the closing
    running behind the caller's back, and the caller's caller would find tasks alive.
    """
    task = asyncio.ensure_future(closing)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError  # honoured once the closing is done


def _stopped_cleanly(stopping: asyncio.Future[Any], done: set[asyncio.Future[Any]]) -> bool:
    return stopping in done and not stopping.cancelled() and stopping.exception() is None


def _client_of(kafka: KafkaClient) -> Any:
    return kafka.client if isinstance(kafka, AIOKafkaProducer) else kafka._client


def _background_tasks(kafka: KafkaClient) -> list[asyncio.Future[Any] | None]:
    if isinstance(kafka, AIOKafkaProducer):
        return [kafka._sender.sender_task]
    tasks: list[asyncio.Future[Any] | None] = []
    coordinator = kafka._coordinator
    for attr in _COORDINATOR_TASKS:
        tasks.append(getattr(coordinator, attr, None))
    fetcher = kafka._fetcher
    if fetcher is not None:
        tasks.append(fetcher._fetch_task)
        tasks.extend(fetcher._pending_tasks)
    return tasks


def _fail_pending_sends(producer: AIOKafkaProducer) -> None:
    """Fail every batch the producer holds, so that its stop() can finish."""
    accumulator = producer._message_accumulator
    for queued in accumulator._batches.values():
        for batch in queued:
            if batch.retry_count:
                # A retried batch was queued again; its done-callback still expects it among
                # the in-flight ones (aiokafka would raise KeyError otherwise).
                accumulator._pending_batches.add(batch)
    # Nobody may be left awaiting these sends (their callers timed out or were cancelled,
    # possibly between two send_batch calls); read each failure so asyncio does not report
    # it at exit.
    for batch in queued_batches(producer):
        batch.future.add_done_callback(_consume_exception)
        for future, _ in batch._msg_futures:
            future.add_done_callback(_consume_exception)
        # fail_all fails the batch's drain waiter too, which only a send_batch caller awaits:
        # unread, it is the "Future exception was never retrieved" printed at exit.
        batch._drain_waiter.add_done_callback(_consume_exception)
    accumulator.fail_all(KafkaConnectionError("producer closed before Kafka acknowledged"))


def retrieve_transaction_failure(producer: AIOKafkaProducer) -> None:
    """Mark a failed transaction's errors as seen, so asyncio does not report them at exit.

    A fenced transactional producer (``kafka/dead_letters.py``: a newer redrive of the same
    DLQ started) has its sender die with ProducerFenced, which is then set on
    ``_txn_manager._transaction_waiter`` and on every batch the producer still holds: on the
    drain waiter of each batch the sender had not taken yet (one whose partition it was
    adding to the transaction when it was fenced), which only a ``send_batch`` caller awaits.
    Nobody awaits any of them once the caller has its own ProducerFenced. Read defensively:
    when aiokafka renames one, only the "never retrieved" noise comes back.
    """
    manager = getattr(producer, "_txn_manager", None)
    waiter = getattr(manager, "_transaction_waiter", None)
    if isinstance(waiter, asyncio.Future) and waiter.done():
        _consume_exception(waiter)
    for batch in queued_batches(producer):
        for future in (batch.future, batch._drain_waiter, *(f for f, _ in batch._msg_futures)):
            if future.done():
                _consume_exception(future)
            else:
                future.add_done_callback(_consume_exception)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark a failed send's exception as seen (its caller has gone away)."""
    if not future.cancelled():
        future.exception()


def _has_path(obj: Any, path: str) -> bool:
    for attr in path.split("."):
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True
