"""What the Graph API kinds (``facebook``, ``instagram``) share: the request, its errors, its dry-run answers.

There is no maintained async SDK for Meta's Graph API (the official Python SDK
is synchronous and built on requests), so these kinds speak it with aiohttp
directly: one shared ``aiohttp.ClientSession`` per kind and ``api_base`` for the
run, the fence's last look on every request (:mod:`broadcaster.channels.gate`),
each request with its own channel's timeout. The access token goes in an
``Authorization: Bearer`` header, never in a URL, a log line or an error.

Every failure becomes one :class:`~broadcaster.errors.DeliveryError` in
:func:`classify_graph`; a dry-run gets its answers from :func:`recorded_answer`,
in the Graph API's own shapes. aiohttp is imported on first use.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import orjson

from broadcaster.channels.base import Channel, Clients
from broadcaster.channels.http import close_session, connection_failure, open_session, parse_retry_after
from broadcaster.channels.recording import RecordedResponse, RecordingSession
from broadcaster.config import KindTable
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.secret import Secret, scrub

log = logging.getLogger(__name__)

DEFAULT_API_BASE: Final = "https://graph.facebook.com"
DEFAULT_API_VERSION: Final = "v21.0"
_VERSION: Final = re.compile(r"^v\d{1,2}\.\d$")
_NUMERIC_ID: Final = re.compile(r"^\d{1,32}$")
_MAX_ANSWER_BYTES: Final = 1024 * 1024

RATE_LIMIT_CODES: Final = frozenset({4, 17, 32, 613, 80001, 80002})  # app, user, page, custom; business use case
TOKEN_CODE: Final = 190  # the access token is invalid or expired
PERMISSION_CODES: Final = frozenset({10, *range(200, 300)})
BLOCKED_CODE: Final = 368  # deemed abusive or otherwise disallowed
DUPLICATE_CODE: Final = 506  # a duplicate post: it is already up
TRANSIENT_CODES: Final = frozenset({1, 2})  # unknown error, service temporarily unavailable
MEDIA_NOT_READY_CODE: Final = 9007  # Instagram: the container is not finished yet
MEDIA_FETCH_CODE: Final = 9004  # Instagram: the image could not be fetched from its URL


def page_id(keys: KindTable, key: str) -> str:
    """A numeric Graph object id (a Page, an Instagram user), written as a string or a TOML integer."""
    value = keys.table.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str) or not _NUMERIC_ID.match(value):
        raise ConfigError(f"key {key!r}: must be the numeric id Meta shows for it", where=keys.where)
    return value


def api_version(keys: KindTable) -> str:
    """``api_version``: a pinned Graph API version such as ``v21.0`` (Meta retires each after two years)."""
    value = keys.table.get("api_version", DEFAULT_API_VERSION)
    if not isinstance(value, str) or not _VERSION.match(value):
        raise ConfigError('key \'api_version\': must be a Graph API version such as "v21.0"', where=keys.where)
    return value


@dataclass(frozen=True, slots=True)
class Answer:
    """A Graph API success: its status and parsed JSON body."""

    status: int
    body: Mapping[str, Any]


class GraphClient:
    """One channel's view of the shared Graph session: its token, version, timeout and secrets to mask."""

    def __init__(self, channel: Channel, session: Any, *, version: str, token: Secret) -> None:
        import aiohttp

        self.channel = channel
        self.session = session
        self.base = f"{(channel.config.api_base or DEFAULT_API_BASE).rstrip('/')}/{version}"
        self.version = version
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=channel.config.timeout_s)

    async def call(self, method: str, path: str, *, data: Any = None,
                   params: Mapping[str, str] | None = None) -> Answer:
        """``method {api_base}/{version}/{path}``; the answer, or a DeliveryError for any failure."""
        secrets = self.channel.secrets()
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        url = f"{self.base}/{path}"
        try:
            request = self.session.request(method, url, data=data, params=params, headers=headers,
                                           allow_redirects=False, timeout=self._timeout)
            async with request as response:
                status, answer_headers = response.status, response.headers
                raw = await response.content.read(_MAX_ANSWER_BYTES)
        except _failures() as exc:
            error = connection_failure(exc, self.channel.kind, secrets)
            if error is None:  # pragma: no cover - _failures() holds only what connection_failure maps
                raise
            raise error from None
        log.debug("%s %s %s /%s/%s -> HTTP %s", self.channel.kind, self.channel.id, method, self.version,
                  scrub(path, secrets), status)
        outcome = classify_graph(status, answer_headers, raw, kind=self.channel.kind, secrets=secrets)
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError, TimeoutError, OSError)


class GraphOptions(Protocol):
    @property
    def api_version(self) -> str: ...


class GraphChannel(Channel):
    """What the Graph API kinds share: one GraphClient on the run's shared session, opened with the channel.

    A subclass sets ``self.options`` (its own options, with ``api_version``); its ``token_env`` key names the
    access token.
    """

    options: GraphOptions
    _graph: GraphClient | None = None

    async def open(self) -> None:
        if self._graph is not None:
            return
        session = await shared_session(self, recorded_answer)
        self._graph = GraphClient(self, session, version=self.options.api_version, token=self.secret("token_env"))

    async def close(self) -> None:
        self._graph = None  # the session is shared: Clients closes it with the run
        await super().close()

    def _require(self) -> GraphClient:
        if self._graph is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with channel'")
        return self._graph


async def shared_session(channel: Channel, answer: Any) -> Any:
    """The run's one session for this kind and ``api_base``: live, or recording in a dry-run."""
    clients: Clients = channel.clients
    api_base = channel.config.api_base or DEFAULT_API_BASE

    async def make() -> Any:
        if clients.recording:
            return RecordingSession(clients, channel.kind, answer)
        return await open_session(clients)

    return await clients.shared(f"{channel.kind}:{api_base}", make, close_session)


def classify_graph(status: int, headers: Mapping[str, str], body: bytes, *, kind: str = "graph",
                   secrets: tuple[Secret, ...] = ()) -> Answer | DeliveryError:
    """Map one Graph API answer into our terms.

    ==============================  ============  =========  ==========
    answer                          reason        retryable  sent_maybe
    ==============================  ============  =========  ==========
    2xx with a JSON object          (an Answer)
    code 4, 17, 32, 613, 8000x      RATE_LIMITED  yes        no
    HTTP 429                        RATE_LIMITED  yes        no
    code 190 (token)                AUTH          no         no
    code 10, 200-299 (permission)   AUTH          no         no
    code 368 (blocked)              BAD_REQUEST   no         no
    code 506 (duplicate post)       BAD_REQUEST   no         no   (provider_code "506": the post is up)
    code 1, 2, 9007; HTTP 5xx       SERVER        yes        no
    code 9004 (image not fetched)   SERVER        yes        no
    other 4xx                       BAD_REQUEST   no         no
    2xx that is not JSON            SERVER        yes        yes
    ==============================  ============  =========  ==========

    ``retry_after`` on a retryable answer is its ``Retry-After`` header, else the
    longest ``estimated_time_to_regain_access`` (minutes) in ``X-Business-Use-Case-Usage``.
    """
    parsed = _json(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if 200 <= status < 300 and not isinstance(error, dict):
        if isinstance(parsed, dict):
            return Answer(status, parsed)
        return DeliveryError(Reason.SERVER, f"{kind}: HTTP {status} with an unreadable answer", retryable=True,
                             http_status=status, sent_maybe=True)
    details = error if isinstance(error, dict) else {}
    code = _int(details.get("code"))
    subcode = _int(details.get("error_subcode"))
    what = " ".join(str(details.get("message") or _snippet(body)).split())
    trace = details.get("fbtrace_id")
    text = scrub(f"{kind}: HTTP {status}" + (f" code {code}" if code is not None else "")
                 + (f"/{subcode}" if subcode is not None else "") + f": {what}"
                 + (f" (fbtrace_id {trace})" if trace else ""), secrets)
    provider_code = None if code is None else str(code) if subcode is None else f"{code}/{subcode}"

    def fail(reason: Reason, message: str = text, *, retryable: bool) -> DeliveryError:
        return DeliveryError(reason, message, retryable=retryable, http_status=status, provider_code=provider_code,
                             retry_after=_retry_after(headers) if retryable else None)

    if code in RATE_LIMIT_CODES or status == 429:
        return fail(Reason.RATE_LIMITED, retryable=True)
    if code == TOKEN_CODE:
        return fail(Reason.AUTH, f"{text}. The access token is invalid or expired: generate a new one, put it in "
                                 "the channel's token_env variable and restart", retryable=False)
    if code in PERMISSION_CODES:
        return fail(Reason.AUTH, f"{text}. The token lacks a permission this post needs", retryable=False)
    if code == BLOCKED_CODE:
        return fail(Reason.BAD_REQUEST, f"{text}. Meta blocked this post; it will not be retried", retryable=False)
    if code == DUPLICATE_CODE:
        return fail(Reason.BAD_REQUEST, retryable=False)
    if code in TRANSIENT_CODES or code in (MEDIA_NOT_READY_CODE, MEDIA_FETCH_CODE) or status >= 500:
        return fail(Reason.SERVER, retryable=True)
    return fail(Reason.BAD_REQUEST, retryable=False)


def is_duplicate(error: DeliveryError) -> bool:
    """Code 506: Meta already has this very post up; the delivery went out before."""
    return (error.provider_code or "").split("/")[0] == str(DUPLICATE_CODE)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    after = parse_retry_after(headers.get("Retry-After"))
    if after is not None:
        return after
    usage = _json((headers.get("X-Business-Use-Case-Usage") or "").encode())
    minutes = [_int(entry.get("estimated_time_to_regain_access")) or 0
               for entries in (usage.values() if isinstance(usage, dict) else ())
               if isinstance(entries, list) for entry in entries if isinstance(entry, dict)]
    longest = max(minutes, default=0)
    return longest * 60.0 if longest > 0 else None


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip() or "no details"


def recorded_answer(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse:
    """The Graph API's answer in a dry-run, for both kinds: made-up ids in the real shapes, empty listings."""
    parts = urlsplit(url).path.strip("/").split("/")
    target, edge = (parts[-2], parts[-1]) if len(parts) >= 3 else ("", "")
    if method == "GET":
        return RecordedResponse(200, {"data": [], "paging": {}})
    answers: dict[str, Any] = {
        "feed": {"id": f"{target}_{number}"},
        "photos": {"id": f"{number}", "post_id": f"{target}_{number}"},
        "comments": {"id": f"{target}_{number}"},
        "media": {"id": f"1800{number}"},
        "media_publish": {"id": f"1790{number}"},
    }
    if method != "POST" or edge not in answers:
        error = {"message": f"Unsupported {method} request", "type": "GraphMethodException", "code": 100,
                 "fbtrace_id": "dry-run"}
        return RecordedResponse(400, {"error": error}, reason="Bad Request")
    return RecordedResponse(200, answers[edge])
