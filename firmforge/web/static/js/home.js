// Home page: the worker summary (busy/idle) and queue length, refreshed while visible.
import { every, fetchWorkers } from "./common.js";

const summary = document.getElementById("workers-summary");
const detail = document.getElementById("workers-detail");
const queue = document.getElementById("queue-length");

every(5000, async () => {
  let workers = null;
  try {
    workers = await fetchWorkers();
  } catch {
    workers = null;
  }
  if (workers === null) {
    summary.textContent = "–";
    detail.textContent = "worker list unavailable";
    return;
  }
  summary.textContent = `${workers.busy} busy, ${workers.idle} idle`;
  detail.textContent = `${workers.workers.length} worker${workers.workers.length === 1 ? "" : "s"}`;
  if (typeof workers.queue_length === "number") queue.textContent = workers.queue_length;
});
