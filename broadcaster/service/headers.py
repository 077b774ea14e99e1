"""Security headers on every response the service sends: API, console, CAP feed, cards, metrics, errors.

The console loads only its own scripts (no inline script, no eval), so the
policy allows scripts from this origin alone. Inline ``style`` attributes stay
allowed: the console sets a few. Card previews are ``data:`` images. No page may
be framed (clickjacking a Fire button), nothing is sniffed into another type,
and no Referer leaves for another site. ``Server`` names the product, never the
aiohttp and Python versions an attacker would look up.

The console opens an alert's after-action report as a ``blob:`` URL in a new tab
(fetched with the Authorization header, never a token in a URL): a navigation,
which the policy does not govern; the report document inherits this policy, so
its inline ``<style>`` renders and no script could run in it.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

CONTENT_SECURITY_POLICY: Final = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Server": "broadcaster",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response, streamed ones and raised HTTP errors included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
