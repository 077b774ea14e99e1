"""Signed CAP: an XML-DSig enveloped signature on every CAP document, and its check.

A document is signed with the key and certificate named by ``[broadcaster]
cap_signing_key`` and ``cap_signing_cert`` in ``channels.toml``: RSA-SHA256 for an
RSA key, ECDSA-SHA256 for an EC key (chosen from the key), SHA-256 digests,
exclusive XML canonicalization, one ``<Reference URI="">`` over the whole
``<alert>`` and the signer's certificate in ``<KeyInfo>``. The ``<ds:Signature>``
is the last child of ``<alert>``, where the CAP 1.2 schema allows elements of
other namespaces, so a signed document still validates against the OASIS XSD.

The outbox signs each document once, when the alert is planned, and the signed
bytes are what is committed (``alerts.cap``), anchored, published and pushed: they
never change afterwards. Without configured keys documents stay unsigned
(``channels check`` says so, and a ``cap_push`` channel does not load).

:func:`verify` checks a document against a certificate the caller trusts (pinned:
the certificate inside the document is never trusted by itself) and answers
:class:`Verified` or :class:`Problem`; :func:`signature_status` does it against the
configured certificate. Their names and signatures are stable: the public
verification page calls them.

Keys are read once per process and file state, on a worker thread (:func:`signer_for`
is synchronous; callers run it with :func:`broadcaster.clock.in_thread`). The key
file must not be readable by others (group read is allowed: 0640 root:service-group, as for the
environment file; group write is not). The key never appears in a repr, a
log line or an error.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from broadcaster.config import Config
from broadcaster.errors import ConfigError

DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
DEMO_LABEL: Final = "DEMO \u2014 not for production"
DEMO_KEY_FILE: Final = "cap-signing-key.pem"
DEMO_CERT_FILE: Final = "cap-signing-cert.pem"
_HARDENED: Final = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


class KeyProblem(ConfigError):
    """The signing key or certificate cannot be used (missing, readable by others, not a key, not a pair)."""


@dataclass(frozen=True)
class CapSigner:
    """A loaded signing key and its certificate. Its repr names the certificate, never the key."""

    key: Any = field(repr=False)
    cert_pem: bytes = field(repr=False)
    subject: str
    algorithm: str  # "RSA-SHA256" or "ECDSA-SHA256"
    not_after: dt.datetime

    def __repr__(self) -> str:
        return f"<CapSigner {self.algorithm} subject={self.subject!r}>"


class ProblemReason(StrEnum):
    """Why a document did not verify."""

    UNSIGNED = "unsigned"  # no <ds:Signature> at all
    TAMPERED = "tampered"  # the content no longer matches its digest
    WRONG_CERTIFICATE = "wrong_certificate"  # signed, but not by the key of the certificate given
    MALFORMED = "malformed"  # not safe, well-formed XML, or a signature we do not accept
    NO_CERTIFICATE = "no_certificate"  # signature_status: channels.toml names no certificate to check against


@dataclass(frozen=True, slots=True)
class Verified:
    """A valid signature by the pinned certificate's key."""

    subject: str
    algorithm: str
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the document is not to be trusted; ``message`` says it in words."""

    reason: ProblemReason
    message: str


def configured(config: Config) -> bool:
    """Whether ``channels.toml`` names a signing key and certificate."""
    return config.cap_signing_key is not None and config.cap_signing_cert is not None


def signer_for(config: Config) -> CapSigner | None:
    """The signer ``channels.toml`` names, loaded once per process and file state; None when none is named.

    Synchronous file reads and key parsing: run it on a worker thread. Raises :class:`KeyProblem`.
    """
    if config.cap_signing_key is None or config.cap_signing_cert is None:
        return None
    key_path, cert_path = config.cap_signing_key, config.cap_signing_cert
    return _load(key_path, cert_path, _state(key_path, "cap_signing_key"), _state(cert_path, "cap_signing_cert"))


def load_signer(key_path: Path, cert_path: Path) -> CapSigner:
    """The signer from two PEM files (synchronous). Raises :class:`KeyProblem` naming the file."""
    return _load(key_path, cert_path, _state(key_path, "cap_signing_key"), _state(cert_path, "cap_signing_cert"))


def _state(path: Path, key: str) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyProblem(f"key {key!r}: {path} does not exist (for a demo key and certificate: "
                         f"`broadcaster cap --keygen {path.parent}`)", where=str(path)) from None
    except OSError as exc:
        raise KeyProblem(f"key {key!r}: {path} cannot be read ({exc.strerror or exc})", where=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyProblem(f"key {key!r}: {path} is not a regular file", where=str(path))
    if key == "cap_signing_key" and st.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        raise KeyProblem(f"key {key!r}: the private key {path} can be read or changed by other users: "
                         f"`chmod 600 {path}` (or 640, for the service's group) first, and replace the key if others "
                         "may have copied it", where=str(path))
    return st.st_ino, st.st_mtime_ns, st.st_size


@lru_cache(maxsize=4)
def _load(key_path: Path, cert_path: Path, _key_state: tuple[int, int, int],
          _cert_state: tuple[int, int, int]) -> CapSigner:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        # Never the library's message: it may quote the file.
        raise KeyProblem(f"key 'cap_signing_key': {key_path} is not an unencrypted PEM private key",
                         where=str(key_path)) from None
    try:
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
    except (ValueError, OSError):
        raise KeyProblem(f"key 'cap_signing_cert': {cert_path} is not a PEM X.509 certificate",
                         where=str(cert_path)) from None
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RSA-SHA256"
        if key.key_size < 2048:
            raise KeyProblem(f"key 'cap_signing_key': {key_path} is RSA-{key.key_size}; use 2048 bits or more",
                             where=str(key_path))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = "ECDSA-SHA256"
    else:
        raise KeyProblem(f"key 'cap_signing_key': {key_path} is neither an RSA nor an EC key", where=str(key_path))
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, pub) != cert.public_key().public_bytes(der, pub):
        raise KeyProblem(f"key 'cap_signing_cert': {cert_path} is not the certificate of the key {key_path}",
                         where=str(cert_path))
    return CapSigner(key=key, cert_pem=cert_pem, subject=cert.subject.rfc4514_string(), algorithm=algorithm,
                     not_after=cert.not_valid_after_utc)


def sign(document: bytes, signer: CapSigner) -> bytes:
    """``document`` (a CAP ``<alert>``, UTF-8) with an enveloped XML-DSig signature as the last child of its root.

    CPU work (about a millisecond; ``bench`` scenario 17): call it on a worker thread.
    """
    from lxml import etree
    from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
    from signxml.signer import XMLSigner

    method = SignatureMethod.RSA_SHA256 if signer.algorithm == "RSA-SHA256" else SignatureMethod.ECDSA_SHA256
    root = etree.fromstring(document, etree.XMLParser(**_HARDENED))
    if root.find(f"{{{DSIG_NS}}}Signature") is not None:
        raise ValueError("the document is already signed")
    xml_signer = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=method,
                           digest_algorithm=DigestAlgorithm.SHA256,
                           c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signed = xml_signer.sign(root, key=signer.key, cert=signer.cert_pem.decode("ascii"))
    return XML_DECLARATION + bytes(etree.tostring(signed, encoding="UTF-8")) + b"\n"


def is_signed(document: bytes) -> bool:
    """Whether ``document`` carries a ``<ds:Signature>`` under its root (checked or not)."""
    import defusedxml.ElementTree as SafeET

    try:
        root = SafeET.fromstring(document, forbid_dtd=True)
    except (SafeET.ParseError, ValueError):
        return False
    return root.find(f"{{{DSIG_NS}}}Signature") is not None


def verify(xml_bytes: bytes, cert: bytes | str) -> Verified | Problem:
    """Check ``xml_bytes`` against the PEM certificate ``cert`` the caller trusts.

    Valid only when the document carries exactly one enveloped signature, as the last child of its root,
    whose one reference (``URI=""``) covers the whole document, made with the key of ``cert`` (the
    certificate inside the document is not trusted by itself). Never raises for a bad document.
    """
    import defusedxml.ElementTree as SafeET
    from cryptography import x509
    from lxml import etree
    from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature
    from signxml.verifier import XMLVerifier

    pem = cert.encode("ascii") if isinstance(cert, str) else cert
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return Problem(ProblemReason.MALFORMED, "the certificate given is not a PEM X.509 certificate")
    try:
        SafeET.fromstring(xml_bytes, forbid_dtd=True)  # no DTD, entity or external reference
        root = etree.fromstring(xml_bytes, etree.XMLParser(**_HARDENED))
    except (SafeET.ParseError, etree.XMLSyntaxError, ValueError) as exc:
        return Problem(ProblemReason.MALFORMED, f"not a well-formed, safe XML document ({exc})")
    signatures = root.findall(f".//{{{DSIG_NS}}}Signature")
    if not signatures:
        return Problem(ProblemReason.UNSIGNED, "the document carries no XML signature")
    if len(signatures) > 1 or signatures[0].getparent() is not root or root[-1] is not signatures[0]:
        return Problem(ProblemReason.MALFORMED, "the signature must be one enveloped <Signature>, the last "
                                                "element of the document's root")
    references = signatures[0].findall(f"{{{DSIG_NS}}}SignedInfo/{{{DSIG_NS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        return Problem(ProblemReason.MALFORMED, "the signature must have one reference, URI=\"\" (the whole "
                                                "document)")
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    method = _signature_method(signatures[0]) or ""
    expected_key = {RSA_SHA256: rsa.RSAPublicKey, ECDSA_SHA256: ec.EllipticCurvePublicKey}.get(method)
    if expected_key is None:
        return Problem(ProblemReason.MALFORMED, f"signature method {method!r} is not RSA-SHA256 or ECDSA-SHA256")
    if not isinstance(certificate.public_key(), expected_key):
        return Problem(ProblemReason.WRONG_CERTIFICATE, "the signature was not made with the key of the certificate "
                                                        f"given ({certificate.subject.rfc4514_string()}): its key "
                                                        "is of another type")
    try:
        XMLVerifier().verify(xml_bytes, x509_cert=pem.decode("ascii"), expect_references=1)
    except InvalidDigest:
        return Problem(ProblemReason.TAMPERED, "the document was changed after it was signed (its digest does "
                                               "not match)")
    except InvalidSignature as exc:
        return Problem(ProblemReason.WRONG_CERTIFICATE, "the signature was not made with the key of the "
                                                        f"certificate given ({certificate.subject.rfc4514_string()}): "
                                                        f"{_first_line(exc)}")
    except InvalidInput as exc:
        return Problem(ProblemReason.MALFORMED, f"the signature cannot be checked: {_first_line(exc)}")
    algorithm = "RSA-SHA256" if method == RSA_SHA256 else "ECDSA-SHA256"
    return Verified(subject=certificate.subject.rfc4514_string(), algorithm=algorithm,
                    not_after=certificate.not_valid_after_utc)


def signature_status(document: bytes, config: Config) -> Verified | Problem:
    """A stored document's signature checked against the certificate ``channels.toml`` names (synchronous: it reads
    the certificate file; run it on a worker thread). Unsigned documents (alerts from before signing, or with no
    key configured) are ``Problem(UNSIGNED)``; a signed one without a configured certificate ``NO_CERTIFICATE``."""
    if not is_signed(document):
        return Problem(ProblemReason.UNSIGNED, "the document carries no XML signature")
    if config.cap_signing_cert is None:
        return Problem(ProblemReason.NO_CERTIFICATE, "channels.toml names no cap_signing_cert to check against")
    try:
        cert = config.cap_signing_cert.read_bytes()
    except OSError as exc:
        return Problem(ProblemReason.NO_CERTIFICATE, f"the certificate {config.cap_signing_cert} cannot be read "
                                                     f"({exc.strerror or exc})")
    return verify(document, cert)


def _signature_method(signature: Any) -> str | None:
    method = signature.find(f"{{{DSIG_NS}}}SignedInfo/{{{DSIG_NS}}}SignatureMethod")
    return None if method is None else method.get("Algorithm")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def make_demo_keys(folder: Path, *, key_type: str = "ec", name: str = "Crisis broadcaster CAP signing",
                   days: int = 365) -> tuple[Path, Path]:
    """A self-signed key and certificate in ``folder``, labelled as a demo in the certificate's CN and O.

    Synchronous. The key file is created 0600; an existing file is never overwritten (FileExistsError).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key: Any = rsa.generate_private_key(65537, 2048) if key_type == "rsa" else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {DEMO_LABEL}"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_LABEL),
    ])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / DEMO_KEY_FILE, folder / DEMO_CERT_FILE
    for path in (key_path, cert_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwritten")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
