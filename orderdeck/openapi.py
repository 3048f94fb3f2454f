"""The order API's OpenAPI 3.1 document, generated from the pydantic models it uses.

The request and response schemas come from ``model_json_schema`` of the very models that
validate and serialise (``orders.SingleItemOrder``, ``api_models.ErrorBody``, the store's views), so
the document cannot drift from what the API accepts and answers.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from orderdeck.api_models import KNOWN_STATUSES, MAX_BODY_BYTES, MAX_PAGE, ErrorBody, HealthReport
from orderdeck.orders import MultiItemOrder, OrderCreated, SingleItemOrder
from orderdeck.store import OrderSummary, OrderView, Product

_openapi_cache: dict[str, Any] = {}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description, its schemas generated from the pydantic models in use."""
    if _openapi_cache:
        return _openapi_cache
    _, top = models_json_schema(
        [
            (SingleItemOrder, "validation"),
            (MultiItemOrder, "validation"),
            (OrderCreated, "serialization"),
            (ErrorBody, "serialization"),
            (HealthReport, "serialization"),
            (OrderView, "serialization"),
            (OrderSummary, "serialization"),
            (Product, "serialization"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    schemas = top.get("$defs", {})

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def error(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": ref("ErrorBody")}},
        }

    def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    order_view, summary, product = ref("OrderView"), ref("OrderSummary"), ref("Product")
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "orderdeck order API", "version": "1"},
        "paths": {
            "/api/v1/orders": {
                "post": {
                    "summary": "Place an order (201 only after Kafka acknowledged OrderPlaced)",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                            "description": "Same key and body: same order, no second event. "
                            "Send it at most once (two keys are a 400).",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [ref("SingleItemOrder"), ref("MultiItemOrder")]}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            **ok("Order accepted", ref("OrderCreated")),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        "400": error(
                            "Body is not JSON, repeats a key, or Idempotency-Key was sent twice"
                        ),
                        "409": error("Idempotency-Key reused with a different body"),
                        "413": error(f"Body larger than {MAX_BODY_BYTES} bytes"),
                        "415": error("Content-Type is not application/json"),
                        "422": error("Invalid fields (each named with its reason)"),
                        "503": {
                            **error("Kafka did not acknowledge in time; no order exists"),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                },
                "get": {
                    "summary": "List orders, newest first",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"enum": sorted(KNOWN_STATUSES)},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string", "minLength": 1},
                            "description": "nextCursor of the previous page",
                        },
                    ],
                    "responses": {
                        "200": ok(
                            "A page of orders",
                            {
                                "type": "object",
                                "properties": {
                                    "orders": {"type": "array", "items": summary},
                                    "nextCursor": {"type": ["string", "null"]},
                                },
                            },
                        ),
                        "422": error("Bad query parameters"),
                    },
                },
            },
            "/api/v1/orders/{order_id}": {
                "get": {
                    "summary": "An order with its status history and its journey over the topics",
                    "parameters": [
                        {
                            "name": "order_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": ok("The order", order_view),
                        "404": error("Unknown order"),
                    },
                }
            },
            "/api/v1/products": {
                "get": {
                    "summary": "The catalog with live stock",
                    "responses": {
                        "200": ok(
                            "Products",
                            {
                                "type": "object",
                                "properties": {"products": {"type": "array", "items": product}},
                            },
                        )
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Kafka reachable, services running, total lag",
                    "responses": {
                        "200": ok("Healthy", ref("HealthReport")),
                        "503": ok("Degraded", ref("HealthReport")),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
        "components": {"schemas": schemas},
    }
    _openapi_cache.update(doc)
    return doc
