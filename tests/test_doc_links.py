"""The project's documents link only to files inside the repository that exist (an IT department gets the
repository, not the designers' folders): Markdown links and HTML src/href, relative to each document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted({ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("deploy/**/*.md"),
                    *ROOT.glob("bench/*.md")})
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|\b(?:src|href)=\"([^\"]+)\"")


def local_targets(text: str) -> list[str]:
    """Every link target that is not a web address, a mail address or an anchor in the same page."""
    targets = [a or b for a, b in _LINK.findall(text)]
    return [t.split("#", 1)[0] for t in targets
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_inside_the_repository_and_exists(document: Path) -> None:
    sample = '[a](docs/a.md) ![b](b.png "t") <img src="c.png"> [d](https://x.example) [e](#top) [f](../g.md#h)'
    assert local_targets(sample) == ["docs/a.md", "b.png", "c.png", "../g.md"]  # the finder sees every form
    for target in local_targets(document.read_text(encoding="utf-8")):
        resolved = (document.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name} links outside the repository: {target}"
        assert resolved.exists(), f"{document.name} links to a missing file: {target}"
