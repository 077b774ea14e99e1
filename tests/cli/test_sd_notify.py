"""systemd readiness (``Type=notify``): ``serve`` and ``worker`` tell ``$NOTIFY_SOCKET`` when they are ready and
when they stop, and nothing happens without one. The service manager is a datagram socket made by the test."""

from __future__ import annotations

import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broadcaster.cli.sd_notify import NOTIFY_SOCKET_ENV, READY, notify
from tests.cli.conftest import DEADLINE_S, Terminal
from tests.engine.providers import Providers


@contextmanager
def manager(monkeypatch: pytest.MonkeyPatch, *, abstract: bool) -> Iterator[socket.socket]:
    """A fake service manager: a datagram socket named in ``$NOTIFY_SOCKET`` (a short path, or @abstract)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        sock.settimeout(DEADLINE_S)  # only a hang reaches it
        if abstract:
            name = f"broadcaster-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            monkeypatch.setenv(NOTIFY_SOCKET_ENV, "@" + name)
        else:
            path = str(Path(tmp) / "notify")
            sock.bind(path)
            monkeypatch.setenv(NOTIFY_SOCKET_ENV, path)
        yield sock


def received(sock: socket.socket, terminal: Terminal | None = None) -> bytes:
    try:
        return sock.recv(256)
    except TimeoutError:
        pytest.fail("no notification came" + (f"; the process said:\n{terminal.output()}" if terminal else ""))


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_sends_one_datagram_to_the_socket_named(monkeypatch: pytest.MonkeyPatch, abstract: bool) -> None:
    with manager(monkeypatch, abstract=abstract) as sock:
        assert notify("STATUS=delivering") is True
        assert received(sock) == b"STATUS=delivering"


def test_without_a_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOTIFY_SOCKET_ENV, raising=False)
    assert notify(READY) is False


def test_a_socket_that_is_gone_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(NOTIFY_SOCKET_ENV, "/nonexistent/notify")
    assert notify(READY) is False
    assert "could not notify the service manager" in caplog.text and "No such file or directory" in caplog.text
    monkeypatch.setenv(NOTIFY_SOCKET_ENV, "vsock:2:1234")
    assert notify(READY) is False
    assert "neither a socket path nor an abstract socket" in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_is_ready_only_once_its_port_answers_and_says_when_it_stops(
    p: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    with manager(monkeypatch, abstract=True) as sock:
        port = free_port()
        serve = Terminal(p, "serve", "serve", "--port", str(port))
        try:
            assert received(sock, serve) == b"READY=1"
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S):
                pass  # it was listening when it said so
            serve.stop()
            assert received(sock, serve) == b"STOPPING=1"
            assert serve.exit_code() == 0
        finally:
            serve.stop()


def test_a_worker_is_ready_once_its_config_and_database_answer(p: Providers, monkeypatch: pytest.MonkeyPatch) -> None:
    with manager(monkeypatch, abstract=True) as sock:
        worker = Terminal(p, "worker", "worker")
        try:
            assert received(sock, worker) == b"READY=1"
            assert "started" in worker.output()
            worker.stop()
            assert received(sock, worker) == b"STOPPING=1"
            assert worker.exit_code() == 0
        finally:
            worker.stop()
