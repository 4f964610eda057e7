// Small DOM helpers. Every piece of data goes in through textContent or attributes, never innerHTML.

/**
 * h("div.card", {dataset: {testid: "x"}, onclick: fn}, "text", child)
 * The tag may carry classes after dots. Props: attributes, `on*` handlers, `dataset`, `class`,
 * `testid` (shorthand for data-testid). Children: nodes, strings (as text), arrays, null/false (skipped).
 */
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") el.dataset.testid = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.classList.add(...String(value).split(" ").filter(Boolean));
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatCount(n) {
  if (n === null || n === undefined) return "";
  return Number(n).toLocaleString("en-US");
}

/** "1 item", "1,000 items": a count with its noun, singular or plural. */
export function plural(n, word, words = `${word}s`) {
  return `${formatCount(n ?? 0)} ${Number(n) === 1 ? word : words}`;
}

/** A colored status label; its text is exactly the status so tests can compare it. */
export function statusBadge(status, testid) {
  return h(`span.status.status-${status}`, { testid }, status);
}

export const FINISHED = new Set(["completed", "killed", "failed", "building"]);
export const ACTIVE = new Set(["queued", "launched", "started", "running", "waiting"]);
