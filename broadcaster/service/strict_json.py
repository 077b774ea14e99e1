"""Request bodies parsed strictly: a key given twice, NaN, a lone surrogate or text that is not UTF-8 is a 400.

orjson (used for every answer) keeps the last of two equal keys without a word, so
``{"mode": "dry-run", "mode": "live"}`` would fire live after a reviewer read
``dry-run``. Request bodies are small, so they go through the standard library's
parser with an ``object_pairs_hook`` that sees every pair, and the first repeated
key is refused by its path (``mode``, ``variables.road``). Nothing else runs first.
"""

from __future__ import annotations

import json
import math
from typing import Any


class BodyError(ValueError):
    """A body that cannot be used; ``field`` is ``body`` or the path of the key at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Object(dict[str, Any]):
    """A JSON object as parsed, remembering the first key it was given twice."""

    repeated: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    found = _Object()
    for key, value in pairs:
        if key in found and found.repeated is None:
            found.repeated = key
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_body(raw: bytes) -> Any:
    """The JSON value in ``raw``, as plain dicts and lists; BodyError naming ``body`` or the key's path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError("body", f"byte {exc.start} is not UTF-8; send JSON as UTF-8") from None
    try:
        value = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_pairs, parse_constant=_no_constant)
        return _plain(value, "")
    except RecursionError:
        raise BodyError("body", "nested too deeply") from None
    except BodyError:
        raise
    except ValueError:  # not JSON, NaN or Infinity, an integer of more than 4,300 digits
        raise BodyError("body", "not valid JSON") from None


def _plain(value: Any, path: str) -> Any:
    """``value`` with plain dicts; the first repeated key or unencodable string raises BodyError naming its path."""
    if isinstance(value, _Object):
        if value.repeated is not None:
            where = _join(path, value.repeated)
            raise BodyError(where, f"the key {value.repeated!r} is given more than once; give each key once (a JSON "
                            "parser would silently keep only the last)")
        return {_text(key, path): _plain(item, _join(path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, f"{path or 'body'}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, str):
        return _text(value, path)
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 reads as infinity
        raise BodyError(path or "body", "a number too large to be a JSON number this service reads")
    return value


def _text(value: str, path: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        where = path or "body"
        raise BodyError(where, "holds a lone surrogate escape (\\ud800-\\udfff), which is not text") from None
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
