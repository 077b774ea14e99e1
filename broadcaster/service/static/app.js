/* Crisis broadcaster console: plain JS, no framework, nothing loaded from the network.
 *
 * Flow: token → template → variables → mode → preview (POST /api/preview) → fire
 * (POST /api/alerts) → live progress (GET /api/alerts/{id}/events, read with fetch()
 * streaming because EventSource cannot send the Authorization header) → history.
 *
 * Safety rules this file keeps:
 *  - the fire button only sends exactly the body of the last successful preview;
 *  - any edit invalidates that preview, so the officer always fires what they saw;
 *  - a live fire (and a live cancel) stays disabled until the id is typed exactly;
 *  - every server string goes through textContent, never innerHTML.
 */
"use strict";

(() => {
  /* global BROADCASTER_MODES, BROADCASTER_MODE_TAG, BROADCASTER_STRINGS -- from strings.js */
  /* global BROADCASTER_WORDS -- from words.js: counted nouns, durations, dates, ids, server errors */
  const W = BROADCASTER_WORDS;
  const MODES = BROADCASTER_MODES;
  const MODE_TAG = BROADCASTER_MODE_TAG;
  const STRINGS = BROADCASTER_STRINGS;
  const UNFINISHED = ["pending", "sending"];
  const DELIVERED = ["sent", "delivered"];
  const CONFIRMERS = ["officer", "approver"];

  const state = {
    token: sessionStorage.getItem("broadcaster.token") || "",
    lang: sessionStorage.getItem("broadcaster.lang") === "en" ? "en" : "ar",
    me: null,
    templates: [],
    template: null,
    gazetteer: [],
    channels: [],
    mode: "dry-run",
    preview: null, // {key, body, result} of the last successful preview
    previewError: null, // the ApiError of the last preview, shown in the UI's language
    refusedField: "", // "variables.NAME" the server refused, marked in the form
    previewSeq: 0,
    previewBusy: false,
    firing: false,
    alert: null, // {alert_id, template, mode, msg_type, references, phase, ok, counts}
    stream: null,
    history: [],
    historyAll: false, // dry-runs and rehearsals listed too
    runbooks: [],
    rehearsal: null, // the last rehearsal JSON (as `broadcaster runbook rehearse --json`)
    rehearsing: false,
  };

  const $ = (id) => document.getElementById(id);
  const t = (key, ...args) => {
    const value = STRINGS[state.lang][key] ?? STRINGS.ar[key] ?? key;
    return typeof value === "function" ? value(...args) : value;
  };
  const other = (lang) => (lang === "ar" ? "en" : "ar");

  /**
   * The authority's clock time of an ISO datetime with its offset (as the server writes them), for a sentence:
   * "4:09 مساءً" / "4:09 PM", Western digits, with the date when it is not today there. In Arabic the digits
   * sit inside a first-strong isolate, so the surrounding right-to-left text cannot reorder them.
   */
  function clockTime(iso) {
    const found = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso || "");
    if (!found) return iso || "";
    const [, year, month, day, hh, mm] = found;
    const hour = Number(hh);
    const time = `${hour % 12 || 12}:${mm}`;
    const half = hour < 12 ? t("am") : t("pm");
    const now = new Date();
    const today = now.getFullYear() === Number(year) && now.getMonth() + 1 === Number(month)
      && now.getDate() === Number(day);
    const date = today ? "" : ` ${day}/${month}/${year}`;
    return state.lang === "ar" ? `\u2068${time}\u2069 ${half}${date ? ` \u2068${date.trim()}\u2069` : ""}`
      : `${time} ${half}${date}`;
  }

  /** Build an element; strings become text nodes, never markup. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const ARABIC = /[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]/;
  const langOf = (text) => (ARABIC.test(text) ? "ar" : "en");
  const dirOf = (lang) => (lang === "ar" ? "rtl" : "ltr");

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, field = "", reason = "", params = {}) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field; // the body field at fault, e.g. "variables.ends"
      this.reason = reason; // why, as a stable code (docs/api.md), e.g. "time_rule"
      this.params = params; // the reason's names and numbers, e.g. {rule: "after", after: "starts"}
    }
  }

  async function errorFrom(response) {
    let code = `http_${response.status}`;
    let message = `${response.status} ${response.statusText}`;
    let field = "";
    let reason = "";
    let params = {};
    try {
      const body = await response.json();
      code = body.error || code;
      message = body.message || message;
      field = body.field || "";
      reason = body.reason || "";
      params = body.params || {};
    } catch {
      /* not JSON: keep the status line */
    }
    return new ApiError(response.status, code, message, field, reason, params);
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401) signOut(t("login.refused"));
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  function showError(error, where = "error") {
    const box = $(where);
    if (!error) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.textContent = explain(error);
    box.hidden = false;
  }

  /** A variable's label in the UI's language (declared in the template), else its name. */
  function labelOf(name) {
    const variable = state.template && (state.template.variables || []).find((v) => v.name === name);
    return (variable && variable.label && variable.label[state.lang]) || name;
  }

  /** An error in the UI's language: the server's reason translated in Arabic, its message in English. */
  const explain = (error) => W.explain(state.lang, error, labelOf);

  // ---------------------------------------------------------------- language

  function applyLang() {
    const root = document.documentElement;
    root.lang = state.lang;
    root.dir = dirOf(state.lang);
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    const toggle = $("lang-toggle");
    toggle.textContent = t("langToggle");
    toggle.lang = other(state.lang);
    toggle.dir = dirOf(other(state.lang));
  }

  function toggleLang() {
    const kept = snapshotFields();
    state.lang = other(state.lang);
    sessionStorage.setItem("broadcaster.lang", state.lang);
    applyLang();
    renderAll(kept);
  }

  function renderAll(kept) {
    renderWho();
    renderTemplateOptions();
    if (state.template) {
      renderTemplateInfo();
      buildForm(kept);
    }
    renderTargets(kept);
    renderPreview();
    renderFire();
    renderProgress();
    renderHistory();
    renderRunbooks();
  }

  // ---------------------------------------------------------------- login

  function signOut(message) {
    state.token = "";
    state.me = null;
    state.alert = null;
    state.preview = null;
    state.rehearsal = null;
    sessionStorage.removeItem("broadcaster.token");
    if (state.stream) state.stream.abort();
    setMode("dry-run"); // whoever signs in next starts in the safe mode
    $("progress-panel").hidden = true;
    $("console").hidden = true;
    $("logout").hidden = true;
    $("who").hidden = true;
    $("login").hidden = false;
    showError(message ? { message } : null);
    $("token").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    state.token = $("token").value.trim();
    try {
      state.me = await api("GET", "/api/me");
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    }
    sessionStorage.setItem("broadcaster.token", state.token);
    $("token").value = "";
    await openConsole();
  }

  async function openConsole() {
    showError(null);
    $("login").hidden = true;
    $("console").hidden = false;
    $("logout").hidden = false;
    try {
      if (!state.me) state.me = await api("GET", "/api/me");
      const [templates, gazetteer, channels] = await Promise.all([
        api("GET", "/api/templates"), api("GET", "/api/gazetteer"), api("GET", "/api/channels"),
      ]);
      state.templates = templates;
      state.gazetteer = gazetteer;
      state.channels = channels;
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    }
    renderWho();
    renderTemplateOptions();
    renderTargets();
    setMode(state.mode);
    const first = state.templates.find((tpl) => tpl.approved) || state.templates[0];
    if (first) await selectTemplate(first.id);
    loadHistory();
    loadRunbooks();
  }

  function renderWho() {
    if (!state.me) return;
    const who = $("who");
    who.textContent = `${state.me.name} · ${(t("roles") || {})[state.me.role] || state.me.role}`;
    who.hidden = false;
  }

  // ---------------------------------------------------------------- template and variables

  const titleOf = (tpl) => (tpl.title ? `${tpl.title.ar} · ${tpl.title.en}` : tpl.id);

  /**
   * A dropdown option: its words in the UI's language and the code in a left-to-right isolate, short enough
   * not to be cut off in a narrow select; both languages in its title.
   */
  function option(value, words, code, full) {
    return el("option", { value, text: code ? `${words} (${W.ltr(code)})` : words, title: full });
  }

  function renderTemplateOptions() {
    const select = $("template");
    const current = state.template ? state.template.id : select.value;
    select.replaceChildren(...state.templates.map((tpl) => option(tpl.id,
      `${tpl.title ? tpl.title[state.lang] : tpl.id}${tpl.approved ? "" : ` — ${t("template.notApproved")}`}`,
      tpl.id, `${titleOf(tpl)} (${tpl.id})`)));
    if (current) select.value = current;
  }

  let templateSeq = 0;

  async function selectTemplate(id) {
    const seq = ++templateSeq;
    $("fill-examples").disabled = true;
    $("vars-form").setAttribute("aria-busy", "true");
    let detail;
    try {
      detail = await api("GET", `/api/templates/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    } finally {
      if (seq === templateSeq) {
        $("fill-examples").disabled = false;
        $("vars-form").removeAttribute("aria-busy");
      }
    }
    if (seq !== templateSeq) return; // the officer picked another template meanwhile
    state.template = detail;
    $("template").value = id;
    $("confirm").value = "";
    state.preview = null;
    state.previewError = null;
    renderTemplateInfo();
    buildForm();
    onFormChange();
  }

  function renderTemplateInfo() {
    const tpl = state.template;
    const summary = state.templates.find((x) => x.id === tpl.id) || {};
    const approved = tpl.approved ?? summary.approved;
    const parts = [
      el("span", { class: approved ? "chip" : "chip bad", text: approved ? t("template.approved") : t("template.notApproved") }),
      " ",
      el("span", { text: `${t("template.version")} ${tpl.version ?? "?"}` }),
      " · ",
      el("span", { dir: "ltr", text: (tpl.kinds || summary.kinds || []).join(", ") }),
    ];
    if (tpl.two_person ?? summary.two_person) parts.push(" · ", el("strong", { text: t("template.twoPerson") }));
    $("template-info").replaceChildren(...parts);
  }

  const placesFor = (variable) =>
    state.gazetteer.filter((place) => !variable.places || place.type === variable.places);
  const bilingual = (pair, code) => `${pair.ar} — ${pair.en}${code ? ` (${code})` : ""}`;
  const meta = (variable, max = true) => el("span", { class: "meta", text: [variable.required ? t("vars.required") : "",
    max ? t("vars.max", variable.max_length) : ""].filter(Boolean).join(" · ") });

  /** The label the template declares for the variable, in the UI's language (its name when it declares none). */
  function label(variable, forId) {
    return el("label", { for: forId, "data-name": variable.name }, labelOf(variable.name), meta(variable));
  }

  function buildField(variable) {
    const id = `var-${variable.name}`;
    const common = { "data-var": variable.name };
    const wrap = el("div", { class: "field", "data-type": variable.type, "data-name": variable.name });
    if (variable.type === "place" || variable.type === "enum") {
      const options = variable.type === "place"
        ? placesFor(variable).map((p) => option(p.code, p[state.lang], p.code, bilingual(p, p.code)))
        : Object.entries(variable.choices || {}).map(([key, pair]) => option(key, pair[state.lang], "", bilingual(pair)));
      wrap.append(label(variable, id), el("select", { id, ...common, required: variable.required },
        el("option", { value: "", text: t("vars.choose") }), options));
    } else if (variable.type === "text") {
      wrap.append(
        el("span", { class: "field-label", id: `${id}-label`, "data-name": variable.name }, labelOf(variable.name),
          meta(variable)),
        el("div", { class: "pair", role: "group", "aria-labelledby": `${id}-label` },
          el("div", {}, el("label", { for: `${id}-ar`, text: t("vars.ar") }),
            el("input", { id: `${id}-ar`, type: "text", lang: "ar", dir: "rtl", maxlength: variable.max_length,
              "data-lang": "ar", ...common, required: variable.required })),
          el("div", {}, el("label", { for: `${id}-en`, text: t("vars.en") }),
            el("input", { id: `${id}-en`, type: "text", lang: "en", dir: "ltr", maxlength: variable.max_length,
              "data-lang": "en", ...common, required: variable.required }))));
    } else if (variable.type === "datetime") {
      wrap.append(
        el("span", { class: "field-label", id: `${id}-label`, "data-name": variable.name }, labelOf(variable.name),
          meta(variable, false)),
        el("div", { class: "dt", role: "group", "aria-labelledby": `${id}-label` },
          el("div", {}, el("label", { for: id, text: t("vars.date") }),
            el("input", { id, type: "datetime-local", dir: "ltr", ...common, required: variable.required })),
          el("div", {}, el("label", { for: `${id}-offset`, text: t("vars.offset") }),
            el("input", { id: `${id}-offset`, type: "text", dir: "ltr", value: "+04:00", maxlength: 6,
              pattern: "[+\\-][0-9]{2}:[0-9]{2}", inputmode: "text", "data-offset": variable.name, ...common,
              "aria-describedby": `${id}-offset-hint` }),
            el("p", { class: "help offset-hint", id: `${id}-offset-hint`, hidden: true,
              text: t("vars.offsetBad", labelOf(variable.name)) }))),
        // The browser draws the date control in its own locale (often US month/day): say it as dd/mm/yyyy too.
        el("p", { class: "help dt-echo", id: `${id}-echo`, "aria-live": "polite" }));
    } else {
      // number, and any kind a newer server adds: one value for both languages.
      wrap.append(label(variable, id), el("input", {
        id, type: "text", dir: "ltr", maxlength: variable.max_length, ...common, required: variable.required,
        inputmode: variable.type === "number" ? "decimal" : undefined,
      }));
    }
    return wrap;
  }

  function snapshotFields() {
    const kept = {};
    for (const node of document.querySelectorAll("#vars-form [id], #targets input")) {
      kept[node.id] = node.type === "checkbox" ? node.checked : node.value;
    }
    return kept;
  }

  function restoreFields(kept, selector) {
    if (!kept) return;
    for (const node of document.querySelectorAll(selector)) {
      if (!(node.id in kept)) continue;
      if (node.type === "checkbox") node.checked = kept[node.id];
      else node.value = kept[node.id];
    }
  }

  function buildForm(kept) {
    const form = $("vars-form");
    const vars = state.template.variables || [];
    form.replaceChildren(...(vars.length ? vars.map(buildField) : [el("p", { class: "help", text: t("vars.none") })]));
    restoreFields(kept, "#vars-form [id]");
  }

  function splitDatetime(value) {
    const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.exec(value || "");
    if (!match) return null;
    return { local: match[1], offset: match[2] === "Z" ? "+00:00" : match[2] };
  }

  function fillExamples() {
    for (const variable of state.template.variables || []) {
      const examples = variable.examples || {};
      const id = `var-${variable.name}`;
      if (variable.type === "text") {
        $(`${id}-ar`).value = examples.ar ?? "";
        $(`${id}-en`).value = examples.en ?? "";
      } else if (variable.type === "datetime") {
        const parts = splitDatetime(examples.en ?? examples.ar);
        if (parts) {
          $(id).value = parts.local;
          $(`${id}-offset`).value = parts.offset;
        }
      } else {
        $(id).value = examples.en ?? examples.ar ?? "";
      }
    }
    onFormChange();
  }

  /** The variable the server refused ("field": "variables.ends") stays marked until the form changes. */
  function markField(field) {
    state.refusedField = (field || "").startsWith("variables.") ? field : "";
    if (state.template) collectVariables();
  }

  /** Mark a field invalid only once the officer has touched it (or when it is malformed whatever happens). */
  function flag(input, invalid, always = false) {
    const refused = Boolean(state.refusedField) && state.refusedField === `variables.${input.dataset.var}`;
    if (refused || (invalid && (always || input.dataset.touched))) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /** Read the form into the API's `variables`; list what is missing or malformed, and each malformed offset. */
  function collectVariables() {
    const variables = {};
    const missing = [];
    const badOffsets = [];
    for (const variable of state.template.variables || []) {
      const id = `var-${variable.name}`;
      let ok = true;
      if (variable.type === "text") {
        const ar = $(`${id}-ar`).value.trim();
        const en = $(`${id}-en`).value.trim();
        if (ar || en || variable.required) {
          ok = Boolean(ar && en);
          variables[variable.name] = { ar, en };
        }
        flag($(`${id}-ar`), !ar && (variable.required || Boolean(en)));
        flag($(`${id}-en`), !en && (variable.required || Boolean(ar)));
      } else if (variable.type === "datetime") {
        let local = $(id).value;
        const offsetInput = $(`${id}-offset`);
        const offset = offsetInput.value.trim();
        const offsetOk = /^[+-]\d{2}:\d{2}$/.test(offset);
        flag(offsetInput, !offsetOk, true);
        $(`${id}-offset-hint`).hidden = offsetOk;
        if (!offsetOk) badOffsets.push(variable.name); // said as the offset hint, never as "fill in the fields"
        $(`${id}-echo`).textContent = local && offsetOk ? W.dateTime(state.lang, `${local}${offset}`) : "";
        if (local) {
          if (/T\d{2}:\d{2}$/.test(local)) local += ":00";
          variables[variable.name] = `${local}${offset}`;
        } else {
          ok = !variable.required;
        }
        flag($(id), !local && variable.required);
      } else {
        const value = $(id).value.trim();
        if (value) variables[variable.name] = value;
        ok = Boolean(value) || !variable.required;
        flag($(id), !ok);
      }
      if (!ok) missing.push(variable.name);
    }
    return { variables, missing, badOffsets };
  }

  // ---------------------------------------------------------------- channels and areas

  function renderTargets(kept) {
    const before = kept || snapshotFields();
    $("channels-list").replaceChildren(...state.channels.map((channel) => el("label", {},
      el("input", { type: "checkbox", id: `ch-${channel.id}`, value: channel.id, checked: true }),
      el("span", { dir: "ltr" }, `${channel.id} (${channel.kind})`),
      channel.exercise ? el("span", { class: "mode-tag m-exercise", text: t("targets.exercise") }) : null)));
    $("areas-list").replaceChildren(...state.gazetteer.filter((p) => p.type === "area").map((place) => el("label", {},
      el("input", { type: "checkbox", id: `area-${place.code}`, value: place.code }),
      el("span", { text: `${place[state.lang]} (${place.code})` }))));
    restoreFields(before, "#targets input");
  }

  function channelSelection() {
    const boxes = [...document.querySelectorAll("#channels-list input")];
    const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
    if (chosen.length === boxes.length) return "all";
    return chosen.join(",");
  }

  const chosenAreas = () => [...document.querySelectorAll("#areas-list input:checked")].map((box) => box.value);

  // ---------------------------------------------------------------- mode

  function setMode(mode) {
    state.mode = mode;
    document.body.dataset.mode = mode;
    const { ar, en } = MODES[mode].banner;
    for (const id of ["mode-banner-text", "mode-footer"]) {
      $(id).replaceChildren(el("span", { lang: "ar", dir: "rtl", text: ar }), el("span", { class: "sep", text: " · " }),
        el("span", { lang: "en", dir: "ltr", text: en }));
    }
    document.title = `${ar} · ${en} — منصة البث الطارئ · Crisis broadcaster`;
    for (const radio of document.querySelectorAll('input[name="mode"]')) radio.checked = radio.value === mode;
    $("confirm").value = "";
  }

  // ---------------------------------------------------------------- preview

  let previewTimer = 0;

  function currentRequest() {
    if (!state.template) return { missing: [], badOffsets: [] };
    const { variables, missing, badOffsets } = collectVariables();
    const channels = channelSelection();
    const body = {
      template: state.template.id, variables, use_examples: false, channels, areas: chosenAreas(), mode: state.mode,
    };
    return { body, missing, badOffsets, key: JSON.stringify(body), noChannels: channels === "",
      incomplete: missing.length > 0 || badOffsets.length > 0 || channels === "" };
  }

  function onFormChange() {
    clearTimeout(previewTimer);
    showError(null, "fire-error");
    state.refusedField = "";
    const request = currentRequest();
    if (state.preview && state.preview.key !== request.key) state.preview = null;
    state.previewError = null;
    if (request.incomplete) {
      state.previewSeq += 1; // drop any answer still on its way
      state.previewBusy = false;
      state.preview = null;
    } else if (!state.preview) {
      state.previewBusy = true;
      previewTimer = setTimeout(runPreview, 300);
    }
    renderPreview(request);
    renderFire();
  }

  async function runPreview() {
    clearTimeout(previewTimer);
    const request = currentRequest();
    if (request.incomplete) {
      onFormChange();
      return;
    }
    const seq = ++state.previewSeq;
    state.previewBusy = true;
    renderPreview(request);
    renderFire();
    try {
      const result = await api("POST", "/api/preview", request.body);
      if (seq !== state.previewSeq) return;
      state.preview = { key: request.key, body: request.body, result };
      state.previewError = null;
    } catch (error) {
      if (seq !== state.previewSeq) return;
      state.preview = null;
      state.previewError = error;
      state.refusedField = error.field || "";
    }
    state.previewBusy = false;
    renderPreview();
    renderFire();
    markField(state.refusedField);
    if (state.preview) showCards(state.preview.body, seq);
  }

  // The alert cards of the preview (what Instagram posts, and channels with card = true attach), one per
  // language, drawn by the server from the very body previewed; shown at the end of the preview list.
  async function showCards(body, seq) {
    const images = [];
    for (const lang of ["ar", "en"]) {
      const response = await fetch(`/api/preview/cards/${lang}`, {
        method: "POST", body: JSON.stringify(body), cache: "no-store",
        headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json", Accept: "image/png" },
      }).catch(() => null);
      if (!response || !response.ok) return;
      const blob = await response.blob();
      const src = await new Promise((resolve) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result); // a data: URL, nothing kept to revoke
        reader.readAsDataURL(blob);
      });
      images.push(el("img", {
        src, lang, alt: lang === "ar" ? "بطاقة التنبيه" : "Alert card",
        width: 1080, height: 1080, style: "width: min(100%, 17rem); height: auto; border: 1px solid #ccd",
      }));
    }
    document.getElementById("preview-cards")?.remove();
    if (seq !== state.previewSeq || !state.preview) return;
    $("preview-list").append(el("div", { id: "preview-cards", class: "preview-cards", "data-testid": "cards",
      style: "display: flex; flex-wrap: wrap; gap: .7rem" }, images));
  }

  /** The preview's totals; the SMS ones each phone once (the server's "sms": one SMS per phone per alert). */
  function totals(messages, once) {
    const sms = messages.filter((m) => m.kind === "sms");
    const smsChannels = new Map();
    for (const m of sms) smsChannels.set(m.channel, (smsChannels.get(m.channel) || 0) + (m.recipients || 0));
    return {
      messages: messages.length,
      channels: new Set(messages.map((m) => m.channel)).size,
      recipients: once ? once.phones : [...smsChannels.values()].reduce((a, b) => a + b, 0),
      segments: once ? once.segments : sms.reduce((a, m) => a + (m.cost_segments || 0), 0),
      duplicates: once ? once.duplicates : 0,
      onSeveral: once ? once.on_several : 0,
    };
  }

  function renderPreview(request) {
    const status = $("preview-status");
    const list = $("preview-list");
    list.classList.remove("stale");
    const summary = $("preview-summary");
    const req = request || currentRequest();
    if (state.preview && state.preview.key === req.key) {
      const { result } = state.preview;
      const sum = totals(result.messages, result.sms);
      status.textContent = t("preview.ok");
      summary.replaceChildren(...summaryChips(sum.channels, sum.messages, sum.recipients, sum.segments, sum));
      list.replaceChildren(...result.messages.map(messageCard));
      return;
    }
    summary.replaceChildren();
    if (state.previewError) {
      status.textContent = "";
      list.replaceChildren(el("div", { class: "notice", role: "alert", text: explain(state.previewError) }));
    } else if (req.badOffsets && req.badOffsets.length) {
      status.textContent = t("vars.offsetBad", req.badOffsets.map(labelOf).join(state.lang === "ar" ? "، " : ", "));
      list.replaceChildren(el("p", { class: "empty", text: t("preview.empty") }));
    } else if (req.missing && req.missing.length) {
      status.textContent = t("preview.missing", req.missing.map(labelOf).join(state.lang === "ar" ? "، " : ", "));
      list.replaceChildren(el("p", { class: "empty", text: t("preview.empty") }));
    } else if (req.noChannels) {
      status.textContent = t("preview.noChannels");
      list.replaceChildren();
    } else if (state.previewBusy) {
      status.textContent = t("preview.loading");
      list.classList.add("stale");
      return;
    } else {
      status.textContent = "";
      list.replaceChildren(el("p", { class: "empty", text: t("preview.empty") }));
    }
  }

  /** One counted chip: "5 قنوات", its number in bold; data-count keeps the number for scripts and tests. */
  function chip(text, value, name) {
    const at = text.indexOf(String(value));
    const parts = at < 0 ? [el("strong", { text })]
      : [text.slice(0, at), el("strong", { text: String(value) }), text.slice(at + String(value).length)];
    return el("span", { class: "chip", "data-count": value, "data-chip": name }, parts);
  }

  function summaryChips(channels, messages, recipients, segments, sum) {
    const chips = [
      chip(W.count(state.lang, "channel", channels), channels, "channels"),
      chip(W.count(state.lang, "message", messages), messages, "messages"),
      chip(t("preview.smsRecipients", recipients), recipients, "recipients"),
      chip(t("preview.smsSegments", segments), segments, "segments"),
    ];
    // Phones listed twice (on two SMS lists, or twice on one) get one SMS: say how many were counted once.
    if (sum && sum.duplicates) chips.push(chip(t("preview.smsOnce", sum.duplicates, sum.onSeveral), sum.duplicates, "once"));
    return chips;
  }

  function messageCard(message) {
    const metrics = el("span", { class: "msg-metrics" });
    if (message.kind === "sms") {
      metrics.append(
        el("span", { class: "seg", "data-segments": message.segments },
          `${W.count(state.lang, "segment", message.segments)} · `, el("span", { dir: "ltr", text: message.encoding || "" })),
        el("span", { class: "recipients", text: W.count(state.lang, "recipient", message.recipients) }),
        el("span", { class: "cost", "data-cost": message.cost_segments,
          text: `${t("preview.cost")}: ${W.count(state.lang, "segment", message.cost_segments)}` }));
    }
    metrics.prepend(
      el("span", { class: "len", dir: "ltr", text: `${message.length}/${message.limit} ${message.unit || ""}`.trim() }),
      el("meter", { min: 0, max: message.limit, value: message.length, high: message.limit * 0.9, optimum: 0,
        "aria-label": `${t("preview.length")} ${message.length}/${message.limit}` }));
    return el("article", {
      class: "msg", "data-channel": message.channel, "data-kind": message.kind, "data-language": message.language,
    },
    el("div", { class: "msg-head" },
      el("span", { class: "channel", dir: "ltr", text: message.channel }),
      el("span", { class: `kind kind-${message.kind}`, text: message.kind }),
      el("span", { class: "lang", dir: "ltr", text: message.language }),
      metrics),
    messageText(message));
  }

  /** Arabic text is rtl, English ltr; a combined message gets a direction per paragraph. */
  function messageText(message) {
    const rich = message.kind === "telegram";
    if (message.language === "ar" || message.language === "en") {
      return el("div", { class: "msg-text", lang: message.language, dir: dirOf(message.language) },
        rich ? telegramHtml(message.text) : message.text);
    }
    return el("div", { class: "msg-text combined" }, message.text.split(/\n{2,}/).map((para) => {
      const lang = langOf(para);
      return el("span", { class: "para", lang, dir: dirOf(lang) }, rich ? telegramHtml(para) : para);
    }));
  }

  /** Telegram HTML as Telegram shows it: only its formatting tags survive; the rest is text. */
  function telegramHtml(text) {
    const allowed = new Set(["B", "STRONG", "I", "EM", "U", "INS", "S", "STRIKE", "DEL", "CODE", "PRE"]);
    const inert = new DOMParser().parseFromString(`<body>${text}</body>`, "text/html").body;
    const copy = (node) => {
      if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.nodeValue);
      if (node.nodeType !== Node.ELEMENT_NODE) return null;
      const out = allowed.has(node.tagName) ? document.createElement(node.tagName.toLowerCase())
        : document.createDocumentFragment();
      for (const child of node.childNodes) {
        const c = copy(child);
        if (c) out.append(c);
      }
      return out;
    };
    const fragment = document.createDocumentFragment();
    for (const child of inert.childNodes) {
      const c = copy(child);
      if (c) fragment.append(c);
    }
    return fragment;
  }

  // ---------------------------------------------------------------- fire

  function fireBlocker() {
    if (!state.me || !state.template) return t("fire.needPreview");
    if (state.me.role === "viewer") return t("fire.viewer");
    if (state.template.approved === false) return t("fire.notApproved");
    // The server refuses an operator's live fire (403 forbidden_role) unless the template allows it: say so here,
    // in both languages, instead of an enabled button that ends in a refusal.
    if (state.mode === "live" && state.me.role === "operator" && state.template.operator_live !== true) {
      return t("fire.operatorLive");
    }
    const request = currentRequest();
    if (!state.preview || state.preview.key !== request.key || state.previewBusy) return t("fire.needPreview");
    if (state.mode === "live" && $("confirm").value !== state.template.id) return t("fire.needConfirm");
    return "";
  }

  function renderFire() {
    const live = state.mode === "live";
    const button = $("fire");
    $("confirm-box").hidden = !live;
    if (state.template) $("confirm-label").textContent = t("fire.confirmLabel", state.template.id);
    const blocker = state.firing ? t("fire.sending") : fireBlocker();
    button.disabled = Boolean(blocker);
    button.textContent = MODES[state.mode].fire[state.lang];
    $("fire-hint").textContent = blocker;
    if (state.preview) {
      const sum = totals(state.preview.result.messages, state.preview.result.sms);
      $("fire-summary").textContent = t("fire.summary", sum.channels, sum.recipients, sum.segments);
    } else {
      $("fire-summary").textContent = "";
    }
  }

  async function fire() {
    // The button is disabled unless this holds; check again so nothing bypasses it.
    if (state.firing || fireBlocker()) return;
    const body = { ...state.preview.body };
    if (body.mode === "live") body.confirm = $("confirm").value;
    state.firing = true;
    renderFire();
    showError(null, "fire-error");
    try {
      const answer = await api("POST", "/api/alerts", body);
      $("confirm").value = "";
      showAlert({ alert_id: answer.alert_id, template: body.template, mode: body.mode, msg_type: "Alert",
        state: answer.state, confirm_by: answer.confirm_by, created_by: state.me.name });
    } catch (error) {
      if (error.status !== 401) showError(error, "fire-error");
      markField(error.field); // a time that passed between preview and fire, say
    } finally {
      state.firing = false;
      renderFire();
      loadHistory();
    }
  }

  // ---------------------------------------------------------------- progress

  function showAlert(alert, { focus = true } = {}) {
    if (state.stream) state.stream.abort();
    state.alert = { ...alert, counts: alert.counts || {}, ok: null, lost: false, phase: "sending" };
    applyServerState(alert.state);
    $("cancel-confirm").value = "";
    $("review-confirm").value = "";
    $("progress-panel").hidden = false;
    renderProgress();
    // Its detail: a held fire's review (what it would send), and its deliveries (SMS failover moves).
    refreshAlert(state.alert.alert_id).catch((error) => { if (error.status !== 401) showError(error); });
    if (focus) {
      $("h-progress").setAttribute("tabindex", "-1");
      $("h-progress").focus();
    }
    watch(state.alert.alert_id);
  }

  function mergeCounts(data) {
    const counts = data.counts || {};
    const nested = Object.values(counts).some((v) => v && typeof v === "object");
    if (nested) state.alert.counts = counts;
    else if (data.channel) state.alert.counts = { ...state.alert.counts, [data.channel]: counts };
  }

  const allDelivered = (counts) => Object.values(counts || {}).every((byState) =>
    Object.entries(byState || {}).every(([s, n]) => DELIVERED.includes(s) || !n));

  /** The alert-level `state` of GET /api/alerts(/{id}): sending | done | awaiting_confirmation | not_confirmed. */
  function applyServerState(serverState) {
    const alert = state.alert;
    if (serverState === "awaiting_confirmation") alert.phase = "awaiting";
    else if (serverState === "not_confirmed") {
      alert.phase = "not_confirmed";
      alert.ok = false;
    } else if (serverState === "done" && alert.phase !== "done") {
      alert.phase = "done";
      alert.ok = allDelivered(alert.counts);
    }
  }

  async function refreshAlert(id) {
    const detail = await api("GET", `/api/alerts/${encodeURIComponent(id)}`);
    if (!state.alert || state.alert.alert_id !== id) return detail;
    const { deliveries, ...rest } = detail;
    Object.assign(state.alert, rest, { moves: countMoves(deliveries || []) });
    applyServerState(detail.state);
    renderProgress();
    return detail;
  }

  /** Follow GET /api/alerts/{id}/events with fetch() streaming (EventSource cannot send the token). */
  async function watch(id) {
    const controller = new AbortController();
    state.stream = controller;
    for (let attempt = 0; attempt < 30 && !controller.signal.aborted; attempt += 1) {
      try {
        await readEvents(`/api/alerts/${encodeURIComponent(id)}/events`, controller.signal, (name, data) => {
          if (!state.alert || state.alert.alert_id !== id) return;
          if (name === "progress") {
            if (data.state === "awaiting_confirmation") state.alert.phase = "awaiting";
            else if (state.alert.phase === "awaiting" && data.channel) state.alert.phase = "sending";
            mergeCounts(data);
          } else if (name === "done") {
            state.alert.phase = data.state === "not_confirmed" ? "not_confirmed" : "done";
            state.alert.ok = Boolean(data.ok);
          }
          renderProgress();
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error.status === 401) return;
        if (error.status === 404) {
          showError(error);
          return;
        }
      }
      if (controller.signal.aborted || !state.alert || state.alert.alert_id !== id) return;
      try {
        await refreshAlert(id);
      } catch {
        /* shown on the next round */
      }
      if (state.alert.phase === "done" || state.alert.phase === "not_confirmed") {
        loadHistory();
        return;
      }
      state.alert.lost = true;
      renderProgress();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      state.alert.lost = false;
    }
  }

  async function readEvents(url, signal, onEvent) {
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" }, signal, cache: "no-store",
    });
    if (!response.ok) throw await errorFrom(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer = (buffer + value).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (data.length) {
            let parsed;
            try {
              parsed = JSON.parse(data.join("\n"));
            } catch {
              parsed = { text: data.join("\n") };
            }
            onEvent(name, parsed);
          }
          name = "message";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") name = val;
          else if (field === "data") data.push(val);
        }
      }
    }
  }

  /** SMS failover: how many deliveries moved from which channel to which ({from: {to: n}}), from moved_from. */
  function countMoves(deliveries) {
    const moves = {};
    for (const d of deliveries) {
      if (!d.moved_from) continue;
      const to = (moves[d.moved_from] = moves[d.moved_from] || {});
      to[d.channel] = (to[d.channel] || 0) + 1;
    }
    return moves;
  }

  /** A channel's failover lines: "moved to X: n" on the primary, "moved from Y: n" on the fallback. */
  function moveLines(channel, moves) {
    const lines = [];
    for (const [from, byTo] of Object.entries(moves || {})) {
      for (const [to, n] of Object.entries(byTo)) {
        if (from === channel) lines.push(t("progress.movedTo", to, n));
        if (to === channel) lines.push(t("progress.movedFrom", from, n));
      }
    }
    return lines;
  }

  function renderProgress() {
    const alert = state.alert;
    if (!alert) return;
    const panel = $("progress-panel");
    panel.dataset.alertMode = alert.mode;
    const tag = $("progress-mode");
    tag.className = `mode-tag m-${alert.mode}`;
    tag.textContent = MODE_TAG[alert.mode] || alert.mode;
    $("progress-id").textContent = alert.alert_id;
    const ref = alert.references ? ` · ${t("progress.ref", alert.references)}` : "";
    const type = alert.msg_type ? ` · ${(t("msgTypes") || {})[alert.msg_type] || alert.msg_type}` : "";
    $("progress-template").textContent = `${alert.template ? W.ltr(alert.template) : ""}${type}${ref}`;

    const line = $("progress-state");
    line.className = "progress-state";
    line.dataset.phase = alert.phase;
    if (alert.phase === "done") {
      line.classList.add(alert.ok ? "ok" : "bad");
      line.textContent = alert.ok ? (alert.mode === "dry-run" ? t("progress.doneDry") : t("progress.doneOk"))
        : t("progress.doneBad");
    } else if (alert.phase === "not_confirmed") {
      line.classList.add("bad");
      line.textContent = t("progress.notConfirmed");
    } else if (alert.phase === "awaiting") {
      line.textContent = alert.confirm_by
        ? `${t("progress.awaiting")} ${t("progress.confirmBy", clockTime(alert.confirm_by))}`
        : t("progress.awaiting");
    } else {
      line.textContent = alert.lost ? t("progress.lost") : t("progress.sending");
    }

    $("progress-list").replaceChildren(...Object.entries(alert.counts || {}).map(([channel, byState]) => {
      const total = Object.values(byState).reduce((a, n) => a + n, 0);
      const open = UNFINISHED.reduce((a, s) => a + (byState[s] || 0), 0);
      const failed = (byState.failed || 0) + (byState.unknown || 0) + (byState.expired || 0);
      return el("div", { class: failed ? "prow has-failed" : "prow", "data-channel": channel },
        el("div", { class: "prow-head" },
          el("span", { class: "channel", dir: "ltr", text: channel }),
          el("span", { class: "tally", dir: "ltr", text: `${total - open}/${total}` })),
        el("progress", { max: total || 1, value: total - open, "aria-label": channel }),
        el("div", { class: "prow-counts", text: Object.entries(byState).filter(([, n]) => n)
          .map(([s, n]) => `${stateWord(s, alert.mode)} ${n}`).join(" · ") }),
        ...moveLines(channel, alert.moves).map((text) => el("div", { class: "prow-moved", text })));
    }));

    const canAct = state.me && state.me.role !== "viewer";
    const confirmer = alert.phase === "awaiting" && state.me && CONFIRMERS.includes(state.me.role)
      && alert.created_by !== state.me.name;
    renderReview(alert, confirmer);
    $("open-report").hidden = !["sending", "done"].includes(alert.phase);  // stored: it has a report
    const cancellable = canAct && alert.msg_type !== "Cancel" && ["sending", "done"].includes(alert.phase);
    $("cancel-box").hidden = !cancellable;
    const live = alert.mode === "live";
    const mayCancelLive = state.me && state.me.role !== "operator";
    $("cancel-confirm").hidden = !live || !mayCancelLive;
    $("cancel-confirm-label").hidden = !live;
    $("cancel-confirm-label").textContent = live && !mayCancelLive ? t("fire.operatorLiveCancel")
      : t("progress.cancelConfirm", "cancel");
    $("cancel-alert").disabled = live && (!mayCancelLive || $("cancel-confirm").value !== "cancel");
    for (const row of document.querySelectorAll("#history-body tr")) {
      row.classList.toggle("current", row.dataset.alert === alert.alert_id);
    }
  }

  /**
   * The alert's after-action report (GET /api/alerts/{id}/report.html), fetched with the token in its
   * Authorization header, never in a URL, and opened as a blob URL in a new tab; where the browser
   * blocks the tab, it is saved as report-ID.html instead. The report has no script of its own.
   */
  async function openReport() {
    const alert = state.alert;
    if (!alert) return;
    showError(null);
    try {
      const response = await fetch(`/api/alerts/${encodeURIComponent(alert.alert_id)}/report.html`, {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/html" }, cache: "no-store",
      });
      if (!response.ok) {
        const error = await errorFrom(response);
        if (response.status === 401) signOut(t("login.refused"));
        throw error;
      }
      const url = URL.createObjectURL(new Blob([await response.arrayBuffer()], { type: "text/html;charset=utf-8" }));
      const tab = window.open(url, "_blank");
      if (tab) tab.opener = null;
      else el("a", { href: url, download: `report-${alert.alert_id}.html` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000); // the tab has read it by then
    } catch (error) {
      if (error.status !== 401) showError(error);
    }
  }

  async function cancelAlert() {
    const alert = state.alert;
    if (!alert) return;
    const body = { mode: alert.mode };
    if (alert.mode === "live") {
      if ($("cancel-confirm").value !== "cancel") return;
      body.confirm = $("cancel-confirm").value;
    }
    showError(null);
    try {
      const answer = await api("POST", `/api/alerts/${encodeURIComponent(alert.alert_id)}/cancel`, body);
      showAlert({ alert_id: answer.alert_id, template: "cancel", mode: alert.mode, msg_type: "Cancel",
        references: alert.alert_id, state: answer.state });
    } catch (error) {
      if (error.status !== 401) showError(error);
    }
    loadHistory();
  }

  /**
   * The second officer's review: what the public will see if they confirm (every channel's text, the SMS audience
   * and cost, from GET /api/alerts/{id}), in the alert's own mode frame; a live release needs the template id typed.
   */
  function renderReview(alert, confirmer) {
    const preview = alert.preview;
    $("review").hidden = !confirmer;
    $("confirm-second").hidden = !confirmer;
    if (!confirmer) return;
    if (state.mode !== alert.mode) setMode(alert.mode); // the whole frame says what releasing it does
    const live = alert.mode === "live";
    $("review-error").hidden = !alert.preview_error;
    $("review-error").textContent = alert.preview_error ? `${t("review.unavailable")} ${alert.preview_error}` : "";
    if (preview) {
      const sum = totals(preview.messages, preview.sms);
      $("review-summary").replaceChildren(...summaryChips(sum.channels, sum.messages, preview.sms_recipients,
        preview.cost_segments, sum));
      $("review-list").replaceChildren(...preview.messages.map(messageCard));
    } else {
      $("review-summary").replaceChildren();
      $("review-list").replaceChildren();
    }
    $("review-confirm").hidden = !live;
    $("review-confirm-label").hidden = !live;
    $("review-confirm-label").textContent = t("review.confirmLabel", alert.template);
    $("confirm-second").disabled = !preview || (live && $("review-confirm").value !== alert.template);
  }

  async function confirmSecond() {
    const alert = state.alert;
    if (!alert || !alert.preview) return;
    const body = alert.mode === "live" ? { confirm: $("review-confirm").value } : {};
    if (alert.mode === "live" && body.confirm !== alert.template) return;
    showError(null);
    try {
      await api("POST", `/api/alerts/${encodeURIComponent(alert.alert_id)}/confirm`, body);
      $("review-confirm").value = "";
      alert.phase = "sending";
      renderProgress();
      watch(alert.alert_id);
    } catch (error) {
      if (error.status !== 401) showError(error);
    }
  }

  // ---------------------------------------------------------------- history

  /**
   * Live alerts and exercises by default; dry-runs and runbook rehearsals (dated ahead on their virtual clock)
   * only when asked, so they never push a real alert out of the list. The alert on screen is always listed.
   */
  async function loadHistory() {
    let list;
    try {
      list = await api("GET", state.historyAll ? "/api/alerts" : "/api/alerts?mode=live,exercise");
      const shown = state.alert && state.alert.alert_id;
      if (shown && !list.some((a) => a.alert_id === shown)) {
        const detail = await api("GET", `/api/alerts/${encodeURIComponent(shown)}?limit=1`).catch(() => null);
        if (detail) {
          const { deliveries, preview, ...summary } = detail;
          list.push(summary);
        }
      }
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    }
    state.history = list;
    renderHistory();
  }

  const sentAt = (alert) => Date.parse(alert.sent || alert.requested_at || "") || 0;

  /** Newest first by sent time; anything dated ahead of now (a rehearsal's virtual clock) after the rest. */
  function historyOrder(alerts) {
    const now = Date.now();
    return [...alerts].sort((a, b) => (sentAt(a) > now) - (sentAt(b) > now) || sentAt(b) - sentAt(a));
  }

  /** A delivery state in words; a dry-run's "sent" is "recorded" (سُجّل): nothing left the machine. */
  function stateWord(s, mode) {
    const words = t("states");
    return (mode === "dry-run" && s === "sent" ? words.recorded : words[s]) || s;
  }

  function countsText(counts, mode) {
    const sum = {};
    for (const byState of Object.values(counts || {})) {
      for (const [s, n] of Object.entries(byState || {})) sum[s] = (sum[s] || 0) + n;
    }
    return Object.entries(sum).filter(([, n]) => n).map(([s, n]) => `${stateWord(s, mode)} ${n}`).join(" · ");
  }

  function renderHistory() {
    const now = Date.now();
    $("history-all").checked = state.historyAll;
    $("history-note").textContent = state.historyAll ? "" : t("history.hidden");
    const cell = (key, attrs, ...children) => el("td", { "data-label": t(key), ...attrs }, ...children);
    const rows = historyOrder(state.history).map((alert) => {
      const tpl = state.templates.find((x) => x.id === alert.template);
      const when = alert.sent || alert.requested_at || "";
      const ahead = sentAt(alert) > now;
      return el("tr", { "data-alert": alert.alert_id, "data-mode": alert.mode, "data-ahead": ahead ? "true" : null,
        class: state.alert && state.alert.alert_id === alert.alert_id ? "current" : null },
      cell("history.id", {}, el("code", { dir: "ltr", text: alert.alert_id })),
      cell("history.template", {}, tpl && tpl.title ? `${tpl.title[state.lang]} ` : "", el("span", { class: "muted",
        dir: "ltr", text: `(${alert.template})` })),
      cell("history.mode", {}, el("span", { class: `mode-tag m-${alert.mode}`, text: MODE_TAG[alert.mode] || alert.mode })),
      cell("history.type", { text: (t("msgTypes") || {})[alert.msg_type] || alert.msg_type || "" }),
      cell("history.sent", {}, el("time", { datetime: when, text: W.dateTime(state.lang, when) }),
        ahead ? el("small", { class: "muted ahead", text: ` · ${t("history.ahead")}` }) : null),
      cell("history.counts", { text: alert.state && alert.state !== "done" && alert.state !== "sending"
        ? (t("states")[alert.state] || alert.state) : countsText(alert.counts, alert.mode) }),
      el("td", { class: "open" }, el("button", { type: "button", class: "btn btn-quiet", text: t("history.open"),
        "aria-label": `${t("history.open")} ${W.ltr(alert.alert_id)}`,
        onclick: () => showAlert(alert) })));
    });
    $("history-body").replaceChildren(...rows);
    $("history-empty").hidden = rows.length > 0;
  }

  // ---------------------------------------------------------------- runbook rehearsal

  async function loadRunbooks() {
    try {
      state.runbooks = await api("GET", "/api/runbooks");
    } catch (error) {
      if (error.status !== 401) showError(error, "runbook-error");
      return;
    }
    renderRunbooks();
  }

  const runbookTitle = (rb) => (rb.name ? `${rb.name.ar} · ${rb.name.en} (${rb.id})`
    : `${rb.id} — ${t("runbooks.broken")}`);

  function selectedRunbook() {
    return state.runbooks.find((rb) => rb.id === $("runbook").value) || null;
  }

  /** The picker, the selected runbook's inputs (prefilled with its examples) and the timeline. */
  function renderRunbooks() {
    const select = $("runbook");
    const current = select.value;
    const values = readRunbookInputs(); // what the operator typed survives a language switch
    select.replaceChildren(...state.runbooks.map((rb) => (rb.name ? option(rb.id, rb.name[state.lang], rb.id,
      runbookTitle(rb)) : option(rb.id, `${W.ltr(rb.id)} — ${t("runbooks.broken")}`, "", runbookTitle(rb)))));
    if (current && state.runbooks.some((rb) => rb.id === current)) select.value = current;
    buildRunbookInputs(select.value === current ? values : null);
    renderTimeline();
  }

  function buildRunbookInputs(values) {
    const rb = selectedRunbook();
    const form = $("runbook-inputs");
    const info = $("runbook-info");
    if (!rb) {
      info.textContent = state.runbooks.length ? "" : t("runbooks.none");
      form.replaceChildren();
      renderRehearseButton();
      return;
    }
    info.textContent = rb.error ? rb.error : `${t("runbooks.steps", rb.steps)} · ${rb.description || ""}`;
    form.replaceChildren(...(rb.inputs || []).map((input) => {
      const wrap = el("div", { class: "field", "data-input": input.name });
      const raw = values ? values[input.name] : undefined;
      const given = raw === undefined ? (input.example || {}) : (typeof raw === "string" ? { ar: raw, en: raw } : raw);
      const hint = el("span", { class: "meta", text: input.description || "" });
      if (input.type !== "datetime" && input.example && input.example.ar !== input.example.en) {
        const pair = el("div", { class: "pair", role: "group", "aria-labelledby": `rbi-${input.name}-label` },
          ["ar", "en"].map((lang) => el("div", {},
            el("label", { for: `rbi-${input.name}-${lang}`, dir: "ltr", text: lang }),
            el("input", { id: `rbi-${input.name}-${lang}`, type: "text", lang, dir: dirOf(lang),
              "data-rb-input": input.name, "data-lang": lang, value: given[lang] || "" }))));
        wrap.append(el("span", { class: "field-label", id: `rbi-${input.name}-label` }, input.name, hint), pair);
      } else {
        const value = given.en || given.ar || "";
        wrap.append(el("label", { for: `rbi-${input.name}` }, input.name, hint),
          el("input", { id: `rbi-${input.name}`, type: "text", dir: dirOf(langOf(value)), "data-rb-input": input.name,
            value }));
      }
      return wrap;
    }));
    renderRehearseButton();
  }

  /** {name: "value"} or {name: {ar, en}}: the body the API takes. */
  function readRunbookInputs() {
    const inputs = {};
    for (const field of document.querySelectorAll("#runbook-inputs [data-rb-input]")) {
      const name = field.dataset.rbInput;
      if (field.dataset.lang) {
        inputs[name] = { ...(typeof inputs[name] === "object" ? inputs[name] : {}), [field.dataset.lang]: field.value };
      } else {
        inputs[name] = field.value;
      }
    }
    return inputs;
  }

  function renderRehearseButton() {
    const button = $("rehearse");
    const viewer = state.me && state.me.role === "viewer";
    const rb = selectedRunbook();
    button.disabled = state.rehearsing || viewer || !rb || Boolean(rb.error);
    if (viewer) $("rehearse-status").textContent = t("runbooks.viewer");
  }

  async function rehearse() {
    const rb = selectedRunbook();
    if (!rb || state.rehearsing) return;
    state.rehearsing = true;
    showError(null, "runbook-error");
    $("rehearse-status").textContent = t("runbooks.busy");
    $("timeline").setAttribute("aria-busy", "true");
    renderRehearseButton();
    try {
      state.rehearsal = await api("POST", `/api/runbooks/${encodeURIComponent(rb.id)}/rehearse`,
        { inputs: readRunbookInputs() });
    } catch (error) {
      state.rehearsal = null;
      $("rehearse-status").textContent = "";
      if (error.status !== 401) showError(error, "runbook-error");
    } finally {
      state.rehearsing = false;
      $("timeline").removeAttribute("aria-busy");
      renderRehearseButton();
      renderTimeline();
    }
  }

  const spanText = (seconds) => W.duration(state.lang, seconds);

  function renderTimeline() {
    const list = $("timeline");
    const result = state.rehearsal;
    if (!result || result.runbook !== $("runbook").value) {
      list.replaceChildren();
      return;
    }
    const alerts = result.steps.filter((step) => step.alert_id).length;
    $("rehearse-status").textContent = t("runbooks.done", alerts, W.duration(state.lang, result.span_s, true),
      result.run_id);
    list.replaceChildren(...result.steps.map((step) => el("li", {
      class: `tl-step tl-${step.state}`, "data-step": step.step, "data-occurrence": step.occurrence,
    },
    el("div", { class: "tl-head" },
      el("time", { datetime: step.time, text: `+${spanText(step.offset_s)} · ${W.dateTime(state.lang, step.time)}` }),
      el("strong", { dir: "ltr", text: `${step.step} #${step.occurrence}` }),
      el("span", { dir: "ltr", text: step.action }),
      step.msg_type ? el("span", { class: "kind", dir: "ltr", text: step.msg_type }) : null,
      el("span", { class: `chip${step.state === "failed" ? " bad" : ""}`, text: t("states")[step.state] || step.state }),
      step.confirm ? el("span", { class: "chip", text: t("runbooks.auto") }) : null),
    el("p", { class: "muted" }, `${t("runbooks.channels")}: `,
      el("span", { dir: "ltr", text: step.channels.join(", ") || "-" })),
    step.detail && step.state === "failed" ? el("div", { class: "notice", text: step.detail }) : null,
    // Each step's first occurrence open; repeats (updates) folded, so the timeline stays readable.
    step.messages.length ? el("details", { class: "tl-messages", open: step.occurrence === 0 },
      el("summary", { text: W.count(state.lang, "message", step.messages.length) }),
      el("div", { class: "preview-list" }, step.messages.map(messageCard))) : null,
    step.warnings.length ? el("ul", { class: "tl-warnings", "aria-label": t("runbooks.warnings") },
      step.warnings.map((w) => el("li", { dir: "ltr", text: w }))) : null)));
    if (result.warnings.length) {
      list.append(el("li", { class: "tl-warnings" }, el("strong", { text: t("runbooks.warnings") }),
        el("ul", {}, result.warnings.map((w) => el("li", { dir: "ltr", text: w })))));
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    applyLang();
    $("lang-toggle").addEventListener("click", toggleLang);
    $("logout").addEventListener("click", () => signOut());
    $("login-form").addEventListener("submit", signIn);
    $("template").addEventListener("change", (event) => selectTemplate(event.target.value));
    $("fill-examples").addEventListener("click", fillExamples);
    const touched = (event) => {
      if (event.target.dataset) event.target.dataset.touched = "1";
      onFormChange();
    };
    $("vars-form").addEventListener("input", touched);
    $("vars-form").addEventListener("change", touched);
    $("vars-form").addEventListener("submit", (event) => event.preventDefault());
    $("targets").addEventListener("change", onFormChange);
    for (const radio of document.querySelectorAll('input[name="mode"]')) {
      radio.addEventListener("change", () => {
        setMode(radio.value);
        onFormChange();
      });
    }
    $("preview-btn").addEventListener("click", () => {
      state.preview = null;
      runPreview();
    });
    $("confirm").addEventListener("input", renderFire);
    $("fire").addEventListener("click", fire);
    $("cancel-confirm").addEventListener("input", renderProgress);
    $("cancel-alert").addEventListener("click", cancelAlert);
    $("confirm-second").addEventListener("click", confirmSecond);
    $("open-report").addEventListener("click", openReport);
    $("review-confirm").addEventListener("input", renderProgress);
    $("history-refresh").addEventListener("click", loadHistory);
    $("history-all").addEventListener("change", (event) => {
      state.historyAll = event.target.checked;
      loadHistory();
    });
    $("runbook").addEventListener("change", () => buildRunbookInputs(null));
    $("runbook-inputs").addEventListener("submit", (event) => event.preventDefault());
    $("rehearse").addEventListener("click", rehearse);
    if (state.token) openConsole();
    else signOut();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
