"""``broadcaster templates check | list | show | approve``.

``approve ID --sha256 HASH`` approves exactly the content whose sha256 the approver
reviewed (``templates show ID`` prints it). Without ``--sha256`` it shows the
content and its sha256 and, on a terminal, approves that shown content once the
approver types the template id; off a terminal it approves nothing and says to
run again with ``--sha256``. Either way a file changed since it was reviewed is
refused (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING

from broadcaster.cli.output import EXIT_INVALID, EXIT_OK, console, err_console, print_json, problem

if TYPE_CHECKING:
    from broadcaster.templates.catalogue import Template


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
    appr = sub.add_parser("approve", help="approve exactly the content you reviewed (its sha256), as an approver "
                                          "(your API token says who you are)")
    appr.add_argument("id")
    appr.add_argument("--by", default=None, metavar="NAME",
                      help="optional: must be your user name; the approval is always recorded under your token's user")
    appr.add_argument("--sha256", metavar="HASH", default=None,
                      help="the sha256 you reviewed (`templates show ID` prints it); without it the content and "
                           "its sha256 are shown and, on a terminal, you approve them by typing the template id")
    appr.set_defaults(handler=cmd_approve)


async def cmd_check(args: argparse.Namespace) -> int:
    from broadcaster.app.context import load
    from broadcaster.channels.registry import targets
    from broadcaster.templates.check import check_catalogue

    config, catalogue, _ = load(args.config, args.db)
    problems = check_catalogue(catalogue, config.timezone, targets(config.channels), public_url=config.public_url)
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
    from broadcaster.app.context import load
    from broadcaster.templates.catalogue import template_detail
    from broadcaster.templates.variables import example_inputs

    config, catalogue, _ = load(args.config, args.db)
    t = catalogue.get(args.id)
    if args.json:
        print_json(template_detail(t, example_inputs(t, time.time(), config.timezone)))
        return EXIT_OK
    show_template(t)
    return EXIT_OK


def show_template(t: Template) -> None:
    """Everything an approver reviews: texts, variables and their rules, the gazetteer names, the sha256."""
    from rich.table import Table

    out = console()
    out.print(f"[bold]{t.id}[/] v{t.version}: {t.title['ar']} / {t.title['en']}")
    out.print(f"CAP: {t.cap} event={dict(t.event)}")
    out.print(f"approved: {'yes by ' + t.approval.by if t.approved and t.approval else 'NO'}")
    table = Table("variable", "type", "max", "required", "example (ar)", "example (en)", "rule")
    for v in t.variables:
        rule = v.time.describe() if v.time else ", ".join(v.domains) or ", ".join(f"allows {a}" for a in v.allow)
        table.add_row(v.name, v.type, str(v.max_length), "yes" if v.required else "no", v.examples["ar"],
                      v.examples["en"], rule)
    out.print(table)
    for lang in ("ar", "en"):
        for form, text in t.text[lang].items():
            out.print(f"[bold]{lang} {form}:[/] {text}")
    if t.words:
        out.print("[bold]gazetteer names it can render:[/] " + "; ".join(
            f"{code} = {names['ar']} / {names['en']}" for code, names in sorted(t.words.items())))
    out.print(f"sha256: {t.content_hash}")


async def cmd_approve(args: argparse.Namespace) -> int:
    """Approve only the reviewed content, and only if it passes every other check."""
    from broadcaster.app.approve import NotApprovable, approve_template, problems_of, review
    from broadcaster.app.context import open_app
    from broadcaster.app.users import require
    from broadcaster.cli.identity import permitted, require_identity
    from broadcaster.errors import InputError

    async with open_app(args.config, args.db) as app:
        user = await require_identity(args, app, "approving a template", role="approver")
        await permitted(app, user, lambda: require(user, "approver", "approving a template"), action="approve",
                        template=args.id)
        if args.by is not None and args.by != user.name:
            raise InputError(f"{args.by!r} is not you: your token is {user.name}'s, and an approval is recorded "
                             f"under the approver's own name; leave --by out", where="--by")
        shown = None
        if args.sha256 is None:
            shown = await review(app, args.id)
            found = await problems_of(app, shown, now=time.time())
            if found:
                return _not_approvable(str(shown.template.path), found)
            show_template(shown.template)
            if not sys.stdin.isatty():
                problem(f"not approved: review the content above, then run `broadcaster templates approve {args.id} "
                        f"--sha256 {shown.template.content_hash}`", style="bold red")
                return EXIT_INVALID
            answer = await asyncio.to_thread(input, f"Type the template id ({args.id}) to approve exactly this "
                                                    "content: ")
            if answer.strip() != args.id:
                problem("not approved: the template id was not typed", style="bold red")
                return EXIT_INVALID
        reviewed = args.sha256 or (shown.template.content_hash if shown else "")
        by = user.name
        try:
            digest = await approve_template(app, args.id, reviewed_sha256=reviewed, by=by,
                                            when=datetime.now(app.config.timezone), reviewed=shown)
        except NotApprovable as exc:
            return _not_approvable(exc.where or args.id, exc.problems)
        await app.audit(by, "approval", {"template": args.id, "sha256": digest})
    console().print(f"approved {args.id} by {by}: sha256 {digest}")
    return EXIT_OK


def _not_approvable(where: str, problems: list[str]) -> int:
    for line in problems:
        problem(f"{where}: {line}")
    problem(f"not approved: fix the {len(problems)} problem(s) above first", style="bold red")
    return EXIT_INVALID
