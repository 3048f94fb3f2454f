"""The Pipeline's edges carry their group's lag seconds and verdict badge."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.content import Content

from orderdeck.kafka import lag_time, verdicts
from orderdeck.kafka.lag_tracker import GroupLagTime
from orderdeck.services import ServiceStatus
from orderdeck.widgets.live import EdgeStats
from orderdeck.widgets.pipeline_chain import EdgeLine, PipelineChain


class ChainApp(App[None]):
    def compose(self) -> ComposeResult:
        yield PipelineChain(("payment",), id="chain")


def status() -> ServiceStatus:
    return ServiceStatus(
        "payment", "running", 1, 10, 0, 0, 1.0, None, 0, "payment-events", "payment-service"
    )


async def test_a_falling_behind_group_shows_warn_and_its_lag_seconds_on_80_columns() -> None:
    figures = GroupLagTime(12.5, None, lag_time.NOT_DRAINING, verdicts.WARN, {})
    edge = EdgeStats("notification-events", "payment-service", 3.0, 1_234, 99_999)
    app = ChainApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one(PipelineChain).show_service(status(), edge, figures)
        await pilot.pause()
        line = app.query_one(EdgeLine)
        rendered = line.render()
        assert isinstance(rendered, Content)
        text = rendered.plain
        assert " WARN " in text
        assert "12.5s" in text
        assert "1,234" in text
        assert "notification-events" in text
        # topic, rate, lag, seconds, badge and log end all on one line inside the terminal
        assert len(text) + 2 <= 80
        badge_spans = [s for s in rendered.spans if "$warning" in str(s.style)]
        assert badge_spans, "the WARN badge is drawn on the warning colour"


async def test_without_figures_the_edge_says_unknown() -> None:
    edge = EdgeStats("payment-events", "payment-service", None, None, None)
    app = ChainApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one(PipelineChain).show_service(status(), edge)
        await pilot.pause()
        rendered = app.query_one(EdgeLine).render()
        assert isinstance(rendered, Content)
        assert " ? " in rendered.plain
