"""``broadcaster cap ALERT_ID``: the CAP 1.2 XML document of an alert, as it was fired."""

from __future__ import annotations

import argparse
import sys

from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, problem


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cap = commands.add_parser("cap", help="the CAP 1.2 XML document of an alert, as it was fired")
    cap.add_argument("alert_id")
    cap.add_argument("--validate", action="store_true", help="check the document against the CAP 1.2 schema first")
    cap.set_defaults(handler=cmd_cap)


async def cmd_cap(args: argparse.Namespace) -> int:
    """Print the alert's CAP document to stdout (UTF-8 bytes): the one stored when it was fired.

    An unknown alert id, or an alert from before documents were stored whose
    template changed since, exits 2 (an InputError). With ``--validate``, a
    document that fails the schema is not printed: the errors go to stderr and
    the exit code is 1.
    """
    from broadcaster.app.cap_documents import stored_cap
    from broadcaster.app.context import open_app
    from broadcaster.cap import validate
    from broadcaster.clock import in_thread

    async with open_app(args.config, args.db) as app:
        alert = await app.store.alerts.get(args.alert_id)
        document = await stored_cap(app, alert)
    if args.validate:
        try:
            await in_thread(validate, document)
        except ValueError as exc:
            problem(f"error: alert {alert.id}: {exc}", style="bold red")
            return EXIT_FAILED
    sys.stdout.buffer.write(document)
    sys.stdout.flush()
    return EXIT_OK
