"""Who may use the order API: the Host it is asked for by, and the bearer token it needs.

Two checks run before any route (the ``POST /api/v1/orders`` fast path included), as one ASGI
layer that :func:`orderdeck.api.create_app` puts around the whole app:

- **Host**: only the names the operator allowed are served (400 otherwise). A page on
  ``evil.example`` can make a browser resolve that name to 127.0.0.1 (DNS rebinding) and so
  reach an API that listens on loopback only; its requests still say ``Host: evil.example``.
- **Token**: with an API token set, every request except ``GET /health`` (which a load
  balancer probes without credentials) needs ``Authorization: Bearer <token>`` (401
  otherwise). The comparison runs in constant time, on digests so that not even the token's
  length leaks.

An API bound to anything but a loopback address must have a token: :func:`require_token`
refuses to start without one. The token never appears in ``repr``, logs or answers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from orderdeck.errors import OrderdeckError

#: Host names that always reach this machine itself; always allowed.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Routes answered without a token: a health probe carries no credentials.
OPEN_ROUTES = frozenset({("GET", "/health"), ("HEAD", "/health")})
#: Shorter tokens are guessable; 16 characters is the least we accept.
MIN_TOKEN_LENGTH = 16
#: An ``--allowed-hosts`` entry that lets every Host through.
ANY_HOST = "*"
TOKEN_HOWTO = (
    "set ORDERDECK_API_TOKEN, or put the token in a file and pass --api-token-file FILE "
    "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE)"
)


class ApiAccessError(OrderdeckError):
    """An API token or host setting orderdeck cannot use."""

    exit_code = 2


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach; any other name needs a token."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    """``token`` if it can be an API token (long enough, sendable in a header)."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ApiAccessError(
            f"the API token must be at least {MIN_TOKEN_LENGTH} characters; {TOKEN_HOWTO}"
        )
    if not all("!" <= ch <= "~" for ch in token):
        raise ApiAccessError(
            "the API token may hold printable ASCII characters only (no spaces); " + TOKEN_HOWTO
        )
    return token


def read_token_file(path: Path) -> str:
    """The token in ``path`` (its first line, surrounding whitespace removed)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ApiAccessError(f"cannot read the API token file {path}: {reason}") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ApiAccessError(f"the API token file {path} is empty; {TOKEN_HOWTO}")
    return token


def require_token(host: str, token: str | None) -> None:
    """Refuse to serve the API beyond loopback without a token, saying how to set one."""
    if token is None and not is_loopback(host):
        raise ApiAccessError(
            f"the API would listen on {host}, beyond loopback, without a token: {TOKEN_HOWTO}"
        )


def _split_host(value: str) -> tuple[str, str | None] | None:
    """``(name, port)`` of a Host header value or an allowed-host entry; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        name += bracket
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = value.partition(":")
        if ":" in port_text:
            return None
        port = port_text if colon else None
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    name = name.removesuffix(".")
    if not name or any(ch in name for ch in " /\\@?#"):
        return None
    return name, port


def host_entry(host: str) -> str:
    """``host`` as it appears in a Host header (IPv6 addresses in brackets)."""
    name = host.strip().lower()
    if ":" in name and not name.startswith("["):
        return f"[{name}]"
    return name


@dataclass(frozen=True)
class AccessPolicy:
    """The Host values and the token one API server accepts."""

    #: ``(name, port)`` pairs; a None port matches any port.
    hosts: frozenset[tuple[str, str | None]]
    token: str | None = field(default=None, repr=False)
    any_host: bool = False

    @classmethod
    def for_server(
        cls, bind_host: str, token: str | None = None, allowed_hosts: Iterable[str] = ()
    ) -> AccessPolicy:
        """The loopback names, the bound address and ``allowed_hosts``; ``*`` allows any."""
        require_token(bind_host, token)
        if token is not None:
            check_token(token)
        extra = list(allowed_hosts)
        names = [*LOOPBACK_HOSTS, *extra]
        if not _is_wildcard(bind_host):
            names.append(host_entry(bind_host))
        hosts: set[tuple[str, str | None]] = set()
        for entry in names:
            if entry.strip() == ANY_HOST:
                continue
            parsed = _split_host(entry)
            if parsed is None:
                raise ApiAccessError(f"--allowed-hosts: {entry!r} is not a host name or address")
            hosts.add(parsed)
        return cls(frozenset(hosts), token, any_host=any(e.strip() == ANY_HOST for e in extra))

    def host_allowed(self, value: str | None) -> bool:
        """Whether a request with this Host header is served."""
        if value is None:
            return False
        parsed = _split_host(value)
        if parsed is None:
            return False
        if self.any_host:
            return True
        return parsed in self.hosts or (parsed[0], None) in self.hosts

    def token_matches(self, authorization: str) -> bool:
        """Whether an ``Authorization`` header value carries this policy's token."""
        if self.token is None:
            return True
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        expected = hashlib.sha256(self.token.encode()).digest()
        offered = hashlib.sha256(given.strip().encode("latin-1")).digest()
        return hmac.compare_digest(expected, offered)


def _is_wildcard(host: str) -> bool:
    name = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return name == ""


class ApiGuard:
    """The ASGI layer that applies an :class:`AccessPolicy` before the app sees a request."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts: list[str] = []
        authorizations: list[str] = []
        for name, value in scope["headers"]:
            if name == b"host":
                hosts.append(value.decode("latin-1"))
            elif name == b"authorization":
                authorizations.append(value.decode("latin-1"))
        if len(hosts) != 1 or not self.policy.host_allowed(hosts[0]):
            await _refuse(send, 400, "this server does not answer for that Host header")
            return
        if self.policy.token is None or (scope["method"], scope["path"]) in OPEN_ROUTES:
            await self.app(scope, receive, send)
            return
        if not authorizations:
            await _refuse(
                send,
                401,
                "this API needs an Authorization: Bearer <token> header",
                b'Bearer realm="orderdeck"',
            )
        elif len(authorizations) == 1 and self.policy.token_matches(authorizations[0]):
            await self.app(scope, receive, send)
        else:
            await _refuse(
                send,
                401,
                "the API token is not valid",
                b'Bearer realm="orderdeck", error="invalid_token"',
            )


async def _refuse(send: Send, status: int, message: str, challenge: bytes | None = None) -> None:
    """A JSON error in the API's shape (``api.ErrorBody``), before any route ran."""
    body = json.dumps(
        {"error": {"status": status, "message": message, "fields": []}}, separators=(",", ":")
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
