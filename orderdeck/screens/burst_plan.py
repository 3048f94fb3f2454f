"""What a burst sends: N orders with a chosen mix of good, declined and out-of-stock ones.

The payment and inventory rules are deterministic (see ``orderdeck.services.payment``), so each kind
of order can be built to end where it is meant to:

* **good**: one unit of an in-stock product for a fresh customer (never near the credit
  limit) → ``confirmed``;
* **declined**: a customer id starting ``declined-`` → ``payment_declined``;
* **out of stock**: one more unit than the product with the least stock has, when a fresh
  customer can afford that many, so even the first such order is paid, finds too little
  stock and is refunded → ``cancelled`` (and no stock is used up). Good orders leave that
  product alone, so they cannot run it dry and end cancelled themselves. Only when no
  product can be over-ordered affordably does the burst fall back to the largest affordable
  quantity of the product that runs out soonest (the first few of those may be served).

The kinds are interleaved by smooth weighted round-robin, not at random, so a burst (and a
test of it) is the same every time. No Textual here: this is plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from orderdeck.events import MAX_QUANTITY
from orderdeck.services.payment import CREDIT_LIMIT_CENTS, DECLINED_PREFIX
from orderdeck.store import Product

OrderKind = Literal["good", "declined", "out-of-stock"]
KINDS: tuple[OrderKind, ...] = ("good", "declined", "out-of-stock")


@dataclass(frozen=True)
class BurstMix:
    """Relative weights of the three kinds (e.g. 80/10/10)."""

    good: int = 80
    declined: int = 10
    out_of_stock: int = 10

    def weights(self) -> tuple[int, int, int]:
        """The weights in ``KINDS`` order."""
        return (self.good, self.declined, self.out_of_stock)


@dataclass(frozen=True)
class PlannedOrder:
    """One order of a burst and what it is expected to become."""

    kind: OrderKind
    customer_id: str
    product_id: str
    quantity: int


def interleave(n: int, weights: Sequence[int]) -> list[int]:
    """``n`` indexes into ``weights``, spread evenly in proportion to them."""
    total = sum(max(0, w) for w in weights)
    if total <= 0:
        return [0] * n
    current = [0] * len(weights)
    picks: list[int] = []
    for _ in range(n):
        for i, w in enumerate(weights):
            current[i] += max(0, w)
        best = max(range(len(weights)), key=lambda i: current[i])
        current[best] -= total
        picks.append(best)
    return picks


def scarce_product(products: Sequence[Product]) -> tuple[Product, int] | None:
    """The product that runs out after the fewest affordable orders, and that quantity."""
    best: tuple[int, Product, int] | None = None
    for product in products:
        if product.priceCents <= 0:
            continue
        quantity = min(MAX_QUANTITY, CREDIT_LIMIT_CENTS // product.priceCents)
        if quantity < 1:
            continue
        orders_to_drain = product.stock // quantity + 1
        # Ties go to the product with less stock: the burst uses up less of the catalog.
        if best is None or (orders_to_drain, product.stock) < (best[0], best[1].stock):
            best = (orders_to_drain, product, quantity)
    return (best[1], best[2]) if best else None


def overdrawn_product(products: Sequence[Product]) -> tuple[Product, int] | None:
    """The product with the least stock and ``stock + 1`` units of it, if that is affordable."""
    for product in sorted(products, key=lambda p: (p.stock, p.priceCents, p.id)):
        quantity = product.stock + 1
        affordable = quantity * product.priceCents <= CREDIT_LIMIT_CENTS
        if product.priceCents > 0 and quantity <= MAX_QUANTITY and affordable:
            return product, quantity
    return None


def plan_burst(n: int, mix: BurstMix, products: Sequence[Product], run: str) -> list[PlannedOrder]:
    """The ``n`` orders of burst ``run`` (a short tag that makes customer ids unique)."""
    scarce = overdrawn_product(products) or scarce_product(products)
    in_stock = sorted((p for p in products if p.stock > 0), key=lambda p: (p.priceCents, p.id))
    if scarce is not None and len(in_stock) > 1:
        in_stock = [p for p in in_stock if p.id != scarce[0].id]
    any_product = sorted(products, key=lambda p: (p.priceCents, p.id))
    plan: list[PlannedOrder] = []
    for i, pick in enumerate(interleave(n, mix.weights())):
        kind = KINDS[pick]
        if kind == "out-of-stock" and scarce is not None:
            product, quantity = scarce
            plan.append(PlannedOrder(kind, f"b{run}-{i}", product.id, quantity))
        elif kind == "declined" and any_product:
            product = any_product[i % len(any_product)]
            plan.append(PlannedOrder(kind, f"{DECLINED_PREFIX}b{run}-{i}", product.id, 1))
        elif in_stock:
            product = in_stock[i % len(in_stock)]
            plan.append(PlannedOrder("good", f"b{run}-{i}", product.id, 1))
    return plan
