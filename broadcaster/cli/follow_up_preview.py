"""``broadcaster preview --update / --cancel / --all-clear ALERT_ID``: a follow-up's texts before it is sent."""

from __future__ import annotations

import argparse
import time


async def preview_follow_up(args: argparse.Namespace) -> int:
    """``preview --update/--cancel/--all-clear ALERT_ID``: every channel's text of that follow-up, as a dry-run
    (or, with --exercise, an exercise) would send it; nothing is stored and no network is reached but the
    database, which is only read."""
    from broadcaster.app.context import database_of, open_app
    from broadcaster.app.fire import Request, plan_request
    from broadcaster.cli.output import EXIT_OK, console, print_json
    from broadcaster.cli.views import show_preview
    from broadcaster.engine.outbox import count_phones
    from broadcaster.errors import SelectionError
    from broadcaster.netguard import no_network
    from broadcaster.states import CancelReason, Mode
    from broadcaster.store import address_of
    from broadcaster.templates.variables import parse_var_args

    if args.template is not None:
        raise SelectionError(f"preview a template ({args.template}) or a follow-up, not both", where="preview")
    if args.use_examples:
        raise SelectionError("a follow-up takes its values from the original: --var NAME=VALUE for what changes",
                             where="--use-examples")
    mode = Mode.EXERCISE if args.exercise else Mode.DRY_RUN
    overrides = parse_var_args(args.var)
    if args.cancel:
        if args.var:
            raise SelectionError("a cancel takes no --var: its text is approved as it is", where="--var")
        request = Request("cancel", mode, original=args.cancel, reason=CancelReason(args.reason))
    elif args.update:
        request = Request("update", mode, original=args.update, overrides=overrides)
    else:
        request = Request("all_clear", mode, original=args.all_clear, overrides=overrides)
    database = address_of(database_of(args.config, args.db))
    with no_network(allow=[database] if database else []):
        async with open_app(args.config, args.db) as app:
            plan = await count_phones(await plan_request(app, request, now=time.time(), created_by="preview"))
    if args.json:
        print_json({"template": plan.template.id, "approved": plan.template.approved, "kind": request.kind,
                    "references": plan.alert.references, "msg_type": str(plan.alert.msg_type),
                    "areas": list(plan.alert.areas), "skipped": plan.skipped, "notes": plan.notes,
                    "messages": [row.as_json() for row in plan.rows], "sms": plan.sms_total.as_json()})
        return EXIT_OK
    show_preview(plan)
    for channel_id, why in plan.skipped.items():
        console().print(f"skipped: {channel_id}: {why}", markup=False)
    for note in plan.notes:
        console().print(f"note: {note}", markup=False)
    return EXIT_OK
