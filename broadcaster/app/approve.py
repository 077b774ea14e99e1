"""Approve a template: the one rule for every face (the CLI's ``templates approve``, the HTTP API).

An approval is bound to the sha256 the approver reviewed, never to whatever the
file holds a moment later: :func:`approve_template` reads the file once (on a
worker thread), compares that content's sha256 (which also covers the gazetteer
names it renders) with the reviewed one, runs every check of ``templates check``
but the approval itself on that very content (an approval vouches for a text
that is safe and fits every channel), and writes the approval into that same
text atomically (:mod:`broadcaster.templates.approval`).
"""

from __future__ import annotations

from datetime import datetime

from broadcaster.app.context import App
from broadcaster.channels.registry import targets
from broadcaster.clock import in_thread
from broadcaster.errors import Conflict, TemplateError
from broadcaster.templates.approval import Reviewed, read_for_review, record
from broadcaster.templates.check import check_template


class NotApprovable(TemplateError):
    """The template fails a check other than its approval; ``problems`` lists each one."""

    def __init__(self, template_id: str, problems: list[str], where: str) -> None:
        self.problems = problems
        super().__init__(f"template {template_id} is not approved: fix these {len(problems)} problem(s) first: "
                         + "; ".join(problems), where=where)


async def review(app: App, template_id: str) -> Reviewed:
    """The template as an approver reviews it: read once, with its sha256 (``reviewed.template.content_hash``)."""
    path = app.catalogue.path_of(template_id)
    return await in_thread(read_for_review, path, app.catalogue.kinds, app.catalogue.gazetteer)


async def problems_of(app: App, reviewed: Reviewed, *, now: float) -> list[str]:
    """Every problem ``templates check`` finds in the reviewed content, but its approval."""
    found = await in_thread(check_template, reviewed.template, app.catalogue.gazetteer, app.config.timezone,
                            targets(app.config.channels), now=now, public_url=app.config.public_url)
    return [p for p in found if not p.startswith("[approval]")]


async def approve_template(app: App, template_id: str, *, reviewed_sha256: str, by: str, when: datetime,
                           reviewed: Reviewed | None = None) -> str:
    """Approve exactly the content whose sha256 the approver reviewed; returns that sha256.

    Raises :class:`~broadcaster.errors.Conflict` when the file no longer holds it
    (or changes while being approved), :class:`NotApprovable` when it fails a check.
    ``reviewed`` is the content as already read and shown to the approver (the CLI).
    """
    current = reviewed or await review(app, template_id)
    template = current.template
    if reviewed_sha256 != template.content_hash:
        raise Conflict(f"template {template_id} changed since you reviewed it (you reviewed sha256 "
                       f"{reviewed_sha256 or '-'}, it is now {template.content_hash}); review it again")
    found = await problems_of(app, current, now=when.timestamp())
    if found:
        raise NotApprovable(template_id, found, str(template.path))
    return await in_thread(record, current, sha256=reviewed_sha256, by=by, when=when,
                           gazetteer=app.catalogue.gazetteer)
