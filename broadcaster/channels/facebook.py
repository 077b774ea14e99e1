"""Facebook Page channels: a post on one Page through the Graph API, with aiohttp (no async SDK exists).

Config: ``page_id``, ``token_env`` (a Page access token), ``layout`` (``combined``:
both languages in one post, Arabic first; ``separate``: a post each),
``api_version`` (pinned, default ``v21.0``), ``api_base`` (default the Graph API
host) and ``card`` (attach the alert card: a photo post with the text as its
caption). Shaping: the headline, then the long form, plain text.

* A post is ``POST /{page_id}/feed`` with ``message`` (form-encoded), or with a
  card ``POST /{page_id}/photos`` with ``source`` (the PNG) and ``message``; the
  answer's ``id`` (``post_id`` for a photo) is ``PAGEID_POSTID``.
* An update or cancel comments on the original post (``POST /{post_id}/comments``),
  the way X threads replies.
* Error code 506 (a duplicate post) means the post is already up: a receipt, not a failure.
* After an unknown outcome the engine reconciles first (``can_reconcile``):
  :meth:`FacebookChannel.reconcile` reads the Page's recent posts (or the
  original's comments) and finds this text, so a resend never doubles a post.

Everything Graph-specific (token header, errors, dry-run answers) is in
:mod:`broadcaster.channels.graph`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

from broadcaster.channels.base import AlertDocument, Clients, OutboundMessage, Receipt, carried_cards
from broadcaster.channels.graph import (
    GraphChannel,
    api_version,
    is_duplicate,
    page_id,
)
from broadcaster.channels.telegram import Layout  # the same two ways to post both languages, as email uses
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import DeliveryError, Reason
from broadcaster.templates.render import Forms, Rendered, shown_once
from broadcaster.text import lengths

FACEBOOK_LIMIT: Final = 63_206  # characters in one Page post
SEPARATOR: Final = "\n\n—————\n\n"
DUPLICATE_LOOKBACK: Final = timedelta(days=1)  # how far back a post Meta calls a duplicate (506) is looked for


@dataclass(frozen=True, kw_only=True)
class FacebookOptions(KindOptions):
    """The Page's id, the NAME of the variable holding its Page access token, layout, version, card."""

    page_id: str
    token_env: str
    layout: Layout = Layout.COMBINED
    api_version: str
    card: bool = False


def post_text(forms: Forms, language: str) -> str:
    """The headline, then the long form; an exercise marker is shown once, on the headline."""
    headline, long = forms[language]["headline"], forms[language]["long"]
    long = shown_once(headline, long)
    return f"{headline}\n\n{long}"


class FacebookChannel(GraphChannel):
    """Posts on one Facebook Page as the Page (its Page access token)."""

    kind = "facebook"
    can_reconcile = True
    default_rate_per_second: ClassVar[float] = 1.0
    sample: ClassVar[Mapping[str, Any]] = {"page_id": "104000000000001", "token_env": "FACEBOOK_PAGE_TOKEN"}
    reconcile_pages: ClassVar[int] = 5
    reconcile_skew: ClassVar[timedelta] = timedelta(seconds=60)

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> FacebookOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={
            "page_id": True, "token_env": True, "layout": False, "api_version": False, "card": False})
        return FacebookOptions(page_id=page_id(keys, "page_id"), token_env=keys.env("token_env"),
                               layout=keys.choice("layout", Layout, Layout.COMBINED), api_version=api_version(keys),
                               card=keys.flag("card", default=False))

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        languages = config.languages
        if config.options_of(FacebookOptions).layout is Layout.COMBINED and len(languages) > 1:
            shaped = [("+".join(languages), SEPARATOR.join(post_text(forms, lang) for lang in languages))]
        else:
            shaped = [(lang, post_text(forms, lang)) for lang in languages]
        return [Rendered(lang, text, lengths.utf16_length(text), FACEBOOK_LIMIT, "characters")
                for lang, text in shaped]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.utf16_length(text)

    @classmethod
    def card_languages(cls, config: ChannelConfig) -> tuple[str, ...]:
        options = config.options_of(FacebookOptions)
        return carried_cards(config, card=options.card, combined=options.layout is Layout.COMBINED)

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes | None:
        """With ``card = true``: the card's PNG (a combined post carries its first language's card)."""
        return document.card_of(rendered.language) if config.options_of(FacebookOptions).card else None

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options: FacebookOptions = config.options_of(FacebookOptions)

    async def send(self, message: OutboundMessage) -> Receipt:
        graph = self._require()
        parent = self.provider_ref(message.reply_to) if message.reply_to else None
        edge = f"{parent}/comments" if parent else f"{self.options.page_id}/{'photos' if message.payload else 'feed'}"
        try:
            answer = await graph.call("POST", edge, data=_form(message))
        except DeliveryError as error:
            if is_duplicate(error):
                return await self._already_posted(message, error)
            raise
        body = answer.body
        post_id = body.get("post_id") or body.get("id")
        if not isinstance(post_id, str | int):
            raise DeliveryError(Reason.SERVER, f"facebook: HTTP {answer.status} without a post id", retryable=True,
                                http_status=answer.status, sent_maybe=True)
        return self.receipt(str(post_id), answer.status)

    async def _already_posted(self, message: OutboundMessage, error: DeliveryError) -> Receipt:
        """Code 506: the post is up. Its id is looked up, so that an update or cancel still comments under it."""
        try:
            found = await self.reconcile(message, datetime.now(UTC) - DUPLICATE_LOOKBACK)
        except DeliveryError:
            found = None  # the post is up either way; only its id is unknown
        if found is not None:
            return self.receipt(found.provider_id, error.http_status, "duplicate: already posted")
        return self.receipt(None, error.http_status, "duplicate: already posted (its id was not found)")

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """This text among the Page's posts (or the original's comments) since ``since``; None if absent."""
        graph = self._require()
        parent = self.provider_ref(message.reply_to) if message.reply_to else None
        floor = (since if since.tzinfo else since.replace(tzinfo=UTC)) - self.reconcile_skew
        if parent:
            edge = f"{parent}/comments"
            params = {"fields": "id,message,created_time", "filter": "stream", "order": "reverse_chronological",
                      "limit": "100"}
        else:
            edge = f"{self.options.page_id}/feed"
            params = {"fields": "id,message,created_time", "since": str(int(floor.timestamp())), "limit": "100"}
        for _ in range(self.reconcile_pages):
            answer = await graph.call("GET", edge, params=params)
            for item in answer.body.get("data") or ():
                if isinstance(item, dict) and _lines(item.get("message")) == _lines(message.text) and \
                        _at_or_after(item.get("created_time"), floor):
                    return self.receipt(str(item.get("id")), answer.status, "reconciled: found on the Page")
            after = ((answer.body.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (answer.body.get("paging") or {}).get("next"):
                return None
            params = {**params, "after": str(after)}
        raise DeliveryError(Reason.SERVER, f"facebook: reconcile gave up after {self.reconcile_pages} pages",
                            retryable=False, sent_maybe=True)


def _form(message: OutboundMessage) -> Any:
    """The request body: form-encoded text, or multipart with the card as ``source``."""
    if message.payload is None:
        return {"message": message.text}
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("message", message.text)
    form.add_field("source", message.payload, filename=f"{message.alert_id}-{message.language}.png",
                   content_type="image/png")
    return form


def _lines(text: object) -> str:
    return str(text or "").replace("\r\n", "\n").strip()


def _at_or_after(created: object, floor: datetime) -> bool:
    """A Graph timestamp (``2026-11-23T18:00:00+0000``) at or after ``floor``; unreadable ones count."""
    if not isinstance(created, str):
        return True
    try:
        return datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z") >= floor
    except ValueError:
        return True
