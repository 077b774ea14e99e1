"""``broadcaster channels check``: channels.toml, recipient lists, areas, secrets, and what each template needs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from broadcaster.cli.output import EXIT_INVALID, EXIT_OK, console, err_console, problem

if TYPE_CHECKING:
    from broadcaster.config import Config


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    channels = commands.add_parser("channels", help="check channels.toml")
    sub = channels.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="keys, recipient lists, areas, secrets and template needs of every channel")
    check.add_argument("--dry-run", action="store_true",
                       help="missing secrets are warnings: a dry-run needs none")
    check.set_defaults(handler=cmd_check)


async def cmd_check(args: argparse.Namespace) -> int:
    from rich.table import Table

    from broadcaster.app.context import load
    from broadcaster.channels.registry import kind_of
    from broadcaster.clock import in_thread
    from broadcaster.errors import ConfigError, TemplateError
    from broadcaster.recipients import index_list
    from broadcaster.templates.verify_line import public_url_problem

    # Key, type and area errors raise here, naming file, channel and key.
    config, catalogue, _ = load(args.config, args.db)
    areas = catalogue.gazetteer.area_codes()
    kinds_of: dict[str, tuple[str, ...]] = {}  # template id -> the kinds it targets (`templates check` names bad ones)
    verified: list[str] = []  # templates whose texts end with the verification line: they need public_url
    for template_id in catalogue.ids():
        try:
            kinds_of[template_id] = catalogue.get(template_id).kinds
        except TemplateError:
            continue
        if catalogue.get(template_id).verify_line:
            verified.append(template_id)
    problems: list[str] = []
    line_problem = public_url_problem(config.public_url) if verified else None
    if line_problem is not None:
        problems.append(f"{config.path}: template(s) {', '.join(verified)}: {line_problem}")
    warnings: list[str] = []
    table = Table("channel", "kind", "languages", "areas", "exercise", "rate/s", "recipients", "secrets")
    for channel in config.channels:
        recipients = "-"
        if channel.recipients is not None:
            try:
                index = await in_thread(index_list, channel.recipients, known_areas=areas,
                                        where=f"{channel.where}: key 'recipients'", list_format=channel.list_format)
                recipients = str(sum(index.counts.values()))
            except ConfigError as exc:
                problems.append(str(exc))
                recipients = "[red]invalid[/]"
        # What the channel needs for each template of its kind (a WhatsApp Content SID per template and language).
        for template_id, kinds in kinds_of.items():
            if channel.kind in kinds:
                for exercise in (False, True) if channel.exercise else (False,):
                    problems += [f"{channel.where}: {problem}" for problem in
                                 kind_of(channel).template_problems(channel, template_id, exercise=exercise)]
        missing = channel.missing_env()
        if missing:
            names = ", ".join(env for _, env in missing)
            line = f"{channel.where}: environment variable(s) not set: {names}"
            if args.dry_run:
                warnings.append(line + " (needed for exercise and live, not for a dry-run)")
            else:
                problems.append(line)
        secrets = "ok" if not missing else f"[yellow]{len(missing)} unset[/]"
        table.add_row(channel.id, channel.kind, ",".join(channel.languages), ",".join(channel.areas),
                      "yes" if channel.exercise else "no", f"{channel.rate_per_second:g}", recipients, secrets)
    console().print(table)
    problems += await _cap_signing(config)
    for channel in config.channels:  # SMS failover: who backs up whom (channels.toml's `fallback`)
        if channel.fallback is not None:
            c = channel.circuit
            console().print(f"channel {channel.id!r} fails over to {channel.fallback!r} when its circuit opens "
                            f"({c.failures} timeouts or server errors in a row within {c.window_s:g} s; "
                            f"a trial after {c.cooldown_s:g} s); {channel.fallback!r} is fallback-only: "
                            "it is never fired directly", markup=False, highlight=False)
    for warning in warnings:
        problem(f"warning: {warning}", style="yellow")
    for line in problems:
        problem(line)
    if problems:
        err_console().print(f"{len(problems)} problem(s) in {config.path}", style="bold red")
        return EXIT_INVALID
    console().print(f"{len(config.channels)} channels OK in {config.path}")
    return EXIT_OK


async def _cap_signing(config: Config) -> list[str]:
    """Say plainly whether CAP documents are signed, and by whom; a key that cannot sign is a problem."""
    from broadcaster.cap_signing import KeyProblem, signer_for
    from broadcaster.clock import in_thread

    try:
        signer = await in_thread(signer_for, config)
    except KeyProblem as exc:
        return [str(exc)]
    if signer is None:
        problem("CAP documents are NOT signed: [broadcaster] cap_signing_key and cap_signing_cert are not set "
                "(national platforms and `cap_push` channels accept only signed CAP)", style="yellow")
    else:
        console().print(f"CAP documents are signed ({signer.algorithm}) by {signer.subject}, certificate valid "
                        f"until {signer.not_after:%Y-%m-%d}", markup=False)
    return []
