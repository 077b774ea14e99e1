"""One live fire to N SMS recipients, in a fresh process: throughput, durability check and peak RSS.

    python -m bench.sms --count 100000 --rate 5000 --sms-url http://127.0.0.1:PORT [--profile FILE] [--db URL]

The fake Twilio runs in another process (``bench.provider_proc``), so the
peak RSS printed here is the engine's alone: config, SDKs, SQLite, the
streamed recipient CSV, the dispatcher's bounded batches. Peak RSS (``VmHWM``
and ``ru_maxrss``) is read *before* the verification queries, which only
aggregate in SQL anyway.

The last stdout line is ``BENCH-RESULT {json}``.
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.harness import fire, set_secrets, sms_channel, write_channels, write_recipients
from broadcaster.anchors import seal
from broadcaster.store import Store, is_postgres_url
from tests.support import read


def vm_hwm_kib() -> int | None:
    """This process's own peak RSS (Linux ``VmHWM``), or None where /proc is missing.

    ``ru_maxrss`` is not enough on its own: Linux carries the *parent's* high-water
    mark into a child across fork/vfork + exec, so a child of a 120 MiB benchmark
    process reports at least 120 MiB whatever it does. ``VmHWM`` belongs to the
    address space that exec created.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


_STATES = "SELECT state, COUNT(*) FROM deliveries WHERE alert_id = ? GROUP BY state"
_NOT_ONE = "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND attempts != 1"
_OUTCOMES = ("SELECT a.outcome, COUNT(*), COUNT(DISTINCT a.delivery_id),"
             " SUM(CASE WHEN a.provider_id IS NULL THEN 1 ELSE 0 END),"
             " SUM(CASE WHEN a.finished_at IS NULL THEN 1 ELSE 0 END)"
             " FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.alert_id = ? GROUP BY a.outcome")


def verify(db: Path | str, alert_id: str) -> dict[str, Any]:
    """Aggregate checks from a fresh connection to the database (what is durable): a SQLite file or a URL."""
    if isinstance(db, str) and is_postgres_url(db):
        async def query(store: Store) -> tuple[Any, Any, Any]:
            def tuples(result: Any) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in result.rows]

            return (tuples(await store.db.execute(_STATES, (alert_id,))),
                    tuples(await store.db.execute(_NOT_ONE, (alert_id,))),
                    tuples(await store.db.execute(_OUTCOMES, (alert_id,))))

        found, one, rows = read(db, query)
        states, not_one, mode = dict(found), one[0][0], "postgresql"
    else:
        con = sqlite3.connect(db)
        try:
            states = dict(con.execute(_STATES, (alert_id,)).fetchall())
            not_one = con.execute(_NOT_ONE, (alert_id,)).fetchone()[0]
            rows = con.execute(_OUTCOMES, (alert_id,)).fetchall()
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            con.close()
    outcomes = {str(o): {"rows": int(n), "deliveries": int(d), "no_provider_id": int(p), "unfinished": int(u)}
                for o, n, d, p, u in rows}
    return {"states": {str(k): int(v) for k, v in states.items()}, "deliveries_not_one_attempt": int(not_one),
            "attempt_outcomes": outcomes, "journal_mode": mode}


def run(count: int, rate: float, sms_url: str, profile: str | None, mode: str = "live",
        database: str | None = None) -> dict[str, Any]:
    set_secrets()
    with tempfile.TemporaryDirectory(prefix="bench-sms-") as tmp:
        directory = Path(tmp)
        t0 = time.monotonic()
        write_recipients(directory / "residents.csv", count)
        csv_s = time.monotonic() - t0
        config = write_channels(directory, [sms_channel("sms-residents", sms_url, "residents.csv", rate)])
        db: Path | str = database or directory / "var" / "bench.db"
        profiler = cProfile.Profile() if profile else None
        fired = fire(config, db, mode=mode, profiler=profiler)
        if profiler is not None and profile:
            profiler.dump_stats(profile)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        hwm_kib = vm_hwm_kib()
        checks = verify(db, fired.alert_id)
        seal_s, sealed = seal_once(db, fired.alert_id)
        db_bytes = sum(p.stat().st_size for p in db.parent.iterdir()) if isinstance(db, Path) else None
    return {
        "count": count, "rate": rate, "mode": mode, "csv_s": csv_s, "plan_s": fired.plan_s, "commit_s": fired.commit_s,
        "send_s": fired.send_s, "commit": fired.commit, "end": fired.end, "last_outcome": fired.last_outcome,
        "created": fired.created, "skipped": fired.skipped,
        "progress_states": {str(k): v for k, v in fired.states.items()},
        "peak_rss_kib": peak_kib, "vm_hwm_kib": hwm_kib, "verify": checks, "db_bytes": db_bytes,
        "seal_s": seal_s, "sealed_deliveries": sealed,
    }


def seal_once(db: Path | str, alert_id: str) -> tuple[float, int]:
    """Anchor the finished alert's final states in the audit log, as the app does once its run ends (after the
    RSS reading: it is not part of the send phase). Returns (seconds, deliveries sealed)."""
    async def sealing(store: Store) -> tuple[float, int]:
        start = time.monotonic()
        row = await seal(store, alert_id)
        return time.monotonic() - start, orjson.loads(row.detail)["deliveries"] if row is not None else 0

    return read(str(db), sealing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sms", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--sms-url", required=True, help="base URL of the fake Twilio")
    parser.add_argument("--profile", help="write cProfile stats (outbox commit -> deliver() returned) to this file")
    parser.add_argument("--mode", choices=("live", "dry-run"), default="live",
                        help="dry-run: the real Twilio adapter on a recording transport, virtual time, "
                        "no network (--sms-url unused)")
    parser.add_argument("--db", help="database URL (postgresql://...) instead of a fresh SQLite file; must be "
                        "migrated and hold no other alert")
    args = parser.parse_args(argv)
    result = run(args.count, args.rate, args.sms_url, args.profile, args.mode, args.db)
    sys.stdout.write("BENCH-RESULT " + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
