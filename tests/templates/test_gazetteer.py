"""Gazetteer names are words that render (finding 4): checked at load, before anything can render them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.errors import TemplateError
from broadcaster.templates.catalogue import Catalogue
from broadcaster.templates.gazetteer import load_gazetteer
from tests.engine.providers import REPO, SECRETS, Providers
from tests.service.support import provider_requests
from tests.support import write_config
from tests.templates.support import edit

E11_EN = 'en = "Sheikh Zayed Road"'
POISON = {
    "bidi override and links": "\u202eevil.com t.me/x\u202c",
    "control character": "Sheikh Zayed\x07Road",
    "a link": "Sheikh Zayed Road t.me/x",
    "a phone number": "Sheikh Zayed Road 04 123 4567",
    "an emoji": "Sheikh Zayed Road 🚧",
}


def poisoned_copy(tmp_path: Path, name: str) -> Path:
    """A copy of the shipped templates whose gazetteer names E11 ``name`` in English."""
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    escaped = "".join(f"\\u{ord(c):04X}" if ord(c) < 0x20 or c in '"\\' else c for c in name)
    edit(folder / "gazetteer.toml", E11_EN, f'en = "{escaped}"')
    return folder


@pytest.mark.parametrize("name", POISON.values(), ids=POISON.keys())
def test_a_poisoned_name_does_not_load_and_the_error_names_the_place(tmp_path: Path, name: str) -> None:
    folder = poisoned_copy(tmp_path, name)
    with pytest.raises(TemplateError) as caught:
        load_gazetteer(folder / "gazetteer.toml")
    message = str(caught.value)
    assert caught.value.where == str(folder / "gazetteer.toml")
    assert "place 'E11': key 'en'" in message, message
    with pytest.raises(TemplateError):
        Catalogue(folder, KINDS)


def test_every_poisoned_name_is_listed_at_once(tmp_path: Path) -> None:
    folder = poisoned_copy(tmp_path, "\u202eevil.com t.me/x\u202c")
    edit(folder / "gazetteer.toml", 'ar = "ديرة"', 'ar = "ديرة\u200b"')
    with pytest.raises(TemplateError) as caught:
        load_gazetteer(folder / "gazetteer.toml")
    message = str(caught.value)
    assert "place 'E11': key 'en': bidi control character U+202E" in message
    assert "place 'DXB-DEIRA': key 'ar': control or invisible character U+200B" in message


def test_templates_check_and_fire_exit_2_on_a_poisoned_gazetteer_and_nothing_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for env, value in SECRETS.items():
        monkeypatch.setenv(env, value)
    with Providers(tmp_path, recipients=2) as p:
        folder = poisoned_copy(tmp_path, "\u202eevil.com t.me/x\u202c")
        write_config(p.tmp_path, p.default_channels(), templates=str(folder), database="var/broadcaster.db")
        capsys.readouterr()
        assert main(p.cli("templates", "check")) == 2
        assert "place 'E11'" in capsys.readouterr().err
        assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes")) == 2
        err = capsys.readouterr().err
        assert "place 'E11'" in err and "U+202E" in err and "nothing was sent" in err
        # `serve` loads the same way: with this gazetteer it never starts, so the CAP feed never shows the name.
        assert main(p.cli("serve", "--port", "8999")) == 2
        assert "place 'E11'" in capsys.readouterr().err
        assert provider_requests(p) == [0, 0, 0, 0]
        assert not p.db.exists()  # not even the database was opened: the catalogue refused first
