// The data page of a project: storage by job, type or workspace; clearing intermediate results
// (a dry run first, listing what would go); exporting a job or one output group.
import { get, post, projectPath, jobPath, qs, attempt, showNotice } from "./api.js";
import { h, mount, formatBytes, formatCount } from "./dom.js";

export async function renderData(el, project) {
  const info = await get(projectPath(project));
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
      h("span.spacer"), h("a.button", { href: `#/${project}` }, "Back to jobs")),
    h("section.panel", {}, h("div.section-head", {}, h("h3", {}, "Storage"), h("span.spacer"), by,
      h("button.small", { testid: "storage-refresh", onclick: () => loadStorage("1") }, "Measure now")), storageArea),
    clearingPanel(project, info),
    await exportPanel(project));
  loadStorage();
  return null;
}

function storageTable(answer) {
  const rows = answer.rows || [];
  // Besides key, title and bytes the rows carry figures that depend on the grouping: show them all.
  const extra = [...new Set(rows.flatMap((r) => Object.keys(r)))]
    .filter((k) => !["key", "title", "bytes"].includes(k) && rows.some((r) => ["number", "string"].includes(typeof r[k])));
  const cell = (k, v) => (typeof v === "number" && /bytes/.test(k) ? formatBytes(v) : (typeof v === "number" ? formatCount(v) : v ?? ""));
  return h("div", {},
    h("p", {}, "Total ", h("b", { testid: "storage-total" }, formatBytes(answer.total_bytes)),
      answer.stale ? h("span.tag", { title: "some figures are from the cache and being refreshed" }, "stale") : null),
    h("table.data-table.storage-table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Title"), h("th.num", {}, "Size"), extra.map((k) => h("th", {}, k.replace(/_/g, " "))))),
      h("tbody", {}, rows.map((r) => h("tr", { testid: `storage-row-${r.key}` },
        h("td", {}, String(r.key ?? "")), h("td", {}, r.title ?? ""), h("td.num", {}, formatBytes(r.bytes)),
        extra.map((k) => h("td", {}, String(cell(k, r[k])))))))));
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
      h("p", {}, jobs.length ? `Would free ${formatBytes(answer.bytes)} in ${jobs.length} job(s):` : "Nothing to clear: no intermediate results."),
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
