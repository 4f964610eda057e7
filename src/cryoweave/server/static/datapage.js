// The data page of a project: its members (an owner adds, changes and removes them); storage by
// job, type or workspace; clearing intermediate results (a dry run first, listing what would go);
// exporting a job or one output group. Read access shows the members and the storage only.
import { get, put, del, post, projectPath, jobPath, qs, attempt, showNotice, showError, allows, rememberAccess, session } from "./api.js";
import { h, mount, formatBytes, formatCount, plural } from "./dom.js";

const ACCESS_LEVELS = ["read", "write", "owner"];

export async function renderData(el, project) {
  const info = await get(projectPath(project));
  rememberAccess(project, info.access);
  const writer = allows(info.access, "write");
  const storageArea = h("div", { testid: "storage" });
  const by = h("select", { testid: "storage-by", onchange: () => loadStorage() },
    ["job", "type", "workspace"].map((b) => h("option", { value: b }, `by ${b}`)));
  async function loadStorage(refresh = "0") {
    mount(storageArea, h("p.muted", {}, "Measuring…"));
    const answer = await attempt(() => get(`${projectPath(project)}/storage${qs({ by: by.value, refresh })}`));
    if (answer) mount(storageArea, storageTable(answer));
  }

  mount(el,
    h("div.page-head", {}, h("h2", {}, h("span.uid", {}, project), " ", info.title || "", " — data"),
      writer ? null : h("span.tag.read-only", { testid: "read-only" }, "read only"),
      h("span.spacer"), h("a.button", { href: `#/${project}` }, "Back to jobs")),
    membersPanel(project, info),
    h("section.panel", {}, h("div.section-head", {}, h("h3", {}, "Storage"), h("span.spacer"), by,
      h("button.small", { testid: "storage-refresh", onclick: () => loadStorage("1") }, "Measure now")), storageArea),
    writer ? clearingPanel(project, info) : null,
    writer ? await exportPanel(project) : null);
  loadStorage();
  return null;
}

// ---- members ----------------------------------------------------------------------------

/** The project's members; an owner (or an admin) may add one, change their access or remove them. */
function membersPanel(project, info) {
  const panel = h("section.panel", { testid: "members" });
  const base = `${projectPath(project)}/members`;
  let members = info.members || [];
  const owner = allows(info.access, "owner");

  const owners = () => members.filter((m) => m.access === "owner").map((m) => m.username);
  // After a change to one's own access the page changes too (or goes: no access left).
  async function changed(answer, name) {
    if (!answer) return;
    members = answer;
    if (name !== session.username) { draw(); return; }
    const mine = members.find((m) => m.username === name);
    if (!mine && session.role !== "admin") location.hash = "#/projects";
    else window.dispatchEvent(new HashChangeEvent("hashchange")); // draw the page again with the new access
  }
  function setAccess(name, access) {
    // The server lets the last owner step down; the page does not: someone must manage the members.
    const current = members.find((m) => m.username === name);
    if (current && current.access === "owner" && access !== "owner" && owners().length === 1) {
      showError(`${name} is the only owner of ${project}; make someone else owner first`);
      draw();
      return;
    }
    attempt(() => put(`${base}/${encodeURIComponent(name)}`, { access })).then((answer) => changed(answer, name));
  }
  function remove(name) {
    attempt(() => del(`${base}/${encodeURIComponent(name)}`)).then((answer) => changed(answer, name));
  }

  const name = h("input.narrow", { testid: "member-name", placeholder: "user name", autocomplete: "off", required: true });
  const access = h("select", { testid: "member-access", title: "Access to give" },
    ACCESS_LEVELS.map((a) => h("option", { value: a, selected: a === "read" }, a)));
  const form = h("form.inline-form", { onsubmit: async (event) => {
    event.preventDefault();
    const who = name.value.trim();
    if (!who) return;
    const answer = await attempt(() => put(`${base}/${encodeURIComponent(who)}`, { access: access.value }));
    if (answer) { name.value = ""; showNotice(`${who} now has ${access.value} access to ${project}`); }
    changed(answer, who);
  } }, name, access, h("button.primary", { testid: "member-add", type: "submit" }, "Add member"));

  function row(m) {
    const level = owner
      ? h("select", { testid: `member-access-${m.username}`, title: `${m.username}'s access`,
        onchange: (event) => setAccess(m.username, event.target.value) },
      ACCESS_LEVELS.map((a) => h("option", { value: a, selected: a === m.access }, a)))
      : h("span", {}, m.access);
    return h("tr", { testid: `member-${m.username}` },
      h("td", {}, m.username, m.username === session.username ? h("span.muted.small", {}, " (you)") : null),
      h("td", {}, level),
      owner ? h("td", {}, h("button.link.small.danger", { testid: `member-remove-${m.username}`,
        title: `Take ${m.username}'s access to ${project} away`, onclick: () => remove(m.username) }, "remove")) : null);
  }
  function draw() {
    mount(panel,
      h("div.section-head", {}, h("h3", {}, "Members"), h("span.spacer"),
        h("span.muted.small", {}, `your access: ${info.access}${session.role === "admin" ? " (admin)" : ""}`)),
      members.length
        ? h("table.data-table.members-table", { testid: "members-list" },
          h("thead", {}, h("tr", {}, h("th", {}, "User"), h("th", {}, "Access"), owner ? h("th", {}, "") : null)),
          h("tbody", {}, members.map(row)))
        : h("p.muted", { testid: "members-list" }, "No members: only admins see this project."),
      owner ? form : h("p.small.muted", {}, "Only an owner of the project manages its members."));
  }
  draw();
  return panel;
}

// ---- storage ------------------------------------------------------------------------------

function storageTable(answer) {
  const rows = answer.rows || [];
  // Besides key, title and bytes the rows carry figures that depend on the grouping: show them all.
  const extra = [...new Set(rows.flatMap((r) => Object.keys(r)))]
    .filter((k) => !["key", "title", "bytes"].includes(k) && rows.some((r) => ["number", "string"].includes(typeof r[k])));
  const cell = (k, v) => (typeof v === "number" && /bytes/.test(k) ? formatBytes(v) : (typeof v === "number" ? formatCount(v) : v ?? ""));
  return h("div", {},
    h("p", {}, "Total ", h("b", { testid: "storage-total" }, formatBytes(answer.total_bytes)),
      answer.stale ? h("span.tag", { title: "some figures are from the cache and being refreshed" }, "stale") : null),
    h("div.table-scroll", {}, h("table.data-table.storage-table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Title"), h("th.num", {}, "Size"), extra.map((k) => h("th", {}, k.replace(/_/g, " "))))),
      h("tbody", {}, rows.map((r) => h("tr", { testid: `storage-row-${r.key}` },
        h("td", {}, String(r.key ?? "")), h("td", {}, r.title ?? ""), h("td.num", {}, formatBytes(r.bytes)),
        extra.map((k) => h("td", {}, String(cell(k, r[k]))))))))));
}

function clearingPanel(project, info) {
  const result = h("div", { testid: "clear-intermediate-result" });
  const workspace = h("select", {}, h("option", { value: "" }, "whole project"),
    (info.workspaces || []).map((w) => h("option", { value: w.uid }, `${w.uid} ${w.title || ""}`)));
  const body = () => (workspace.value ? { workspace: workspace.value } : {});
  async function dryRun() {
    const answer = await attempt(() => post(`${projectPath(project)}/clear-intermediate`, { dry_run: true, ...body() }));
    if (!answer) return;
    const jobs = answer.jobs || [];
    mount(result,
      h("p", {}, jobs.length ? `Would free ${formatBytes(answer.bytes)} in ${plural(jobs.length, "job")}:` : "Nothing to clear: no intermediate results."),
      jobs.length ? h("table.data-table", {}, h("thead", {}, h("tr", {}, ["Job", "Type", "Files", "Size"].map((t) => h("th", {}, t)))),
        h("tbody", {}, jobs.map((j) => h("tr", {}, h("td", {}, j.job), h("td", {}, j.type),
          h("td.small", {}, (j.files || []).map((f) => h("div", {}, h("code", {}, f)))), h("td.num", {}, formatBytes(j.bytes)))))) : null,
      jobs.length ? h("button.danger", { testid: "clear-intermediate-confirm", onclick: async () => {
        const done = await attempt(() => post(`${projectPath(project)}/clear-intermediate`, { dry_run: false, confirm: true, ...body() }));
        if (done) { showNotice(`Cleared ${formatBytes(done.bytes)}`); mount(result); }
      } }, "Delete these files") : null);
  }
  return h("section.panel", {}, h("div.section-head", {}, h("h3", {}, "Clear intermediate results"), h("span.spacer"),
    workspace, h("button", { testid: "clear-intermediate-dry-run", onclick: dryRun }, "List (dry run)")),
  h("p.small.muted", {}, "Older versions of outputs that no job uses. Nothing is deleted until you confirm the list."),
  result);
}

async function exportPanel(project) {
  const { jobs } = await get(`${projectPath(project)}/jobs`);
  const done = jobs.filter((j) => j.status === "completed");
  const jobSelect = h("select", { testid: "export-job-select" }, done.map((j) => h("option", { value: j.uid }, `${j.uid} ${j.type} ${j.title || ""}`)));
  const groupSelect = h("select", { testid: "export-group-select" });
  const copy = h("input", { type: "checkbox", testid: "export-copy-data" });
  const fillGroups = () => {
    const job = done.find((j) => j.uid === jobSelect.value);
    groupSelect.replaceChildren(...((job && job.outputs) || []).map((g) => h("option", { value: g.name }, g.name)));
  };
  jobSelect.addEventListener("change", fillGroups);
  fillGroups();
  const result = h("p.small", { testid: "export-result" });
  const report = (answer) => {
    if (!answer) return;
    mount(result, "Exported to ", h("code", {}, answer.path));
    showNotice(`Exported to ${answer.path}`);
  };
  return h("section.panel", {}, h("h3", {}, "Export"),
    done.length ? h("div.toolbar", {}, jobSelect,
      h("label.small", {}, copy, " copy data files"),
      h("button", { testid: "export-job", onclick: async () => report(await attempt(() => post(`${jobPath(project, jobSelect.value)}/export`, { copy_data: copy.checked }))) }, "Export job"),
      groupSelect,
      h("button", { testid: "export-group", onclick: async () => report(await attempt(() => post(
        `${jobPath(project, jobSelect.value)}/outputs/${encodeURIComponent(groupSelect.value)}/export`, { copy_data: copy.checked }))) }, "Export group"))
      : h("p.muted", {}, "No completed job to export."),
    result);
}
