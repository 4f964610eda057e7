// The job details page: a header with the status and actions, and the tabs overview, outputs,
// events, log and plots. The job is polled every 2 s; events and log poll while it runs.
import { get, post, patch, jobPath, attempt, showNotice, allows, projectAccess } from "./api.js";
import { h, mount, formatTime, statusBadge, ACTIVE } from "./dom.js";
import { dragging } from "./dnd.js";
import { groupHandle } from "./handles.js";
import { openBuilder } from "./builder.js";
import { renderOutputs } from "./outputs.js";
import { renderPlots } from "./plots.js";

const POLL_MS = 2000;
const FEED_MS = 1500;
const TABS = [["overview", "Overview"], ["outputs", "Outputs"], ["events", "Events"], ["log", "Log"], ["plots", "Plots"]];

export async function renderJob(el, project, uid, query) {
  const base = jobPath(project, uid);
  const [first, access] = await Promise.all([get(base), projectAccess(project)]);
  let job = first;
  // Read access: no actions, no builder; the page only shows the job.
  const writer = allows(access, "write");
  let signature = JSON.stringify(job);
  let tab = TABS.some(([name]) => name === query.get("tab")) ? query.get("tab") : "overview";
  let stopTab = null;
  let editor = null; // the title and tags fields of the overview (writers only)

  const status = h("span.status-slot");
  const head = h("div.page-head");
  const tabs = h("div.tabs", { role: "tablist" });
  const body = h("div.tab-body");
  mount(el, head, tabs, body);

  // "live": events and log may still grow (a building job may be queued any moment).
  const live = { job: () => job, active: () => ACTIVE.has(job.status) || job.status === "building" };

  function drawHead() {
    mount(status, statusBadge(job.status, `job-status-${uid}`));
    mount(head,
      h("h2", {}, h("span.uid", {}, uid), " ", job.title || job.type_title || job.type),
      h("span.type", {}, job.type), status,
      h("span.spacer"),
      job.status === "building" && writer ? h("button.primary", { testid: "action-build", onclick: () => openBuilder(project, uid) }, "Open builder") : null,
      writer ? actionButtons(project, base, uid, () => job, refresh)
        : h("span.tag.read-only", { testid: "read-only", title: `you have ${access} access to ${project}` }, "read only"));
  }
  function drawTabs() {
    mount(tabs, TABS.map(([name, label]) => h(`button.tab${name === tab ? ".active" : ""}`, {
      testid: `tab-${name}`, role: "tab", "aria-selected": String(name === tab),
      onclick: () => selectTab(name),
    }, label)));
  }
  function drawBody() {
    if (stopTab) { stopTab(); stopTab = null; }
    mount(body);
    if (tab === "overview") {
      editor = writer ? jobEditor(base, () => job, (answer) => refresh(answer)) : null;
      mount(body, overview(project, job, editor));
    }
    else if (tab === "outputs") stopTab = renderOutputs(body, project, uid, live, writer);
    else if (tab === "events") stopTab = eventFeed(body, base, live);
    else if (tab === "log") stopTab = logFeed(body, base, live);
    else if (tab === "plots") stopTab = renderPlots(body, project, uid, job);
  }
  function selectTab(name) {
    tab = name;
    // The tab goes in the address without a hashchange, so a reload comes back to it.
    history.replaceState(null, "", `#/${project}/${uid}${name === "overview" ? "" : `?tab=${name}`}`);
    drawTabs();
    drawBody();
  }
  async function refresh(fresh) {
    const next = fresh || await get(base);
    const sig = JSON.stringify(next);
    if (sig === signature || dragging()) return;
    const statusChanged = next.status !== job.status;
    job = next;
    signature = sig;
    drawHead();
    // Overview and outputs redraw from the new record (the overview not under the user's unsaved
    // title or tags); events, log and plots poll on their own.
    const editing = editor && editor.isConnected && editor.unsaved();
    if ((tab === "overview" && !editing) || (tab === "outputs" && statusChanged)) drawBody();
  }

  drawHead();
  drawTabs();
  drawBody();
  const timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  return () => { clearInterval(timer); if (stopTab) stopTab(); };
}

function actionButtons(project, base, uid, job, refresh) {
  // Every action stays clickable; the server says (409) when the status does not allow it.
  const run = (path, body, done) => async () => {
    const answer = await attempt(() => post(`${base}/${path}`, body));
    if (!answer) return;
    if (done) done(answer); else refresh(answer);
  };
  const descendants = h("input", { type: "checkbox", testid: "clear-descendants" });
  return h("div.actions", {},
    h("button", { testid: "action-kill", onclick: run("kill", {}) }, "Kill"),
    h("span.action-with-option", {},
      h("button", { testid: "action-clear", title: "Delete the job's outputs and set it back to building",
        onclick: () => run("clear", { descendants: descendants.checked })() }, "Clear"),
      h("label.small", { title: "Clear the jobs built on this one too" }, descendants, "+ descendants")),
    h("button", { testid: "action-restart", onclick: run("restart", {}) }, "Restart"),
    h("button", { testid: "action-mark-completed", onclick: run("mark-completed", {}) }, "Mark completed"),
    h("button", { testid: "action-clone", onclick: run("clone", {}, (clone) => {
      showNotice(`${uid} cloned as ${clone.uid}`);
      location.hash = `#/${project}`;
      openBuilder(project, clone.uid);
    }) }, "Clone"));
}

// ---- overview -------------------------------------------------------------------------

function kv(rows) {
  return h("table.kv", {}, h("tbody", {}, rows.filter(Boolean).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}

/** "a, b,, a " → ["a", "b"]: a comma-separated list of tags, trimmed, without blanks or repeats. */
export function parseTags(text) {
  return [...new Set(String(text).split(",").map((t) => t.trim()).filter(Boolean))];
}

/**
 * The title and tags of a job as fields, saved together (PATCH) with the button or Enter.
 * `el.unsaved()` tells whether they differ from the job's record; `el.titleField` and `el.tagsField` are the fields.
 */
function jobEditor(base, job, onSaved) {
  const title = h("input.title-field", { testid: "job-title-input", value: job().title || "", placeholder: "Job title" });
  const tags = h("input.tags-field", { testid: "tags-input", value: (job().tags || []).join(", "),
    placeholder: "tags, comma separated", title: "Tags, separated by commas; the project's tag filter finds them" });
  async function save(event) {
    event.preventDefault();
    const answer = await attempt(() => patch(base, { title: title.value.trim(), tags: parseTags(tags.value) }));
    if (!answer) return;
    showNotice(`${answer.uid} saved`);
    onSaved(answer);
  }
  const el = h("form.job-editor", { onsubmit: save },
    h("button.small", { testid: "tags-save", type: "submit", title: "Save the title and the tags" }, "Save"));
  el.titleField = title;
  el.tagsField = tags;
  el.unsaved = () => title.value.trim() !== (job().title || "")
    || parseTags(tags.value).sort().join("\n") !== [...(job().tags || [])].sort().join("\n"); // the server sorts them
  // The fields live in the table's rows; Enter in either submits the form they belong to.
  title.setAttribute("form", "job-editor");
  tags.setAttribute("form", "job-editor");
  el.id = "job-editor";
  return el;
}

function overview(project, job, editor) {
  const run = job.run || {};
  const tagList = h("span.tag-list", { testid: `job-tags-${job.uid}` },
    (job.tags || []).length ? job.tags.map((t) => h("span.tag", {}, t)) : h("span.muted", {}, "none"));
  const times = Object.entries(job.status_times || {}).sort((a, b) => String(a[1]).localeCompare(String(b[1])));
  return h("div.overview", {},
    h("div.columns", {},
      h("section.panel", {}, h("h3", {}, "Job"),
        kv([
          ["Type", `${job.type_title || ""} (${job.type})`],
          ["Title", editor ? editor.titleField : job.title || ""],
          job.description ? ["Description", job.description] : null,
          ["Workspaces", (job.workspaces || []).join(", ")],
          ["Tags", editor ? h("div.tags-edit", {}, tagList, h("div.tags-row", {}, editor.tagsField, editor)) : tagList],
          ["Directory", h("code", {}, job.directory || "")],
          ["Created", formatTime(job.created_at)],
          ["Updated", formatTime(job.updated_at)],
          job.run ? ["Lane", `${run.lane || ""}${run.host ? ` on ${run.host}` : ""}${run.pid ? ` (pid ${run.pid})` : ""}`] : null,
          run.message ? ["Message", run.message] : null,
        ])),
      h("section.panel", {}, h("h3", {}, "Status times"),
        times.length ? h("table.kv", { testid: "status-times" }, h("tbody", {},
          times.map(([s, t]) => h("tr", {}, h("th", {}, statusBadge(s)), h("td", {}, formatTime(t))))))
          : h("p.muted", {}, "none yet"))),
    h("section.panel", {}, h("h3", {}, "Outputs"),
      (job.outputs || []).length
        ? h("div.card-outputs.wide", {}, job.outputs.map((g) => groupHandle(job.uid, g)))
        : h("p.muted", {}, "No outputs yet.")),
    h("section.panel", {}, h("h3", {}, "Inputs"), inputsTable(job)),
    h("section.panel", {}, h("h3", {}, "Parameters"), paramsTable(job)));
}

function inputsTable(job) {
  if (!(job.inputs || []).length) return h("p.muted", {}, "This job type takes no inputs.");
  return h("table.data-table", {}, h("thead", {}, h("tr", {}, ["Input", "Type", "Group", "Slot", "Bound to"].map((t) => h("th", {}, t)))),
    h("tbody", {}, job.inputs.flatMap((input) => {
      const conns = input.connections || [];
      if (!conns.length) return [h("tr", {}, h("td", {}, input.name), h("td", {}, input.type), h("td.muted", { colspan: 3 }, "not connected"))];
      return conns.flatMap((c) => (c.slots || []).map((s) => h(`tr${s.override ? ".override" : ""}`, {},
        h("td", {}, input.name), h("td", {}, input.type), h("td", {}, `${c.source} [${c.index}]`),
        h("td", {}, s.slot), h("td", {}, h("code", {}, s.bound || "—"), s.override ? h("span.tag.override-tag", {}, "override") : null))));
    })));
}

function paramsTable(job) {
  return h("table.data-table", {}, h("thead", {}, h("tr", {}, ["Parameter", "Value", "Default"].map((t) => h("th", {}, t)))),
    h("tbody", {}, (job.params || []).map((p) => h(`tr${p.set ? ".set" : ""}`, { title: p.help || "" },
      h("td", {}, p.title || p.name, p.title && p.title !== p.name ? h("span.param-name", {}, p.name) : null),
      h("td", {}, p.value === null || p.value === undefined ? "—" : String(p.value)),
      h("td.muted", {}, p.default === null || p.default === undefined ? "—" : String(p.default))))));
}

// ---- events and log -------------------------------------------------------------------

/** Poll `fetchMore` every 1.5 s while the job is live (and once more after it stops). */
function poller(live, fetchMore) {
  let stopped = false;
  let timer = null;
  let lastRound = false;
  async function tick() {
    if (stopped) return;
    await fetchMore().catch(() => {});
    const active = live.active();
    if (active) lastRound = false;
    if (active || !lastRound) {
      lastRound = !active;
      timer = setTimeout(tick, FEED_MS);
    }
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function eventFeed(body, base, live) {
  const list = h("div.event-list", { testid: "event-list" });
  mount(body, list);
  let after = -1;
  return poller(live, async () => {
    const events = await get(`${base}/events?after=${after}`);
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
    for (const ev of events) {
      after = Math.max(after, ev.seq);
      list.append(h(`div.event.level-${ev.level || "info"}`, { testid: `event-${ev.seq}` },
        h("span.event-time", {}, formatTime(ev.time)),
        h("span.event-text", {}, ev.text || ""),
        ev.image ? h("img.event-image", { src: ev.image, alt: ev.text || "event image", loading: "lazy" }) : null));
    }
    if (!list.children.length) list.append(h("p.muted.placeholder", {}, "No events yet."));
    else list.querySelector(".placeholder")?.remove();
    if (stick && events.length) list.scrollTop = list.scrollHeight;
  });
}

function logFeed(body, base, live) {
  const pre = h("pre.job-log", { testid: "job-log" });
  mount(body, pre);
  let offset = 0;
  return poller(live, async () => {
    // The server answers at most 256 KiB a call: read on until a short answer.
    for (let round = 0; round < 40; round += 1) {
      const answer = await get(`${base}/log?offset=${offset}`);
      if (answer.offset < offset) pre.textContent = ""; // the log was cleared: start over
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      if (answer.text) pre.append(document.createTextNode(answer.text));
      offset = answer.offset;
      if (stick) pre.scrollTop = pre.scrollHeight;
      if (!answer.text || answer.text.length < 128 * 1024) break;
    }
  });
}
