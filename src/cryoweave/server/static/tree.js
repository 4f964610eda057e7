// The jobs tree: one column per depth (a job sits one column right of its deepest parent), with
// SVG curves from each parent to its children.
import { h, mount, statusBadge } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function depths(jobs) {
  const byUid = new Map(jobs.map((j) => [j.uid, j]));
  const depth = new Map();
  const visit = (uid, seen) => {
    if (depth.has(uid)) return depth.get(uid);
    const job = byUid.get(uid);
    // Parents outside the listed jobs (filtered out) do not push a job right; a cycle cannot
    // happen in a real project, but `seen` keeps a broken one from looping.
    const parents = (job.parents || []).filter((p) => byUid.has(p) && !seen.has(p));
    const d = parents.length ? 1 + Math.max(...parents.map((p) => visit(p, new Set([...seen, uid])))) : 0;
    depth.set(uid, d);
    return d;
  };
  for (const j of jobs) visit(j.uid, new Set([j.uid]));
  return depth;
}

export function drawTree(container, project, jobs, openJob) {
  if (!jobs.length) {
    mount(container, h("p.muted", {}, "No jobs."));
    return;
  }
  const depth = depths(jobs);
  const columns = [];
  for (const job of jobs) {
    const d = depth.get(job.uid);
    (columns[d] ||= []).push(job);
  }
  const nodes = new Map();
  const grid = h("div.tree-columns", {}, columns.map((col, d) => h("div.tree-column", {},
    h("div.tree-depth.muted.small", {}, d === 0 ? "roots" : `depth ${d}`),
    (col || []).map((job) => {
      const node = h(`div.tree-node.status-edge-${job.status}`, {
        testid: `tree-node-${job.uid}`, tabindex: "0", title: job.title || job.type,
        onclick: () => openJob(job),
      },
      h("div.card-head", {}, h("a.uid", { href: `#/${project}/${job.uid}`, onclick: (e) => e.stopPropagation() }, job.uid),
        h("span.spacer"), statusBadge(job.status)),
      h("div.small", {}, job.type),
      job.title ? h("div.small.muted", {}, job.title) : null);
      nodes.set(job.uid, node);
      return node;
    }))));
  const svg = document.createElementNS(SVG, "svg");
  svg.classList.add("tree-edges");
  const wrap = h("div.tree-wrap", {}, svg, grid);
  mount(container, wrap);
  requestAnimationFrame(() => drawEdges(wrap, svg, jobs, nodes));
}

function drawEdges(wrap, svg, jobs, nodes) {
  const box = wrap.getBoundingClientRect();
  svg.setAttribute("width", wrap.scrollWidth);
  svg.setAttribute("height", wrap.scrollHeight);
  svg.replaceChildren();
  for (const job of jobs) {
    const child = nodes.get(job.uid);
    for (const parentUid of job.parents || []) {
      const parent = nodes.get(parentUid);
      if (!parent || !child) continue;
      const a = parent.getBoundingClientRect();
      const b = child.getBoundingClientRect();
      const x1 = a.right - box.left;
      const y1 = a.top + a.height / 2 - box.top;
      const x2 = b.left - box.left;
      const y2 = b.top + b.height / 2 - box.top;
      const mid = (x1 + x2) / 2;
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
      svg.appendChild(path);
    }
  }
}
