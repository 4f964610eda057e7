// The parameters form of the builder: one field per parameter, saved on change (and shortly
// after typing stops), with the server's validation error shown beside the field.
import { put, jobPath, showError, ApiError } from "./api.js";
import { h } from "./dom.js";

const DEBOUNCE_MS = 700;

/** Read a field's value as the API wants it: numbers as numbers, an empty field as null (the default). */
function fieldValue(param, input) {
  if (param.type === "boolean") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return null;
  if (param.type === "integer" || param.type === "number") {
    const n = Number(raw);
    // A non-number goes as typed: the server names the parameter in its 400.
    return Number.isFinite(n) ? n : raw;
  }
  return raw;
}

function showValue(param) {
  const v = param.value ?? param.default;
  return v === null || v === undefined ? "" : String(v);
}

function paramInput(param, disabled) {
  const testid = `param-${param.name}`;
  const help = param.help || "";
  if (param.type === "boolean") {
    return h("input", { type: "checkbox", testid, title: help, checked: Boolean(param.value ?? param.default), disabled });
  }
  if (param.choices && param.choices.length) {
    const current = showValue(param);
    return h("select", { testid, title: help, disabled },
      param.value === null && param.default === null ? h("option", { value: "" }, "(none)") : null,
      param.choices.map((c) => h("option", { value: String(c), selected: String(c) === current }, String(c))));
  }
  const placeholder = param.default === null || param.default === undefined ? "(none)" : String(param.default);
  return h("input", { type: "text", testid, title: help, value: showValue(param),
    placeholder, disabled, spellcheck: "false", inputmode: param.type === "integer" || param.type === "number" ? "decimal" : null });
}

/**
 * The form for a job detail's params. `pending` (a Set) holds unfinished saves so the queue
 * button can wait for them; `onSaved(detail)` gets the job detail the server answers.
 */
export function paramsForm(project, detail, { editable, pending, onSaved }) {
  const sections = new Map();
  for (const p of detail.params || []) {
    const key = p.section || "";
    if (!sections.has(key)) sections.set(key, []);
    sections.get(key).push(p);
  }
  return h("div.params", {}, [...sections.entries()].map(([section, params]) => h("div.param-section", {},
    section ? h("h4", {}, section) : null,
    params.map((p) => paramRow(project, detail.uid, p, { editable, pending, onSaved })))));
}

function paramRow(project, uid, param, { editable, pending, onSaved }) {
  const input = paramInput(param, !editable);
  const error = h("div.param-error", { testid: `param-error-${param.name}`, hidden: true });
  const row = h(`div.param-row${param.set ? ".set" : ""}`, { title: param.help || "" },
    h("label.param-label", { for: `p-${param.name}` }, param.title || param.name,
      param.title && param.title !== param.name ? h("span.param-name", {}, param.name) : null),
    input,
    editable && param.set ? h("button.link.small", { title: "Back to the default", testid: `param-reset-${param.name}`,
      onclick: () => save(null) }, "↺") : h("span"),
    param.help ? h("div.param-help", {}, param.help) : null,
    error);
  input.id = `p-${param.name}`;

  let timer = null;
  let lastSent = JSON.stringify(fieldValue(param, input));
  async function save(forced) {
    clearTimeout(timer);
    const value = forced === undefined ? fieldValue(param, input) : forced;
    const sent = JSON.stringify(value);
    if (forced === undefined && sent === lastSent) return;
    lastSent = sent;
    const job = put(`${jobPath(project, uid)}/params`, { [param.name]: value });
    pending.add(job);
    try {
      const answer = await job;
      error.hidden = true;
      error.textContent = "";
      row.classList.remove("invalid");
      const now = (answer.params || []).find((p) => p.name === param.name);
      row.classList.toggle("set", Boolean(now && now.set));
      if (forced !== undefined) input.value = now ? showValue(now) : "";
      onSaved(answer);
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.detail : String(err);
      error.hidden = false;
      row.classList.add("invalid");
      showError(err);
    } finally {
      pending.delete(job);
    }
  }
  input.addEventListener("change", () => save());
  if (input.type === "text") {
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => save(), DEBOUNCE_MS); });
    input.addEventListener("keydown", (event) => { if (event.key === "Enter") save(); });
  }
  // The queue button asks every row to send what is typed but not yet saved.
  row.flush = () => save();
  row.classList.add("param-flushable");
  return row;
}
