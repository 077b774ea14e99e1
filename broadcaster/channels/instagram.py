"""Instagram channels: a post on one Instagram professional account through the Graph API, with aiohttp.

Config: ``ig_user_id``, ``token_env``, ``api_version`` (pinned, default
``v21.0``) and ``api_base`` (default the Graph API host). Instagram takes no
text-only post, so every post is the alert card of its language with the text
(the headline, then the long form) as its caption, one post per language.

Publishing is two calls: ``POST /{ig_user_id}/media`` with ``image_url`` and
``caption`` makes a container, then ``POST /{ig_user_id}/media_publish`` with
``creation_id`` puts it up. Instagram fetches the image itself, from where
``serve`` publishes the cards: ``{public_url}/cards/{alert_id}/{lang}.png``; a
config with an Instagram channel and no ``[broadcaster] public_url`` does not
load. That URL is fixed when the alert is committed (the message's payload).

An unpublished container is never seen by anyone, so only the publish call can
leave an unknown outcome; after one, :meth:`InstagramChannel.reconcile` reads
the account's recent media for this caption before anything is published again.
An update or cancel is a post of its own (its card says so): a comment under a
picture is easily missed. Captions are held to Instagram's limits (2,200
characters, 30 hashtags) by ``templates check``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from broadcaster.channels.base import AlertDocument, Clients, OutboundMessage, Receipt
from broadcaster.channels.facebook import post_text
from broadcaster.channels.graph import GraphChannel, api_version, page_id
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.templates.render import Forms, Rendered
from broadcaster.text import lengths

CAPTION_LIMIT: Final = 2_200
HASHTAG_LIMIT: Final = 30
_HASHTAG: Final = re.compile(r"(?<![\w#])#\w+")
CARD_PATH: Final = "/cards/{alert_id}/{language}.png"


@dataclass(frozen=True, kw_only=True)
class InstagramOptions(KindOptions):
    """The account's Instagram user id and the NAME of the variable holding its access token."""

    ig_user_id: str
    token_env: str
    api_version: str


def card_url(public_url: str, alert_id: str, language: str) -> str:
    """Where ``serve`` publishes an alert's card, for Instagram to fetch."""
    return public_url.rstrip("/") + CARD_PATH.format(alert_id=alert_id, language=language)


class InstagramChannel(GraphChannel):
    """Posts the alert card with its caption on one Instagram professional account."""

    kind = "instagram"
    can_reconcile = True
    needs_public_url = True
    card_by_url = True
    default_rate_per_second: ClassVar[float] = 0.5
    sample: ClassVar[Mapping[str, Any]] = {"ig_user_id": "17841400000000001", "token_env": "INSTAGRAM_TOKEN"}
    reconcile_pages: ClassVar[int] = 3
    reconcile_skew: ClassVar[timedelta] = timedelta(seconds=60)

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> InstagramOptions:
        keys = KindTable(table, kind=cls.kind, where=where,
                         keys={"ig_user_id": True, "token_env": True, "api_version": False})
        return InstagramOptions(ig_user_id=page_id(keys, "ig_user_id"), token_env=keys.env("token_env"),
                                api_version=api_version(keys))

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        """One caption per language; measured in hashtags when there are too many, else in characters."""
        rendered = []
        for lang in config.languages:
            caption = post_text(forms, lang)
            hashtags = len(_HASHTAG.findall(caption))
            if hashtags > HASHTAG_LIMIT:
                rendered.append(Rendered(lang, caption, hashtags, HASHTAG_LIMIT, "hashtags"))
            else:
                rendered.append(Rendered(lang, caption, lengths.utf16_length(caption), CAPTION_LIMIT, "characters"))
        return rendered

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.utf16_length(text)

    @classmethod
    def card_languages(cls, config: ChannelConfig) -> tuple[str, ...]:
        return config.languages

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes:
        """The card's public URL, fixed when the alert is committed: ``{"image_url": ...}``."""
        if not document.public_url:
            raise ConfigError("an instagram channel needs [broadcaster] public_url: Instagram fetches each card "
                              f"from {{public_url}}{CARD_PATH}", where=config.where)
        return orjson.dumps({"image_url": card_url(document.public_url, document.alert_id, rendered.language)})

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options: InstagramOptions = config.options_of(InstagramOptions)

    async def send(self, message: OutboundMessage) -> Receipt:
        graph = self._require()
        image_url = _image_url(message)
        user = self.options.ig_user_id
        try:
            container = await graph.call("POST", f"{user}/media", data={"image_url": image_url,
                                                                        "caption": message.text})
        except DeliveryError as error:
            # A container no one can see: whatever became of it, nothing is published yet.
            raise replace_unsent(error) from None
        creation_id = container.body.get("id")
        if not isinstance(creation_id, str | int):
            raise DeliveryError(Reason.SERVER, f"instagram: HTTP {container.status} without a container id",
                                retryable=True, http_status=container.status)
        published = await graph.call("POST", f"{user}/media_publish", data={"creation_id": str(creation_id)})
        media_id = published.body.get("id")
        if not isinstance(media_id, str | int):
            raise DeliveryError(Reason.SERVER, f"instagram: HTTP {published.status} without a media id",
                                retryable=True, http_status=published.status, sent_maybe=True)
        return self.receipt(str(media_id), published.status)

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """A post with this caption on the account since ``since``; None when there is none."""
        graph = self._require()
        floor = (since if since.tzinfo else since.replace(tzinfo=UTC)) - self.reconcile_skew
        params = {"fields": "id,caption,timestamp", "limit": "50"}
        for _ in range(self.reconcile_pages):
            answer = await graph.call("GET", f"{self.options.ig_user_id}/media", params=params)
            for item in answer.body.get("data") or ():
                if not isinstance(item, dict):
                    continue
                when = _when(item.get("timestamp"))
                if when is not None and when < floor:
                    return None  # newest first: nothing older can be this post
                if _lines(item.get("caption")) == _lines(message.text):
                    return self.receipt(str(item.get("id")), answer.status, "reconciled: found on the account")
            paging = answer.body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not after or not paging.get("next"):
                return None
            params = {**params, "after": str(after)}
        raise DeliveryError(Reason.SERVER, f"instagram: reconcile gave up after {self.reconcile_pages} pages",
                            retryable=False, sent_maybe=True)


def replace_unsent(error: DeliveryError) -> DeliveryError:
    """``error`` with ``sent_maybe`` off: it happened before anything could be published."""
    if not error.sent_maybe:
        return error
    unsent = DeliveryError(error.reason, f"{error} (while making the media container: nothing was published)",
                           retryable=error.retryable, retry_after=error.retry_after, http_status=error.http_status,
                           provider_code=error.provider_code)
    return unsent


def _image_url(message: OutboundMessage) -> str:
    try:
        parsed = orjson.loads(message.payload or b"")
    except orjson.JSONDecodeError:
        parsed = None
    url = parsed.get("image_url") if isinstance(parsed, dict) else None
    if not isinstance(url, str) or not url:
        raise DeliveryError(Reason.BAD_REQUEST, "instagram delivery has no card URL", retryable=False)
    return url


def _lines(text: object) -> str:
    return str(text or "").replace("\r\n", "\n").strip()


def _when(stamp: object) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
