"""serve publishes signed CAP: /cap/{id}.xml is the signed document exactly as committed, valid against the XSD
and verified against the authority's certificate; the feed links to it."""

from __future__ import annotations

from pathlib import Path

import defusedxml.ElementTree as SafeET

from broadcaster.cap import validate
from broadcaster.cap_signing import Verified, verify
from tests.cap.keys import write_pair
from tests.engine.providers import Providers
from tests.service.support import PUBLIC_URL, rewrite_config, serving

ATOM = {"a": "http://www.w3.org/2005/Atom"}


async def test_serve_publishes_the_signed_document_as_committed(providers: Providers, tmp_path: Path) -> None:
    key, cert = write_pair(tmp_path / "keys", "rsa")
    rewrite_config(providers, public_url=PUBLIC_URL, cap_signing_key=str(key), cap_signing_cert=str(cert))
    async with serving(providers) as api:
        status, body = await api.fire("officer", mode="live")
        assert status == 202, body
        await api.settle()
        alert_id = body["alert_id"]
        status, document = await api.get(f"/cap/{alert_id}.xml", None)
        assert status == 200
        status, feed = await api.get("/cap/feed.atom", None)
        assert status == 200
        stored = (await api.app.store.alerts.get(alert_id)).cap
    assert stored is not None and document == stored.encode()
    validate(document)
    outcome = verify(document, cert.read_bytes())
    assert isinstance(outcome, Verified) and outcome.subject == "CN=Test authority CAP signer"
    links = [link.get("href") for link in SafeET.fromstring(feed).findall("a:entry/a:link[@rel='alternate']", ATOM)]
    assert links == [f"{PUBLIC_URL}/cap/{alert_id}.xml"]
