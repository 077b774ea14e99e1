"""Signing keys and certificates made in the test (cryptography): RSA-2048 and ECDSA P-256, and a site using them."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]


def make_key(key_type: str) -> Any:
    return rsa.generate_private_key(65537, 2048) if key_type == "rsa" else ec.generate_private_key(ec.SECP256R1())


def write_pair(folder: Path, key_type: str, name: str = "Test authority CAP signer") -> tuple[Path, Path]:
    """A self-signed certificate and its key (0600) in ``folder``: ``(key.pem, cert.pem)``."""
    key = make_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / f"{key_type}-key.pem", folder / f"{key_type}-cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def signed_site(tmp_path: Path, key_type: str) -> tuple[Path, Path]:
    """The sample channels.toml, templates and lists copied, signing with a new key: ``(config, cert.pem)``."""
    for folder in ("templates", "recipients"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    key, cert = write_pair(tmp_path / "keys", key_type)
    text = (REPO / "channels.toml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith(("cap_signing_key", "cap_signing_cert"))]
    text = "\n".join(lines).replace(
        "[broadcaster]\n", f'[broadcaster]\ncap_signing_key = "{key.relative_to(tmp_path)}"\n'
                           f'cap_signing_cert = "{cert.relative_to(tmp_path)}"\n', 1)
    config = tmp_path / "channels.toml"
    config.write_text(text, encoding="utf-8")
    return config, cert


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def xmlsec1(document: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    """Debian's xmlsec1 verifying ``document`` against ``cert`` alone; skip without it (fail under CI=true)."""
    tool = shutil.which("xmlsec1")
    if tool is None:
        reason = "xmlsec1 is not installed (apt-get install xmlsec1): the independent verifier cannot run"
        if in_ci():
            pytest.fail(f"CI=true but {reason}")
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return subprocess.run([tool, "--verify", "--trusted-pem", str(cert), str(document)],
                          capture_output=True, text=True, timeout=60, check=False)
