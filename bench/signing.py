"""Scenario 18: signing one CAP document (XML-DSig, enveloped), RSA-2048 and ECDSA P-256.

The document is the road-closure example's real CAP 1.2 document, built the way the
outbox builds it (both languages, areas with their geometry). Each key type signs it
``rounds`` times with :func:`broadcaster.cap_signing.sign` (parse, canonicalize,
digest, sign, serialize), timed with ``time.perf_counter`` around each call, after
one warm-up call (signxml and cryptography imports). The bound is 5 ms per document.
Verification (signxml, pinned to the certificate) is timed the same way, for information.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import REPO
from bench.report import add, heading
from broadcaster.app.context import load
from broadcaster.cap import cap_document
from broadcaster.cap_signing import (
    DEMO_CERT_FILE,
    DEMO_KEY_FILE,
    Verified,
    load_signer,
    make_demo_keys,
    sign,
    verify,
)
from broadcaster.engine.outbox import plan_alert
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs

BOUND_MS = 5.0


def ensure_sample_signing_key() -> None:
    """The demo key and certificate the sample channels.toml names (var/cap-signing), made when missing."""
    folder = REPO / "var" / "cap-signing"
    if not (folder / DEMO_KEY_FILE).exists() or not (folder / DEMO_CERT_FILE).exists():
        for stale in (folder / DEMO_KEY_FILE, folder / DEMO_CERT_FILE):
            stale.unlink(missing_ok=True)
        make_demo_keys(folder)


async def _document() -> bytes:
    config, catalogue, _ = load(str(REPO / "channels.toml"))
    template = catalogue.get("road_closure")
    now = time.time()
    plan = await plan_alert(config, catalogue, template.id, example_inputs(template, now, config.timezone),
                            mode=Mode.LIVE, now=now, require_approval=False)
    return cap_document(plan.alert, template, catalogue.gazetteer, config)  # unsigned, as the outbox builds it


def scenario_signing(rounds: int) -> None:
    heading("18", "CAP signing: one document, XML-DSig enveloped, per key type",
            f"the road-closure example's CAP document signed {rounds} times per key type after one warm-up; "
            "wall time of sign() each")
    document = asyncio.run(_document())
    with tempfile.TemporaryDirectory(prefix="bench-sign-") as tmp:
        for key_type, label in (("rsa", "RSA-2048"), ("ec", "ECDSA P-256")):
            key, cert = make_demo_keys(Path(tmp) / key_type, key_type=key_type)
            signer = load_signer(key, cert)
            signed = sign(document, signer)  # warm-up
            times, checks = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                signed = sign(document, signer)
                times.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                outcome = verify(signed, cert.read_bytes())
                checks.append((time.perf_counter() - started) * 1000)
                assert isinstance(outcome, Verified), outcome
            median, worst = statistics.median(times), max(times)
            add("18", f"sign, {label}: median / max", f"{median:.2f} / {worst:.2f} ms", f"≤ {BOUND_MS:g} ms",
                worst <= BOUND_MS)
            add("18", f"verify, {label}: median / max", f"{statistics.median(checks):.2f} / {max(checks):.2f} ms",
                "info", None)
        add("18", "document size (unsigned / signed, ECDSA)", f"{len(document)} / {len(signed)} B", "info", None)
