// The outputs tab: every output group with its results (passthroughs marked), item counts,
// versions, file paths with a copy button and downloads. Group headers and result handles are
// draggable onto the builder, as on the cards.
import { get, post, jobPath, attempt, showNotice } from "./api.js";
import { h, mount, formatCount, plural, ACTIVE } from "./dom.js";
import { makeDraggable } from "./dnd.js";
import { resultHandle } from "./handles.js";

// The version picked for each result address, kept across redraws.
const pickedVersion = new Map();

export function renderOutputs(body, project, uid, live, writer = true) {
  let stopped = false;
  mount(body, h("p.muted", {}, "Loading outputs…"));
  get(`${jobPath(project, uid)}/outputs`).then((groups) => {
    if (stopped) return;
    mount(body, groups.length
      ? h("div.outputs", {}, groups.map((g) => groupSection(project, uid, g, live, writer)))
      : h("p.muted", {}, "This job type has no outputs."));
  }).catch((err) => { if (!stopped) mount(body, h("p.error-text", {}, err.detail || String(err))); });
  return () => { stopped = true; };
}

function groupSection(project, uid, group, live, writer) {
  const address = `${uid}.${group.name}`;
  const base = `${jobPath(project, uid)}/outputs/${encodeURIComponent(group.name)}`;
  const header = h("div.handle.group-handle.big", {
    testid: `output-group-${address}`, dataset: { address },
    title: `${address} (${group.type}) — drag onto a matching input of the job in the builder`,
  },
  h("span.handle-name", {}, group.title || group.name),
  h("span.address", {}, address),
  h("span.dtype", {}, group.type),
  h("span.count", {}, plural(group.num_items, "item")));
  makeDraggable(header, () => ({ kind: "group", address, type: group.type, name: group.name }));

  const saved = (group.tables || []).length > 0;
  const downloads = saved ? h("span.downloads", {},
    h("a.button.small", { href: `${base}/download?what=cs&version=F`, download: "", testid: `download-${address}` }, "⤓ .cs"),
    h("a.button.small", { href: `${base}/download?what=csg&version=F`, download: "", testid: `download-csg-${address}` }, "⤓ .csg"),
    writer ? h("button.small", { testid: `export-group-${address}`, title: "Export this group (a .csg with its files) into the project's exports folder",
      onclick: async () => {
        const answer = await attempt(() => post(`${base}/export`, {}));
        if (answer) showNotice(`${address} exported to ${answer.path}`);
      } }, "Export") : null) : h("span.muted.small", {}, ACTIVE.has(live.job().status) ? "not saved yet" : "no saved versions");

  return h("section.panel.output-section", {},
    h("div.output-head", {}, header, h("span.spacer"),
      group.versions && group.versions.length ? h("span.muted.small", {}, `versions ${group.versions.join(", ")}`) : null,
      downloads),
    (group.results || []).length ? h("div.table-scroll", {}, h("table.data-table.results-table", {},
      h("thead", {}, h("tr", {}, ["Result", "Type", "Items", "Version", "File"].map((t) => h("th", {}, t)))),
      h("tbody", {}, group.results.map((r) => resultRow(base, r, group.type)))))
      : h("p.muted.small", {}, "No results saved."));
}

/** Index of a version in a result's parallel lists ("F" is the last). */
function versionIndex(result, version) {
  if (version === "F" || version === undefined) return result.versions.length - 1;
  return result.versions.indexOf(Number(version));
}

// Groups whose blob results name MRC maps, downloadable as such.
const MAP_GROUPS = new Set(["volume", "volume_multi", "mask"]);

function resultRow(base, result, groupType) {
  const address = result.address;
  const version = pickedVersion.get(address) || "F";
  const select = h("select.versions", { testid: `versions-${address}`, title: "Version of this result a drag will use" },
    h("option", { value: "F" }, "F (final)"),
    (result.versions || []).map((v) => h("option", { value: String(v), selected: String(v) === version }, String(v))));
  const handle = resultHandle(result, { showAddress: true, versionOf: () => select.value });
  handle.setVersion(version);
  const items = h("td.num");
  const file = h("td.file");
  const download = h("a.button.small", { download: "", title: "Download the .cs holding this result" }, "⤓");
  const isMap = MAP_GROUPS.has(groupType) && result.dtype === "blob";
  const mrc = isMap ? h("a.button.small", { download: "", testid: `download-map-${address}`,
    title: "Download the MRC map this result names" }, "⤓ .mrc") : null;

  function update() {
    const v = select.value;
    pickedVersion.set(address, v);
    handle.setVersion(v);
    const i = versionIndex(result, v);
    items.textContent = i >= 0 && result.num_items[i] !== undefined ? formatCount(result.num_items[i]) : "";
    const paths = result.passthrough ? (result.paths_abs || []) : (i >= 0 && result.paths_abs ? [result.paths_abs[i]] : []);
    mount(file, paths.filter(Boolean).map((p) => pathWithCopy(p)));
    download.href = `${base}/results/${encodeURIComponent(result.name)}/download?version=${encodeURIComponent(v)}`;
    if (mrc) mrc.href = `${base}/results/${encodeURIComponent(result.name)}/map?version=${encodeURIComponent(v)}`;
  }
  select.addEventListener("change", update);
  update();
  return h(`tr${result.passthrough ? ".passthrough" : ""}`, {},
    h("td", {}, handle),
    h("td", {}, result.dtype, result.passthrough
      ? h("span.tag.passthrough", { title: "received from an input and passed along unchanged; the file is the ancestor's" }, " passthrough") : null),
    items, h("td.nowrap", {}, select, " ", download, mrc ? " " : null, mrc), file);
}

function pathWithCopy(path) {
  return h("div.path-row", {},
    h("code.path", { title: path }, path),
    h("button.link.small", { title: "Copy the path", onclick: () => copyText(path) }, "copy"));
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (plain http on another host): a hidden field and the old command.
    const area = h("textarea", { style: "position:fixed;left:-1000px" }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  showNotice("Path copied");
}
