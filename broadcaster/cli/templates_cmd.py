"""``broadcaster templates check | list | show | approve``."""

from __future__ import annotations

import argparse
from datetime import datetime

from broadcaster.cli.output import EXIT_INVALID, EXIT_OK, console, err_console, print_json, problem


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("templates", help="check, list, show and approve templates")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="prove every template is well-formed, approved and fits its channels")
    check.set_defaults(handler=cmd_check)
    listing = sub.add_parser("list", help="list the catalogue")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="show one template")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    appr = sub.add_parser("approve", help="record your approval of a template's current content (approver role; "
                                          "your API token says who you are)")
    appr.add_argument("id")
    appr.add_argument("--by", default=None, metavar="NAME",
                      help="optional: must be your user name; the approval is always recorded under your token's user")
    appr.set_defaults(handler=cmd_approve)


async def cmd_check(args: argparse.Namespace) -> int:
    from broadcaster.app.context import load
    from broadcaster.channels.registry import targets
    from broadcaster.templates.check import check_catalogue

    config, catalogue, _ = load(args.config, args.db)
    problems = check_catalogue(catalogue, config.timezone, targets(config.channels))
    for line in problems:
        problem(line)
    ids = catalogue.ids()
    if problems:
        err_console().print(f"{len(problems)} problem(s) in {len(ids)} template(s)", style="bold red")
        return EXIT_INVALID
    console().print(f"{len(ids)} templates OK: {', '.join(ids)} (worst case fits every channel)")
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from broadcaster.app.context import load

    _, catalogue, _ = load(args.config, args.db)
    templates = [catalogue.get(i) for i in catalogue.ids()]
    if args.json:
        print_json([{"id": t.id, "version": t.version, "title": t.title, "approved": t.approved,
                     "kinds": list(t.kinds), "two_person": t.two_person} for t in templates])
        return EXIT_OK
    table = Table("id", "title (ar)", "title (en)", "approved", "kinds")
    for t in templates:
        table.add_row(t.id, t.title["ar"], t.title["en"], "yes" if t.approved else "[red]NO[/]", ",".join(t.kinds))
    console().print(table)
    return EXIT_OK


async def cmd_show(args: argparse.Namespace) -> int:
    from rich.table import Table

    from broadcaster.app.context import load
    from broadcaster.templates.catalogue import template_detail

    _, catalogue, _ = load(args.config, args.db)
    t = catalogue.get(args.id)
    doc = template_detail(t)
    if args.json:
        print_json(doc)
        return EXIT_OK
    out = console()
    out.print(f"[bold]{t.id}[/] v{t.version}: {t.title['ar']} / {t.title['en']}")
    out.print(f"CAP: {t.cap} event={dict(t.event)}")
    out.print(f"approved: {'yes by ' + t.approval.by if t.approved and t.approval else 'NO'}")
    table = Table("variable", "type", "max", "required", "example (ar)", "example (en)")
    for v in t.variables:
        table.add_row(v.name, v.type, str(v.max_length), "yes" if v.required else "no", v.examples["ar"],
                      v.examples["en"])
    out.print(table)
    for lang in ("ar", "en"):
        for form, text in t.text[lang].items():
            out.print(f"[bold]{lang} {form}:[/] {text}")
    return EXIT_OK


async def cmd_approve(args: argparse.Namespace) -> int:
    """Approve only a template that passes every other check: approval vouches for a text that fits."""
    from broadcaster.app.context import open_app
    from broadcaster.app.users import require
    from broadcaster.channels.registry import targets
    from broadcaster.cli.identity import permitted, require_identity
    from broadcaster.errors import InputError
    from broadcaster.templates.catalogue import approve
    from broadcaster.templates.check import check_template

    async with open_app(args.config, args.db) as app:
        user = await require_identity(args, app, "approving a template", role="approver")
        await permitted(app, user, lambda: require(user, "approver", "approving a template"), action="approve",
                        template=args.id)
        if args.by is not None and args.by != user.name:
            raise InputError(f"{args.by!r} is not you: your token is {user.name}'s, and an approval is recorded "
                             f"under the approver's own name; leave --by out", where="--by")
        template = app.catalogue.get(args.id)
        problems = [
            p for p in check_template(template, app.catalogue.gazetteer, app.config.timezone,
                                      targets(app.config.channels))
            if not p.startswith("[approval]")
        ]
        if problems:
            for line in problems:
                problem(f"{template.path}: {line}")
            problem(f"not approved: fix the {len(problems)} problem(s) above first", style="bold red")
            return EXIT_INVALID
        by = user.name
        digest = approve(app.catalogue.path(args.id), by, datetime.now(app.config.timezone))
        await app.audit(by, "approval", {"template": args.id, "sha256": digest})
    console().print(f"approved {args.id} by {by}: sha256 {digest}")
    return EXIT_OK
