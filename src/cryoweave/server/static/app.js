// cryoweave's web interface: the hash router, the top bar, login and the projects list.
// Views live in their own modules; each returns a function that stops its polling.
import { api, get, post, session, showError, clearMessages, attempt } from "./api.js";
import { h, mount, formatBytes, plural } from "./dom.js";
import { renderProject } from "./project.js";
import { renderJob } from "./job.js";
import { renderData } from "./datapage.js";
import { renderAdmin } from "./admin.js";
import { builderProject, closeBuilder, restoreBuilder } from "./builder.js";

const view = () => document.getElementById("view");
let stopView = null;

/** `#/P1/J3?tab=outputs` → {parts: ["P1", "J3"], query: URLSearchParams} */
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), query: new URLSearchParams(search || "") };
}

async function loadMe() {
  try {
    const me = await get("api/me");
    Object.assign(session, { username: me.username, role: me.role, csrf: me.csrf_token });
    return true;
  } catch {
    return false;
  }
}

function renderTopbar(crumbs) {
  const logged = Boolean(session.username);
  document.getElementById("whoami").textContent = logged ? `${session.username} (${session.role})` : "";
  document.getElementById("logout-button").hidden = !logged;
  document.getElementById("admin-link").hidden = session.role !== "admin";
  mount(document.getElementById("crumbs"), crumbs.map(([text, href], i) => [
    i ? h("span.sep", {}, "/") : null,
    href ? h("a", { href }, text) : h("span", {}, text),
  ]));
}

async function route() {
  if (stopView) { stopView(); stopView = null; }
  clearMessages();
  const { parts, query } = parseHash();
  if (parts[0] !== "login" && !session.username && !(await loadMe())) {
    location.hash = "#/login";
    return;
  }
  const project = /^P\d+$/.test(parts[0] || "") ? parts[0] : null;
  if (builderProject() && builderProject() !== project) closeBuilder();
  const el = view();
  el.className = "";
  try {
    if (parts[0] === "login") {
      renderTopbar([]);
      renderLogin(el);
    } else if (parts[0] === "admin") {
      renderTopbar([["Projects", "#/projects"], ["Admin"]]);
      stopView = await renderAdmin(el);
    } else if (project && parts[1] === "data") {
      renderTopbar([["Projects", "#/projects"], [project, `#/${project}`], ["Data"]]);
      stopView = await renderData(el, project);
    } else if (project && /^J\d+$/.test(parts[1] || "")) {
      renderTopbar([["Projects", "#/projects"], [project, `#/${project}`], [parts[1]]]);
      restoreBuilder(project);
      stopView = await renderJob(el, project, parts[1], query);
    } else if (project) {
      renderTopbar([["Projects", "#/projects"], [project]]);
      restoreBuilder(project);
      stopView = await renderProject(el, project, query);
    } else {
      renderTopbar([["Projects"]]);
      stopView = await renderProjects(el);
    }
  } catch (err) {
    showError(err);
  }
}

// ---- login ----------------------------------------------------------------------------

function renderLogin(el) {
  const username = h("input", { testid: "login-username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { testid: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form.login-box", {
    onsubmit: async (event) => {
      event.preventDefault();
      const me = await attempt(() => api("POST", "api/login", { username: username.value, password: password.value }));
      if (!me) return;
      Object.assign(session, { username: me.username, role: me.role, csrf: me.csrf_token });
      location.hash = "#/projects";
    },
  },
  h("h1", {}, "cryo", h("b", {}, "weave")),
  h("label", {}, "Username", username),
  h("label", {}, "Password", password),
  h("button.primary", { testid: "login-submit", type: "submit" }, "Log in"));
  mount(el, h("div.login-page", {}, form));
  el.className = "centered";
  username.focus();
}

async function logout() {
  await attempt(() => post("api/logout"));
  Object.assign(session, { username: null, role: null, csrf: null });
  closeBuilder();
  location.hash = "#/login";
}

// ---- projects -------------------------------------------------------------------------

async function renderProjects(el) {
  const projects = await get("api/projects");
  const title = h("input", { testid: "new-project-title", placeholder: "New project title", required: true });
  const description = h("input", { testid: "new-project-description", placeholder: "Description (optional)" });
  const form = h("form.inline-form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const made = await attempt(() => post("api/projects", { title: title.value, description: description.value }));
      if (made) location.hash = `#/${made.uid}`;
    },
  }, title, description, h("button.primary", { testid: "new-project-submit", type: "submit" }, "Create project"));
  const cards = projects.map((p) => h("a.project-card", { testid: `project-card-${p.uid}`, href: `#/${p.uid}` },
    h("div.card-head", {}, h("span.uid", {}, p.uid), p.archived ? h("span.tag", {}, "archived") : null,
      h("span.access", { title: "your access" }, p.access)),
    h("div.card-title", {}, p.title || "(untitled)"),
    p.description ? h("div.muted.small", {}, p.description) : null,
    h("div.card-meta", {},
      h("span", {}, plural(p.jobs ?? 0, "job")),
      h("span", {}, plural((p.workspaces && p.workspaces.length !== undefined) ? p.workspaces.length : (p.workspaces ?? 0), "workspace")),
      p.size_bytes !== undefined && p.size_bytes !== null ? h("span", {}, formatBytes(p.size_bytes)) : null)));
  mount(el,
    h("div.page-head", {}, h("h2", {}, "Projects"), form),
    session.role === "admin" ? attachForm() : null,
    cards.length ? h("div.card-grid", {}, cards) : h("p.muted", {}, "No projects yet: create one above."));
  return null;
}

/** Admins attach a project directory lying on the server (moved, copied, or from another instance). */
function attachForm() {
  const directory = h("input.wide", { testid: "attach-directory", placeholder: "/path/to/a/project/directory on the server",
    required: true });
  const takeOver = h("input", { type: "checkbox", testid: "attach-take-over" });
  return h("form.inline-form.attach-form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const made = await attempt(() => post("api/projects/attach", { directory: directory.value, take_over: takeOver.checked }));
      if (made) location.hash = `#/${made.uid}`;
    },
  }, h("span.muted", {}, "Attach a project directory"), directory,
    h("label.small", { title: "The directory's lock names another instance: a copy, or that instance is gone" },
      takeOver, " take over"),
    h("button", { testid: "attach-submit", type: "submit" }, "Attach"));
}

// ---- start ----------------------------------------------------------------------------

document.getElementById("logout-button").addEventListener("click", logout);
window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => showError(event.reason));
if (!location.hash) location.hash = "#/projects";
route();
