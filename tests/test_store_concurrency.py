"""Writers across processes, outbox ids and the background checkpointer of the SQLite store.

Real processes and real files throughout: a child Python process holds the writer lock while
the test writes, is killed with SIGKILL while holding it, and the checkpointer thread is
watched copying the write-ahead log into the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orderdeck.store import (
    BUSY_TIMEOUT_MS,
    CHECKPOINT_INTERVAL_S,
    WAL_AUTOCHECKPOINT_PAGES,
    OutboxRow,
    Store,
    WriteTx,
)

REPO = Path(__file__).resolve().parent.parent
CHECKPOINT_THREAD = "orderdeck-db-checkpoint"
#: How long the child of the writer-lock test keeps its transaction open.
HOLD_S = 1.0

# Opens the store, starts a write transaction that changes the database (a processed-event
# claim and an outbox row), then announces that it holds the writer lock by renaming a file
# into place, with the outbox id it was given. It then keeps the transaction open for
# argv[3] seconds and commits, or with a negative argv[3] never ends it.
_HOLDER = """
import sys, time
from pathlib import Path
from orderdeck.store import Store
db, ready, hold = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
store = Store(db)
with store.write() as tx:
    assert tx.mark_processed("child", "child-event")
    row = tx.add_outbox("child", "t", b"child-key", b"child-value", [("h", b"1")])
    tmp = ready.with_name(ready.name + ".tmp")
    tmp.write_text(str(row.id))
    tmp.rename(ready)
    if hold < 0:
        while True:
            time.sleep(60)
    time.sleep(hold)
store.close()
"""


def _wait_for(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; fail describing ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {described}")
        time.sleep(0.01)


@contextlib.contextmanager
def _holder(db: Path, ready: Path, hold_s: float) -> Iterator[subprocess.Popen[bytes]]:
    """Run the lock-holding child; it is killed and reaped however the test ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), str(ready), str(hold_s)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    """What an exited child wrote to stderr."""
    assert proc.stderr is not None
    return proc.stderr.read().decode(errors="replace")


def _wait_until_holding(proc: subprocess.Popen[bytes], ready: Path) -> int:
    """Wait for the child's signal that it is inside ``store.write()``; its outbox id."""

    def signalled() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"child exited with {proc.returncode} before signalling:\n{_stderr(proc)}")
        return ready.exists()

    _wait_for(signalled, 15, "the child to hold the writer lock")
    return int(ready.read_text())


def _flock_is_free(db: Path) -> bool:
    """Whether the sidecar writer lock could be taken right now (then released at once)."""
    fd = os.open(db.with_name(db.name + ".writer-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == CHECKPOINT_THREAD and t.is_alive()]


# ----------------------------------------------------------------------------- writer lock


def test_a_writer_in_another_process_makes_this_one_queue(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    ready = tmp_path / "child-holds-lock"
    store = Store(db)  # created first: opening a Store writes the schema under the lock
    try:
        with _holder(db, ready, HOLD_S) as proc:
            child_id = _wait_until_holding(proc, ready)
            assert not _flock_is_free(db), "the child should hold the flock on the sidecar"
            started = time.monotonic()
            with store.write() as tx:
                waited = time.monotonic() - started
                claimed_again = tx.mark_processed("parent", "child-event")
                row = tx.add_outbox("parent", "t", b"parent-key", b"parent-value", [])
            assert proc.wait(timeout=10) == 0, _stderr(proc)
        # The parent got in only once the child had committed: it waited for the child's
        # whole hold, saw its claim and continued its outbox ids.
        assert 0.5 <= waited < 5, f"waited {waited:.2f}s for a lock held {HOLD_S}s"
        assert not claimed_again
        assert row.id == child_id + 1
        [child_row] = store.unsent_outbox("child")
        assert (child_row.id, child_row.key, child_row.value) == (
            child_id,
            b"child-key",
            b"child-value",
        )
        assert [r.id for r in store.unsent_outbox("parent")] == [row.id]
        assert _flock_is_free(db)
    finally:
        store.close()


def test_a_writer_killed_while_holding_the_lock_releases_it(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    ready = tmp_path / "child-holds-lock"
    store = Store(db)
    try:
        with store.write() as tx:
            before = tx.add_outbox("parent", "t", None, b"before", [])
        with _holder(db, ready, -1) as proc:
            child_id = _wait_until_holding(proc, ready)
            assert child_id == before.id + 1
            assert not _flock_is_free(db), "the child should hold the flock on the sidecar"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
        started = time.monotonic()
        with store.write() as tx:
            # The child's uncommitted claim and outbox row were rolled back.
            assert tx.mark_processed("child", "child-event")
            after = tx.add_outbox("parent", "t", None, b"after", [])
        took = time.monotonic() - started
        assert took < 2, f"a write after the holder died took {took:.2f}s"
        assert after.id == child_id  # the dead transaction never took its id
        assert store.unsent_outbox("child") == []
        assert [(r.id, r.value) for r in store.unsent_outbox("parent")] == [
            (before.id, b"before"),
            (after.id, b"after"),
        ]
    finally:
        store.close()


# ----------------------------------------------------------------------------- outbox ids


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "orderdeck.db")
    yield s
    s.close()


def test_outbox_ids_are_consecutive_and_never_reused_after_a_prune(store: Store) -> None:
    with store.write() as tx:
        first = [tx.add_outbox("order", "t", None, f"a{i}".encode(), []) for i in range(3)]
        assert tx.outbox == first
    assert [r.id for r in first] == [1, 2, 3]
    with store.write() as tx:
        second = [tx.add_outbox("order", "t", None, f"b{i}".encode(), []) for i in range(2)]
    assert [r.id for r in second] == [4, 5]

    store.mark_sent([r.id for r in first + second])
    assert store.prune_outbox(older_than_s=0) == 5
    assert store.unsent_outbox("order") == []
    with store.write() as tx:  # the table is empty now, yet ids go on from the highest used
        third = [tx.add_outbox("order", "t", None, f"c{i}".encode(), []) for i in range(2)]
    assert [r.id for r in third] == [6, 7]
    assert [(r.id, r.value) for r in store.unsent_outbox("order")] == [(6, b"c0"), (7, b"c1")]


def _add(tx: WriteTx, key: bytes) -> OutboxRow:
    return tx.add_outbox("order", "t", key, key, [])


def _fail_in_savepoint(tx: WriteTx, keys: list[bytes], error: Exception) -> None:
    """A handler that adds outbox rows inside a savepoint, then fails."""
    with tx.savepoint():
        for key in keys:
            _add(tx, key)
        raise error


def _fail_around_a_failed_savepoint(tx: WriteTx) -> None:
    """A handler whose nested savepoint fails (and is absorbed) before it fails itself."""
    with tx.savepoint():
        _add(tx, b"lost-outer-1")
        with contextlib.suppress(ValueError):
            _fail_in_savepoint(tx, [b"lost-inner"], ValueError("inner"))
        _add(tx, b"lost-outer-2")
        raise RuntimeError("outer")


def _failing_write(store: Store, key: bytes) -> None:
    with store.write() as tx:
        _add(tx, key)
        raise RuntimeError("batch failed")


def test_a_failed_savepoint_leaves_no_outbox_rows_and_no_gap(store: Store) -> None:
    with store.write() as tx:
        a = _add(tx, b"a")
        with tx.savepoint():  # a savepoint that succeeds keeps its rows
            b = _add(tx, b"b")
        with pytest.raises(RuntimeError, match="handler failed"):
            _fail_in_savepoint(tx, [b"lost-1", b"lost-2"], RuntimeError("handler failed"))
        assert tx.outbox == [a, b]
        c = _add(tx, b"c")
        with tx.savepoint():  # survives a failed savepoint nested in it
            d = _add(tx, b"d")
            with pytest.raises(ValueError, match="inner"):
                _fail_in_savepoint(tx, [b"lost-3"], ValueError("inner"))
            assert tx.outbox[-1] == d
        with pytest.raises(RuntimeError, match="outer"):
            _fail_around_a_failed_savepoint(tx)
        assert tx.outbox == [a, b, c, d]
        e = _add(tx, b"e")
    assert [r.id for r in (a, b, c, d, e)] == [1, 2, 3, 4, 5]
    assert store.unsent_outbox("order") == [a, b, c, d, e]

    # A savepoint that fails before any row of the transaction was added rewinds too.
    with store.write() as tx:
        with pytest.raises(RuntimeError, match="first record"):
            _fail_in_savepoint(tx, [b"lost-4"], RuntimeError("first record fails"))
        assert tx.outbox == []
        f = _add(tx, b"f")
    assert f.id == 6

    # A whole transaction that fails commits nothing, so its ids are free again.
    with pytest.raises(RuntimeError, match="batch failed"):
        _failing_write(store, b"lost-5")
    with store.write() as tx:
        g = _add(tx, b"g")
    assert g.id == 7
    assert [r.key for r in store.unsent_outbox("order")] == [
        b"a",
        b"b",
        b"c",
        b"d",
        b"e",
        b"f",
        b"g",
    ]


def test_unsent_outbox_returns_exactly_the_committed_rows_intact(store: Store) -> None:
    headers = [
        ("trace", b"\x00\x01\xfe\xff"),  # not UTF-8
        ("trace", b"second value, same name"),
        ("empty", b""),
        ("név", "ünïcode".encode()),
    ]
    with store.write() as tx:
        written = [
            tx.add_outbox("payment", "payment-events", b"\x00key\xff", b"\x80value", headers),
            tx.add_outbox("payment", "payment-events", None, None, []),
            tx.add_outbox("payment", "dlq", b"k", b"v" * 5000, [("h", b"x")]),
            tx.add_outbox("order", "order-events", b"o", b"order", []),
        ]
    with pytest.raises(RuntimeError, match="batch failed"):
        _failing_write(store, b"never")

    assert store.unsent_outbox("payment") == written[:3]
    assert store.unsent_outbox("order") == [written[3]]
    assert written[0] == OutboxRow(
        1, "payment", "payment-events", b"\x00key\xff", b"\x80value", tuple(headers)
    )
    assert store.unsent_outbox("payment", after_id=1, limit=1) == [written[1]]


# ----------------------------------------------------------------------------- checkpointer


def test_one_checkpointer_thread_per_database_while_stores_are_open(tmp_path: Path) -> None:
    baseline = len(_checkpoint_threads())
    db = tmp_path / "orderdeck.db"
    link = tmp_path / "link"
    link.symlink_to(tmp_path, target_is_directory=True)
    first = Store(db)
    second: Store | None = None
    try:
        assert len(_checkpoint_threads()) == baseline + 1
        thread = first.checkpoint_thread
        assert thread.name == CHECKPOINT_THREAD
        assert thread.is_alive()

        second = Store(link / "orderdeck.db")  # the same file under another name
        assert len(_checkpoint_threads()) == baseline + 1
        assert second.checkpoint_thread is thread

        other = Store(tmp_path / "other.db")  # another database has its own
        assert other.checkpoint_thread is not thread
        assert len(_checkpoint_threads()) == baseline + 2
        other.close()
        _wait_for(
            lambda: len(_checkpoint_threads()) == baseline + 1,
            5,
            "the other database's checkpointer to stop",
        )

        first.close()
        first.close()  # closing twice must not release the second store's share
        assert thread.is_alive()
        assert len(_checkpoint_threads()) == baseline + 1
    finally:
        first.close()
        if second is not None:
            second.close()
    _wait_for(lambda: not thread.is_alive(), 5, "the checkpointer thread to stop")
    assert len(_checkpoint_threads()) == baseline

    again = Store(db)  # reopening starts a fresh one
    try:
        fresh = again.checkpoint_thread
        assert fresh is not thread
        assert fresh in _checkpoint_threads()
        assert len(_checkpoint_threads()) == baseline + 1
    finally:
        again.close()
    _wait_for(lambda: not fresh.is_alive(), 5, "the reopened checkpointer to stop")


def test_the_checkpointer_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "orderdeck.db"
    wal = tmp_path / "orderdeck.db-wal"
    store = Store(db)
    try:
        # SQLite's own checkpoint would wait for 50,000 pages (about 200 MB) of log.
        settings = store.connection_settings()
        assert settings.journal_mode == "wal"
        assert settings.busy_timeout_ms == BUSY_TIMEOUT_MS
        assert settings.wal_autocheckpoint_pages == WAL_AUTOCHECKPOINT_PAGES
        page_size = settings.page_size
        before = db.stat().st_size

        value = b"x" * 1024
        for batch in range(4):
            with store.write() as tx:
                for i in range(1000):
                    tx.add_outbox("order", "t", f"{batch}-{i}".encode(), value, [])
        written = 4000 * len(value)
        assert written < WAL_AUTOCHECKPOINT_PAGES * page_size / 10

        # Only a checkpoint writes to the database file in WAL mode; the connection that
        # wrote is still open, so it is not the close-time checkpoint either.
        _wait_for(
            lambda: db.stat().st_size >= before + written,
            10 * CHECKPOINT_INTERVAL_S,
            lambda: (
                f"the database file to grow from {before} past {before + written} bytes"
                f" (it is {db.stat().st_size}, the log {wal.stat().st_size})"
            ),
        )
        assert wal.exists()
        assert len(store.unsent_outbox("order", limit=5000)) == 4000
    finally:
        store.close()
