// The project page: jobs as cards, a tree or a table, filters and sorting, the workspace
// selector and the "new job" picker. The job list is polled every 2 s.
import { get, post, qs, projectPath, attempt, allows, rememberAccess } from "./api.js";
import { h, mount, formatTime, formatCount, statusBadge } from "./dom.js";
import { dragging } from "./dnd.js";
import { groupHandle, jobDetail } from "./handles.js";
import { openBuilder, builderUid, onBuilderChange } from "./builder.js";
import { drawTree } from "./tree.js";

const POLL_MS = 2000;
const STATUSES = ["building", "queued", "launched", "started", "running", "waiting", "completed", "killed", "failed"];

// Filters and sorting per project, kept while the user moves between pages.
const filtersByProject = new Map();
let jobTypesCache = null;

async function jobTypes() {
  if (!jobTypesCache) jobTypesCache = await get("api/job-types");
  return jobTypesCache;
}

export async function renderProject(el, project, query) {
  const mode = ["tree", "table"].includes(query.get("view")) ? query.get("view") : "cards";
  if (!filtersByProject.has(project)) filtersByProject.set(project, { workspace: "", type: "", status: "", tag: "", sort: "uid", desc: "" });
  const filters = filtersByProject.get(project);
  const [info, types] = await Promise.all([get(projectPath(project)), jobTypes()]);
  rememberAccess(project, info.access);
  // Read access: the page shows everything but offers nothing that changes the project.
  const writer = allows(info.access, "write");

  const content = h("div.jobs-area", { testid: `jobs-${mode}` });
  let jobs = [];
  let signature = "";

  async function refresh(force = false) {
    const answer = await get(`${projectPath(project)}/jobs${qs(filters)}`);
    const next = JSON.stringify(answer.jobs);
    // Re-render only when something changed, and never under a drag in progress.
    if (!force && (next === signature || dragging())) return;
    signature = next;
    jobs = answer.jobs;
    renderJobs();
  }
  function renderJobs() {
    if (mode === "tree") drawTree(content, project, jobs, openJob);
    else if (mode === "table") mount(content, h("div.table-scroll", {}, jobTable(project, jobs, filters, openJob, () => refresh(true))));
    else mount(content, jobs.length ? h("div.card-grid.jobs", {}, jobs.map((j) => jobCard(project, j, openJob)))
      : h("p.muted", {}, "No jobs here yet: pick a job type above and press New job."));
  }
  function openJob(job) {
    if (job.status === "building" && writer) openBuilder(project, job.uid);
    else location.hash = `#/${project}/${job.uid}`;
  }

  const toolbar = projectToolbar(project, info, types, filters, mode, writer, () => refresh(true));
  mount(el,
    h("div.page-head", {},
      h("h2", {}, h("span.uid", {}, info.uid), " ", info.title || ""),
      info.archived ? h("span.tag", {}, "archived") : null,
      writer ? null : h("span.tag.read-only", { testid: "read-only", title: `you have ${info.access} access: ask an owner for write access to change this project` }, "read only"),
      h("span.spacer"),
      h("span.muted.small", { title: info.directory }, info.directory || ""),
      h("a.button", { href: `#/${project}/data`, testid: "data-page", title: "Storage, clearing, export and the project's members" }, "Data & members")),
    info.description ? h("p.muted", {}, info.description) : null,
    toolbar, content);

  await refresh(true);
  const timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  // The card of the job in the builder drops its status hook (the builder shows it): redraw.
  const unlisten = onBuilderChange(() => renderJobs());
  return () => { clearInterval(timer); unlisten(); };
}

function projectToolbar(project, info, types, filters, mode, writer, refresh) {
  const viewLink = (name, label) => h(`a.seg${mode === name ? ".active" : ""}`, {
    testid: `view-${name}`, href: name === "cards" ? `#/${project}` : `#/${project}?view=${name}`,
  }, label);

  const workspace = h("select", { testid: "workspace-select", title: "Workspace",
    onchange: () => { filters.workspace = workspace.value; refresh(); } },
  h("option", { value: "" }, "All workspaces"),
  (info.workspaces || []).map((w) => h("option", { value: w.uid, selected: w.uid === filters.workspace }, `${w.uid} ${w.title || ""}`)));
  const newWsTitle = h("input.narrow", { testid: "new-workspace-title", placeholder: "New workspace" });
  const newWs = h("form.inline-form", { onsubmit: async (event) => {
    event.preventDefault();
    const made = await attempt(() => post(`${projectPath(project)}/workspaces`, { title: newWsTitle.value }));
    if (made) { filters.workspace = made.uid; location.reload(); }
  } }, newWsTitle, h("button.small", { type: "submit", title: "Create a workspace" }, "+"));

  const typeFilter = h("select", { testid: "filter-type", onchange: () => { filters.type = typeFilter.value; refresh(); } },
    h("option", { value: "" }, "Any type"),
    types.map((t) => h("option", { value: t.name, selected: t.name === filters.type }, t.title || t.name)));
  const statusFilter = h("select", { testid: "filter-status", onchange: () => { filters.status = statusFilter.value; refresh(); } },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const tagFilter = h("input.narrow", { testid: "filter-tag", placeholder: "Tag", value: filters.tag,
    oninput: () => { filters.tag = tagFilter.value.trim(); refresh(); } });

  const newType = h("select", { testid: "new-job-type" }, jobTypeOptions(types));
  const newJob = h("button.primary", { testid: "new-job-submit", onclick: async () => {
    const body = { type: newType.value };
    if (filters.workspace) body.workspace = filters.workspace;
    const job = await attempt(() => post(`${projectPath(project)}/jobs`, body));
    if (!job) return;
    openBuilder(project, job.uid);
    refresh();
  } }, "New job");

  return h("div.toolbar", {},
    h("div.segmented", {}, viewLink("cards", "Cards"), viewLink("tree", "Tree"), viewLink("table", "Table")),
    workspace, writer ? newWs : null,
    h("span.divider"), typeFilter, statusFilter, tagFilter,
    h("span.spacer"), writer ? [newType, newJob] : null);
}

/** Job types grouped by category, as CryoSPARC's job builder lists them. */
function jobTypeOptions(types) {
  const byCategory = new Map();
  for (const t of types) {
    if (!byCategory.has(t.category)) byCategory.set(t.category, []);
    byCategory.get(t.category).push(t);
  }
  return [...byCategory.entries()].map(([category, list]) => h("optgroup", { label: category || "other" },
    list.map((t) => h("option", { value: t.name, title: t.description || "" }, t.title || t.name))));
}

// ---- cards ----------------------------------------------------------------------------

export function jobCard(project, job, openJob) {
  const inBuilder = builderUid(project) === job.uid;
  const card = h(`div.job-card.status-edge-${job.status}${inBuilder ? ".in-builder" : ""}`, {
    testid: `job-card-${job.uid}`, tabindex: "0",
    onclick: () => openJob(job),
    onkeydown: (event) => { if (event.key === "Enter") openJob(job); },
  },
  h("div.card-head", {},
    h("a.uid", { href: `#/${project}/${job.uid}`, title: "Job details", onclick: (e) => e.stopPropagation() }, job.uid),
    h("span.type", {}, job.type),
    h("span.spacer"),
    // One `job-status-J3` per page: while the builder shows this job, it holds the hook.
    statusBadge(job.status, inBuilder ? undefined : `job-status-${job.uid}`)),
  job.title ? h("div.card-title", {}, job.title) : null,
  h("div.card-meta", {},
    h("span", { title: "updated" }, formatTime(job.updated_at || job.created_at)),
    (job.tags || []).map((t) => h("span.tag", {}, t)),
    job.parents && job.parents.length ? h("span.muted", { title: "parents" }, `← ${job.parents.join(", ")}`) : null),
  (job.outputs && job.outputs.length)
    ? h("div.card-outputs", {}, job.outputs.map((g) => groupHandle(job.uid, g,
      async () => ((await jobDetail(project, job.uid, job.updated_at)).outputs.find((o) => o.name === g.name) || {}).results || [])))
    : null);
  return card;
}

// ---- table ----------------------------------------------------------------------------

const SORTABLE = { uid: "Job", type: "Type", status: "Status", created_at: "Created", updated_at: "Updated" };

function jobTable(project, jobs, filters, openJob, refresh) {
  const header = (key, label) => {
    if (!SORTABLE[key]) return h("th", {}, label);
    const active = filters.sort === key;
    return h(`th.sortable${active ? ".sorted" : ""}`, {
      testid: `sort-${key}`,
      onclick: () => {
        filters.desc = active && !filters.desc ? "1" : "";
        filters.sort = key;
        refresh();
      },
    }, SORTABLE[key], active ? (filters.desc ? " ▼" : " ▲") : "");
  };
  return h("table.data-table.job-table", {},
    h("thead", {}, h("tr", {},
      header("uid"), header("type"), header("title", "Title"), header("status"), header("tags", "Tags"),
      header("ws", "Workspaces"), header("parents", "Parents"), header("outputs", "Outputs"),
      header("created_at"), header("updated_at"))),
    h("tbody", {}, jobs.map((job) => h("tr", { testid: `table-row-${job.uid}`, onclick: () => openJob(job) },
      h("td", {}, h("a.uid", { href: `#/${project}/${job.uid}`, onclick: (e) => e.stopPropagation() }, job.uid)),
      h("td", {}, job.type),
      h("td", {}, job.title || ""),
      h("td", {}, statusBadge(job.status)),
      h("td", {}, (job.tags || []).map((t) => h("span.tag", {}, t))),
      h("td", {}, (job.workspaces || []).join(", ")),
      h("td", {}, (job.parents || []).join(", ")),
      h("td.small", {}, (job.outputs || []).map((o) => `${o.name} (${formatCount(o.num_items ?? "")})`).join(", ")),
      h("td.nowrap", {}, formatTime(job.created_at)),
      h("td.nowrap", {}, formatTime(job.updated_at))))));
}
