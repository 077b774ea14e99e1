"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``.

``docs/api.md`` is the prose form of the same contract; a test checks that every
route the application registers is described here.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from broadcaster.app.users import ROLES
from broadcaster.errors import Refusal
from broadcaster.service.query import ALERTS_LIMIT, MODES_PARAM, PAGE_LIMIT, PAGE_OFFSET
from broadcaster.states import Mode

_STR: Final = {"type": "string"}
_NO_PUBLIC_URL: Final = "not published: [broadcaster] public_url is not set (links never follow the Host header)"
_BOOL: Final = {"type": "boolean"}
_INT: Final = {"type": "integer"}
_NULL_STR: Final = {"type": ["string", "null"]}
_COUNTS: Final = {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": _INT},
                  "description": "{channel: {state: n}}; a receipted SMS counts as delivered or undelivered"}
_MODE: Final = {"type": "string", "enum": [str(m) for m in Mode]}
_BILINGUAL: Final = {"type": "object", "properties": {"ar": _STR, "en": _STR}}
_VARIABLES: Final = {
    "type": "object",
    "description": "name: value; a plain string (or number) is both languages, an object gives each",
    "additionalProperties": {"oneOf": [_STR, {"type": "number"}, _BILINGUAL]},
}
_CHANNELS: Final = {"oneOf": [_STR, {"type": "array", "items": _STR}],
                    "description": "all | id,id | kind:KIND | area:CODE, or a list of channel ids"}


def _obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "invalid input; nothing was sent", 401: "no, bad, expired or revoked token", 403: "the role may not",
            404: "not found", 409: "state conflict", 429: "firing too fast", 503: "service misconfigured"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": _ref("Error")}}}
            for c in codes}


def _op(summary: str, responses: dict[str, Any], *, body: Any = None, public: bool = False,
        roles: str = "any role") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if public:
        op["security"] = []
    else:
        op["description"] = f"Roles: {roles}."
        op["responses"] = {**responses, **_errors(401)}
    return op


_ID_PARAM: Final = [{"name": "alert_id", "in": "path", "required": True, "schema": _STR}]
_LANG_PARAM: Final = {"name": "lang", "in": "path", "required": True,
                      "schema": {"type": "string", "enum": ["ar", "en"]}}
_BINARY: Final = {"type": "string", "format": "binary"}
_TEMPLATE_PARAM: Final = [{"name": "template_id", "in": "path", "required": True, "schema": _STR}]
_PAGE: Final = [PAGE_LIMIT.schema(), PAGE_OFFSET.schema()]
_ACCEPTED: Final = _json(_ref("Accepted"), "accepted")
_RUNBOOK_PARAM: Final = [{"name": "runbook_id", "in": "path", "required": True, "schema": _STR,
                          "description": "the file stem of a runbook in the runbooks folder"}]
_RUN_PARAM: Final = [{"name": "run_id", "in": "path", "required": True, "schema": _STR}]
_INPUTS: Final = {**_VARIABLES, "description": "input name: value (a plain string is both languages); "
                                              "inputs not given take the runbook's examples when rehearsing"}
_FIRE_ROLES: Final = "operator (dry-run, exercise; live only where the template sets operator_live), officer, approver"


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once)."""
    fire_body = _obj(["template", "mode"], template=_STR, variables=_VARIABLES, use_examples=_BOOL,
                     channels=_CHANNELS, areas={"type": "array", "items": _STR}, mode=_MODE,
                     confirm={**_STR, "description": "the template id, typed: required when mode is live"})
    paths: dict[str, Any] = {
        "/api/openapi.json": {"get": _op("This document", _json({"type": "object"}), public=True)},
        "/api/me": {"get": _op("Who the token belongs to", _json(_obj(name=_STR, role=_ref("Role"))))},
        "/api/templates": {"get": _op("The catalogue", _json({"type": "array", "items": _ref("TemplateSummary")}))},
        "/api/templates/{template_id}": {"parameters": _TEMPLATE_PARAM, "get": _op(
            "One template, as `templates show --json`", {**_json({"type": "object"}), **_errors(404)})},
        "/api/templates/{template_id}/approve": {"parameters": _TEMPLATE_PARAM, "post": _op(
            "Approve exactly the content the approver reviewed: read once, compared with `sha256`, written "
            "atomically; 409 when the file holds anything else, 400 when it fails a check",
            {**_json(_obj(id=_STR, approved=_BOOL, by=_STR, at=_STR, sha256=_STR)), **_errors(400, 403, 404, 409)},
            body=_obj(["sha256"], sha256={**_STR, "description": "the sha256 the approver reviewed (GET "
                                          "/api/templates/{id}): the file and the gazetteer names it renders"}),
            roles="approver")},
        "/api/gazetteer": {"get": _op("Places officers pick from", _json({"type": "array", "items": _obj(
            code=_STR, type=_STR, ar=_STR, en=_STR, areas={"type": "array", "items": _STR})}))},
        "/api/channels": {"get": _op("Configured channels (no secrets)", _json({"type": "array", "items": _obj(
            id=_STR, kind=_STR, languages={"type": "array", "items": _STR}, areas={"type": "array", "items": _STR},
            exercise=_BOOL, rate_per_second={"type": "number"})}))},
        "/api/preview": {"post": _op("Render without storing or sending", {**_json(_obj(
            template=_STR, approved=_BOOL, two_person=_BOOL, messages={"type": "array", "items": _ref("Message")},
            sms=_ref("SmsTotal"))),
            **_errors(400)}, body=fire_body)},
        "/api/alerts": {
            "get": {**_op("Recent alerts, newest first", _json({"type": "array", "items": _ref("Alert")})),
                    "parameters": [ALERTS_LIMIT.schema(), MODES_PARAM]},
            "post": _op("Fire an alert", {"202": _ACCEPTED, **_errors(400, 403, 429, 503)}, body=fire_body,
                        roles=_FIRE_ROLES),
        },
        "/api/alerts/{alert_id}": {"parameters": _ID_PARAM, "get": {**_op(
            "One alert with its deliveries", {**_json({"allOf": [_ref("Alert"), _obj(
                deliveries={"type": "array", "items": _ref("Delivery")}, deliveries_total=_INT)]}),
                **_errors(404)}), "parameters": _PAGE}},
        "/api/alerts/{alert_id}/confirm": {"parameters": _ID_PARAM, "post": _op(
            "Second officer's confirmation of a two-person fire", {"202": _ACCEPTED, **_errors(400, 403, 404, 409,
                                                                                               429, 503)},
            body=_obj(confirm={**_STR, "description": "the template id, typed: required when the fire is live"}),
            roles="officer or approver, never the user who fired")},
        "/api/alerts/{alert_id}/events": {"parameters": _ID_PARAM, "get": _op(
            "Progress as server-sent events: `progress` {channel, state, counts} ..., then `done` {alert_id, ok}",
            {"200": {"description": "text/event-stream", "content": {"text/event-stream": {"schema": _STR}}},
             **_errors(404)})},
        "/api/alerts/{alert_id}/log": {"parameters": _ID_PARAM, "get": {**_op(
            "Every attempt, as `log --json` lines", {**_json({"type": "array", "items": _ref("Attempt")}),
                                                     **_errors(404)}), "parameters": _PAGE}},
        "/api/alerts/{alert_id}/report": {"parameters": _ID_PARAM, "get": _op(
            "The after-action report, as `report --json`: reach, latency, failures, retries, thread, texts",
            {**_json({"type": "object"}), **_errors(404)})},
        "/api/alerts/{alert_id}/report.html": {"parameters": _ID_PARAM, "get": _op(
            "The self-contained HTML after-action report (Arabic first, right to left)",
            {"200": {"description": "text/html", "content": {"text/html": {"schema": _STR}}}, **_errors(404)})},
        "/api/alerts/{alert_id}/update": {"parameters": _ID_PARAM, "post": _op(
            "A new alert updating this one, on the same channels",
            {"202": _ACCEPTED, **_errors(400, 403, 404, 429, 503)},
            body=_obj(["mode"], variables=_VARIABLES, mode=_MODE, confirm=_STR), roles=_FIRE_ROLES)},
        "/api/alerts/{alert_id}/cancel": {"parameters": _ID_PARAM, "post": _op(
            "The pre-approved cancel of this alert: `error` (sent in error) or `called_off` (it will not happen)",
            {"202": _ACCEPTED, **_errors(400, 403, 404, 429, 503)},
            body=_obj(["mode"], mode=_MODE, confirm=_STR,
                      reason={"type": "string", "enum": ["error", "called_off"], "default": "error"}),
            roles=_FIRE_ROLES)},
        "/api/alerts/{alert_id}/all-clear": {"parameters": _ID_PARAM, "post": _op(
            "The all-clear of this alert, to its channels and recipients: `road_reopened` naming the road after a "
            "road closure, else `all_clear` with its event and area", {"202": _ACCEPTED,
                                                                       **_errors(400, 403, 404, 429, 503)},
            body=_obj(["mode"], variables=_VARIABLES, mode=_MODE, confirm=_STR), roles=_FIRE_ROLES)},
        "/api/alerts/{alert_id}/preview": {"parameters": _ID_PARAM, "post": _op(
            "What an update, cancel or all-clear of this alert would send, on every channel (nothing stored or sent)",
            {**_json(_obj(template=_STR, approved=_BOOL, action=_STR, msg_type=_STR, references=_STR,
                          areas={"type": "array", "items": _STR}, skipped={"type": "object"},
                          notes={"type": "array", "items": _STR},
                          messages={"type": "array", "items": _ref("Message")}, sms=_ref("SmsTotal"))),
             **_errors(400, 404)},
            body=_obj(["action"], action={"type": "string", "enum": ["update", "cancel", "all_clear"]},
                      variables=_VARIABLES, mode=_MODE,
                      reason={"type": "string", "enum": ["error", "called_off"], "default": "error"}))},
        "/api/runbooks": {"get": _op("The runbooks of the runbooks folder", _json(
            {"type": "array", "items": _ref("RunbookSummary")}))},
        "/api/runbooks/{runbook_id}/rehearse": {"parameters": _RUNBOOK_PARAM, "post": {**_op(
            "Play the whole runbook in dry-run on a virtual clock, as `runbook rehearse --json`",
            {**_json(_ref("Rehearsal")), **_errors(400, 403, 404, 409)}, roles="operator, officer, approver"),
            "requestBody": {"required": False, "content": {"application/json": {"schema": _obj(
                inputs=_INPUTS)}}}}},
        "/api/runbooks/{runbook_id}/run": {"parameters": _RUNBOOK_PARAM, "post": _op(
            "Check the runbook as `runbook run` does, then start it on the server's scheduler",
            {"202": _json(_obj(["run_id", "runbook", "mode", "state"], run_id=_STR, runbook=_STR, mode=_STR,
                               state=_STR), "started"), **_errors(400, 403, 404, 409, 503)},
            body=_obj(["mode"], inputs=_INPUTS, use_examples=_BOOL,
                      mode={"type": "string", "enum": ["exercise", "live"]},
                      confirm={**_STR, "description": "the runbook id, typed: required when mode is live"}),
            roles="operator (exercise), officer or approver (live)")},
        "/api/runbooks/runs": {"get": _op("Runbook runs in progress, then the most recent ended ones", _json(
            _obj(runs={"type": "array", "items": _ref("Run")})))},
        "/api/runbooks/runs/{run_id}": {"parameters": _RUN_PARAM, "get": _op(
            "One run or rehearsal, as `runbook status RUN_ID --json`", {**_json(_ref("Run")), **_errors(404)})},
        "/api/runbooks/runs/{run_id}/stop": {"parameters": _RUN_PARAM, "post": _op(
            "Stop a run: its remaining steps are skipped, nothing more of it fires",
            {**_json({"allOf": [_ref("Run"), _obj(jobs_removed=_INT)]}), **_errors(403, 404, 409)},
            roles="operator (dry-run and exercise runs), officer or approver (live runs)")},
        "/twilio/status": {"post": _op("Twilio delivery receipt (X-Twilio-Signature)", {
            "204": {"description": "recorded (a replay is accepted and ignored)"},
            "403": {"description": "the signature does not validate"}}, public=True)},
        "/cap/feed.atom": {"get": _op("Atom index of current Actual alerts", {"200": {
            "description": "Atom", "content": {"application/atom+xml": {"schema": _STR}}},
            "503": {"description": _NO_PUBLIC_URL}}, public=True)},
        "/cap/{alert_id}.xml": {"parameters": _ID_PARAM, "get": _op(
            "The CAP 1.2 document of a live alert, as stored when it was fired", {
                "200": {"description": "CAP", "content": {"application/cap+xml": {"schema": _STR}}},
                "404": {"description": "no such live alert (exercise and dry-run are never public)"},
                "410": {"description": "an alert from before documents were stored, whose template changed since"},
                "503": {"description": _NO_PUBLIC_URL}}, public=True)},
        "/cards/{alert_id}/{lang}.png": {"parameters": [*_ID_PARAM, _LANG_PARAM], "get": _op(
            "The alert card of a live or exercise alert (Instagram fetches it)", {
                "200": {"description": "1080×1080 PNG", "content": {"image/png": {"schema": _BINARY}}},
                "404": {"description": "no such public card (a dry-run's card never leaves its machine)"}},
            public=True)},
        "/verify/{alert_id}": {"parameters": _ID_PARAM, "get": _op(
            "The public verification page of a live alert or an exercise (Arabic first, then English)", {
                "200": {"description": "HTML: each channel's text, when, signature status, updates and cancels",
                        "content": {"text/html": {"schema": _STR}}},
                "404": {"description": "HTML in both languages: not an official alert id (also every dry-run)",
                        "content": {"text/html": {"schema": _STR}}}}, public=True)},
        "/v/{code}": {"parameters": [{"name": "code", "in": "path", "required": True, "schema": _STR,
                                      "description": "8 characters of Crockford base32, as in a verification line"}],
                      "get": _op("The verification page by the short code of a verification line", {
                          "200": {"description": "HTML, as /verify/{alert_id}",
                                  "content": {"text/html": {"schema": _STR}}},
                          "404": {"description": "HTML in both languages: not an official alert id",
                                  "content": {"text/html": {"schema": _STR}}}}, public=True)},
        "/api/preview/cards/{lang}": {"parameters": [_LANG_PARAM], "post": _op(
            "The alert card a preview would carry, in one language", {
                "200": {"description": "1080×1080 PNG", "content": {"image/png": {"schema": _BINARY}}},
                **_errors(400)}, body=fire_body)},
        "/metrics": {"get": _op("Prometheus metrics (a viewer's token)", {"200": {"description": "text format"}})},
        "/": {"get": _op("The web console", {"200": {"description": "HTML"}}, public=True)},
    }
    schemas = {
        "Error": _obj(["error", "message"], error=_STR, message=_STR,
                      field={**_STR, "description": "the body field at fault, e.g. `variables.ends`"},
                      reason={"type": "string", "enum": [str(r) for r in Refusal],
                              "description": "why, as a stable code a client translates (docs/api.md)"},
                      params={"type": "object", "additionalProperties": {"anyOf": [
                                  {"type": ["string", "number"]}, {"type": "array", "items": {"type": "string"}}]},
                              "description": "the reason's names and numbers, e.g. {\"rule\": \"after\", "
                                             "\"after\": \"starts\"}"}),
        "Role": {"type": "string", "enum": list(ROLES)},
        "Accepted": _obj(["alert_id", "state"], alert_id=_STR,
                         state={"type": "string", "enum": ["sending", "awaiting_confirmation"]}, confirm_by=_STR,
                         skipped={"type": "object", "additionalProperties": _STR,
                                  "description": "a follow-up: the original's channels channels.toml now rules out, "
                                                 "and why"}),
        "TemplateSummary": _obj(id=_STR, version=_INT, title=_BILINGUAL, approved=_BOOL,
                                kinds={"type": "array", "items": _STR}, two_person=_BOOL),
        "Message": _obj(channel=_STR, kind=_STR, language=_STR, text=_STR, length=_INT, limit=_INT, unit=_STR,
                        segments={"type": ["integer", "null"]}, encoding=_NULL_STR, recipients=_INT,
                        cost_segments=_INT),
        "SmsTotal": {**_obj(["listed", "phones", "on_several", "duplicates", "segments"], listed=_INT, phones=_INT,
                            on_several=_INT, duplicates=_INT, segments=_INT),
                     "description": "the SMS audience as sent, one SMS per phone per alert. listed: the channels' "
                                    "lists summed (each message's recipients); phones: each phone once; on_several: "
                                    "phones on more than one list; duplicates: listed - phones; segments: the cost, "
                                    "each phone once"},
        "Alert": _obj(alert_id=_STR, template=_STR, mode=_MODE, msg_type=_STR, references=_NULL_STR,
                      sent=_NULL_STR, expires=_NULL_STR, areas={"type": "array", "items": _STR},
                      channels={"type": "array", "items": _STR}, created_by=_STR, confirmed_by=_NULL_STR,
                      state={"type": "string",
                             "enum": ["awaiting_confirmation", "not_confirmed", "sending", "done"]},
                      counts=_COUNTS, requested_at=_STR, confirm_by=_STR,
                      request={"type": "object", "description": "a waiting two-person fire: what was asked"},
                      preview=_obj(channels={"type": "array", "items": _STR},
                                   messages={"type": "array", "items": _ref("Message")}, sms_recipients=_INT,
                                   cost_segments=_INT, sms=_ref("SmsTotal")),
                      preview_error=_STR),
        "Delivery": _obj(channel=_STR, recipient=_NULL_STR, language=_STR, state=_STR, attempts=_INT,
                         provider_id=_NULL_STR, receipt=_NULL_STR, moved_from=_NULL_STR),
        "RunbookSummary": _obj(id=_STR, name=_BILINGUAL, description=_STR, steps=_INT, error=_STR,
                               inputs={"type": "array", "items": _obj(name=_STR, example=_BILINGUAL,
                                                                      description=_STR, type=_STR)}),
        "Rehearsal": _obj(run_id=_STR, runbook=_STR, mode=_STR, start=_STR, end=_STR, span_s={"type": "number"},
                          wall_s={"type": "number"}, inputs={"type": "object"},
                          warnings={"type": "array", "items": _STR},
                          steps={"type": "array", "items": _obj(
                              step=_STR, occurrence=_INT, time=_STR, offset_s={"type": "number"}, action=_STR,
                              msg_type=_NULL_STR, state=_STR, alert_id=_NULL_STR, confirm=_NULL_STR,
                              channels={"type": "array", "items": _STR},
                              messages={"type": "array", "items": _ref("Message")},
                              deliveries={"type": "object"}, detail=_NULL_STR,
                              warnings={"type": "array", "items": _STR})}),
        "Run": _obj(run_id=_STR, kind=_STR, runbook=_STR, mode=_STR, state=_STR, started_at=_STR,
                    finished_at=_NULL_STR, inputs={"type": "object"}, steps={"type": "array", "items": _obj(
                        step=_STR, occurrence=_INT, state=_STR, due_at=_NULL_STR, confirmed_at=_NULL_STR,
                        fired_at=_NULL_STR, alert_id=_NULL_STR, detail=_NULL_STR)}),
        "Attempt": _obj(alert_id=_STR, channel=_STR, recipient=_NULL_STR, language=_STR, attempt=_INT,
                        outcome=_STR, http_status={"type": ["integer", "null"]}, error_code=_NULL_STR,
                        provider_id=_NULL_STR, started_at=_STR, finished_at=_NULL_STR,
                        latency_ms={"type": ["number", "null"]}, detail=_NULL_STR,
                        mode=_STR),  # a dry-run's outcome stays "sent" as stored, beside "mode": "dry-run"
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "broadcaster", "version": "1",
                 "description": "Fire pre-approved bilingual alerts to every official channel at once."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "from `broadcaster users add`"}}},
        "security": [{"bearer": []}],
    }
