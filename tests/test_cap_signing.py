"""Signed CAP: every document carries an enveloped XML-DSig signature that survives the OASIS schema and is
checked by two verifiers pinned to the certificate (signxml, and Debian's xmlsec1); a changed byte fails both."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509

from broadcaster.app.context import open_app
from broadcaster.cap import validate
from broadcaster.cap_signing import (
    KeyProblem,
    Problem,
    ProblemReason,
    Verified,
    is_signed,
    load_signer,
    make_demo_keys,
    sign,
    signature_status,
    signer_for,
    verify,
)
from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.engine.outbox import commit, plan_alert
from broadcaster.errors import ConfigError
from broadcaster.states import Mode
from broadcaster.store.records import AlertRecord
from broadcaster.templates.variables import example_inputs
from tests.cap.keys import signed_site, write_pair, xmlsec1

KEY_TYPES = ("rsa", "ec")


def fire(config: Path, template_id: str = "road_closure", mode: Mode = Mode.LIVE) -> AlertRecord:
    async def go() -> AlertRecord:
        async with open_app(str(config), str(config.parent / "t.db")) as app:
            now = time.time()
            inputs = example_inputs(app.catalogue.get(template_id), now, app.config.timezone)
            plan = await plan_alert(app.config, app.catalogue, template_id, inputs, mode=mode, now=now)
            await commit(app.store, plan)
            return plan.alert

    return asyncio.run(go())


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_a_fired_alert_stores_a_signed_document_valid_against_the_xsd_and_both_verifiers(
    tmp_path: Path, key_type: str
) -> None:
    config, cert = signed_site(tmp_path, key_type)
    alert = fire(config)
    assert alert.cap is not None
    document = alert.cap.encode()
    assert is_signed(document)
    validate(document)  # the <ds:Signature> is where CAP 1.2 allows ##other elements
    method = "rsa-sha256" if key_type == "rsa" else "ecdsa-sha256"
    assert f'Algorithm="http://www.w3.org/2001/04/xmldsig-more#{method}"'.encode() in document

    outcome = verify(document, cert.read_bytes())
    assert isinstance(outcome, Verified), outcome
    assert outcome.subject == "CN=Test authority CAP signer"
    assert outcome.algorithm == ("RSA-SHA256" if key_type == "rsa" else "ECDSA-SHA256")

    path = tmp_path / "alert.xml"
    path.write_bytes(document)
    checked = xmlsec1(path, cert)
    assert checked.returncode == 0 and "OK" in checked.stderr, checked.stderr


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_a_tampered_document_fails_both_verifiers(tmp_path: Path, key_type: str) -> None:
    config, cert = signed_site(tmp_path, key_type)
    document = fire(config).cap.encode()  # type: ignore[union-attr]
    assert b"<severity>Moderate</severity>" in document
    tampered = document.replace(b"<severity>Moderate</severity>", b"<severity>Extreme</severity>", 1)

    outcome = verify(tampered, cert.read_bytes())
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.TAMPERED, outcome
    path = tmp_path / "tampered.xml"
    path.write_bytes(tampered)
    checked = xmlsec1(path, cert)
    assert checked.returncode != 0 and "FAIL" in checked.stderr, checked.stderr


def test_a_document_signed_by_another_key_or_not_at_all_is_refused(tmp_path: Path) -> None:
    config, _ = signed_site(tmp_path, "ec")
    document = fire(config).cap.encode()  # type: ignore[union-attr]
    _, other_ec = write_pair(tmp_path / "other", "ec", "Someone else")
    _, other_rsa = write_pair(tmp_path / "other", "rsa", "Someone else")
    for other in (other_ec, other_rsa):
        outcome = verify(document, other.read_bytes())
        assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.WRONG_CERTIFICATE, outcome
        assert "CN=Someone else" in outcome.message

    start = document.index(b"<ds:Signature")
    unsigned = document[:start] + document[document.index(b"</alert>"):]
    outcome = verify(unsigned, other_ec.read_bytes())
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.UNSIGNED
    assert not is_signed(unsigned)
    outcome = verify(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", other_ec.read_bytes())
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.MALFORMED


def test_a_signature_over_part_of_the_document_is_refused(tmp_path: Path) -> None:
    """A second, unsigned <info> smuggled in front of the signature must not ride on it."""
    config, cert = signed_site(tmp_path, "ec")
    document = fire(config).cap.encode()  # type: ignore[union-attr]
    moved = document.replace(b"</alert>", b"<note>extra</note></alert>")
    outcome = verify(moved, cert.read_bytes())
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.MALFORMED


def test_without_keys_documents_stay_unsigned(tmp_path: Path) -> None:
    config, _ = signed_site(tmp_path, "ec")
    text = config.read_text(encoding="utf-8")
    text = text.split('[[channel]]\nid = "cap-national"')[0]  # a cap_push channel would not load without keys
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("cap_signing")),
                      encoding="utf-8")
    document = fire(config).cap.encode()  # type: ignore[union-attr]
    assert not is_signed(document)
    validate(document)


def test_a_key_others_can_read_is_refused_naming_the_file(tmp_path: Path) -> None:
    key, cert = write_pair(tmp_path, "ec")
    key.chmod(0o640)  # the service's group may read it (0640 root:broadcaster, like the environment file)
    assert load_signer(key, cert).algorithm == "ECDSA-SHA256"
    key.chmod(0o644)
    with pytest.raises(KeyProblem) as caught:
        load_signer(key, cert)
    assert str(key) in str(caught.value) and "chmod 600" in str(caught.value)

    config, _ = signed_site(tmp_path / "site", "rsa")
    (tmp_path / "site" / "keys" / "rsa-key.pem").chmod(0o620)  # group-writable
    with pytest.raises(KeyProblem, match=r"rsa-key\.pem can be read or changed by other users"):
        fire(config)  # the plan refuses before anything is committed


def test_a_certificate_of_another_key_and_a_missing_key_are_refused(tmp_path: Path) -> None:
    key, _ = write_pair(tmp_path / "a", "ec")
    _, cert = write_pair(tmp_path / "b", "ec")
    with pytest.raises(KeyProblem, match="is not the certificate of the key"):
        load_signer(key, cert)
    with pytest.raises(KeyProblem, match=r"does not exist .*--keygen"):
        load_signer(tmp_path / "nope.pem", cert)


def test_the_key_never_shows_in_a_repr(tmp_path: Path) -> None:
    key, cert = write_pair(tmp_path, "rsa")
    signer = load_signer(key, cert)
    shown = repr(signer) + str(signer)
    assert "Test authority CAP signer" in shown and "RSA-SHA256" in shown
    number = str(signer.key.private_numbers().d)
    assert number[:20] not in shown and "PRIVATE" not in shown


def test_the_signing_keys_go_together_in_the_config(tmp_path: Path) -> None:
    config, _ = signed_site(tmp_path, "ec")
    text = config.read_text(encoding="utf-8")
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("cap_signing_cert")),
                      encoding="utf-8")
    with pytest.raises(ConfigError, match="go together"):
        load_config(config, KINDS)


def test_signing_an_already_signed_document_is_refused(tmp_path: Path) -> None:
    key, cert = write_pair(tmp_path, "ec")
    signer = load_signer(key, cert)
    once = sign(b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>a</identifier></alert>', signer)
    with pytest.raises(ValueError, match="already signed"):
        sign(once, signer)


def test_the_cli_prints_the_signed_document_and_verifies_files(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    config, cert = signed_site(tmp_path, "rsa")
    alert = fire(config)
    base = ["--config", str(config), "--db", str(tmp_path / "t.db")]
    assert main([*base, "cap", alert.id, "--validate"]) == 0
    printed = capsysbinary.readouterr().out
    assert printed == alert.cap.encode() and is_signed(printed)  # type: ignore[union-attr]

    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_bytes(printed)
    bad.write_bytes(printed.replace(b"<msgType>Alert</msgType>", b"<msgType>Update</msgType>"))
    assert main([*base, "cap", "--verify", str(good)]) == 0  # against the configured certificate
    out = capsysbinary.readouterr().out.decode()
    assert "valid RSA-SHA256 signature by CN=Test authority CAP signer" in out
    assert main([*base, "cap", "--verify", str(bad), "--cert", str(cert)]) == 1
    assert "NOT valid (tampered)" in capsysbinary.readouterr().err.decode()
    _, other = write_pair(tmp_path / "other", "rsa", "Someone else")
    assert main([*base, "cap", "--verify", str(good), "--cert", str(other)]) == 1
    assert "NOT valid (wrong_certificate)" in capsysbinary.readouterr().err.decode()
    assert main([*base, "cap", "--verify", str(tmp_path / "missing.xml")]) == 2
    assert main([*base, "cap"]) == 2


def test_keygen_writes_a_demo_key_only_its_owner_reads_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    assert main(["cap", "--keygen", str(folder), "--key-type", "rsa"]) == 0
    assert "DEMO key and certificate (not for production)" in capsys.readouterr().out
    key, cert = folder / "cap-signing-key.pem", folder / "cap-signing-cert.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject.rfc4514_string()
    assert "DEMO \u2014 not for production" in subject
    signer = load_signer(key, cert)
    assert signer.algorithm == "RSA-SHA256"
    before = key.read_bytes()
    assert main(["cap", "--keygen", str(folder)]) == 2
    assert key.read_bytes() == before
    with pytest.raises(FileExistsError):
        make_demo_keys(folder)


def test_signature_status_checks_a_stored_document_against_the_configured_certificate(tmp_path: Path) -> None:
    config_path, _ = signed_site(tmp_path, "ec")
    document = fire(config_path).cap.encode()  # type: ignore[union-attr]
    config = load_config(config_path, KINDS)
    assert isinstance(signature_status(document, config), Verified)
    tampered = document.replace(b"<msgType>Alert</msgType>", b"<msgType>Update</msgType>")
    outcome = signature_status(tampered, config)
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.TAMPERED
    start = document.index(b"<ds:Signature")
    unsigned = document[:start] + document[document.index(b"</alert>"):]
    outcome = signature_status(unsigned, config)
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.UNSIGNED
    bare = dataclasses.replace(config, cap_signing_key=None, cap_signing_cert=None)
    outcome = signature_status(document, bare)
    assert isinstance(outcome, Problem) and outcome.reason == ProblemReason.NO_CERTIFICATE


def test_channels_check_says_whether_documents_are_signed_and_refuses_a_key_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = signed_site(tmp_path, "rsa")
    base = ["--config", str(config), "--db", str(tmp_path / "t.db")]
    assert main([*base, "channels", "check", "--dry-run"]) == 0
    assert "CAP documents are signed (RSA-SHA256) by CN=Test authority CAP signer" in capsys.readouterr().out
    (tmp_path / "keys" / "rsa-key.pem").chmod(0o604)
    assert main([*base, "channels", "check", "--dry-run"]) == 2
    assert "rsa-key.pem can be read or changed by other users" in capsys.readouterr().err

    text = config.read_text(encoding="utf-8").split('[[channel]]\nid = "cap-national"')[0]
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("cap_signing")),
                      encoding="utf-8")
    assert main([*base, "channels", "check", "--dry-run"]) == 0
    assert "CAP documents are NOT signed" in capsys.readouterr().err


def test_the_key_is_read_once_per_process_until_its_file_changes(tmp_path: Path) -> None:
    config_path, _ = signed_site(tmp_path, "ec")
    config = load_config(config_path, KINDS)
    first = signer_for(config)
    assert first is not None and signer_for(config) is first
    key, cert = write_pair(tmp_path / "new", "ec", "Rotated signer")
    os.replace(key, config.cap_signing_key)  # type: ignore[arg-type]
    os.replace(cert, config.cap_signing_cert)  # type: ignore[arg-type]
    rotated = signer_for(config)
    assert rotated is not None and rotated is not first and rotated.subject == "CN=Rotated signer"
