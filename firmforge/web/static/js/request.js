// Request page: version → device search → packages → POST /api/v1/build → progress → images.
//
// The device list comes from GET /api/v1/devices/{version}, a device's default packages from
// its profile JSON, package suggestions from the package indexes; the request is sent with
// the added packages and "-name" for each removed default (diff_packages false), so it stays
// short and readable on the build page.
import { detailOf, el, filesize, requestJSON } from "./common.js";

const POLL_MS = 1000;
const MAX_RESULTS = 40;
const MAX_SUGGESTIONS = 60;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
// The client-visible stages (imagebuilder_status) in the order a build passes them.
const STAGES = [
  ["queued", "Queued"], ["init", "Starting"], ["download_imagebuilder", "ImageBuilder"],
  ["calculate_packages_hash", "Packages"], ["building_image", "Building"], ["done", "Done"],
];
// A failure names the finer stage (failed_stage); this is where it sits among the above.
const FAILED_AT = {
  container_setup: "download_imagebuilder", validate_revision: "calculate_packages_hash",
  validate_manifest: "calculate_packages_hash", storing: "building_image",
  signing_images: "building_image",
};
// Lines of a build log that say what went wrong, shown above the full log.
const TELLING = /error|too big|exceed|out of space|cannot|can't|not found|conflict|failed/i;
const TELLING_LINES = 12;

const $ = (id) => document.getElementById(id);
const form = $("build-form");
const distroSelect = $("distro");
const versionSelect = $("version");
const search = $("device-search");
const results = $("device-results");
const deviceStatus = $("device-status");
const packageList = $("package-list");
const packageInput = $("package-add");
const suggestions = $("package-suggestions");
const problemsBox = $("package-problems");
const formProblem = $("form-problem");
const submitButton = $("submit");

const state = {
  devices: new Map(), // version -> Promise of the device list
  device: null, // {id, target, title}
  defaults: [], // default package names of the device (and the distribution)
  removed: new Set(),
  added: [],
  known: null, // Set of package names of version + target, null while unknown
  names: [], // sorted known names, for suggestions
  polling: null,
};

// -- distribution and version -----------------------------------------------------------------

function distroOption() {
  return distroSelect.selectedOptions[0] || null;
}

function fillVersions(preferred) {
  const option = distroOption();
  if (!option) return;
  const versions = JSON.parse(option.dataset.versions || "[]");
  const wanted = versions.includes(preferred) ? preferred : option.dataset.defaultVersion;
  versionSelect.replaceChildren(...versions.map((v) =>
    el("option", { value: v, selected: v === wanted }, v)));
}

function versionPath(version) {
  return version === "SNAPSHOT" ? "snapshots" : `releases/${encodeURIComponent(version)}`;
}

// -- devices ----------------------------------------------------------------------------------

function titleOf(title) {
  if (title.title) return title.title;
  return [title.vendor, title.model, title.variant].filter(Boolean).join(" ");
}

function deviceTitles(device) {
  const titles = (device.titles || []).map(titleOf).filter(Boolean);
  return titles.length ? titles : [device.id];
}

function devicesOf(version) {
  if (!state.devices.has(version)) {
    const loading = requestJSON(`/api/v1/devices/${encodeURIComponent(version)}`).then((answer) => {
      if (!answer.ok || !Array.isArray(answer.body)) throw new Error(detailOf(answer));
      return answer.body.map((device) => {
        const titles = deviceTitles(device);
        const haystack = [...titles, device.id, device.target, ...(device.supported_devices || [])]
          .join(" ").toLowerCase();
        return { ...device, title: titles[0], titles, haystack };
      }).sort((a, b) => a.title.localeCompare(b.title));
    });
    loading.catch(() => state.devices.delete(version)); // try again on the next search
    state.devices.set(version, loading);
  }
  return state.devices.get(version);
}

async function showMatches() {
  const query = search.value.trim().toLowerCase();
  if (!query) {
    results.replaceChildren();
    deviceStatus.textContent = "";
    return;
  }
  const version = versionSelect.value;
  let devices;
  try {
    devices = await devicesOf(version);
  } catch (error) {
    deviceStatus.textContent = `Could not load the devices of ${version}: ${error.message}`;
    return;
  }
  if (search.value.trim().toLowerCase() !== query || versionSelect.value !== version) return;
  const words = query.split(/[\s,_]+/).filter(Boolean);
  const matches = devices.filter((d) => words.every((w) => d.haystack.includes(w)));
  const shown = matches.slice(0, MAX_RESULTS);
  results.replaceChildren(...shown.map((device) => el("li", {},
    el("button", { type: "button", onclick: () => chooseDevice(device) },
      device.titles.join(" / "),
      el("small", {}, `${device.target} · ${device.id}`
        + (device.supported_devices?.length ? ` · ${device.supported_devices.join(", ")}` : ""))))));
  deviceStatus.textContent = matches.length === 0
    ? `No device of ${version} matches “${search.value.trim()}”.`
    : matches.length > shown.length
      ? `${matches.length} devices match; the first ${shown.length} are listed, type more to narrow.`
      : `${matches.length} device${matches.length === 1 ? "" : "s"} match.`;
}

async function chooseDevice(device) {
  state.device = { id: device.id, target: device.target, title: device.titles.join(" / ") };
  results.replaceChildren();
  search.value = "";
  deviceStatus.textContent = "";
  $("device-title").textContent = state.device.title;
  $("device-id").textContent = device.id;
  $("device-target").textContent = device.target;
  $("device-chosen").hidden = false;
  search.hidden = true;
  $("device-change").focus();
  await loadPackages();
}

function changeDevice() {
  state.device = null;
  $("device-chosen").hidden = true;
  search.hidden = false;
  $("packages-fieldset").disabled = true;
  packageList.replaceChildren();
  search.focus();
  update();
}

// -- packages ---------------------------------------------------------------------------------

function applyPackages(list, names) {
  for (const name of names) {
    if (name.startsWith("-")) list.delete(name.slice(1));
    else list.add(name);
  }
}

async function loadPackages() {
  const { id, target } = state.device;
  const version = versionSelect.value;
  const path = versionPath(version);
  state.defaults = [];
  state.removed.clear();
  state.known = null;
  state.names = [];
  $("package-index-status").textContent = "Reading the package index…";
  $("packages-fieldset").disabled = true;
  renderPackages();
  const [profile, index] = await Promise.all([
    requestJSON(`/json/v1/${path}/targets/${target}/${encodeURIComponent(id)}.json`),
    requestJSON(`/json/v1/${path}/targets/${target}/index.json`),
  ]);
  if (state.device?.id !== id || versionSelect.value !== version) return; // changed meanwhile
  if (!profile.ok || !profile.body || !profile.body.id) {
    problemsBox.textContent = `Could not read the device's packages: ${detailOf(profile)}`;
    problemsBox.hidden = false;
    return;
  }
  const defaults = new Set();
  applyPackages(defaults, profile.body.default_packages || []);
  applyPackages(defaults, profile.body.device_packages || []);
  applyPackages(defaults, JSON.parse(distroOption()?.dataset.packages || "[]"));
  state.defaults = [...defaults].sort();
  state.added = state.added.filter((name) => !defaults.has(name));
  $("packages-fieldset").disabled = false;
  renderPackages();
  await loadIndex(path, target, index);
}

async function loadIndex(path, target, index) {
  const known = new Set();
  if (index.ok && index.body && index.body.packages) {
    Object.keys(index.body.packages).forEach((name) => known.add(name));
    const arch = index.body.architecture;
    const feeds = await requestJSON(`/json/v1/${path}/packages/${encodeURIComponent(arch)}-index.json`);
    if (feeds.ok && feeds.body) Object.keys(feeds.body).forEach((name) => known.add(name));
    if (distroSelect.value !== "openwrt") { // the distribution's own feeds (lime-* packages)
      const version = encodeURIComponent(versionSelect.value);
      const own = await requestJSON(
        `/api/v1/distributions/${encodeURIComponent(distroSelect.value)}/${version}/${target}/packages`);
      if (own.ok && own.body && own.body.packages) {
        Object.keys(own.body.packages).forEach((name) => known.add(name));
      }
    }
  }
  if (state.device?.target !== target) return;
  state.known = known.size ? known : null;
  state.names = [...known].sort();
  $("package-index-status").textContent = known.size
    ? `Suggestions and checks use the ${known.size} packages of ${versionSelect.value} for ${target}.`
    : "The package index could not be read: names are checked when the build is requested.";
  renderPackages();
  suggest(); // for what was typed while the index loaded
}

function problemOf(name) {
  if (!NAME.test(name)) return "invalid name";
  if (state.known && !state.known.has(name)) return "unknown";
  return null;
}

function chip(name, kind) {
  const problem = kind === "added" ? problemOf(name) : null;
  const classes = ["chip", kind, problem ? "unknown" : ""].filter(Boolean).join(" ");
  const buttons = {
    default: ["−", `Remove ${name}`, () => { state.removed.add(name); renderPackages(); }],
    removed: ["+", `Keep ${name}`, () => { state.removed.delete(name); renderPackages(); }],
    added: ["×", `Remove ${name}`, () => {
      state.added = state.added.filter((n) => n !== name);
      renderPackages();
      packageInput.focus();
    }],
  };
  const [symbol, label, action] = buttons[kind];
  return el("li", { className: classes, "data-package": name },
    el("span", {}, name),
    kind === "removed" ? el("span", { className: "tag" }, "removed") : null,
    kind === "added" ? el("span", { className: "tag" }, problem || "added") : null,
    el("button", { type: "button", className: "small", "aria-label": label, title: label,
                   onclick: action }, symbol));
}

function renderPackages() {
  packageList.replaceChildren(
    ...state.defaults.map((name) => chip(name, state.removed.has(name) ? "removed" : "default")),
    ...state.added.map((name) => chip(name, "added")));
  const bad = state.added.filter((name) => problemOf(name));
  problemsBox.hidden = bad.length === 0;
  problemsBox.textContent = bad.length
    ? `Not in the package index of ${versionSelect.value} for ${state.device?.target}: `
      + `${bad.join(", ")}. Remove or correct ${bad.length === 1 ? "it" : "them"} to build.`
    : "";
  update();
}

function addPackages() {
  const names = packageInput.value.split(/[\s,]+/).filter(Boolean);
  for (const raw of names) {
    const name = raw.replace(/^\+/, "");
    if (name.startsWith("-")) { // "-name" removes a default, as in the API
      if (state.defaults.includes(name.slice(1))) state.removed.add(name.slice(1));
      continue;
    }
    if (state.defaults.includes(name)) state.removed.delete(name);
    else if (!state.added.includes(name)) state.added.push(name);
  }
  packageInput.value = "";
  suggestions.replaceChildren();
  renderPackages();
}

function suggest() {
  const typed = packageInput.value.split(/[\s,]+/).pop().toLowerCase();
  if (typed.length < 2 || !state.names.length) {
    suggestions.replaceChildren();
    return;
  }
  const starts = state.names.filter((n) => n.toLowerCase().startsWith(typed));
  const contains = state.names.filter((n) => !n.toLowerCase().startsWith(typed)
    && n.toLowerCase().includes(typed));
  suggestions.replaceChildren(...[...starts, ...contains].slice(0, MAX_SUGGESTIONS)
    .map((name) => el("option", { value: name })));
}

// -- the request ------------------------------------------------------------------------------

function formProblems() {
  const problems = [];
  if (!state.device) problems.push("choose a device");
  const bad = state.added.filter((name) => problemOf(name));
  if (bad.length) {
    problems.push(`remove the unknown packages (${bad.join(", ")})`);
  }
  const rootfs = $("rootfs");
  if (rootfs.value !== "") {
    const size = Number(rootfs.value);
    const max = Number(form.dataset.maxRootfs);
    if (!Number.isInteger(size) || size < 1 || size > max) {
      problems.push(`give a root filesystem size from 1 to ${max} MiB, or leave it empty`);
    }
  }
  return problems;
}

function update() {
  submitButton.disabled = !state.device || state.polling !== null;
}

function requestBody() {
  const body = {
    distro: distroSelect.value,
    version: versionSelect.value,
    target: state.device.target,
    profile: state.device.id,
    packages: [...state.added, ...[...state.removed].sort().map((name) => `-${name}`)],
    diff_packages: false,
    client: "firmforge-web",
  };
  const defaults = $("defaults");
  if (defaults && defaults.value.trim()) body.defaults = defaults.value;
  const rootfs = $("rootfs").value;
  if (rootfs !== "") body.rootfs_size_mb = Number(rootfs);
  return body;
}

function showFormProblems() {
  const problems = formProblems();
  formProblem.hidden = problems.length === 0;
  formProblem.textContent = problems.length ? `To build, ${problems.join("; ")}.` : "";
  return problems.length === 0;
}

async function submit(event) {
  event.preventDefault();
  if (!showFormProblems()) return;
  for (const id of ["result", "failure"]) $(id).hidden = true;
  showProgress({ stage: "queued", text: "Sending the request…" });
  state.polling = true;
  update();
  let answer;
  try {
    answer = await requestJSON("/api/v1/build", { json: requestBody() });
  } catch (error) {
    finish();
    return refused(`The server could not be reached: ${error.message}`);
  }
  handle(answer);
}

function handle(answer) {
  const body = answer.body || {};
  const hash = body.request_hash;
  $("progress-hash").textContent = hash || "";
  if (answer.status === 200) return succeeded(body);
  if (answer.status === 202) {
    if (body.detail === "queued") {
      const position = body.queue_position;
      const ahead = typeof position !== "number" ? "waiting for a worker"
        : position === 0 ? "next in line" : `${position} build${position === 1 ? "" : "s"} ahead`;
      showProgress({ stage: "queued", text: `Queued: ${ahead}.` });
    } else {
      const stage = body.imagebuilder_status || "init";
      showProgress({ stage, text: `Building: ${stageName(stage)}…` });
    }
    state.polling = setTimeout(() => poll(hash), POLL_MS);
    return;
  }
  if (answer.status === 500 && body.imagebuilder_status === "failed") return failed(body);
  finish();
  refused(detailOf(answer));
}

async function poll(hash) {
  let answer;
  try {
    answer = await requestJSON(`/api/v1/build/${encodeURIComponent(hash)}`);
  } catch {
    state.polling = setTimeout(() => poll(hash), POLL_MS * 3); // a network blip: keep trying
    return;
  }
  handle(answer);
}

function finish() {
  if (typeof state.polling === "number") clearTimeout(state.polling);
  state.polling = null;
  update();
}

function stageName(stage) {
  const known = STAGES.find(([id]) => id === stage);
  return known ? known[1].toLowerCase() : stage.replaceAll("_", " ");
}

function showProgress({ stage, text, failedStage = false }) {
  $("progress").hidden = false;
  $("progress-status").textContent = text;
  $("progress-bar").hidden = stage === "done" || failedStage;
  const reached = Math.max(STAGES.findIndex(([id]) => id === stage), 0);
  $("stages").replaceChildren(...STAGES.map(([id, label], index) => el("li", {
    className: failedStage && index === reached ? "failed"
      : index < reached || stage === "done" ? "past" : index === reached ? "current" : "",
    "aria-current": index === reached && !failedStage ? "step" : null,
  }, failedStage && index === reached ? `${label}: failed` : label)));
}

function refused(detail) {
  $("progress").hidden = false;
  $("progress-bar").hidden = true;
  $("stages").replaceChildren();
  $("progress-status").textContent = `The request was refused: ${detail}`;
  $("progress-status").className = "error";
}

async function succeeded(body) {
  finish();
  const hash = body.request_hash;
  $("progress-status").className = "";
  showProgress({ stage: "done", text: "Done: the images are ready." });
  const info = await requestJSON(`/api/v1/build/${encodeURIComponent(hash)}/info`);
  const artifacts = new Map((info.ok && info.body?.artifacts || []).map((a) => [a.name, a]));
  const images = body.images || [];
  $("images").replaceChildren(...images.map((image) => imageRow(body.bin_dir, image, artifacts)));
  $("result-summary").textContent = `${images.length} image${images.length === 1 ? "" : "s"} `
    + `for ${state.device ? state.device.title : body.id} (${body.version_number || ""} `
    + `${body.target || ""}), ${Object.keys(body.manifest || {}).length} packages installed.`;
  $("result-info").href = `/builds/${hash}`;
  $("result").hidden = false;
  $("result-heading").scrollIntoView({ behavior: "smooth", block: "start" });
}

function imageRow(binDir, image, artifacts) {
  const url = `/store/${encodeURIComponent(binDir)}/${encodeURIComponent(image.name)}`;
  const stored = artifacts.get(image.name);
  const signed = artifacts.has(`${image.name}.sig`);
  return el("tr", {},
    el("td", { "data-label": "Image" }, el("span", { className: "hash" }, image.name)),
    el("td", { "data-label": "Type" }, [image.type, image.filesystem].filter(Boolean).join(", ")),
    el("td", { "data-label": "Size", className: "num" }, filesize(stored?.size)),
    el("td", { "data-label": "SHA256" }, el("code", { className: "hash" }, image.sha256 || "–")),
    el("td", { "data-label": "Download" },
      el("div", { className: "row" },
        el("a", { className: "button primary", href: url, download: image.name,
                  "aria-label": `Download ${image.name}` }, "Download"),
        signed ? el("a", { className: "button", href: `${url}.sig`, download: `${image.name}.sig`,
                           "aria-label": `Signature of ${image.name}` }, "Signature") : null)));
}

function showLog(id, text) {
  const pre = $(id);
  pre.textContent = text || "(empty)";
  pre.scrollTop = pre.scrollHeight; // the end of a log is where it went wrong
}

function failed(body) {
  finish();
  const stage = body.failed_stage || "unknown";
  showProgress({ stage: FAILED_AT[stage] || stage, text: "The build failed.", failedStage: true });
  $("progress-status").className = "error";
  $("failure-stage").textContent = stage;
  $("failure-detail").textContent = body.detail || "no reason given";
  const telling = `${body.stderr || ""}\n${body.stdout || ""}`.split("\n")
    .filter((line) => TELLING.test(line)).slice(-TELLING_LINES);
  $("failure-lines-box").hidden = telling.length === 0;
  $("failure-lines").textContent = telling.join("\n");
  $("failure").hidden = false; // visible first: a hidden log cannot be scrolled
  showLog("failure-stderr", body.stderr);
  showLog("failure-stdout", body.stdout);
  $("failure-info").href = `/builds/${body.request_hash}`;
  $("failure-heading").scrollIntoView({ behavior: "smooth", block: "start" });
}

// -- wiring -----------------------------------------------------------------------------------

function versionChanged() {
  results.replaceChildren();
  if (state.device) changeDevice();
  showMatches();
}

function start() {
  const params = new URLSearchParams(location.search);
  if (params.get("distro")) distroSelect.value = params.get("distro");
  fillVersions(params.get("version") || versionSelect.value);
  distroSelect.addEventListener("change", () => { fillVersions(versionSelect.value); versionChanged(); });
  versionSelect.addEventListener("change", versionChanged);
  search.addEventListener("input", showMatches);
  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && results.firstElementChild) {
      event.preventDefault();
      results.querySelector("button").focus();
    }
  });
  results.addEventListener("keydown", (event) => {
    const item = event.target.closest("li");
    if (!item) return;
    const next = event.key === "ArrowDown" ? item.nextElementSibling
      : event.key === "ArrowUp" ? item.previousElementSibling : undefined;
    if (next === undefined) return;
    event.preventDefault();
    (next ? next.querySelector("button") : search).focus();
  });
  $("device-change").addEventListener("click", changeDevice);
  packageInput.addEventListener("input", suggest);
  packageInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addPackages();
    }
  });
  $("package-add-button").addEventListener("click", addPackages);
  form.addEventListener("submit", submit);
  // once shown, the problems follow the corrections
  form.addEventListener("input", () => { if (!formProblem.hidden) showFormProblems(); });
  form.addEventListener("click", () => { if (!formProblem.hidden) setTimeout(showFormProblems); });
  if (versionSelect.value) devicesOf(versionSelect.value).catch(() => {}); // warm the list
  update();
}

start();
