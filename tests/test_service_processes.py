"""How ``serve --processes`` shares the pipeline between its child processes."""

from __future__ import annotations

import pytest

from orderdeck.service_processes import split_services

PIPELINE = ("order", "payment", "inventory", "notification")


@pytest.mark.parametrize(
    ("children", "shares"),
    [
        (1, [PIPELINE]),
        (2, [("order", "payment"), ("inventory", "notification")]),
        (3, [("order", "payment"), ("inventory",), ("notification",)]),
        (4, [("order",), ("payment",), ("inventory",), ("notification",)]),
        (9, [("order",), ("payment",), ("inventory",), ("notification",)]),
    ],
)
def test_shares_are_contiguous_and_even(children: int, shares: list[tuple[str, ...]]) -> None:
    assert split_services(PIPELINE, children) == shares


def test_a_subset_is_shared_too() -> None:
    assert split_services(("payment", "notification"), 3) == [("payment",), ("notification",)]
