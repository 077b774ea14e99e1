"""Infobip SMS (the ``sms`` kind's ``provider = "infobip"``; the kind itself is :mod:`broadcaster.channels.sms`).

Messages go through Infobip's own SDK, ``infobip-api-python-client`` (imported when
a channel opens): ``SmsApi.send_sms_messages`` posts ``/sms/3/messages`` and
``SmsApi.get_outbound_sms_message_logs`` reads ``/sms/3/logs``. The SDK is
synchronous (urllib3), so every live call runs on a worker thread, from a
pool of the run's own (the default executor is too small to keep a channel's
requests in flight). Its answers are classified in
:mod:`broadcaster.channels.infobip_errors`.

Each delivery carries a ``messageId`` of our own, made from the delivery's
idempotency key, so that after an unknown outcome (a lost answer, a crash) the
channel asks the logs for exactly that id before anything is sent again.

The SDK's transport is the bottom ``urllib3`` pool, which this module replaces:

* live, every Infobip channel of a run shares one ``PoolManager`` on the run's
  TLS context, with urllib3's own retries off (the engine owns the one retry
  loop) and the attempt's gate looked at before each request (channels.gate);
* in a dry-run, a pool that answers on this machine in Infobip's wire format
  (a ``PENDING_ACCEPTED`` message, an empty log page): the SDK still builds,
  validates and parses everything, no socket is opened.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, urlsplit

import orjson

from broadcaster.channels import gate
from broadcaster.channels.base import POOL_SIZE, Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.infobip_errors import ACCEPTED_GROUPS, classify_infobip, classify_status, connection_error
from broadcaster.clock import real_io
from broadcaster.config import ChannelConfig, KindTable, RecipientListOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason

__all__ = ["INFOBIP_KEYS", "InfobipChannel", "InfobipOptions", "infobip_keys", "message_id_of"]

log = logging.getLogger(__name__)

INFOBIP_KEYS: Final = {"base_url": True, "api_key_env": True, "from": True, "recipients": True}
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
THREADS: Final = 64  # the dispatcher's requests in flight per channel (Tuning.max_in_flight)
# The number a dry-run's request was given by Clients.answer (the recording pool answers with it).
_recorded_number: ContextVar[int] = ContextVar("infobip_recorded_number", default=0)


@dataclass(frozen=True, kw_only=True)
class InfobipOptions(RecipientListOptions):
    """One Infobip account (its API base and key) and sender, and the phone list."""

    base_url: str
    api_key_env: str
    from_: str


def infobip_keys(keys: KindTable) -> dict[str, Any]:
    """The Infobip keys, checked: ``base_url`` is https (plain http only on this machine, for tests)."""
    base_url = keys.http_url("base_url").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise ConfigError("key 'base_url': must be https (the account's API base, e.g. https://xxxx.api.infobip.com)",
                          where=keys.where)
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError("key 'base_url': the API base only, without a path (e.g. https://xxxx.api.infobip.com)",
                          where=keys.where)
    return {"base_url": base_url, "api_key_env": keys.env("api_key_env"), "from_": keys.text("from")}


def message_id_of(message: OutboundMessage) -> str:
    """Our ``messageId`` for a delivery: stable across retries, restarts and nodes, unique per delivery."""
    return "bc-" + message.idempotency_key.replace("/", "-")


class InfobipChannel(Channel):
    """An Infobip sender; one phone per delivery, one ``messageId`` of ours per delivery."""

    can_reconcile = True
    reconcile_limit: ClassVar[int] = 10  # one messageId matches one message; a few in case it was sent twice
    # Infobip keeps logs for 48 hours; a message is looked for from a little before its alert was sent.
    reconcile_skew: ClassVar[timedelta] = timedelta(seconds=60)

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(InfobipOptions)
        self._api: Any = None

    async def open(self) -> None:
        if self._api is not None:
            return
        from infobip_api_client.api.sms_api import SmsApi
        from infobip_api_client.api_client import ApiClient
        from infobip_api_client.configuration import Configuration

        api_key = self.secret("api_key_env")
        if self.clients.recording:
            pool: Any = _RecordingPool()
        else:
            pool = _GatedPool(await self.clients.shared("infobip", functools.partial(_open_pool, self.clients),
                                                        _close_pool))
        configuration = Configuration(host=self.options.base_url, api_key=api_key.reveal(), retries=0)
        client = ApiClient(configuration)
        client.rest_client.pool_manager = pool
        self._api = SmsApi(client)

    async def close(self) -> None:
        self._api = None  # the pool is shared: Clients closes it with the run
        await super().close()

    def _require_api(self) -> Any:
        if self._api is None:
            raise RuntimeError("use the channel inside 'async with' before sending")
        return self._api

    async def send(self, message: OutboundMessage) -> Receipt:
        api = self._require_api()
        if not message.recipient:
            raise DeliveryError(Reason.BAD_REQUEST, f"{self.kind} delivery has no recipient", retryable=False)
        from infobip_api_client.models.sms_destination import SmsDestination
        from infobip_api_client.models.sms_message import SmsMessage
        from infobip_api_client.models.sms_message_content import SmsMessageContent
        from infobip_api_client.models.sms_request import SmsRequest
        from infobip_api_client.models.sms_text_content import SmsTextContent

        our_id = message_id_of(message)
        request = SmsRequest(messages=[SmsMessage(
            sender=self.options.from_,
            destinations=[SmsDestination(to=message.recipient, messageId=our_id)],
            content=SmsMessageContent(SmsTextContent(text=message.text)),
        )])
        answer = await self._call(api.send_sms_messages, sms_request=request, sent_maybe=True)
        details = [m for m in (answer.messages or []) if m.message_id == our_id] or list(answer.messages or [])
        if not details:
            raise DeliveryError(Reason.SERVER, "infobip accepted the request but named no message", retryable=True,
                                sent_maybe=True, http_status=200)
        status = details[0].status
        group = status.group_name.value if status is not None and status.group_name is not None else None
        refused = classify_status(group, status.name if status else None, status.description if status else None,
                                  http_status=200)
        if refused is not None:
            raise refused
        log.debug("infobip %s POST /sms/3/messages -> HTTP 200 %s", self.id, group)
        return self.receipt(details[0].message_id or our_id, 200, group)

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """The receipt of this delivery if Infobip's logs hold its ``messageId`` (taken in, not refused)."""
        api = self._require_api()
        if not message.recipient:
            return None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        our_id = message_id_of(message)
        page = await self._call(api.get_outbound_sms_message_logs, message_id=[our_id],
                                sent_since=since.astimezone(UTC) - self.reconcile_skew, limit=self.reconcile_limit,
                                sent_maybe=False)
        for entry in page.results or []:
            if entry.message_id != our_id or entry.destination not in (None, message.recipient):
                continue
            group = entry.status.group_name.value if entry.status and entry.status.group_name else None
            if group in ACCEPTED_GROUPS or group == "UNDELIVERABLE" or group == "EXPIRED":
                # It went out (delivered, queued, or reached the network and failed there): never again.
                name = entry.status.name if entry.status else None
                return self.receipt(our_id, 200, f"reconciled: {name or group}")
        return None

    async def _call(self, method: Any, /, *, sent_maybe: bool, **kwargs: Any) -> Any:
        """One SDK call: on a thread when live; inline, on the recording pool, in a dry-run."""
        timeout = float(self.config.timeout_s)
        try:
            if self.clients.recording:
                _recorded_number.set(await self.clients.answer(self.kind))
                return method(**kwargs, _request_timeout=timeout)
            return await self._on_thread(functools.partial(method, **kwargs, _request_timeout=timeout))
        except _failures() as exc:
            error = self._classify(exc, sent_maybe=sent_maybe)
        raise error  # outside the except block: no chained SDK exception with request details

    async def _on_thread(self, call: Callable[[], Any]) -> Any:
        """``call()`` on the run's Infobip threads (as many as a channel has requests in flight), with this
        task's context (the attempt's gate) and as a real wait on a virtual loop."""
        executor = await self.clients.shared("infobip-threads", _open_executor, _close_executor)
        context = contextvars.copy_context()
        with real_io():
            return await asyncio.get_running_loop().run_in_executor(executor, context.run, call)

    def _classify(self, exc: BaseException, *, sent_maybe: bool) -> DeliveryError:
        from infobip_api_client.exceptions import ApiException

        if isinstance(exc, ApiException) and isinstance(exc.status, int) and exc.status >= 100:
            headers = dict(exc.headers.items()) if exc.headers is not None else None
            return classify_infobip(exc.status, exc.body, headers, self.secrets())
        if isinstance(exc, ValueError):  # a 2xx whose body the SDK could not read
            return DeliveryError(Reason.SERVER, "infobip answered with a body that could not be read",
                                 retryable=True, sent_maybe=sent_maybe)
        error = connection_error(exc, self.secrets())
        if error is None:
            raise TypeError(f"cannot classify {type(exc).__name__} from infobip") from exc
        return error


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    """What an SDK call may raise for provider or network trouble (anything else is a bug, or the gate)."""
    from infobip_api_client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return (ApiException, HTTPError, OSError, TimeoutError, ValueError)


async def _open_executor() -> ThreadPoolExecutor:
    # The default executor has min(32, cores + 4) threads, shared with file reads: at 20 ms a request, 6 threads
    # cap a channel near 300 SMS/s. One request per thread, as many threads as the dispatcher keeps in flight.
    return ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="infobip")


async def _close_executor(executor: ThreadPoolExecutor) -> None:
    await asyncio.get_running_loop().run_in_executor(None, functools.partial(executor.shutdown, wait=True))


async def _open_pool(clients: Clients) -> Any:
    import urllib3

    return urllib3.PoolManager(num_pools=16, maxsize=POOL_SIZE, retries=False, ssl_context=clients.ssl_context())


async def _close_pool(pool: Any) -> None:
    pool.clear()


class _GatedPool:
    """The shared live pool, seen by one channel's SDK: the gate's last look before every request."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        gate.last_look()
        kwargs["retries"] = False
        return self._pool.request(method, url, **kwargs)


class _RecordingPool:
    """A dry-run's transport: answers as Infobip would, on this machine, and opens nothing."""

    def request(self, method: str, url: str, body: Any = None, **_: Any) -> Any:
        import urllib3

        status, answer = _recorded_answer(_recorded_number.get(), method, url, body)
        return urllib3.HTTPResponse(body=orjson.dumps(answer), status=status, preload_content=False,
                                    headers={"Content-Type": "application/json"})


def _recorded_answer(number: int, method: str, url: str, body: Any) -> tuple[int, Mapping[str, Any]]:
    """Infobip's answer in a dry-run: every destination accepted (PENDING), or an empty page of logs."""
    if method == "GET":
        limit = parse_qs(urlsplit(url).query).get("limit", ["50"])[0]
        return 200, {"results": [], "cursor": {"limit": int(limit)}}
    sent = orjson.loads(body) if isinstance(body, str | bytes) and body else {}
    destinations = [d for m in sent.get("messages", []) for d in m.get("destinations", [])]
    return 200, {
        "bulkId": f"dry-run-bulk-{number}-{secrets.token_hex(4)}",
        "messages": [{
            "messageId": d.get("messageId") or f"{number}-{secrets.token_hex(8)}",
            "status": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED",
                       "description": "Message sent to next instance"},
            "destination": d.get("to"),
        } for d in destinations],
    }
