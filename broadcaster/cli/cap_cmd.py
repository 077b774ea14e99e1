"""``broadcaster cap``: an alert's CAP 1.2 document as it was fired (signed); ``--verify`` and ``--keygen``.

* ``broadcaster cap ALERT_ID`` prints the stored document, signed when a key is configured.
* ``broadcaster cap --verify FILE [--cert PEM]`` checks a document's XML signature against the
  certificate given, else the configured ``cap_signing_cert``: exit 0 and the signer's subject when
  valid, 1 when not (tampered, wrong certificate, unsigned), 2 when it cannot be checked at all.
* ``broadcaster cap --keygen DIR [--key-type ec|rsa]`` writes a self-signed DEMO key and certificate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, console, problem


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cap = commands.add_parser("cap", help="the CAP 1.2 XML document of an alert, as it was fired (signed); "
                                          "--verify a signed document; --keygen a demo signing key")
    cap.add_argument("alert_id", nargs="?")
    cap.add_argument("--validate", action="store_true", help="check the document against the CAP 1.2 schema first")
    cap.add_argument("--verify", metavar="FILE", type=Path,
                     help="check the XML signature of a CAP document (exit 0 valid, 1 invalid)")
    cap.add_argument("--cert", metavar="PEM", type=Path,
                     help="with --verify: the certificate to trust (default: [broadcaster] cap_signing_cert)")
    cap.add_argument("--keygen", metavar="DIR", type=Path,
                     help="write a self-signed DEMO signing key and certificate into DIR (never for production)")
    cap.add_argument("--key-type", choices=("ec", "rsa"), default="ec",
                     help="with --keygen: ECDSA P-256 (default) or RSA-2048")
    cap.set_defaults(handler=cmd_cap)


async def cmd_cap(args: argparse.Namespace) -> int:
    """Print the alert's CAP document to stdout (UTF-8 bytes): the one stored when it was fired.

    An unknown alert id, or an alert from before documents were stored whose
    template changed since, exits 2 (an InputError). With ``--validate``, a
    document that fails the schema is not printed: the errors go to stderr and
    the exit code is 1.
    """
    from broadcaster.errors import InputError

    chosen = [name for name in ("alert_id", "verify", "keygen") if getattr(args, name)]
    if len(chosen) != 1:
        raise InputError("give one of: an ALERT_ID, --verify FILE or --keygen DIR", where="broadcaster cap")
    if args.verify:
        return await _verify(args)
    if args.keygen:
        return await _keygen(args)
    from broadcaster.app.cap_documents import stored_cap
    from broadcaster.app.context import open_app
    from broadcaster.cap import validate
    from broadcaster.clock import in_thread

    async with open_app(args.config, args.db) as app:
        alert = await app.store.alerts.get(args.alert_id)
        document = await stored_cap(app, alert)
    if args.validate:
        try:
            await in_thread(validate, document)
        except ValueError as exc:
            problem(f"error: alert {alert.id}: {exc}", style="bold red")
            return EXIT_FAILED
    sys.stdout.buffer.write(document)
    sys.stdout.flush()
    return EXIT_OK


async def _verify(args: argparse.Namespace) -> int:
    from broadcaster.cap_signing import Verified, verify
    from broadcaster.clock import in_thread
    from broadcaster.errors import InputError
    from broadcaster.text.files import FileProblem, check_readable

    cert_path: Path | None = args.cert
    if cert_path is None:
        from broadcaster.app.context import config_path
        from broadcaster.channels.registry import KINDS
        from broadcaster.config import load_config

        config = await in_thread(load_config, config_path(args.config), KINDS)
        cert_path = config.cap_signing_cert
        if cert_path is None:
            raise InputError("no certificate to check against: pass --cert PEM, or set [broadcaster] "
                             "cap_signing_cert in channels.toml", where="--cert")

    def read(path: Path, what: str) -> bytes:
        try:
            check_readable(path, f"{what} {path}")
            return path.read_bytes()
        except (FileProblem, OSError) as exc:
            raise InputError(str(exc), where=what) from None

    document = await in_thread(read, args.verify, "--verify")
    cert = await in_thread(read, cert_path, "--cert")
    outcome = await in_thread(verify, document, cert)
    if isinstance(outcome, Verified):
        console().print(f"{args.verify}: valid {outcome.algorithm} signature by {outcome.subject} "
                        f"(certificate valid until {outcome.not_after:%Y-%m-%d})", markup=False)
        return EXIT_OK
    problem(f"{args.verify}: NOT valid ({outcome.reason.value}): {outcome.message}", style="bold red")
    return EXIT_FAILED


async def _keygen(args: argparse.Namespace) -> int:
    from broadcaster.cap_signing import make_demo_keys
    from broadcaster.clock import in_thread
    from broadcaster.errors import InputError

    try:
        key, cert = await in_thread(make_demo_keys, args.keygen, key_type=args.key_type)
    except FileExistsError as exc:
        raise InputError(f"{exc}: remove it first, or keep using it", where="--keygen") from None
    except OSError as exc:
        raise InputError(f"{args.keygen}: cannot write there ({exc.strerror or exc})", where="--keygen") from None
    console().print(f"wrote a self-signed DEMO key and certificate (not for production):\n  {key}\n  {cert}\n"
                    "name them in channels.toml:\n  [broadcaster]\n"
                    f'  cap_signing_key = "{key}"\n  cap_signing_cert = "{cert}"', markup=False)
    return EXIT_OK
