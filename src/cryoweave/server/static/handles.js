// Output handles: the draggable chips for output groups and their results. They appear on job
// cards and in the outputs tab; the builder's inputs accept them.
import { get, jobPath, attempt } from "./api.js";
import { h, formatCount } from "./dom.js";
import { makeDraggable } from "./dnd.js";

// Which group handles are expanded, by address, so re-rendering after a poll keeps them open.
const expanded = new Set();

// Job details fetched to list a group's results on a card, keyed by "P/J" and updated_at.
const detailCache = new Map();

export async function jobDetail(project, uid, updatedAt) {
  const key = `${project}/${uid}`;
  const hit = detailCache.get(key);
  if (hit && updatedAt && hit.updatedAt === updatedAt) return hit.detail;
  const detail = await get(jobPath(project, uid));
  detailCache.set(key, { updatedAt: detail.updated_at, detail });
  return detail;
}

/** The address a result handle drags: `J1.particles.blob`, or with `.3` when a version is picked. */
export function resultAddress(base, version) {
  return version === undefined || version === null || version === "" || version === "F"
    ? base : `${base}.${version}`;
}

/**
 * A result handle: `output-result-J1.particles.blob`, draggable, carrying its address (and the
 * version picked in `versionOf()`, when given) in `data-address`.
 */
export function resultHandle(result, { showAddress = false, versionOf = null } = {}) {
  const base = result.address;
  // The handle's text is only its name or address (the datatype and the passthrough mark are
  // drawn by CSS from data-label), so what it reads is exactly what a drop will connect.
  const label = h("span.handle-name", {}, showAddress ? base : result.name);
  const el = h(`div.handle.result-handle${result.passthrough ? ".passthrough" : ""}`, {
    testid: `output-result-${base}`,
    dataset: { address: base, label: result.passthrough ? `${result.dtype} · passthrough` : result.dtype },
    title: `${base} (${result.dtype}${result.passthrough ? ", passed through from an input" : ""}) — drag onto a matching input slot`,
  }, label);
  // Keep the label and data-address in step with the version select.
  el.setVersion = (version) => {
    const address = resultAddress(base, version);
    el.dataset.address = address;
    if (showAddress) label.textContent = address;
  };
  makeDraggable(el, () => ({
    kind: "result",
    address: el.dataset.address,
    dtype: result.dtype,
    name: result.name,
    version: versionOf ? versionOf() : "F",
  }));
  return el;
}

/**
 * A group handle: `output-group-J1.particles`, draggable, with a small arrow that lists its results.
 * `group` is {name, type, num_items} (the job list) or a full output record (job detail).
 * `loadResults()` gives the group's results when they are not in `group`.
 */
export function groupHandle(uid, group, loadResults) {
  const address = `${uid}.${group.name}`;
  const open = expanded.has(address);
  const results = h("div.handle-results", { hidden: !open });
  const arrow = h("button.arrow", {
    title: "Show the results of this group",
    "aria-expanded": String(open),
    testid: `expand-${address}`,
  }, open ? "▾" : "▸");
  const head = h("div.handle.group-handle", {
    testid: `output-group-${address}`,
    dataset: { address },
    title: `${address} (${group.type}) — drag onto a matching input`,
  },
  arrow,
  h("span.handle-name", {}, group.name),
  h("span.dtype", {}, group.type),
  h("span.count", {}, group.num_items === null || group.num_items === undefined ? "" : formatCount(group.num_items)),
  );
  makeDraggable(head, () => ({ kind: "group", address, type: group.type, name: group.name }));

  async function fill() {
    // The job list names results only; their datatypes come from the job's detail.
    const full = Array.isArray(group.results) && group.results.every((r) => typeof r === "object");
    const list = (full ? group.results : await attempt(loadResults)) || [];
    results.replaceChildren(...list.map((r) => resultHandle(r)));
    if (!list.length) results.append(h("div.muted.small", {}, "no results"));
  }
  arrow.addEventListener("click", (event) => {
    event.stopPropagation();
    const nowOpen = results.hidden;
    results.hidden = !nowOpen;
    arrow.textContent = nowOpen ? "▾" : "▸";
    arrow.setAttribute("aria-expanded", String(nowOpen));
    if (nowOpen) { expanded.add(address); fill(); } else expanded.delete(address);
  });
  if (open) fill();
  // Clicking a handle must not open the card it sits on.
  head.addEventListener("click", (event) => event.stopPropagation());
  results.addEventListener("click", (event) => event.stopPropagation());
  return h("div.group-box", {}, head, results);
}
