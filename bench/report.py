"""Printing figures beside their bounds, and the closing summary table (shared by every scenario module)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    scenario: str
    figure: str
    value: str
    bound: str
    ok: bool | None  # None: informational


ROWS: list[Row] = []


def say(text: str = "") -> None:
    print(text, flush=True)


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[ok]


def add(scenario: str, figure: str, value: str, bound: str, ok: bool | None) -> None:
    ROWS.append(Row(scenario, figure, value, bound, ok))
    say(f"    {figure:<46} {value:>16}   bound: {bound:<24} {verdict(ok)}")


def heading(number: str, title: str, how: str) -> None:
    say()
    say(f"[{number}] {title}")
    for line in how.splitlines():
        say(f"    {line}")


def summary() -> None:
    say()
    say("Summary")
    if not ROWS:
        say("  (no figures)")
        return
    width = max(len(r.figure) for r in ROWS)
    say(f"  {'scenario':<16} {'figure':<{width}} {'value':>20}  {'bound / target':<24} result")
    say("  " + "-" * (16 + width + 20 + 24 + 12))
    for r in ROWS:
        say(f"  {r.scenario:<16} {r.figure:<{width}} {r.value:>20}  {r.bound:<24} {verdict(r.ok)}")
    failed = [r for r in ROWS if r.ok is False]
    say()
    say(f"  {sum(r.ok is True for r in ROWS)} passed, {len(failed)} failed"
        + (": " + "; ".join(f"{r.scenario} / {r.figure.strip()}" for r in failed) if failed else ""))
