// The HTTP API client: JSON in and out, the CSRF header on every state-changing request,
// 401 sends the user to the login page, and server errors surface as ApiError(detail).
import { h, mount } from "./dom.js";

export const session = { username: null, role: null, csrf: null };

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (!SAFE.has(method) && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `the server could not be reached (${err.message})`);
  }
  if (response.status === 401 && path !== "api/login") {
    session.username = session.csrf = null;
    if (!location.hash.startsWith("#/login")) location.hash = "#/login";
    const err = new ApiError(401, "not logged in");
    err.silent = true; // the login page is the answer; no message needed
    throw err;
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) {
    const detail = (data && data.detail) ? data.detail : `${method} ${path}: HTTP ${response.status}`;
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const put = (path, body) => api("PUT", path, body ?? {});
export const patch = (path, body) => api("PATCH", path, body ?? {});
export const del = (path) => api("DELETE", path);

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

export const projectPath = (p) => `api/projects/${encodeURIComponent(p)}`;
export const jobPath = (p, j) => `${projectPath(p)}/jobs/${encodeURIComponent(j)}`;

// ---- access to a project ------------------------------------------------------------------

const RANK = { read: 1, write: 2, owner: 3 };

/** Whether an access level (`read`, `write`, `owner`) allows what needs `needed`; admins may all. */
export function allows(access, needed) {
  return session.role === "admin" || (RANK[access] || 0) >= RANK[needed];
}

// The caller's access to each project, as the project's detail last said (`{P}` → level).
const accessCache = new Map();

/** Remember the access a project's detail answered (every view that reads it calls this). */
export function rememberAccess(project, access) {
  accessCache.set(`${session.username}/${project}`, access);
}

/** The caller's access to a project: the remembered one, else read from its detail. */
export async function projectAccess(project) {
  const key = `${session.username}/${project}`;
  if (!accessCache.has(key)) rememberAccess(project, (await get(projectPath(project))).access);
  return accessCache.get(key);
}

// ---- the message area -------------------------------------------------------------------

/** Show a server error (or any message) in the visible message area at the top. */
export function showError(err) {
  if (err && err.silent) return;
  const text = err instanceof Error ? (err.detail || err.message) : String(err);
  const box = document.getElementById("messages");
  mount(box, h("div.message.error", { role: "alert" },
    h("span.message-text", { testid: "error" }, text),
    h("button.link", { title: "Dismiss", onclick: clearMessages }, "×")));
  if (!(err instanceof ApiError)) console.error(err);
}

let noticeTimer = null;

/** A short confirmation; it goes away by itself (errors stay until dismissed). */
export function showNotice(text) {
  const box = document.getElementById("messages");
  const note = h("div.message.notice", { testid: "notice" },
    h("span.message-text", {}, text),
    h("button.link", { title: "Dismiss", onclick: clearMessages }, "×"));
  mount(box, note);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => note.remove(), 4000);
}

export function clearMessages() {
  mount(document.getElementById("messages"));
}

/** Run an action; show its error instead of throwing. Returns the result or undefined. */
export async function attempt(action) {
  try {
    return await action();
  } catch (err) {
    showError(err);
    return undefined;
  }
}
