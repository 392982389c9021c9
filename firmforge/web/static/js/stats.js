// Statistics page: GET /api/v1/stats/builds and /api/v1/stats/downloads for the chosen window,
// drawn with Chart.js (served from /static/vendor) and repeated as tables for screen readers
// and for servers without the chart library.
import { duration, el, requestJSON } from "./common.js";

const COLORS = {
  blue: "#0b5cad", green: "#2e7d32", red: "#c62828", orange: "#d97706", purple: "#6b46c1",
  teal: "#00796b",
};
const Chart = window.Chart; // undefined when the library is not installed
const charts = new Map();
const $ = (id) => document.getElementById(id);
const status = $("stats-status");
const daysSelect = $("days");

if (Chart) {
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#1b1b1b";
  Chart.defaults.animation = false; // no motion; the numbers are the point
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.position = "bottom";
}

function shortDay(iso) {
  return iso.slice(5); // MM-DD
}

function shortTime(iso, bucketSeconds) {
  const moment = new Date(iso);
  const day = moment.toLocaleDateString(undefined, { month: "2-digit", day: "2-digit" });
  if (bucketSeconds >= 21600) return day;
  const time = moment.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit",
                                                      hour12: false });
  return `${day} ${time}`;
}

/** Long category labels (device names) shortened to fit a narrow chart; the table has them. */
function fitted(canvas) {
  return function (value) {
    const label = String(this.getLabelForValue(value));
    const room = canvas.clientWidth < 480 ? 16 : 36;
    return label.length > room ? `${label.slice(0, room - 1)}…` : label;
  };
}

/** The data table under a chart: one row per label, one column per series. */
function table(labels, series, labelHeading) {
  return el("table", {},
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, labelHeading),
      series.map((s) => el("th", { scope: "col", className: "num" }, s.label)))),
    el("tbody", {}, labels.map((label, i) => el("tr", {},
      el("th", { scope: "row" }, label),
      series.map((s) => el("td", { className: "num" }, s.data[i] ?? "–"))))));
}

/**
 * Draw one chart (or say there is nothing to draw) and its table.
 * ``spec``: {type, labels, series: [{label, data, color}], stacked, horizontal, timeSeries,
 * summary, labelHeading, empty, and for the table either tableLabels or table: {labels, series}}.
 */
function draw(id, spec) {
  const figure = $(`chart-${id}`);
  const box = figure.querySelector(".chart-box");
  const canvas = $(`canvas-${id}`);
  charts.get(id)?.destroy();
  charts.delete(id);
  const rows = spec.table || { labels: spec.tableLabels || spec.labels, series: spec.series };
  $(`table-${id}`).replaceChildren(table(rows.labels, rows.series, spec.labelHeading));
  $(`empty-${id}`).hidden = !spec.empty;
  box.hidden = spec.empty || !Chart;
  canvas.setAttribute("aria-label", spec.summary);
  if (spec.empty || !Chart) return;
  const line = spec.type === "line";
  const categories = spec.horizontal ? "y" : "x";
  const values = spec.horizontal ? "x" : "y";
  // every category is labelled (shortened when long); a time axis is thinned out
  const categoryTicks = spec.timeSeries
    ? { autoSkip: true, maxRotation: 0, maxTicksLimit: canvas.clientWidth < 480 ? 4 : 8 }
    : { autoSkip: false, maxRotation: 45 };
  if (spec.horizontal) categoryTicks.callback = fitted(canvas);
  const scales = {
    [categories]: { stacked: !!spec.stacked, ticks: categoryTicks },
    [values]: { stacked: !!spec.stacked, beginAtZero: true, ticks: { precision: 0 } },
  };
  charts.set(id, new Chart(canvas, {
    type: spec.type || "bar",
    data: {
      labels: spec.labels,
      datasets: spec.series.map((s) => ({
        label: s.label, data: s.data, backgroundColor: s.color, borderColor: s.color,
        borderWidth: line ? 2 : 0, pointRadius: line ? 2 : undefined, spanGaps: false,
        borderDash: s.dashed ? [6, 4] : undefined, tension: 0, maxBarThickness: 36,
      })),
    },
    options: {
      indexAxis: spec.horizontal ? "y" : "x",
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { display: spec.series.length > 1 } },
      scales,
    },
  }));
}

function sum(values) {
  return values.reduce((total, v) => total + (v || 0), 0);
}

function render(builds, downloads) {
  const days = builds.per_day.map((d) => shortDay(d.date));
  const fullDays = builds.per_day.map((d) => d.date);
  const requests = builds.requests;
  $("total-requests").textContent = requests.total;
  $("total-requests-detail").textContent = `${requests.new} new builds, ${requests.failed} failed`;
  $("total-cache-hits").textContent = requests.total
    ? `${Math.round((100 * requests.cache_hits) / requests.total)} %` : "–";
  $("total-cache-hits-detail").textContent = `${requests.cache_hits} requests answered from the cache`;
  $("total-builds").textContent = builds.builds.done + builds.builds.failed;
  $("total-builds-detail").textContent = `${builds.builds.done} done, ${builds.builds.failed} failed; `
    + `median ${duration(builds.builds.median_seconds)}`;
  $("total-downloads").textContent = downloads ? downloads.total : "–";

  draw("requests", {
    labels: days, tableLabels: fullDays, labelHeading: "Day (UTC)", stacked: true, timeSeries: true,
    series: [
      { label: "New builds", data: builds.per_day.map((d) => d.new), color: COLORS.blue },
      { label: "Cache hits", data: builds.per_day.map((d) => d.cache_hits), color: COLORS.green },
      { label: "Failed", data: builds.per_day.map((d) => d.failed), color: COLORS.red },
    ],
    summary: `Build requests per day: ${requests.total} in ${builds.days} days, `
      + `${requests.cache_hits} cache hits, ${requests.failed} failed.`,
  });
  const buckets = builds.builds.durations;
  draw("durations", {
    labels: buckets.map((b) => b.bucket), labelHeading: "Build time",
    series: [{ label: "Builds", data: buckets.map((b) => b.builds), color: COLORS.purple }],
    empty: sum(buckets.map((b) => b.builds)) === 0,
    summary: `Build time distribution of ${builds.builds.done} finished builds; median `
      + `${duration(builds.builds.median_seconds)}, 90 % within ${duration(builds.builds.p90_seconds)}.`,
  });
  const points = builds.queue.points;
  const bucket = builds.queue.bucket_seconds || 60;
  const sampled = points.filter((p) => p.max !== null); // the table lists sampled times only
  draw("queue", {
    table: {
      labels: sampled.map((p) => new Date(p.time).toLocaleString()),
      series: [{ label: "Largest", data: sampled.map((p) => p.max) },
               { label: "Mean", data: sampled.map((p) => Math.round(p.mean * 10) / 10) }],
    },
    type: "line", labels: points.map((p) => shortTime(p.time, bucket)), labelHeading: "Time",
    timeSeries: true,
    series: [
      { label: "Largest", data: points.map((p) => p.max), color: COLORS.orange },
      { label: "Mean", data: points.map((p) => (p.mean === null ? null : Math.round(p.mean * 10) / 10)),
        color: COLORS.blue, dashed: true },
    ],
    empty: points.every((p) => p.max === null),
    summary: `Queue length over time, sampled; largest ${Math.max(0, ...points.map((p) => p.max ?? 0))}.`,
  });
  if (downloads) {
    draw("downloads", {
      labels: downloads.per_day.map((d) => shortDay(d.date)),
      tableLabels: downloads.per_day.map((d) => d.date), labelHeading: "Day (UTC)",
      timeSeries: true,
      series: [{ label: "Downloads", data: downloads.per_day.map((d) => d.downloads),
                 color: COLORS.teal }],
      summary: `Downloads per day: ${downloads.total} in ${downloads.days} days.`,
    });
  }
  const ranked = (id, rows, label, heading, color, name) => draw(id, {
    labels: rows.map(name), labelHeading: heading, horizontal: true, empty: rows.length === 0,
    series: [{ label, data: rows.map((r) => r.requests), color }],
    summary: rows.length ? `${heading}: ${rows.slice(0, 3).map((r) => `${name(r)} ${r.requests}`).join(", ")}.`
      : `${heading}: none.`,
  });
  ranked("devices", builds.devices, "Requests", "Device", COLORS.blue,
         (d) => `${d.profile} (${d.target})`);
  ranked("packages", builds.packages, "Requests", "Package", COLORS.purple, (p) => p.name);
  ranked("versions", builds.versions, "Requests", "Version", COLORS.teal,
         (v) => `${v.distro} ${v.version}`);
  const reports = builds.reports;
  draw("reports", {
    labels: reports.map((r) => r.version), labelHeading: "Release", stacked: true,
    empty: reports.length === 0,
    series: [
      { label: "Works", data: reports.map((r) => r.successes), color: COLORS.green },
      { label: "Broken", data: reports.map((r) => r.failures), color: COLORS.red },
    ],
    summary: `Device reports per release: ${reports.map((r) => `${r.version} ${r.successes} working, `
      + `${r.failures} broken`).join("; ") || "none"}.`,
  });
}

async function load() {
  const days = Number(daysSelect.value);
  status.textContent = `Loading the last ${days} days…`;
  try {
    const [builds, downloads] = await Promise.all([
      requestJSON(`/api/v1/stats/builds?days=${days}`),
      requestJSON(`/api/v1/stats/downloads?days=${days}`),
    ]);
    if (!builds.ok) throw new Error(builds.body?.detail || `HTTP ${builds.status}`);
    render(builds.body, downloads.ok ? downloads.body : null);
    status.textContent = `Last ${days} days (${builds.body.first} to ${builds.body.last}, UTC).`;
  } catch (error) {
    status.textContent = `Statistics unavailable: ${error.message}`;
  }
}

daysSelect.addEventListener("change", () => {
  history.replaceState(null, "", `?days=${daysSelect.value}`);
  load();
});
load();
