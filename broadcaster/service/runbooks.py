"""Runbook handlers: list, rehearse, run, status, stop (the ``broadcaster runbook`` commands over HTTP).

A runbook is named by its id, the stem of a file in the config's runbooks folder
(never a path). A rehearsal plays the whole runbook on a virtual clock, in
dry-run, on a worker thread with its own store connection (as dry-run fires do,
see :mod:`broadcaster.service.runs`): the loop keeps serving meanwhile and
nothing leaves the machine. A run is checked the way ``runbook run`` checks it
(:func:`broadcaster.app.rehearse.preflight`), then handed to the scheduler host
that ``broadcaster serve`` runs; its steps fire from there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Final

from aiohttp import web

from broadcaster.app.rehearse import preflight, rehearsal_json, rehearse
from broadcaster.app.runbook import run_json, stop_run
from broadcaster.app.users import User, require
from broadcaster.errors import Forbidden, InputError
from broadcaster.runbooks.ids import is_run_id, new_run_id
from broadcaster.runbooks.inputs import Inputs, resolve_inputs
from broadcaster.runbooks.model import Runbook, load_runbook
from broadcaster.runbooks.refs import RunbookError
from broadcaster.service.bodies import bad, known_fields, parse_confirm, parse_variables
from broadcaster.service.http import ApiError, current_user, input_error, json_response, read_json
from broadcaster.service.state import SERVICE, Service
from broadcaster.states import Mode, RunKind, RunState
from broadcaster.store.records import RunRecord

log = logging.getLogger("broadcaster.service.runbooks")

REHEARSE_FIELDS: Final = frozenset({"inputs"})
RUN_FIELDS: Final = frozenset({"inputs", "use_examples", "mode", "confirm"})
RUN_MODES: Final = ("exercise", "live")
RECENT_RUNS: Final = 20
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_INPUT_WHERE: Final = re.compile(r"input(?: '|:)([a-z][a-z0-9_]*)")


def runbook_summary(runbook: Runbook) -> dict[str, Any]:
    return {"id": runbook.id, "name": dict(runbook.name), "description": runbook.description.strip(),
            "inputs": [{"name": i.name, "example": dict(i.example), "description": i.description, "type": i.type}
                       for i in runbook.inputs],
            "steps": len(runbook.steps)}


async def runbooks(request: web.Request) -> web.Response:
    """Every runbook of the runbooks folder; one that does not load is listed with its error."""
    folder = request.app[SERVICE].config.runbooks_dir
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            found.append(runbook_summary(load_runbook(path)))
        except InputError as exc:
            found.append({"id": path.stem, "error": str(exc)})
    return json_response(found)


async def rehearse_runbook(request: web.Request) -> web.Response:
    """Play the runbook in dry-run on a virtual clock; answer ``runbook rehearse --json``."""
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request, optional=True)
    known_fields(body, REHEARSE_FIELDS)
    given = _parse_inputs(body.get("inputs"))
    runbook = _runbook(service, request.match_info["runbook_id"])
    await _require(service, user, "operator", "rehearsing a runbook", action="runbook_rehearse",
                   runbook=runbook.id)
    start = service.clock.now()
    inputs = _resolve(service, runbook, given, start, use_examples=True)
    app = service.app
    try:
        # On a worker thread, on a loop and a store connection of its own. No process-wide network guard:
        # it would block the live sends of the server's loop too; a rehearsal uses recording transports only.
        rehearsal = await asyncio.to_thread(rehearse, app.config, app.catalogue, app.database, runbook, inputs,
                                            start=start, guard_network=False)
    except InputError as exc:
        raise _inputs_error(exc) from None
    result = rehearsal_json(app.config, rehearsal)
    await service.record(user.name, "runbook_rehearse", runbook=runbook.id, run_id=result["run_id"],
                         steps=len(result["steps"]), warnings=len(result["warnings"]))
    return json_response(result)


async def run_runbook(request: web.Request) -> web.Response:
    """Check the runbook as ``runbook run`` does, then start it on the server's scheduler host."""
    service, user = request.app[SERVICE], current_user(request)
    body = await read_json(request)
    known_fields(body, RUN_FIELDS)
    mode = body.get("mode")
    if mode not in RUN_MODES:
        raise bad("mode", f"must be one of {', '.join(RUN_MODES)} (rehearse for a dry-run)")
    use_examples = body.get("use_examples", False)
    if not isinstance(use_examples, bool):
        raise bad("use_examples", "must be true or false")
    confirm = parse_confirm(body)
    given = _parse_inputs(body.get("inputs"))
    runbook = _runbook(service, request.match_info["runbook_id"])
    await _require(service, user, "officer" if mode == "live" else "operator", f"a {mode} runbook run",
                   action="runbook_run", runbook=runbook.id, mode=mode)
    start = time.time()
    inputs = _resolve(service, runbook, given, start, use_examples=use_examples)
    if mode == "live" and (confirm or "").strip() != runbook.id:
        raise bad("confirm", f"a live run needs \"confirm\": \"{runbook.id}\" (the runbook id, typed)")
    host = service.scheduler
    if host is None:
        raise ApiError(503, "unavailable", "no runbook scheduler runs in this process: start the service with "
                                           "`broadcaster serve`, or run it with `broadcaster runbook run`")
    app = service.app
    try:
        await asyncio.to_thread(preflight, app.config, app.catalogue, runbook, inputs, Mode(mode), start,
                                guard_network=False)
    except RunbookError as exc:
        raise _inputs_error(exc) from None
    run = RunRecord(id=new_run_id(RunKind.RUNBOOK, start), kind=RunKind.RUNBOOK, runbook=runbook.id,
                    source=runbook.source, spec=dict(runbook.raw), config=str(service.config.path), mode=Mode(mode),
                    inputs=inputs, state=RunState.RUNNING, started_at=start, started_by=user.name)
    await host.start_run(run)
    await service.record(user.name, "runbook_run", runbook=runbook.id, run_id=run.id, mode=mode, inputs=inputs)
    return json_response({"run_id": run.id, "runbook": runbook.id, "mode": mode, "state": "running"}, 202)


async def runs(request: web.Request) -> web.Response:
    """Runs in progress, then the most recent ended ones (rehearsals and scheduled fires left out)."""
    service = request.app[SERVICE]
    store = service.app.store.runs
    running = [r for r in await store.recent((RunState.RUNNING,)) if r.kind == RunKind.RUNBOOK]
    ended = [r for r in await store.recent((RunState.FINISHED, RunState.STOPPED), limit=RECENT_RUNS * 3)
             if r.kind == RunKind.RUNBOOK]
    return json_response({"runs": [await run_json(service.app, r) for r in running + ended[:RECENT_RUNS]]})


async def run(request: web.Request) -> web.Response:
    """One run (or rehearsal), as ``runbook status RUN_ID --json`` shows it."""
    service = request.app[SERVICE]
    return json_response(await run_json(service.app, await _find_run(service, request.match_info["run_id"])))


async def stop(request: web.Request) -> web.Response:
    """Stop a run: its remaining steps are skipped and its jobs removed. Live runs need an officer."""
    service, user = request.app[SERVICE], current_user(request)
    found = await _find_run(service, request.match_info["run_id"])
    await _require(service, user, "officer" if found.mode == Mode.LIVE else "operator",
                   f"stopping a {found.mode} run", action="runbook_stop", run_id=found.id, mode=str(found.mode))
    if found.state != RunState.RUNNING:
        raise ApiError(409, "conflict", f"run {found.id} is already {found.state}")
    removed = len([r for r in await service.app.store.runs.steps(found.id) if r.state == "scheduled"])
    try:
        stopped = await stop_run(service.app, found.id, f"stopped by {user.name} (API)")
    except RunbookError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    await service.record(user.name, "runbook_stop", run_id=found.id, runbook=found.runbook, mode=str(found.mode),
                         jobs_removed=removed)
    return json_response({**await run_json(service.app, stopped), "jobs_removed": removed})


# --- helpers --------------------------------------------------------------------------------


async def _require(service: Service, user: User, role: str, what: str, **detail: Any) -> None:
    """The role check; a refusal is audited as ``forbidden``, as for fires."""
    try:
        require(user, role, what)
    except Forbidden:
        await service.record(user.name, "forbidden", role=user.role, **detail)
        raise


def _runbook(service: Service, runbook_id: str) -> Runbook:
    """A runbook of the runbooks folder by id: never a path."""
    path = service.config.runbooks_dir / f"{runbook_id}.toml"
    if not _ID.match(runbook_id) or not path.is_file():
        raise ApiError(404, "not_found", f"no runbook {runbook_id!r} in the runbooks folder")
    try:
        return load_runbook(path)
    except InputError as exc:
        raise ApiError(409, "broken", f"runbook {runbook_id!r} does not load: {exc}") from None


async def _find_run(service: Service, run_id: str) -> RunRecord:
    found = await service.app.store.runs.find(run_id) if is_run_id(run_id) else None
    if found is None:
        raise ApiError(404, "not_found", f"no runbook run with id {run_id!r}")
    return found


def _parse_inputs(value: Any) -> Inputs:
    """``{"area": "DXB-HATTA", "detour": {"ar": "...", "en": "..."}}``, as fire variables."""
    try:
        return parse_variables(value)
    except ApiError as exc:
        field = "inputs" + (exc.field or "")[len("variables"):]
        message = "inputs" + exc.message[len("variables"):] if exc.message.startswith("variables") else exc.message
        raise ApiError(400, "invalid", message, field=field) from None


def _resolve(service: Service, runbook: Runbook, given: Inputs, start: float, *, use_examples: bool) -> Inputs:
    declared = [i.name for i in runbook.inputs]
    for name in given:
        if name not in declared:
            raise bad(f"inputs.{name}", f"runbook {runbook.id} has no such input (it has: "
                                        f"{', '.join(declared) or 'none'})")
    try:
        return resolve_inputs(runbook, given, start=start, tz=service.config.timezone, use_examples=use_examples)
    except InputError as exc:
        raise _inputs_error(exc) from None


def _inputs_error(exc: InputError) -> ApiError:
    """A 400 naming the input at fault when the error says which (else the runbook as given)."""
    match = _INPUT_WHERE.search(exc.where or "") or _INPUT_WHERE.search(str(exc))
    return input_error(exc, field=f"inputs.{match.group(1)}" if match else "inputs")
