"""The CAP document of a stored alert, for every face (``broadcaster cap``, ``GET /cap/{id}.xml``).

An alert's CAP 1.2 document is built and checked when the alert is planned and
committed with it (``alerts.cap``, migration 0008, covered by its anchor): it is
served exactly as it was fired, whatever the template files say today.

An alert committed before documents were stored has none. Its document is rebuilt
from its template only while that template still hashes to what the alert was fired
from; otherwise it cannot be rebuilt faithfully and :class:`NotStored` says so,
rather than publishing today's words under the old template's hash. A rebuilt document is
signed now, with today's key (when one is configured).
"""

from __future__ import annotations

from broadcaster.app.context import App
from broadcaster.cap import cap_document
from broadcaster.cap_signing import sign, signer_for
from broadcaster.clock import in_thread
from broadcaster.errors import TemplateError
from broadcaster.store.records import AlertRecord


class NotStored(TemplateError):
    """An alert from before CAP documents were stored, whose template changed or went since."""


async def stored_cap(app: App, alert: AlertRecord) -> bytes:
    """The alert's CAP document as it was fired (UTF-8 bytes); :class:`NotStored` when it cannot be had."""
    if alert.cap is not None:
        return alert.cap.encode()
    template = app.catalogue.get(alert.template) if alert.template in app.catalogue.ids() else None
    if template is None or template.content_hash != alert.template_hash:
        state = "is gone" if template is None else "has changed"
        raise NotStored(f"alert {alert.id} was fired before CAP documents were stored with alerts, and its "
                        f"template {alert.template!r} {state} since: its CAP document cannot be rebuilt as it was "
                        "fired", where=f"alert {alert.id}")
    original = await app.store.alerts.find(alert.references) if alert.references else None

    def build() -> bytes:
        document = cap_document(alert, template, app.catalogue.gazetteer, app.config, original=original)
        signer = signer_for(app.config)
        return document if signer is None else sign(document, signer)

    return await in_thread(build)
