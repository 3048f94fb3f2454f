"""Where the state lives: ``--store URL`` parsed into a small typed value.

Two schemes: ``sqlite:///path/to/orderdeck.db`` (an absolute path after the third slash;
``sqlite:///./relative.db`` and ``sqlite:relative.db`` are accepted for a relative one) and
``postgresql://user:password@host:port/database`` (``postgres://`` too, and libpq's query
parameters such as ``?sslmode=require``). A bare filesystem path means SQLite.

The password is kept apart from everything that is printed: ``str()``, ``repr()`` and
:meth:`StoreURL.redacted` show ``***`` in its place, and only :meth:`StoreURL.connection_url`
(handed to the database driver, never logged) carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from orderdeck.errors import OrderdeckError

DB_FILE_NAME = "orderdeck.db"
REDACTED = "***"


class StoreConfigError(OrderdeckError):
    """A store URL that cannot be used: bad syntax, an unknown scheme, a missing backend."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed store location; compare and print it freely, the password never shows."""

    scheme: Literal["sqlite", "postgresql"]
    #: The SQLite file (``scheme == "sqlite"``).
    path: Path | None = None
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str | None = field(default=None, repr=False, compare=False)
    database: str = ""
    #: Everything after ``?`` (libpq parameters), as given.
    query: str = ""

    @classmethod
    def sqlite(cls, path: Path) -> StoreURL:
        """The URL of the SQLite file at ``path``."""
        return cls(scheme="sqlite", path=Path(path))

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return self.scheme == "sqlite"

    def redacted(self) -> str:
        """The URL as it may be shown: the password replaced by ``***``."""
        return self._render(REDACTED if self.password is not None else None)

    def connection_url(self) -> str:
        """The URL with its password, for the database driver only: never print it."""
        return self._render(self.password)

    def _render(self, password: str | None) -> str:
        if self.scheme == "sqlite":
            assert self.path is not None
            path = self.path.as_posix()
            return f"sqlite:///{path.lstrip('/')}" if self.path.is_absolute() else f"sqlite:{path}"
        auth = ""
        if self.user or password is not None:
            auth = quote(self.user, safe="")
            if password is not None:
                auth += ":" + (password if password == REDACTED else quote(password, safe=""))
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"postgresql://{auth}{host}{port}/{quote(self.database, safe='')}{query}"

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"StoreURL({self.redacted()!r})"


def default_store_url(data_dir: Path) -> StoreURL:
    """The zero-set-up default: ``<data-dir>/orderdeck.db``."""
    return StoreURL.sqlite(Path(data_dir) / DB_FILE_NAME)


def parse_store_url(text: str) -> StoreURL:
    """Parse ``--store``; StoreConfigError (never echoing a password) if it is unusable."""
    text = text.strip()
    if not text:
        raise StoreConfigError("empty store URL: give sqlite:///path or postgresql://…")
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or (len(scheme) == 1 and rest.startswith(("\\", "/"))):
        return StoreURL.sqlite(Path(text))  # a plain path (or a Windows drive letter)
    if scheme == "sqlite":
        return _parse_sqlite(text, rest)
    if scheme in ("postgresql", "postgres"):
        return _parse_postgresql(text)
    if "/" in scheme or "." in scheme:
        return StoreURL.sqlite(Path(text))  # a relative path that happens to hold a colon
    raise StoreConfigError(
        f"unknown store URL scheme {scheme!r}: use sqlite:///path or"
        " postgresql://user:password@host:port/database"
    )


def _parse_sqlite(text: str, rest: str) -> StoreURL:
    if rest.startswith("//"):
        # sqlite:///abs/path -> "/abs/path"; sqlite:////abs also works; no host is allowed.
        authority, _, path = rest[2:].partition("/")
        if authority:
            raise StoreConfigError(
                f"a sqlite URL names no host: write sqlite:///path (three slashes), not {text!r}"
            )
        path = "/" + path.lstrip("/") if not path.startswith("./") else path
    else:
        path = rest
    path = unquote(path.split("?", 1)[0])
    if path in ("", "/"):
        raise StoreConfigError(f"the sqlite URL {text!r} names no file")
    return StoreURL.sqlite(Path(path))


def _parse_postgresql(text: str) -> StoreURL:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        # urlsplit's message can contain the netloc and so the password: say what, not that.
        reason = "bad port" if "port" in str(exc).lower() else "malformed address"
        raise StoreConfigError(
            f"cannot parse the postgresql store URL ({reason}): expected"
            " postgresql://user:password@host:port/database"
        ) from None
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname:
        raise StoreConfigError(
            "the postgresql store URL names no host: expected"
            " postgresql://user:password@host:port/database"
        )
    if not database or "/" in database:
        raise StoreConfigError(
            "the postgresql store URL names no database: expected"
            " postgresql://user:password@host:port/database"
        )
    return StoreURL(
        scheme="postgresql",
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
        query=parts.query,
    )
