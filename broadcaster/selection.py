"""Choose the channels an alert goes to: ``all``, ``id,id``, ``kind:sms``, ``area:CODE``."""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.config import ChannelConfig
from broadcaster.errors import SelectionError


def select_channels(
    channels: Iterable[ChannelConfig],
    selection: str,
    *,
    kinds: Iterable[str],
    areas: tuple[str, ...],
    exercise_only: bool,
    known_areas: set[str],
) -> list[ChannelConfig]:
    """The channels an alert goes to, in config order.

    ``kinds`` are the channel kinds the template targets; ``areas`` the alert's
    area codes (empty = everywhere). In exercise mode only channels marked
    ``exercise = true`` remain; naming any other channel explicitly is an error.
    """
    pool = list(channels)
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
            raise SelectionError(f"--channels {sel}: unknown area {area!r}")
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
    for channel in chosen:
        if channel.kind not in allowed_kinds:
            if explicit:
                raise SelectionError(f"channel {channel.id!r}: this template does not go to {channel.kind} channels")
            continue
        if areas and not any(channel.covers_area(a) for a in areas):
            if explicit:
                raise SelectionError(f"channel {channel.id!r} does not cover area(s) {', '.join(areas)}")
            continue
        if exercise_only and not channel.exercise:
            if explicit:
                raise SelectionError(
                    f"channel {channel.id!r} is not an exercise channel; exercise mode only uses exercise = true"
                )
            continue
        result.append(channel)
    if not result:
        mode = " exercise" if exercise_only else ""
        raise SelectionError(f"--channels {sel}: no{mode} channel matches (areas: {', '.join(areas) or 'all'})")
    return result
