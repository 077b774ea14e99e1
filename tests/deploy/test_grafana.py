"""deploy/grafana/broadcaster.json: every metric its PromQL queries is one the service exposes, with the labels it
groups by; the exposed names come from rendering broadcaster.service.metrics.Metrics, as /metrics does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from broadcaster.service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "broadcaster.json"
_METRIC = re.compile(r"\b(broadcaster_[a-z0-9_]+)\b")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
# What PromQL itself adds: a histogram's bucket bound.
_BUILTIN_LABELS = frozenset({"le"})


class Depths:
    """Stands in for the store's leases: one channel's queue, so the gauge has a sample."""

    async def queue_depths(self) -> dict[str, dict[str, int]]:
        return {"sms-residents": {"pending": 3}}


async def exposed() -> dict[str, set[str]]:
    """``{sample name: its labels}`` of a Metrics render in which every metric has a sample."""
    metrics = Metrics(Depths(), node="host:1:abc")  # type: ignore[arg-type]  # only queue_depths is called
    metrics.deliveries.labels(channel="sms-residents", mode="live", outcome="sent").inc()
    metrics.retries.labels(channel="sms-residents", mode="live").inc()
    metrics.latency.labels(channel="sms-residents").observe(0.2)
    metrics.first_send.labels(mode="live").observe(0.1)
    metrics.receipts.labels(outcome="delivered").inc()
    metrics.fires.labels(mode="live", state="sending").inc()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families((await metrics.render()).decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def expressions() -> Iterator[tuple[str, str]]:
    """``(where, PromQL)`` for every panel target and every query variable."""
    board = dashboard()
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']!r}", variable["query"]["query"]


async def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    names = await exposed()
    assert {"broadcaster_deliveries_total", "broadcaster_attempt_latency_seconds_bucket",
            "broadcaster_queue_depth"} <= set(names)  # the render itself is read right
    for where, expr in expressions():
        queried = _METRIC.findall(expr)
        assert queried, f"{where} queries no broadcaster metric: {expr}"
        missing = [m for m in queried if m not in names]
        assert not missing, f"{where} queries {missing}, which /metrics does not expose"


async def test_every_label_the_dashboard_groups_or_filters_by_exists_on_its_metrics() -> None:
    names = await exposed()
    for where, expr in expressions():
        labels = set().union(*(names[m] for m in _METRIC.findall(expr))) | _BUILTIN_LABELS
        used = {label.strip() for group in _BY.findall(expr) for label in group.split(",") if label.strip()}
        used |= set(_MATCHER.findall(expr))
        assert used <= labels, f"{where} uses labels {sorted(used - labels)} its metrics do not have: {expr}"
        for label_values in re.findall(r"label_values\(\s*\w+\s*,\s*(\w+)\s*\)", expr):
            assert label_values in labels, where


async def test_the_dashboard_covers_what_an_operator_watches() -> None:
    """Deliveries by outcome and channel, retries, latency percentiles, queue depth, fire-to-first-send, fires."""
    queried = {m for _, expr in expressions() for m in _METRIC.findall(expr)}
    assert {"broadcaster_deliveries_total", "broadcaster_retries_total", "broadcaster_attempt_latency_seconds_bucket",
            "broadcaster_queue_depth", "broadcaster_fire_to_first_send_seconds_bucket",
            "broadcaster_fires_total"} <= queried
    exprs = [expr for _, expr in expressions()]
    assert any("histogram_quantile(0.95" in e and "attempt_latency" in e for e in exprs)
    assert any("by (channel, outcome)" in e and "deliveries_total" in e for e in exprs)


def test_the_dashboard_is_importable_json_with_unique_panel_ids_and_one_datasource_variable() -> None:
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"] and board["title"]
    (source,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{source['name']}}}"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
