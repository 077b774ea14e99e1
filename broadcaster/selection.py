"""Choose the channels an alert goes to: ``all``, ``id,id``, ``kind:sms``, ``area:CODE``.

Also the one check of the areas channels cover (:func:`check_areas`): ``channels.toml``
is read before the gazetteer, so the application checks them together once both are loaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from broadcaster.config import ChannelConfig, Config
from broadcaster.errors import ConfigError, SelectionError
from broadcaster.states import Mode


def select_channels(
    channels: Iterable[ChannelConfig],
    selection: str,
    *,
    kinds: Iterable[str],
    areas: tuple[str, ...],
    mode: Mode | None,
    known_areas: set[str],
) -> list[ChannelConfig]:
    """The channels an alert goes to, in config order.

    ``kinds`` are the channel kinds the template targets; ``areas`` the alert's
    area codes (empty = everywhere). Channels marked ``exercise = true`` are drill
    channels: an exercise goes only to them, a live alert (and a dry-run, which
    rehearses one) never does; naming a channel of the other sort explicitly is an
    error that says why. ``mode=None`` keeps both sorts (a runbook checked for any mode).
    """
    pool = list(channels)
    # A channel named as another's fallback sends only what failover moves to it: it is never fired directly.
    backups = {c.fallback: c.id for c in pool if c.fallback is not None}
    allowed_kinds = set(kinds)
    sel = selection.strip() or "all"
    explicit = False
    if sel == "all":
        chosen = pool
    elif sel.startswith("kind:"):
        kind = sel.removeprefix("kind:")
        configured = list(dict.fromkeys(c.kind for c in pool))
        if kind not in configured:
            raise SelectionError(f"--channels {sel}: no channel of kind {kind!r} in the config "
                                 f"(kinds: {', '.join(configured)})")
        chosen = [c for c in pool if c.kind == kind]
    elif sel.startswith("area:"):
        area = sel.removeprefix("area:")
        if area not in known_areas:
            close = close_match(area, known_areas)
            raise SelectionError(f"--channels {sel}: unknown area {area!r}"
                                 + (f" (did you mean {close!r}?)" if close else ""))
        chosen = [c for c in pool if c.covers_area(area)]
    else:
        explicit = True
        ids = [part.strip() for part in sel.split(",") if part.strip()]
        by_id = {c.id: c for c in pool}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise SelectionError(f"--channels: unknown channel id {unknown[0]!r} (known: {', '.join(by_id)})")
        chosen = [c for c in pool if c.id in ids]

    result = []
    drills_left_out = False
    for channel in chosen:
        if channel.id in backups:
            if explicit:
                raise SelectionError(f"channel {channel.id!r} is the fallback of {backups[channel.id]!r}: it sends "
                                     "only what that channel's failover moves to it, never an alert of its own")
            continue
        if channel.kind not in allowed_kinds:
            if explicit:
                raise SelectionError(f"channel {channel.id!r}: this template does not go to {channel.kind} channels")
            continue
        if areas and not any(channel.covers_area(a) for a in areas):
            if explicit:
                raise SelectionError(f"channel {channel.id!r} does not cover area(s) {', '.join(areas)}")
            continue
        refusal = drill_refusal(channel, mode)
        if refusal is not None:
            if explicit:
                raise SelectionError(f"channel {channel.id!r} {refusal}")
            drills_left_out = drills_left_out or channel.exercise
            continue
        result.append(channel)
    if not result:
        sort = " exercise" if mode == Mode.EXERCISE else ""
        why = "; exercise channels never take a live alert" if drills_left_out else ""
        raise SelectionError(f"--channels {sel}: no{sort} channel matches (areas: {', '.join(areas) or 'all'}){why}")
    return result


def drill_refusal(channel: ChannelConfig, mode: Mode | None) -> str | None:
    """Why an alert of ``mode`` must not go to ``channel`` as configured now (None: it may).

    Drill channels (``exercise = true``) take exercises only; every other channel takes only live alerts
    (and their dry-run rehearsals). ``mode=None`` asks about neither.
    """
    if mode == Mode.EXERCISE and not channel.exercise:
        return "is not an exercise channel; exercise mode only uses exercise = true"
    if mode in (Mode.LIVE, Mode.DRY_RUN) and channel.exercise:
        alert = "a live alert" if mode == Mode.LIVE else "a dry-run rehearses a live alert, which"
        return (f"is an exercise channel (exercise = true in channels.toml): {alert} never goes to a drill channel; "
                "use --exercise to reach it")
    return None


def check_areas(config: Config, known: Collection[str], *, gazetteer: str = "the gazetteer") -> None:
    """Every channel's ``areas`` are area codes of the gazetteer (or ``"*"``); raise ConfigError naming the first
    that is not. A mistyped code would otherwise leave the channel silently out of every alert for that area."""
    for channel in config.channels:
        for area in channel.areas:
            if area != "*" and area not in known:
                close = close_match(area, known)
                hint = f"did you mean {close!r}? " if close else ""
                raise ConfigError(f"key 'areas': {area!r} is not an area in {gazetteer} ({hint}known: "
                                  f"{', '.join(sorted(known))}, or \"*\" for everywhere)", where=channel.where)


def close_match(value: str, known: Collection[str]) -> str | None:
    """The known code ``value`` was probably meant to be (case aside, or a letter or two off), if any."""
    by_upper = {k.upper(): k for k in known}
    if value.upper() in by_upper:
        return by_upper[value.upper()]
    found = difflib.get_close_matches(value.upper(), list(by_upper), n=1, cutoff=0.75)
    return by_upper[found[0]] if found else None
