"""``broadcaster cap ALERT_ID``: the CAP 1.2 XML document of an alert."""

from __future__ import annotations

import argparse
import sys

from broadcaster.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK, problem


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cap = commands.add_parser("cap", help="the CAP 1.2 XML document of an alert")
    cap.add_argument("alert_id")
    cap.add_argument("--validate", action="store_true", help="check the document against the CAP 1.2 schema first")
    cap.set_defaults(handler=cmd_cap)


async def cmd_cap(args: argparse.Namespace) -> int:
    """Print the alert's CAP document to stdout (UTF-8 bytes).

    An unknown alert id exits 2 (through the InputError the store raises). With
    ``--validate``, a document that fails the schema is not printed: the errors
    go to stderr and the exit code is 1.
    """
    from broadcaster.app.context import open_app
    from broadcaster.cap import cap_document, validate

    async with open_app(args.config, args.db) as app:
        alert = await app.store.alerts.get(args.alert_id)
        original = await app.store.alerts.get(alert.references) if alert.references else None
    template = app.catalogue.get(alert.template)
    if template.content_hash != alert.template_hash:
        problem(f"warning: template {template.id!r} changed since alert {alert.id} was fired; "
                "the CAP fields are today's", style="yellow")
    try:
        document = cap_document(alert, template, app.catalogue.gazetteer, app.config, original=original)
    except ValueError as exc:
        problem(f"error: cannot build the CAP document: {exc}", style="bold red")
        return EXIT_INVALID
    if args.validate:
        try:
            validate(document)
        except ValueError as exc:
            problem(f"error: alert {alert.id}: {exc}", style="bold red")
            return EXIT_FAILED
    sys.stdout.buffer.write(document)
    sys.stdout.flush()
    return EXIT_OK
