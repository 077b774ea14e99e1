"""Standard output that a closed pipe cannot break.

``broadcaster log ID | head`` closes the pipe after a few lines. Python then
raises BrokenPipeError at the next write, anywhere: in the middle of a fire that
is printing its progress, that would stop the fire between its commit and its
last delivery. Instead, the first broken write points file descriptor 1 at
/dev/null (so nothing later, not even the flush at exit, can raise again) and
the command goes on to its end, its output discarded, as the reader asked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TextIO


class _Guard:
    """Shared by the text stream and its binary buffer: whether the pipe has broken."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.broken = False

    def close_quietly(self) -> None:
        self.broken = True
        if self.fd is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.fd)
            finally:
                os.close(devnull)


class _QuietBinary:
    def __init__(self, raw: BinaryIO, guard: _Guard) -> None:
        self._raw = raw
        self._guard = guard

    def write(self, data: bytes) -> int:
        if self._guard.broken:
            return len(data)
        try:
            return self._raw.write(data)
        except BrokenPipeError:
            self._guard.close_quietly()
            return len(data)

    def flush(self) -> None:
        if not self._guard.broken:
            try:
                self._raw.flush()
            except BrokenPipeError:
                self._guard.close_quietly()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class QuietStdout:
    """A text stream around ``stream`` whose writes survive the reader going away."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        try:
            fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # a test's capture buffer has no descriptor
            fd = None
        self._guard = _Guard(fd)
        raw = getattr(stream, "buffer", None)
        self.buffer = _QuietBinary(raw, self._guard) if raw is not None else None

    @property
    def broken(self) -> bool:
        return self._guard.broken

    def write(self, text: str) -> int:
        if self._guard.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._guard.close_quietly()
            return len(text)

    def flush(self) -> None:
        if not self._guard.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._guard.close_quietly()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def quiet_broken_pipe() -> Iterator[QuietStdout]:
    """``sys.stdout`` guarded for the duration of one command, then put back."""
    original = sys.stdout
    guarded = QuietStdout(original)
    sys.stdout = guarded
    try:
        yield guarded
    finally:
        guarded.flush()
        sys.stdout = original
