"""``orderdeck orders submit|show``: talk to a running order API from a shell (and ``orders
stuck``, in ``orders_stuck.py``, reads the store)."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from orderdeck.commands.api_access import add_api_token_flags, api_token_from_args
from orderdeck.commands.orders_stuck import add_stuck_parser, run_stuck
from orderdeck.errors import OrderdeckError

DEFAULT_API_URL = "http://127.0.0.1:3000"


def register(subparsers: Any) -> None:
    """Add ``orders`` and its sub-commands to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "orders", help="submit or show orders through the order API; list stuck orders"
    )
    parser.add_argument(
        "--api-url", default=DEFAULT_API_URL, help=f"order API base URL (default {DEFAULT_API_URL})"
    )
    add_api_token_flags(parser)
    sub = parser.add_subparsers(dest="orders_command", metavar="ACTION", required=True)
    submit = sub.add_parser("submit", help="place an order")
    submit.add_argument("--customer", required=True, help="customer id")
    submit.add_argument("--product", required=True, help="product id (see GET /api/v1/products)")
    submit.add_argument("--quantity", type=int, required=True, help="1..1000")
    submit.add_argument("--idempotency-key", help="makes a retried submit safe")
    show = sub.add_parser("show", help="show an order, its status and its journey")
    show.add_argument("order_id", metavar="ID")
    for p in (submit, show):
        p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_stuck_parser(sub)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``orders submit`` or ``orders show`` (``orders stuck`` reads the store instead)."""
    if args.orders_command == "stuck":
        return run_stuck(args)
    import httpx

    base = args.api_url.rstrip("/")
    token = api_token_from_args(args)
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        with httpx.Client(base_url=base, timeout=15.0, headers=auth) as client:
            if args.orders_command == "submit":
                headers = {}
                if args.idempotency_key:
                    headers["Idempotency-Key"] = args.idempotency_key
                response = client.post(
                    "/api/v1/orders",
                    json={
                        "customerId": args.customer,
                        "productId": args.product,
                        "quantity": args.quantity,
                    },
                    headers=headers,
                )
            else:
                response = client.get(f"/api/v1/orders/{quote(args.order_id, safe='')}")
    except httpx.TransportError as exc:
        raise OrderdeckError(
            f"the order API at {base} is not reachable ({type(exc).__name__}); "
            "is `orderdeck serve` or `orderdeck launch` running?"
        ) from None
    body = _json_or_none(response.text)
    if response.status_code >= 400:
        raise OrderdeckError(_describe_error(response.status_code, body, response.text))
    if args.json or not isinstance(body, dict):
        print(json.dumps(body, indent=2) if body is not None else response.text)
    elif args.orders_command == "submit":
        event = body.get("event", {})
        print(f"order {event.get('id')} {body.get('status')} ({response.headers.get('location')})")
    else:
        print(_format_order(body))
    return 0


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _describe_error(status: int, body: Any, text: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"the API answered {status}: {text[:200]}"
    parts = [f"{status}: {error.get('message', '')}"]
    for field in error.get("fields") or ():
        parts.append(f"{field.get('field')}: {field.get('reason')}")
    return "; ".join(parts)


def _format_order(order: dict[str, Any]) -> str:
    lines = [
        f"order     {order.get('id')}",
        f"customer  {order.get('customerId')}",
        f"status    {order.get('status')}",
        f"amount    {_cents(order.get('amountCents'))}"
        + (f" (refunded {_cents(order['refundedCents'])})" if order.get("refundedCents") else ""),
        "items",
    ]
    for item in order.get("items") or ():
        lines.append(
            f"  {item.get('quantity'):>4} x {item.get('productId')}"
            f" @ {_cents(item.get('unitPriceCents'))}"
        )
    lines.append("history")
    for change in order.get("history") or ():
        lines.append(f"  {change.get('at')}  {change.get('status')}")
    lines.append("journey")
    for hop in order.get("journey") or ():
        lines.append(
            f"  {hop.get('type'):<26} {hop.get('topic')}[{hop.get('partition')}]"
            f"@{hop.get('offset')}  by {hop.get('service') or '-'}"
        )
    return "\n".join(lines)


def _cents(value: Any) -> str:
    return f"{value / 100:.2f}" if isinstance(value, int) else "-"
