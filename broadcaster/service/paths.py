"""Server paths out of what API callers read.

An error about a file names it, for the operator who fixes it; a viewer of the
API need not learn where the server keeps its configuration (``/srv/...``,
the service user's home). The server log keeps the full text; an answer shows
each path relative to the folder it was configured in.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broadcaster.config import Config


def private_roots(config: Config) -> list[str]:
    """The folders the configuration names, shortest first (so a nested one keeps its relative part)."""
    folders = {config.path.parent, config.templates_dir, config.runbooks_dir}
    folders |= {c.recipients.parent for c in config.channels if c.recipients is not None}
    if "://" not in config.database:
        folders.add(Path(config.database).parent)
    return sorted({str(f) for f in folders if f.is_absolute() and str(f) != "/"}, key=len)


def public_text(text: str, roots: Iterable[str]) -> str:
    """``text`` with ``roots`` taken off the paths in it (``/srv/b/templates/x.toml`` -> ``templates/x.toml``)."""
    for root in roots:
        text = text.replace(root + "/", "").replace(root, ".")
    return text
