"""The order API's answer models and limits, shared by the app and its OpenAPI document.

``api.py`` serves these and ``openapi.py`` describes them; both import this module, so
neither has to import the other's.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from orderdeck.events import FINAL_STATUSES, IN_FLIGHT_STATUSES

#: Largest accepted request body; an order is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 500
#: Statuses an order can be listed by: the in-flight ones (see store/sqlite.py) and the final ones.
KNOWN_STATUSES = IN_FLIGHT_STATUSES | FINAL_STATUSES


class ErrorField(BaseModel):
    """One field that made a request unacceptable."""

    field: str
    reason: str


class ErrorDetail(BaseModel):
    """What went wrong, for people and programs."""

    status: int
    message: str
    fields: list[ErrorField] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answer of the API has this shape."""

    error: ErrorDetail


class KafkaHealth(BaseModel):
    """Whether the API's Kafka cluster answers."""

    bootstrapServers: str
    reachable: bool | None = None


class ServiceHealth(BaseModel):
    """One pipeline service as the runtime sees it."""

    name: str
    state: str
    instances: int = 0
    lag: int | None = None


class HealthReport(BaseModel):
    """``GET /health``: ``ok`` when Kafka answers and every service runs."""

    status: str
    kafka: KafkaHealth
    api: str = "running"
    services: list[ServiceHealth] = Field(default_factory=list)
    totalLag: int | None = None
    #: Records in each dead-letter topic, from its offsets (empty before the first reading).
    deadLetters: dict[str, int] = Field(default_factory=dict)
    totalDeadLetters: int | None = None
    #: Orders not final 30 s after acceptance (``orderdeck orders stuck`` lists them).
    stuckOrders: int | None = None
