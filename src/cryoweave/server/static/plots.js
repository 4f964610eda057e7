// The plots tab: the FSC curve, a histogram of one field of an output group, a scatter plot of
// two fields, and central slices of the job's volumes. Charts come from charts.js.
import { get, jobPath } from "./api.js";
import { h, mount, formatCount } from "./dom.js";
import { makeCanvas, lineChart, histogramChart, scatterChart } from "./charts.js";

const VOLUME_TYPES = new Set(["volume", "volume_multi", "mask"]);

export function renderPlots(body, project, uid, job) {
  const base = jobPath(project, uid);
  // Largest groups first: the particles, usually what one wants to look at.
  const saved = (job.outputs || []).filter((g) => (g.versions || []).length || g.num_items)
    .sort((a, b) => (b.num_items || 0) - (a.num_items || 0));
  const fsc = h("section.panel", { testid: "plot-fsc" });
  const sections = [fsc];
  if (saved.length) sections.push(fieldPlots(base, saved));
  const volumes = saved.filter((g) => VOLUME_TYPES.has(g.type));
  if (volumes.length) sections.push(slicesPanel(base, volumes));
  mount(body, h("div.plots", {}, sections));
  drawFsc(fsc, base);
  if (!saved.length && !fsc.children.length) body.append(h("p.muted", {}, "Nothing to plot yet: the job has no saved outputs."));
  return null;
}

async function drawFsc(panel, base) {
  let data;
  try {
    data = await get(`${base}/fsc`);
  } catch (err) {
    if (err.status === 404) { panel.remove(); return; }
    mount(panel, h("h3", {}, "FSC"), h("p.error-text", {}, err.detail || String(err)));
    return;
  }
  const freq = data.frequency || [];
  const series = Object.entries(data.curves || {}).map(([name, y]) => ({ name, x: freq, y }));
  const c = makeCanvas(620, 300, "fsc-canvas");
  const legend = lineChart(c, series, {
    xlabel: "resolution (Å)", ylabel: "FSC", y0: 0, y1: 1,
    guides: [{ y: 0.143, label: "0.143" }],
    xLabelOf: (f) => (f > 0 ? (1 / f).toFixed(1) : "∞"),
  });
  mount(panel, h("h3", {}, "Fourier shell correlation"),
    data.resolution_A ? h("p", { testid: "fsc-resolution" }, "Resolution at FSC = 0.143: ", h("b", {}, `${Number(data.resolution_A).toFixed(2)} Å`)) : null,
    c.canvas, legend);
}

/** Histogram and scatter plots over the fields of a chosen output group. */
function fieldPlots(base, groups) {
  const groupSelect = h("select", { testid: "plot-group" }, groups.map((g) => h("option", { value: g.name }, `${g.name} (${g.type})`)));
  const field = h("select", { testid: "plot-field" });
  const bins = h("input.narrow", { testid: "plot-bins", type: "number", value: "50", min: "1", max: "1000" });
  const xField = h("select", { testid: "plot-x" });
  const yField = h("select", { testid: "plot-y" });
  const histArea = h("div.chart-area", { testid: "plot-histogram" });
  const scatterArea = h("div.chart-area", { testid: "plot-scatter" });
  const groupPath = () => `${base}/outputs/${encodeURIComponent(groupSelect.value)}`;

  async function loadFields() {
    const fields = await get(`${groupPath()}/fields`).catch((err) => { mount(histArea, h("p.error-text", {}, err.detail)); return []; });
    const options = () => fields.map((f) => h("option", { value: f.field }, f.field));
    field.replaceChildren(...options());
    xField.replaceChildren(...options());
    yField.replaceChildren(...options());
    // Start on fields worth a look (a CTF or pose value), not on indices or constant pixel sizes.
    const rank = (f) => (/df1_A|df2_A|defocus/.test(f) ? 0 : /error|cross_cor|pow|shift|df_angle/.test(f) ? 1 : 2);
    const telling = fields.filter((f) => !/(^|\/)(idx|uid|psize_A|shape|split|import_sig|sign|exp_group_id)$/.test(f.field))
      .sort((a, b) => rank(a.field) - rank(b.field));
    if (telling.length) { field.value = telling[0].field; xField.value = telling[0].field; }
    if (telling.length > 1) yField.value = telling[1].field;
    else if (fields.length > 1) yField.value = fields[1].field;
    if (!fields.length) {
      mount(histArea, h("p.muted", {}, "No numeric fields to plot in this group."));
      mount(scatterArea);
      return;
    }
    drawHistogram();
    drawScatter();
  }
  async function drawHistogram() {
    if (!field.value) return;
    try {
      const hist = await get(`${groupPath()}/histogram?field=${encodeURIComponent(field.value)}&bins=${encodeURIComponent(bins.value || 50)}`);
      if (!hist.count) { mount(histArea, h("p.muted", {}, "No values.")); return; }
      const c = makeCanvas(620, 260, "histogram-canvas");
      histogramChart(c, hist, hist.field);
      mount(histArea, c.canvas, h("p.small.muted", {},
        `${formatCount(hist.count)} values · mean ${num(hist.mean)} · min ${num(hist.min)} · max ${num(hist.max)}`));
    } catch (err) {
      mount(histArea, h("p.error-text", {}, err.detail || String(err)));
    }
  }
  async function drawScatter() {
    if (!xField.value || !yField.value) return;
    try {
      const pts = await get(`${groupPath()}/scatter?x=${encodeURIComponent(xField.value)}&y=${encodeURIComponent(yField.value)}&max_points=5000`);
      if (!pts.x.length) { mount(scatterArea, h("p.muted", {}, "No values.")); return; }
      const c = makeCanvas(620, 320, "scatter-canvas");
      scatterChart(c, pts, xField.value, yField.value);
      const shown = pts.shown ?? pts.x.length;
      mount(scatterArea, c.canvas, h("p.small.muted", {}, `${formatCount(shown)} of ${formatCount(pts.count)} points`));
    } catch (err) {
      mount(scatterArea, h("p.error-text", {}, err.detail || String(err)));
    }
  }
  groupSelect.addEventListener("change", loadFields);
  field.addEventListener("change", drawHistogram);
  bins.addEventListener("change", drawHistogram);
  xField.addEventListener("change", drawScatter);
  yField.addEventListener("change", drawScatter);
  loadFields();
  return h("section.panel", {},
    h("h3", {}, "Fields of an output group"),
    h("div.toolbar", {}, h("label.small", {}, "Group ", groupSelect)),
    h("div.columns", {},
      h("div", {}, h("h4", {}, "Histogram"), h("div.toolbar", {}, h("label.small", {}, "Field ", field), h("label.small", {}, "Bins ", bins)), histArea),
      h("div", {}, h("h4", {}, "Scatter"), h("div.toolbar", {}, h("label.small", {}, "X ", xField), h("label.small", {}, "Y ", yField)), scatterArea)));
}

function num(v) {
  return v === null || v === undefined ? "—" : Number(Number(v).toPrecision(5)).toString();
}

/** Central XY, XZ and YZ slices of every volume result (blob) the job saved. */
function slicesPanel(base, groups) {
  const images = [];
  for (const g of groups) {
    const results = (g.results || []).filter((r) => r.dtype === "blob" && !r.passthrough);
    for (const r of results) {
      const src = `${base}/outputs/${encodeURIComponent(g.name)}/results/${encodeURIComponent(r.name)}/slices.png?version=F`;
      images.push(h("figure.slices", { testid: `slices-${r.address}` },
        h("img", { src, alt: `central slices of ${r.address}`, loading: "lazy",
          onerror: (event) => event.target.closest("figure").classList.add("broken") }),
        h("figcaption.small", {}, r.address, " — XY, XZ, YZ")));
    }
  }
  return h("section.panel", {}, h("h3", {}, "Central slices"),
    images.length ? h("div.slices-grid", {}, images) : h("p.muted", {}, "No volume results."));
}
