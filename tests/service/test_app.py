"""The application's shape: OpenAPI covers every route, static console, ``broadcaster serve``."""

from __future__ import annotations

import re
import signal
import socket
from typing import Any

import pytest
from aiohttp import web

from broadcaster.cli import main
from broadcaster.service.openapi import document
from broadcaster.service.state import SERVICE
from broadcaster.store import opened
from tests.engine.providers import Providers
from tests.service.support import Api, serving


def openapi_path(resource: str) -> str:
    """aiohttp's ``/cap/{alert_id:[A-Za-z0-9_-]+}.xml`` is OpenAPI's ``/cap/{alert_id}.xml``."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", resource)


async def test_openapi_describes_every_route_and_needs_no_token(api: Api) -> None:
    status, doc = await api.get("/api/openapi.json", None)
    assert status == 200 and doc == document()
    assert doc["openapi"].startswith("3.1")
    routes: set[tuple[str, str]] = set()
    for route in api.client.app.router.routes():  # type: ignore[union-attr]
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or path is None or str(path).startswith("/static"):
            continue
        routes.add((route.method.lower(), openapi_path(str(path))))
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops if method != "parameters"}
    assert routes == documented
    # Every $ref resolves.
    refs = set(re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', str(doc).replace("'", '"')))
    assert refs <= set(doc["components"]["schemas"])


async def test_the_console_and_its_files_are_served_without_a_token(api: Api) -> None:
    async with api.client.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "<html" in (await response.text()).lower()


async def test_errors_are_json_everywhere_under_api(api: Api) -> None:
    status, body = await api.call("DELETE", "/api/alerts", "officer")
    assert status == 405 and body["error"] == "method_not_allowed"
    status, body = await api.call("GET", "/api/preview", "officer")
    assert status == 405


async def test_an_unexpected_error_is_a_bare_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.client.app[SERVICE].app.catalogue, "ids", explode)  # type: ignore[index]
    status, body = await api.get("/api/templates")
    assert status == 500 and body == {"error": "internal",
                                      "message": "internal error; the server log has the details"}


async def test_stopping_the_service_lets_its_deliveries_finish_and_report(providers: Providers) -> None:
    async with serving(providers) as api:
        status, body = await api.fire("officer", mode="live")
        assert status == 202, body
        # No settle: the server stops while the alert may still be going out.
    # Everything it started finished, down to the reports to subscribers, before its store was closed.
    assert not api.service.runs.active
    async with opened(str(providers.db)) as store:
        counts = await store.alerts.state_counts(body["alert_id"])
    assert counts and all(set(per) == {"sent"} for per in counts.values()), counts


def test_serve_starts_the_service_and_the_runbook_scheduler(
    providers: Providers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    class Site:
        """Stands in for the TCP listener: notes where serve would listen, then stops it as SIGTERM would."""

        def __init__(self, runner: web.AppRunner, host: str, port: int, **_: Any) -> None:
            seen.update(app=runner.app, host=host, port=port)

        async def start(self) -> None:
            # The runner is set up: startup hooks and cleanup contexts ran, so the scheduler host runs.
            scheduler = seen["app"][SERVICE].scheduler
            seen.update(scheduler=scheduler, scheduler_running=scheduler is not None and scheduler.scheduler.running)
            # Serve stops on SIGTERM (and SIGINT) through its own handler, which must be in place by now.
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(web, "TCPSite", Site)
    assert main(providers.cli("serve")) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8080)
    assert SERVICE in seen["app"]
    assert seen["scheduler_running"]
    assert not seen["scheduler"].scheduler.running and seen["app"][SERVICE].scheduler is None
    assert "serving on http://127.0.0.1:8080" in capsys.readouterr().out
    assert main(providers.cli("serve", "--host", "0.0.0.0", "--port", "9000", "--insecure-http")) == 0
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 9000)
    assert "serving on http://0.0.0.0:9000" in capsys.readouterr().out


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(
    providers: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, serve died with a raw OSError traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(providers.cli("serve", "--port", str(port))) == 2
    out, err = capsys.readouterr()
    flat = " ".join(err.split())
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in flat, err
    assert "Traceback" not in err and "serving on" not in out
