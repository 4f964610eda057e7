// The job builder: a panel on the right for a job being built. It stays open while the user
// browses cards or another job's outputs, so output handles can be dragged onto its inputs.
import { get, post, put, del, patch, jobPath, attempt, showNotice, allows, projectAccess } from "./api.js";
import { h, mount, statusBadge } from "./dom.js";
import { dragging, makeDropTarget } from "./dnd.js";
import { paramsForm } from "./params.js";

const POLL_MS = 2000;
const STORAGE_KEY = "cryoweave.builder";

const state = { project: null, uid: null, detail: null, signature: "", timer: null, lanes: null };
const listeners = new Set();
const pending = new Set();
const collapsed = new Set(); // connections whose slots the user folded, "input.index"

const panel = () => document.getElementById("builder");

export const builderProject = () => state.project;
export const builderUid = (project) => (state.project === project ? state.uid : null);

/** Call `fn` whenever the builder opens or closes; returns the unsubscribe function. */
export function onBuilderChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed() {
  for (const fn of listeners) fn();
}

export async function openBuilder(project, uid) {
  if (state.project === project && state.uid === uid && state.detail) return;
  stopPolling();
  Object.assign(state, { project, uid, detail: null, signature: "" });
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ project, uid }));
  panel().hidden = false;
  document.body.classList.add("with-builder");
  mount(panel(), h("div.builder.loading", { testid: `builder-${uid}` }, "Loading ", uid, "…"));
  changed();
  await reload(true);
  state.timer = setInterval(() => reload(false).catch(() => {}), POLL_MS);
}

export function closeBuilder() {
  stopPolling();
  const was = state.uid;
  Object.assign(state, { project: null, uid: null, detail: null, signature: "" });
  sessionStorage.removeItem(STORAGE_KEY);
  const el = panel();
  if (el) { el.hidden = true; mount(el); }
  document.body.classList.remove("with-builder");
  if (was) changed();
}

/** After a page reload, reopen the builder of this project if one was open (and may still be used). */
export async function restoreBuilder(project) {
  if (state.uid) return;
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
  } catch { /* nothing saved */ }
  if (!saved || saved.project !== project) return;
  const access = await projectAccess(project).catch(() => null);
  if (!allows(access, "write")) { sessionStorage.removeItem(STORAGE_KEY); return; }
  if (!state.uid) openBuilder(saved.project, saved.uid);
}

// Moving to or from this job's own page hands the status hook over: draw again.
window.addEventListener("hashchange", () => { if (state.detail) render(); });

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

async function reload(force) {
  const { project, uid } = state;
  const detail = await get(jobPath(project, uid)).catch((err) => {
    if (err.status === 404 || err.status === 403) closeBuilder();
    throw err;
  });
  if (state.uid !== uid) return;
  if (detail.status !== "building") {
    // Queued elsewhere, or cloned/cleared from another tab: the builder only builds.
    closeBuilder();
    return;
  }
  const signature = JSON.stringify(detail);
  if (!force && (signature === state.signature || dragging() || typing())) return;
  show(detail);
}

/** The user is in one of the builder's fields: a poll must not redraw under their cursor. */
function typing() {
  const active = document.activeElement;
  return active && panel().contains(active) && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName);
}

function show(detail) {
  state.detail = detail;
  state.signature = JSON.stringify(detail);
  render();
}

/** Apply a job detail answered by a builder action. */
async function act(action) {
  const detail = await attempt(action);
  if (detail && detail.uid === state.uid) show(detail);
  return detail;
}

function render() {
  const { project, detail } = state;
  const uid = detail.uid;
  const base = jobPath(project, uid);
  // On the details page of this same job the overview holds `job-status-J3`.
  const onItsPage = new RegExp(`^#/${project}/${uid}(\\?|$)`).test(location.hash);
  const statusHook = onItsPage ? undefined : `job-status-${uid}`;
  const title = h("input.title-input", { testid: "builder-title", value: detail.title || "", placeholder: "Job title",
    onchange: () => act(() => patch(base, { title: title.value })) });
  mount(panel(), h("div.builder", { testid: `builder-${uid}` },
    h("div.builder-head", {},
      h("a.uid", { href: `#/${project}/${uid}`, title: "Job details" }, uid),
      h("span.type", {}, detail.type),
      statusBadge(detail.status, statusHook),
      h("span.spacer"),
      h("button.link", { testid: "builder-close", title: "Close the builder (the job stays in building)", onclick: closeBuilder }, "×")),
    title,
    h("h3", {}, "Inputs"),
    (detail.inputs || []).length ? detail.inputs.map((input) => inputGroup(base, input))
      : h("p.muted.small", {}, "This job type takes no inputs."),
    h("h3", {}, "Parameters"),
    paramsForm(project, detail, { editable: Boolean(detail.editable ?? true), pending, onSaved: (d) => { state.detail = d; } }),
    queueBar(base, detail)));
}

// ---- inputs ---------------------------------------------------------------------------

/** "1 group, no repeats", "2 or more groups, repeats allowed" from an input's min, max and repeat. */
export function requirementText(input) {
  const { min, max, repeat } = counts(input);
  let count;
  if (max === null || max === undefined) count = `${min} or more groups`;
  else if (min === max) count = `${min} ${min === 1 ? "group" : "groups"}`;
  else count = `${min} to ${max} ${max === 1 ? "group" : "groups"}`;
  return `${count}, ${repeat ? "repeats allowed" : "no repeats"}`;
}

/** An input's group counts (the detail names them count_min/count_max/repeat_allowed). */
function counts(input) {
  return {
    min: input.min ?? input.count_min ?? 0,
    max: input.max ?? input.count_max ?? null,
    repeat: Boolean(input.repeat ?? input.repeat_allowed),
  };
}

function inputGroup(base, input) {
  const connections = input.connections || [];
  const unmet = input.unmet || [];
  const { max } = counts(input);
  const full = max !== null && connections.length >= max;
  const el = h("div.input-group", { testid: `input-group-${input.name}`, dataset: { type: input.type } },
    h("div.input-head", {},
      h("span.input-name", {}, input.title || input.name),
      h("span.dtype", {}, input.type),
      h("span.spacer"),
      h("span.muted.small", {}, input.name)),
    h(`div.requirements.${unmet.length ? "unmet" : "met"}`, { testid: `input-requirements-${input.name}`, title: unmet.join("; ") },
      requirementText(input)),
    unmet.length ? h("div.unmet-text.small", {}, unmet.join("; ")) : null,
    connections.map((c) => connectionBox(base, input, c)),
    h("div.drop-hint.small", {}, `Drop ${full && max === 1 ? "another" : "a"} ${input.type} output group here`));
  makeDropTarget(el, (payload) => payload.kind === "group" && payload.type === input.type, async (payload) => {
    // A one-group input takes the dropped group in place of the one it has.
    if (full && max === 1) {
      const cleared = await act(() => del(`${base}/inputs/${enc(input.name)}/connections/${connections[0].index}`));
      if (!cleared) return;
    }
    await act(() => post(`${base}/inputs/${enc(input.name)}/connections`, { source: payload.address }));
  });
  return el;
}

const enc = encodeURIComponent;

function connectionBox(base, input, connection) {
  const key = `${input.name}.${connection.index}`;
  const open = !collapsed.has(key);
  const path = `${base}/inputs/${enc(input.name)}/connections/${connection.index}`;
  const slots = h("div.slots", { hidden: !open }, (connection.slots || []).map((s) => slotRow(path, input, connection, s)));
  const arrow = h("button.arrow", { title: "Show the slots", "aria-expanded": String(open), onclick: () => {
    slots.hidden = !slots.hidden;
    arrow.textContent = slots.hidden ? "▸" : "▾";
    if (slots.hidden) collapsed.add(key); else collapsed.delete(key);
  } }, open ? "▾" : "▸");
  return h("div.connection", { testid: `connection-${key}` },
    h("div.connection-head", {},
      arrow,
      h("span.address", {}, connection.source),
      h("span.spacer"),
      h("button.link.danger", { testid: `connection-remove-${key}`, title: "Remove this group from the input",
        onclick: () => act(() => del(path)) }, "Remove")),
    slots,
    (connection.passthrough || []).length
      ? h("div.passthrough-list.small.muted", {}, "passthrough: ", connection.passthrough.join(", ")) : null);
}

function slotRow(path, input, connection, slot) {
  const spec = (input.slots || []).find((s) => s.name === slot.slot);
  const key = `${input.name}.${connection.index}.${slot.slot}`;
  const changedSlot = slot.override || slot.cleared;
  const row = h(`div.slot${slot.override ? ".override" : ""}${slot.cleared ? ".cleared" : ""}`, {},
    h("span.slot-name", {}, slot.slot, (slot.required ?? (spec && spec.required)) ? h("span.required", { title: "required" }, "*") : null),
    h("span.slot-main", {},
      h("span.slot-bound", { testid: `slot-${key}`, title: slot.override ? "overridden by a dropped result" : "" }, slot.bound || "—"),
      slot.override ? h("span.tag.override-tag", {}, "override") : null,
      slot.cleared ? h("span.tag", {}, "cleared") : null),
    h("span.slot-actions", {},
      changedSlot ? h("button.link.small", { testid: `slot-reset-${key}`, title: "Bind to the connection's group again",
        onclick: () => act(() => post(`${path}/slots/${enc(slot.slot)}/reset`)) }, "reset") : null,
      slot.bound ? h("button.link.small.danger", { testid: `slot-clear-${key}`, title: "Leave this slot empty",
        onclick: () => act(() => del(`${path}/slots/${enc(slot.slot)}`)) }, "clear") : null));
  // A slot takes a single result of its datatype (or, with no datatype known, of its name).
  const dtype = slot.dtype || (spec && spec.dtype);
  const fits = (payload) => payload.kind === "result" && (dtype ? payload.dtype === dtype : payload.name === slot.slot);
  makeDropTarget(row, fits, (payload) => act(() => put(`${path}/slots/${enc(slot.slot)}`, { source: payload.address })));
  return row;
}

// ---- queue ----------------------------------------------------------------------------

function queueBar(base, detail) {
  const lane = h("select", { testid: "queue-lane", title: "Lane" });
  const fill = (lanes) => lane.replaceChildren(...lanes.map((l) => h("option", { value: l.name }, l.title || l.name)));
  if (state.lanes) fill(state.lanes);
  else get("api/lanes").then((lanes) => { state.lanes = lanes; fill(lanes); }).catch(() => {});
  const requirements = detail.requirements || [];
  return h("div.queue-bar", {},
    requirements.length ? h("ul.requirements-list.small", {}, requirements.map((r) => h("li", {}, r))) : null,
    h("div.queue-row", {},
      h("label.small", {}, "Lane ", lane),
      h("button.primary", { testid: `queue-${detail.uid}`, onclick: () => queue(base, lane.value) }, "Queue")));
}

async function queue(base, lane) {
  // Send what is typed in the params first, then wait for every save in flight.
  for (const row of panel().querySelectorAll(".param-flushable")) row.flush();
  await Promise.allSettled([...pending]);
  const body = lane ? { lane } : {};
  const uid = state.uid;
  const detail = await attempt(() => post(`${base}/queue`, body));
  if (!detail) return;
  closeBuilder();
  showNotice(`${uid} queued${lane ? ` on ${lane}` : ""}`);
}
