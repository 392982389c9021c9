// Workers page: the table of workers from GET /api/v1/workers, refreshed every few seconds.
import { duration, el, every, fetchWorkers, localTime } from "./common.js";

const REFRESH_MS = 3000;
const status = document.getElementById("workers-status");
const table = document.getElementById("workers-table");
const body = document.getElementById("workers-body");
const updated = document.getElementById("workers-updated");

function row(worker) {
  const job = worker.current_job
    ? el("a", { href: `/builds/${encodeURIComponent(worker.current_job)}`, className: "hash" },
        worker.current_job.slice(0, 12))
    : "–";
  const state = el("span", { className: worker.state === "busy" ? "warn" : "ok" }, worker.state);
  const cells = [
    ["Name", worker.name], ["Host", worker.host], ["Kind", worker.kind], ["State", state],
    ["Current job", job], ["Stage", worker.stage || "–"],
    ["Up for", duration(worker.uptime_seconds), "num"],
    ["Builds done", worker.builds_done, "num"], ["Failed", worker.builds_failed, "num"],
    ["ImageBuilders cached", worker.imagebuilders_cached, "num"],
    ["Last heartbeat", localTime(worker.last_heartbeat)],
  ];
  return el("tr", {}, cells.map(([label, value, kind]) =>
    el("td", { "data-label": label, className: kind || null }, value ?? "–")));
}

every(REFRESH_MS, async () => {
  let answer = null;
  try {
    answer = await fetchWorkers();
  } catch {
    answer = null;
  }
  if (answer === null) {
    status.textContent = "worker list unavailable";
    table.hidden = true;
    for (const id of ["workers-busy", "workers-idle", "workers-queue"]) {
      document.getElementById(id).textContent = "–";
    }
    return;
  }
  document.getElementById("workers-busy").textContent = answer.busy;
  document.getElementById("workers-idle").textContent = answer.idle;
  document.getElementById("workers-queue").textContent = answer.queue_length;
  body.replaceChildren(...answer.workers.map(row));
  table.hidden = answer.workers.length === 0;
  const count = answer.workers.length;
  // the live region changes only when the count does; the time is not announced
  status.textContent = count ? `${count} worker${count === 1 ? "" : "s"}` : "No workers are running.";
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
});
