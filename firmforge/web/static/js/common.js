// Helpers shared by the pages: JSON requests, DOM building (text only, never HTML), formats.

/** GET or POST JSON; resolves to {status, ok, body, headers}, body null when not JSON. */
export async function requestJSON(url, options = {}) {
  const init = { headers: { Accept: "application/json" }, ...options };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers = { ...init.headers, "Content-Type": "application/json" };
    delete init.json;
  }
  const response = await fetch(url, init);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, ok: response.ok, body, headers: response.headers };
}

/** The error text of a failed answer: its string ``detail``, else the HTTP status. */
export function detailOf(answer) {
  const detail = answer.body && answer.body.detail;
  return typeof detail === "string" && detail ? detail : `HTTP ${answer.status}`;
}

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Bytes for people: 512 B, 3.4 KiB, 12.0 MiB (as the build page shows them). */
export function filesize(size) {
  if (typeof size !== "number") return "–";
  if (size < 1024) return `${size} B`;
  let value = size / 1024;
  for (const unit of ["KiB", "MiB"]) {
    if (value < 1024) return `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${value.toFixed(1)} GiB`;
}

/** Seconds for people: 42 s, 3 min 5 s, 2 h 10 min, 3 d 4 h. */
export function duration(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** An ISO time as the reader's local date and time. */
export function localTime(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  return isNaN(moment) ? String(iso) : moment.toLocaleString();
}

/** The worker list, or null when the server has none to give (older server: 404). */
export async function fetchWorkers() {
  const answer = await requestJSON("/api/v1/workers");
  if (!answer.ok || !answer.body || !Array.isArray(answer.body.workers)) return null;
  return answer.body;
}

/** Call ``task`` now and every ``ms`` while the page is visible. */
export function every(ms, task) {
  let timer = null;
  const run = async () => {
    try {
      await task();
    } finally {
      timer = document.hidden ? null : setTimeout(run, ms);
    }
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null) run();
  });
  run();
}
