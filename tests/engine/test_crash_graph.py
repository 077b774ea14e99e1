"""kill -9 after Facebook and Instagram took the posts but before their answers came: ``resume`` finds them.

The fire runs as a real process against FakeGraph (on a thread of its own); the
fake makes each post, then holds its answer. The process is killed there. Its
deliveries are left ``sending`` under a dead owner; ``resume`` turns them
``unknown`` and reconciles with the Page's posts and the account's media before
any resend: exactly one post each.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.cli import main
from tests.channels.kinds import GRAPH_TOKEN, IG_USER_ID, PAGE_ID
from tests.engine.providers import REPO
from tests.fakes.graph import FakeGraph, graph_hang
from tests.support import Reader, token_file, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-graph", daemon=True)
    thread.start()
    fake = FakeGraph(token=GRAPH_TOKEN)
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(timeout=10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_kill_9_after_the_posts_went_out_then_resume_posts_nothing_twice(
    tmp_path: Path, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FB_TOKEN", GRAPH_TOKEN)
    monkeypatch.setenv("IG_TOKEN", GRAPH_TOKEN)
    config = write_config(tmp_path, [
        {"id": "facebook-authority", "kind": "facebook", "page_id": PAGE_ID, "token_env": "FB_TOKEN",
         "api_base": graph.base_url, "rate_per_second": 50},
        {"id": "instagram-authority", "kind": "instagram", "ig_user_id": IG_USER_ID, "token_env": "IG_TOKEN",
         "api_base": graph.base_url, "rate_per_second": 50},
    ], templates=str(REPO / "templates"), database="var/broadcaster.db", public_url="https://alerts.example.gov")
    database = tmp_path / "var" / "broadcaster.db"
    cli = ["--config", str(config), "--db", str(database), "--token-file", str(token_file(tmp_path, database))]
    # Each post is made, then its answer is held: the process dies not knowing.
    graph.script(graph_hang(60, accept=True, only="feed"))
    graph.script(graph_hang(60, accept=True, only="media_publish"), times=2)
    process = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", *cli, "fire", "road_closure", "--use-examples", "--live", "--yes",
         "--json", "--channels", "facebook-authority,instagram-authority"],
        env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(graph.posts) < 1 or len(graph.media) < 2:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the fire never reached the provider"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.stderr is not None
    process.stderr.close()

    assert main([*cli, "resume"]) == 0

    store = Reader(tmp_path / "var" / "broadcaster.db")
    (alert,) = store.alerts()
    assert store.state_counts(alert.id) == {"facebook-authority": {"sent": 1}, "instagram-authority": {"sent": 2}}
    assert len(graph.posts) == 1 and len(graph.media) == 2, "a post went out twice"
    reconciled = [a for a in store.attempts(alert.id) if a.outcome == "reconciled"]
    assert len(reconciled) == 3
    posted = {graph.posts[0]["id"], *(m["id"] for m in graph.media)}
    assert {d.provider_id for d in store.deliveries(alert.id)} == posted
