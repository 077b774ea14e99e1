"""An alert card for an X post: ``POST /2/media/upload`` (multipart), then the post names its media id.

tweepy's async client sends JSON bodies only, so the card goes up through the
channel's own shared session (the same pool, timeout and ``api_base`` redirect
as its posts), signed with OAuth 1.0a user context by oauthlib as tweepy signs:
a multipart body is not part of the signature. The answer is
``{"data": {"id", "media_key", ...}}``. A failed upload is classified like a
failed post; nothing is public until the post itself goes out, so an upload
that timed out is not a ``sent_maybe``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from broadcaster.channels.http import connection_failure
from broadcaster.channels.recording import RecordedResponse
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

UPLOAD_URL: Final = "https://api.twitter.com/2/media/upload"


async def upload_card(session: Any, keys: tuple[Secret, Secret, Secret, Secret], png: bytes, *, name: str,
                      retry_after: Any) -> str:
    """Upload ``png`` as a ``tweet_image``; its media id, or a DeliveryError.

    ``keys`` are the account's (api key, api secret, access token, access secret);
    ``retry_after(headers)`` turns X's rate-limit headers into seconds.
    """
    import aiohttp
    from oauthlib.oauth1 import Client as OAuthClient

    api_key, api_secret, access_token, access_secret = (key.reveal() for key in keys)
    signer = OAuthClient(api_key, api_secret, access_token, access_secret)
    _, headers, _ = signer.sign(UPLOAD_URL, "POST", headers={"User-Agent": "broadcaster"})
    form = aiohttp.FormData()
    form.add_field("media_category", "tweet_image")
    form.add_field("media", png, filename=name, content_type="image/png")
    try:
        async with session.request("POST", UPLOAD_URL, data=form, headers=headers) as response:
            status, answer_headers = response.status, response.headers
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        error = connection_failure(exc, "x media upload", keys)
        if error is None:  # pragma: no cover - every one of those is mapped
            raise
        raise _unsent(error) from None
    parsed = _json(body)
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if 200 <= status < 300 and isinstance(data, dict) and isinstance(data.get("id"), str | int):
        return str(data["id"])
    detail = scrub(" ".join(str(parsed if parsed is not None else body[:200]).split()), keys)
    text = f"x media upload: HTTP {status}: {detail}"
    if status == 429:
        raise DeliveryError(Reason.RATE_LIMITED, text, retryable=True, http_status=429,
                            retry_after=retry_after(answer_headers))
    if status >= 500 or 200 <= status < 300:
        raise DeliveryError(Reason.SERVER, text, retryable=True, http_status=status)
    reason = Reason.AUTH if status == 401 else Reason.BAD_REQUEST
    raise DeliveryError(reason, text, retryable=False, http_status=status)


def _unsent(error: DeliveryError) -> DeliveryError:
    """An upload is not a post: whatever became of it, nothing is public."""
    return DeliveryError(error.reason, str(error), retryable=error.retryable, retry_after=error.retry_after,
                         http_status=error.http_status, provider_code=error.provider_code)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def recorded_upload(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse | None:
    """X's answer to a media upload in a dry-run; None for any other request."""
    if method != "POST" or not urlsplit(url).path.endswith("/2/media/upload"):
        return None
    media_id = f"1880{number}"
    return RecordedResponse(200, {"data": {"id": media_id, "media_key": f"3_{media_id}", "size": 0,
                                           "expires_after_secs": 86400}})
