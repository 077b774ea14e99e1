"""A fake national CAP platform on 127.0.0.1 that checks the XML signature of every document pushed to it.

It takes ``POST`` on any path. Each push is checked *independently* of the channel: the body must be
``application/cap+xml`` or ``text/xml``, carry the credentials the platform expects (a bearer token, basic
auth, or, under mTLS, a client certificate the TLS layer already checked), and verify against the signer's
certificate the platform was given (signxml's verifier pinned to it, through
:func:`broadcaster.cap_signing.verify`). A document that fails is answered ``400`` with the platform's words
and never recorded. A good one is recorded and answered ``200 {"id": "cap_N", "status": "accepted"}``; a
second push of an identifier it holds is answered the same, not recorded twice (CAP identifiers are
idempotent at the platform), and :attr:`pushes` counts every arrival.

Scripted steps (``tests.fakes.server.Step``) answer instead; ``accept=True`` records the document first (a
lost reply). ``reply="xml"`` answers ``<response><status>accepted</status>...``.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import defusedxml.ElementTree as SafeET
from aiohttp import web

from broadcaster.cap_signing import CapSigner, Verified, sign, verify
from tests.fakes.server import FakeServer, Step

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPES: Final = ("application/cap+xml", "text/xml")


@dataclass
class Push:
    """One signed CAP document the platform took in."""

    identifier: str
    msg_type: str
    references: str | None
    body: bytes
    headers: dict[str, str]
    signer: str


def cap_error(status: int, *, retry_after: float | None = None, accept: bool = False, hang: float = 0.0,
              body: Any = None) -> Step:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Step(status=status, body=body if body is not None else {"status": "error", "message": "scripted"},
                headers=headers, accept=accept, hang=hang)


def nack(message: str) -> Step:
    """A 200 whose status field says the platform refused the document."""
    return Step(status=200, body={"status": "rejected", "message": message})


class FakeCapPlatform(FakeServer):
    """``cert`` is the PEM certificate of the authority's signing key, as registered with the platform."""

    def __init__(self, cert: bytes, *, token: str | None = None, basic: tuple[str, str] | None = None,
                 tls: ssl.SSLContext | None = None, reply: str = "json", latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.cert = cert
        self.token = token
        self.basic = basic
        self.tls = tls
        self.reply = reply
        self.documents: dict[str, Push] = {}  # identifier -> the document (each at most once)
        self.pushes: list[str] = []  # identifiers, in arrival order, duplicates kept
        self.refused: list[str] = []  # why each refused push was refused
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    @property
    def accepted(self) -> list[Push]:
        return list(self.documents.values())

    async def start(self) -> str:
        if self.tls is None:
            return await super().start()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"https://127.0.0.1:{port}"
        return self.base_url

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        if self.token is not None:
            return given == f"Bearer {self.token}"
        if self.basic is not None:
            expected = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return given == f"Basic {expected}"
        return True  # mTLS: the TLS layer checked the client certificate

    def _answer(self, push_id: str) -> web.Response:
        if self.reply == "xml":
            text = f"<response><id>{push_id}</id><status>accepted</status></response>"
            return web.Response(text=text, content_type="application/xml")
        return web.json_response({"id": push_id, "status": "accepted"})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        if request.method != "POST":
            return web.json_response({"status": "error", "message": "method not allowed"}, status=405)
        if not self._authorized(request):
            return web.json_response({"status": "error", "message": "unauthorized"}, status=401)
        if request.content_type not in CONTENT_TYPES:
            return self._refuse(415, f"content type {request.content_type} is not CAP")
        outcome = verify(rec.body, self.cert)
        if not isinstance(outcome, Verified):
            return self._refuse(400, f"signature {outcome.reason.value}: {outcome.message}")
        root = SafeET.fromstring(rec.body, forbid_dtd=True)
        identifier = root.findtext(f"{{{CAP_NS}}}identifier") or ""
        self.pushes.append(identifier)
        step = self.next_step(rec)
        if step is None or step.accept:
            self.documents.setdefault(identifier, Push(
                identifier=identifier, msg_type=root.findtext(f"{{{CAP_NS}}}msgType") or "",
                references=root.findtext(f"{{{CAP_NS}}}references"), body=rec.body, headers=rec.headers,
                signer=outcome.subject))
        await self.provider_latency()
        if step is None:
            return self._answer(f"cap_{list(self.documents).index(identifier) + 1}")
        return await self.answer(step)

    def _refuse(self, status: int, why: str) -> web.Response:
        self.refused.append(why)
        return web.json_response({"status": "rejected", "message": why}, status=status)


@cache
def platform_signer() -> CapSigner:
    """An ECDSA P-256 signer made in memory, once per test process (its certificate is the platform's)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test authority CAP signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return CapSigner(key=key, cert_pem=cert.public_bytes(serialization.Encoding.PEM), subject=name.rfc4514_string(),
                     algorithm="ECDSA-SHA256", not_after=cert.not_valid_after_utc)


def signed_cap(signer: CapSigner, identifier: str = "alerts.example.gov/A-1", msg_type: str = "Alert",
               references: str | None = None) -> bytes:
    """A small, valid, signed CAP document."""
    refs = f"<references>{references}</references>" if references else ""
    doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{CAP_NS}">\n<identifier>{identifier}</identifier>'
           "<sender>alerts.example.gov</sender><sent>2026-11-30T20:00:00+04:00</sent><status>Actual</status>"
           f"<msgType>{msg_type}</msgType><scope>Public</scope>{refs}<info><language>ar-AE</language>"
           "<category>Met</category><event>فيضان</event><urgency>Immediate</urgency><severity>Severe</severity>"
           "<certainty>Observed</certainty><headline>تحذير</headline></info>\n</alert>\n")
    return sign(doc.encode(), signer)
