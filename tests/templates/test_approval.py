"""Approval covers every word that can render, and binds to exactly the content reviewed (findings 4 and 5)."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.errors import Conflict, TemplateError
from broadcaster.templates.approval import approve, read_for_review, record
from broadcaster.templates.catalogue import Catalogue, parse_template
from broadcaster.templates.check import check_catalogue
from tests.support import token_file
from tests.templates.support import DEFAULT_TARGETS, DUBAI, PUBLIC_URL, ROOT, approve_as_is, edit

REPO = ROOT

E11_EN = 'en = "Sheikh Zayed Road"'
WHEN = datetime(2026, 11, 22, 9, 30, tzinfo=DUBAI)
EN_SHORT = 'short = "{road} will be closed from {starts}'


def test_a_gazetteer_edit_voids_the_approvals_it_affects_and_check_says_which(catalogue: Catalogue) -> None:
    edit(catalogue.folder / "gazetteer.toml", E11_EN, 'en = "Sheikh Zayed Rd"')
    edited = Catalogue(catalogue.folder, KINDS)
    # road_closure and road_reopened can render E11 (a road); nothing else picks roads.
    assert not edited.get("road_closure").approved and not edited.get("road_reopened").approved
    for other in ("earthquake", "flood_warning", "all_clear", "cancel", "call_off", "dust_storm"):
        assert edited.get(other).approved, other
    problems = check_catalogue(edited, DUBAI, DEFAULT_TARGETS, public_url=PUBLIC_URL)
    assert problems == [f"{edited.path(t)}: [approval] sha256: stale: the gazetteer's road names it can render "
                        "changed since it was approved; review it and approve again"
                        for t in ("road_closure", "road_reopened")]
    with pytest.raises(TemplateError, match="gazetteer's road names"):
        edited.approved("road_closure")

    # An area rename reaches every template with an area variable, and no template with only a road.
    edit(catalogue.folder / "gazetteer.toml", 'en = "Deira"', 'en = "Deira District"')
    areas_edited = Catalogue(catalogue.folder, KINDS)
    stale = {t for t in areas_edited.ids() if not areas_edited.get(t).approved}
    # (road_reopened renders roads only: it is still stale from the road edit above, not from this one.)
    assert stale == {"road_closure", "earthquake", "flood_warning", "all_clear", "dust_storm", "road_reopened"}


def test_approving_again_covers_the_new_names(catalogue: Catalogue) -> None:
    edit(catalogue.folder / "gazetteer.toml", E11_EN, 'en = "Sheikh Zayed Rd"')
    edited = Catalogue(catalogue.folder, KINDS)
    approve_as_is(edited.path("road_closure"), "Officer", datetime(2026, 11, 22, 9, 30, tzinfo=DUBAI))
    template = edited.approved("road_closure")
    assert template.words["E11"] == {"type": "road", "ar": "شارع الشيخ زايد", "en": "Sheikh Zayed Rd"}
    assert template.approval is not None and template.approval.gazetteer_sha256 == template.words_hash


def test_approve_refuses_content_other_than_the_reviewed_and_leaves_the_file(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    reviewed = catalogue.get("road_closure").content_hash
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')
    before = path.read_bytes()
    with pytest.raises(Conflict, match="changed since you reviewed it") as caught:
        approve(path, "Officer", WHEN, reviewed=reviewed, gazetteer=catalogue.gazetteer)
    assert catalogue.get("road_closure").content_hash in str(caught.value)
    assert path.read_bytes() == before


def test_a_file_switched_after_the_read_is_never_overwritten_nor_approved(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    shown = read_for_review(path, KINDS, catalogue.gazetteer)  # what the approver saw
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')  # then an editor saved B
    switched = path.read_bytes()
    with pytest.raises(Conflict, match="changed while it was being approved"):
        record(shown, sha256=shown.template.content_hash, by="Officer", when=WHEN, gazetteer=catalogue.gazetteer)
    assert path.read_bytes() == switched
    assert not list(path.parent.glob(".*.approving"))  # no temporary file left behind


def test_300_approvals_racing_a_file_switched_between_a_and_b_approve_only_a(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    text_a = path.read_text(encoding="utf-8").split("\n[approval]")[0] + "\n"
    text_b = text_a.replace("will be closed from", "is closed from")
    path.write_text(text_a, encoding="utf-8")
    hash_a = catalogue.get("road_closure").content_hash
    path.write_text(text_b, encoding="utf-8")
    hash_b = catalogue.get("road_closure").content_hash
    assert hash_a != hash_b

    stop = threading.Event()
    seen_approved: list[str] = []  # the approved sha256 of every approved file the editor saw

    def editor() -> None:
        flips = 0
        while not stop.is_set() or flips < 50:
            current = path.read_text(encoding="utf-8")
            if "[approval]" in current:
                template = parse_template(path, KINDS, catalogue.gazetteer, source=current)
                assert template.approval is not None
                seen_approved.append(template.approval.sha256)
                assert template.content_hash == template.approval.sha256  # the approval matches what it sits in
            flips += 1
            temp = path.with_name(f".edit-{flips}.tmp")
            temp.write_text(text_a if flips % 2 else text_b, encoding="utf-8")
            temp.replace(path)  # an editor saving atomically
            time.sleep(0.001)  # paces the editor only; nothing is asserted about time

    def approve_a(_: int) -> str:
        try:
            return approve(path, "Officer", WHEN, reviewed=hash_a, gazetteer=catalogue.gazetteer)
        except Conflict:
            return "conflict"

    thread = threading.Thread(target=editor)
    thread.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(approve_a, range(300)))
    finally:
        stop.set()
        thread.join()
    assert len(results) == 300
    assert {r for r in results if r != "conflict"} <= {hash_a}  # every approval given was of A
    assert set(seen_approved) <= {hash_a}  # and no file ever carried an approval of B
    assert not list(path.parent.glob(".*.approving"))
    # Outside the race: A is approved when the file holds A, and never while it holds B.
    path.write_text(text_b, encoding="utf-8")
    with pytest.raises(Conflict):
        approve(path, "Officer", WHEN, reviewed=hash_a, gazetteer=catalogue.gazetteer)
    path.write_text(text_a, encoding="utf-8")
    assert approve(path, "Officer", WHEN, reviewed=hash_a, gazetteer=catalogue.gazetteer) == hash_a
    assert Catalogue(catalogue.folder, KINDS).get("road_closure").approved


def test_the_approval_names_what_it_covers(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    digest = approve_as_is(path, "Officer", WHEN)
    tail = path.read_text(encoding="utf-8").split("[approval]")[1]
    template = catalogue.get("road_closure")
    assert f'sha256 = "{digest}"' in tail and f'gazetteer_sha256 = "{template.words_hash}"' in tail
    with pytest.raises(TemplateError, match="approver"):
        approve(path, " ", WHEN, reviewed=digest, gazetteer=catalogue.gazetteer)
    assert Path(path).read_text(encoding="utf-8").count("[approval]") == 1


def _cli(tmp_path: Path, catalogue: Catalogue) -> list[str]:
    config = (REPO / "channels.toml").read_text(encoding="utf-8").replace('templates = "templates"',
                                                                          f'templates = "{catalogue.folder}"')
    shutil.copytree(REPO / "recipients", tmp_path / "recipients")
    (tmp_path / "channels.toml").write_text(config, encoding="utf-8")
    approver = token_file(tmp_path, tmp_path / "t.db", "approver")  # approving acts as a user with the role
    return ["--config", str(tmp_path / "channels.toml"), "--db", str(tmp_path / "t.db"), "--token-file", str(approver)]


def test_cli_approve_takes_the_reviewed_sha256_and_refuses_any_other(
    tmp_path: Path, catalogue: Catalogue, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _cli(tmp_path, catalogue)
    path = catalogue.path("road_closure")
    reviewed = catalogue.get("road_closure").content_hash
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')
    before = path.read_bytes()
    assert main([*args, "templates", "approve", "road_closure", "--sha256", reviewed]) == 2
    assert "changed since you reviewed it" in capsys.readouterr().err
    assert path.read_bytes() == before
    current = catalogue.get("road_closure").content_hash
    assert main([*args, "templates", "approve", "road_closure", "--sha256", current]) == 0
    assert f"approved road_closure by approver: sha256 {current}" in capsys.readouterr().out
    assert catalogue.approved("road_closure").approval.by == "approver"  # type: ignore[union-attr]


def test_cli_approve_without_sha256_shows_the_content_and_approves_nothing_off_a_terminal(
    tmp_path: Path, catalogue: Catalogue, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _cli(tmp_path, catalogue)
    path = catalogue.path("road_closure")
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')
    before = path.read_bytes()
    assert main([*args, "templates", "approve", "road_closure"]) == 2
    out, err = capsys.readouterr()
    current = catalogue.get("road_closure").content_hash
    assert f"sha256: {current}" in out and "is closed from" in out and "E11 = شارع الشيخ زايد" in out
    assert f"--sha256 {current}" in err
    assert path.read_bytes() == before


def test_cli_approve_on_a_terminal_approves_what_it_showed_not_what_the_file_became(
    tmp_path: Path, catalogue: Catalogue, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _cli(tmp_path, catalogue)
    path = catalogue.path("road_closure")
    edit(path, EN_SHORT, 'short = "{road} is closed from {starts}')

    def switch_then_confirm(prompt: str) -> str:
        edit(path, "is closed from", "is open despite")  # the editor saves B while the approver reads A
        return "road_closure"

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", switch_then_confirm)
    assert main([*args, "templates", "approve", "road_closure"]) == 2
    assert "changed while it was being approved" in capsys.readouterr().err
    assert not catalogue.get("road_closure").approved
    assert "is open despite" in path.read_text(encoding="utf-8")  # the editor's save is not overwritten
