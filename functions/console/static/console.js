// The operator's console: jobs of the three dialects, starting work, browsing data.
// It talks to the stack's own APIs (same origin) with the token of a runtime login, kept in
// sessionStorage (gone with the tab; logout revokes it). Every value from the API is put into the page
// with textContent, never as markup.

import { barChart, lineChart } from "./charts.js";

const INLINE_MOST = 4 * 1024 * 1024; // above this, a file goes to S3 by the presigned flow
const POLL_MS = 1000;
const PAGE_SIZE = 20;
const RUNTIME_COMMANDS = {
  stop: ["PENDING", "RUNNING"],
  forceStop: ["STOPPING"],
  resume: ["STOPPED"],
  cancel: ["STOPPED"],
};
const COMMAND_NAMES = { stop: "Stop", forceStop: "Force stop", resume: "Resume", cancel: "Cancel" };
// Final states of the three dialects (runtime, gateway errands, Tasks).
const ENDED = new Set(["FINISHED", "FAILED", "CANCELED", "Complete", "Failed", "Terminated", "SUCCESS", "FAILURE", "PARTIAL", "INTERNAL_ERROR"]);
// A task's CSVs are there once it is over, stopped included (a stopped task is never started again).
const TASK_OVER = new Set(["SUCCESS", "FAILURE", "PARTIAL", "INTERNAL_ERROR", "STOPPED"]);
const SHARE_MS = 60000; // a download's share link lasts a minute: long enough to follow, not to keep
const GREGORIAN_TO_UNIX_S = 62167219200; // Kazoo's timestamps count seconds from year 0

const $ = (id) => document.getElementById(id);
const state = {
  session: JSON.parse(sessionStorage.getItem("backroom.session") || "null"),
  jobs: [],
  samples: new Map(), // job key -> [{t, rows}]
  selectedJob: null,
  pollTimer: null,
  pollGeneration: 0, // a poll that started before the last (re)start or stop never draws nor reschedules
  entities: new Set(JSON.parse(sessionStorage.getItem("backroom.entities") || "[]")),
  records: { entity: "", query: "", cursors: [], next: null, sortField: "", sortType: "asc", total: 0 },
  record: null,
  datetimes: new Set(), // the open record's date-time fields
};

// ---- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders() {
  const token = state.session?.token;
  return token ? { token, Authorization: `Bearer ${token}`, "X-Auth-Token": token } : {};
}

function headersFor(path) {
  const token = state.session?.token;
  if (!token) return {};
  if (path.startsWith("/gateway/")) return { Authorization: `Bearer ${token}` };
  if (path.startsWith("/v2/")) return { "X-Auth-Token": token };
  return { token };
}

// The API's own words for an error: runtime `message`, gateway `message`, Kazoo `message` or `data`.
async function errorText(response) {
  try {
    const body = await response.json();
    const detail = body.message || (typeof body.data === "string" ? body.data : body.data?.message);
    return detail || body.error || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// One call to the stack's API with the caller's token: a 401 ends the session (the page says why), any
// other refusal is an ApiError in the API's words. Answers the response itself, for `api` and `download`.
async function request(method, path, { body, json, headers = {}, accept = "application/json", redirect = "follow" } = {}) {
  const sent = { Accept: accept, ...headersFor(path), ...headers };
  let payload = body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers: sent, body: payload, redirect });
  if (response.status === 401 && state.session && !path.endsWith("/auth/login")) {
    endSession("Your session has ended: log in again.");
  }
  if (!response.ok && response.type !== "opaqueredirect") throw new ApiError(response.status, await errorText(response));
  return response;
}

async function api(method, path, options = {}) {
  const response = await request(method, path, options);
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

function show(id, error) {
  $(id).textContent = error ? error.message || String(error) : "";
}

// ---- session ----------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  show("login-error", null);
  try {
    const answer = await api("POST", "/runtime/api/auth/login", {
      json: { email: $("email").value, password: $("password").value },
    });
    state.session = { token: answer.token, email: answer.userEmail, name: answer.userName, account: answer.accountId };
    sessionStorage.setItem("backroom.session", JSON.stringify(state.session));
    $("password").value = "";
    enter();
  } catch (error) {
    show("login-error", error);
  }
}

// The session ends once the API has revoked the token. If it could not (the network, the API), the page
// says so and stays logged in, for another try: the token may still be live, so it is not thrown away as
// if it were revoked. A 401 means the token was dead already (`request` has ended the session).
async function logout() {
  show("logout-error", null);
  try {
    await api("POST", "/runtime/api/auth/logout");
  } catch (error) {
    if (error.status === 401) return;
    $("logout-error").textContent = `Logging out failed (${error.message}): your token may still be valid. Try again.`;
    return;
  }
  endSession("");
}

function endSession(message) {
  // The page starts again from nothing, so that none of the last user's screens (records, fields,
  // jobs) stays in it for whoever logs in next; only the reason it ended is kept, to be shown.
  state.session = null;
  stopPolling();
  sessionStorage.removeItem("backroom.session");
  sessionStorage.removeItem("backroom.entities");
  if (message) sessionStorage.setItem("backroom.ended", message);
  location.reload();
}

function enter() {
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = state.session.email || state.session.name || "";
  screen("jobs");
}

function screen(name) {
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.screen === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const id of ["jobs", "work", "data"]) $(id).hidden = id !== name;
  stopPolling();
  if (name === "jobs") {
    $("job-table").setAttribute("aria-busy", "true"); // until this screen's first poll has drawn it
    pollJobs();
  }
  if (name === "data") refreshEntities();
  $(`${name}-title`).setAttribute("tabindex", "-1");
  $(`${name}-title`).focus();
}

// ---- jobs -------------------------------------------------------------------------------------

// Each dialect's jobs as one shape: {key, dialect, id, label, kind, state, created, count, done, ...}.
function fromRuntime(job) {
  return {
    key: `runtime:${job.id}`, dialect: "runtime", id: job.id, label: job.label || job.id, kind: job.type,
    state: job.status, created: job.createDate, count: job.recordsCount, done: job.recordsProcessed,
    progress: job.progress, raw: job,
  };
}

function fromErrand(errand) {
  return {
    key: `gateway:${errand.id}`, dialect: "gateway", id: String(errand.id), label: errand.name || String(errand.id),
    kind: errand.type, state: errand.state, created: errand.startTime, count: null, done: null, progress: null, raw: errand,
  };
}

function fromTask(task) {
  const count = task.total_count ?? task.total ?? null;
  const done = task.success_count != null ? (task.success_count || 0) + (task.failure_count || 0) : null;
  const created = typeof task.created === "number" ? (task.created - GREGORIAN_TO_UNIX_S) * 1000 : null;
  return {
    key: `tasks:${task.id}`, dialect: "tasks", id: task.id, label: `${task.category}/${task.action}`,
    kind: `${task.category}/${task.action}`, state: String(task.status || "").toUpperCase(), created,
    count, done, progress: count ? Math.floor((100 * done) / count) : null, raw: task,
  };
}

function runtimeQuery() {
  const params = new URLSearchParams({ _size: "50" });
  if ($("f-state").value) params.set("status", $("f-state").value);
  if ($("f-kind").value) params.set("type", $("f-kind").value);
  if ($("f-date").value) params.set("createFrom", String(Date.parse($("f-date").value)));
  return params.toString();
}

// The three listings at once, and notes on a dialect this caller may not use (not an error).
async function fetchJobs() {
  const dialect = $("f-dialect").value;
  const notes = [];
  const wanted = (name) => !dialect || dialect === name;
  const lists = await Promise.all([
    wanted("runtime") ? api("GET", `/runtime/api/status/jobs?${runtimeQuery()}`).then((p) => p.items.map(fromRuntime)) : [],
    wanted("gateway")
      ? api("GET", "/gateway/errand/v1/errands?page=0&size=50")
          .then((p) => (p.results || []).map(fromErrand))
          .catch((e) => (notes.push(`gateway: ${e.message}`), []))
      : [],
    wanted("tasks") && state.session.account
      ? api("GET", `/v2/accounts/${encodeURIComponent(state.session.account)}/tasks`)
          .then((p) => (Array.isArray(p.data) ? p.data : []).map(fromTask))
          .catch((e) => (notes.push(`tasks: ${e.message}`), []))
      : [],
  ]);
  return { jobs: lists.flat(), notes };
}

function matchesFilters(job) {
  const stateWanted = $("f-state").value, kind = $("f-kind").value, from = $("f-date").value;
  if (stateWanted && job.state !== stateWanted) return false;
  if (kind && job.kind !== kind) return false;
  if (from && job.created && job.created < Date.parse(from)) return false;
  return true;
}

function sample(job) {
  if (job.done == null) return;
  const list = state.samples.get(job.key) || [];
  const last = list[list.length - 1];
  if (!last || last.rows !== job.done || !ENDED.has(job.state)) list.push({ t: Date.now(), rows: job.done });
  if (list.length > 600) list.shift();
  state.samples.set(job.key, list);
}

// Rows a second over the last few polls (none once the job has ended).
function rate(job) {
  const list = state.samples.get(job.key) || [];
  if (list.length < 2 || ENDED.has(job.state)) return "";
  const recent = list.slice(-5);
  const seconds = (recent[recent.length - 1].t - recent[0].t) / 1000;
  return seconds > 0 ? ((recent[recent.length - 1].rows - recent[0].rows) / seconds).toFixed(0) : "";
}

function meter(job) {
  const wrap = document.createElement("span");
  if (job.progress == null) {
    wrap.textContent = "—";
    return wrap;
  }
  const bar = document.createElement("span");
  bar.className = "meter";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(job.progress));
  bar.setAttribute("aria-label", `Progress of ${job.label}`);
  const fill = document.createElement("span");
  fill.style.width = `${Math.min(100, job.progress)}%`;
  bar.append(fill);
  const text = document.createElement("span");
  text.className = "meter-text";
  text.textContent = `${job.progress}%`;
  wrap.append(bar, text);
  return wrap;
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  row.append(td);
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "";
}

function fillOptions(select, values) {
  const current = select.value;
  const first = select.options[0];
  select.replaceChildren(first, ...[...values].sort().map((v) => new Option(v, v)));
  select.value = current;
}

function renderJobs() {
  const body = $("job-table").querySelector("tbody");
  // Each poll redraws the rows: a keyboard user's focus on a job stays on that job's button.
  const focused = body.contains(document.activeElement) ? document.activeElement.closest("tr")?.dataset.key : null;
  body.replaceChildren();
  const shown = state.jobs.filter(matchesFilters);
  for (const job of shown) {
    const row = document.createElement("tr");
    row.dataset.key = job.key;
    if (state.selectedJob === job.key) row.className = "selected";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "linklike";
    open.textContent = job.label;
    open.addEventListener("click", () => selectJob(job.key));
    cell(row, open);
    cell(row, `${job.dialect} ${job.kind || ""}`);
    cell(row, job.state);
    cell(row, meter(job));
    cell(row, job.count != null ? `${job.done ?? 0} / ${job.count}` : "");
    cell(row, rate(job));
    cell(row, when(job.created));
    body.append(row);
  }
  if (focused) body.querySelector(`tr[data-key="${CSS.escape(focused)}"] button`)?.focus();
  if (!shown.length) {
    const row = document.createElement("tr");
    cell(row, "No jobs match.");
    body.append(row);
  }
  fillOptions($("f-state"), new Set(state.jobs.map((j) => j.state).filter(Boolean)));
  fillOptions($("f-kind"), new Set(state.jobs.map((j) => j.kind).filter(Boolean)));
  $("job-table").setAttribute("aria-busy", "false");
}

// Ends the current poll's turn: its timer, and whatever it is still awaiting (it will neither draw nor
// schedule another once its answers arrive).
function stopPolling() {
  state.pollGeneration += 1;
  clearTimeout(state.pollTimer);
}

const polling = () => Boolean(state.session) && !$("jobs").hidden && !document.hidden;

// One poll at a time: each starts a new generation, so an older one still awaiting its answers (a click
// on Refresh, a command, a filter) is dropped when they come. None while the tab is hidden.
async function pollJobs() {
  stopPolling();
  const generation = state.pollGeneration;
  const current = () => generation === state.pollGeneration;
  if (!polling()) return;
  try {
    const { jobs, notes } = await fetchJobs();
    if (!current()) return;
    state.jobs = jobs;
    $("jobs-note").textContent = notes.join("; ");
    state.jobs.forEach(sample);
    for (const job of state.jobs) {
      if (job.dialect === "runtime" && job.raw.data?.entity) rememberEntity(job.raw.data.entity);
    }
    show("jobs-error", null);
    renderJobs();
    if (state.selectedJob) await renderJobDetail(current);
  } catch (error) {
    if (current()) show("jobs-error", error);
  }
  if (current() && polling()) state.pollTimer = setTimeout(pollJobs, POLL_MS);
}

// A hidden tab polls nothing; shown again, it polls at once.
function visibilityChanged() {
  if (document.hidden) stopPolling();
  else if (polling()) pollJobs();
}

function selectJob(key) {
  state.selectedJob = key;
  renderJobs();
  renderJobDetail().then(() => {
    $("job-detail-title").setAttribute("tabindex", "-1");
    $("job-detail-title").focus();
  });
}

function field(list, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value ?? "");
  list.append(dt, dd);
}

function commandsOf(job) {
  if (job.dialect === "runtime") {
    return Object.entries(RUNTIME_COMMANDS)
      .filter(([verb, from]) => from.includes(job.state) && (verb !== "stop" || job.raw.stoppable !== false))
      .map(([verb]) => ({ verb, name: COMMAND_NAMES[verb], run: () => api("PUT", `/runtime/api/status/jobs/${job.id}/${verb}`) }));
  }
  // The Tasks dialect stops only an executing task (a pending one is refused: "task is not running").
  if (job.dialect === "tasks" && job.state === "EXECUTING") {
    const path = `/v2/accounts/${encodeURIComponent(state.session.account)}/tasks/${job.id}/stop`;
    return [{ verb: "stop", name: "Stop", run: () => api("PATCH", path) }];
  }
  return [];
}

function downloadsOf(job) {
  if (job.dialect === "runtime" && job.raw.results?.fileId) {
    return [{ name: "Download file", run: () => downloadShared(job.raw.results.fileId) }];
  }
  if (job.dialect === "tasks" && TASK_OVER.has(job.state)) {
    const base = `/v2/accounts/${encodeURIComponent(state.session.account)}/tasks/${job.id}`;
    return [
      { name: "Download input", path: `${base}/input`, file: `${job.id}-in.csv` },
      { name: "Download output", path: `${base}/output`, file: `${job.id}-out.csv` },
    ];
  }
  return [];
}

// A runtime file, of any size, by a share link of a minute: the page follows it as a navigation, which
// carries no token and needs neither CORS nor connect-src; a big file's link answers a redirect to S3,
// whose presigned URL says `attachment` with the file's name, so the browser saves it, the page stays.
async function downloadShared(fileId) {
  const shared = await api("PUT", `/runtime/api/files/${encodeURIComponent(fileId)}/share?ttl=${SHARE_MS}`);
  const link = document.createElement("a");
  link.href = `/runtime/api${shared.sharedFileLink}`; // the link is the runtime API's path
  link.download = ""; // a link that fails is a failed download, not a navigation away from the console
  link.click();
}

// A task's CSV behind its token: fetched with it, then saved from memory (a link cannot carry a header).
// One above what an answer carries is a redirect to S3 the page must not follow with the token: said so.
async function download(path, name) {
  const response = await request("GET", path, { accept: "text/csv, */*", redirect: "manual" });
  if (response.type === "opaqueredirect") {
    throw new Error("This CSV is too big for the page: the Tasks API hands it out by a redirect the page cannot follow with your token. Fetch it with `backroom tasks output`.");
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function renderCommands(job) {
  const box = $("job-commands");
  const wanted = [...commandsOf(job), ...downloadsOf(job)];
  const signature = wanted.map((c) => c.name).join("|");
  if (box.dataset.signature === `${job.key}|${signature}`) return; // keep focus on a button kept
  box.dataset.signature = `${job.key}|${signature}`;
  box.replaceChildren();
  for (const command of wanted) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = command.name;
    button.addEventListener("click", async () => {
      show("job-error", null);
      button.disabled = true;
      try {
        if (command.run) await command.run();
        else await download(command.path, command.file);
        await pollJobs();
      } catch (error) {
        show("job-error", error);
      } finally {
        button.disabled = false; // a button kept by the next draw (the same commands) works again
      }
    });
    box.append(button);
  }
}

async function jobLogTail(job) {
  if (job.dialect === "runtime") {
    // Oldest first: the count from a one-line page, then the last 40 lines by their number.
    const path = `/runtime/api/status/jobs/${job.id}/logs`;
    const head = await api("GET", `${path}?_size=1`);
    const page = head.total > 1 ? await api("GET", `${path}?_size=40&_offset=${Math.max(0, head.total - 40)}`) : head;
    return page.items.map((l) => `${when(l.timestamp)} ${l.level} ${l.message}`);
  }
  if (job.dialect === "gateway") {
    const page = await api("GET", `/gateway/errand/v1/errands/${job.id}/logs`);
    const lines = Array.isArray(page) ? page : page.results || page.logs || [];
    return lines.slice(-40).map((l) => (typeof l === "string" ? l : `${l.level || ""} ${l.message || JSON.stringify(l)}`));
  }
  return ["(the Tasks dialect keeps no log: see the task's output)"];
}

// `current`: whether the poll that draws is still the latest (a stale one writes nothing after its awaits).
async function renderJobDetail(current = () => true) {
  const job = state.jobs.find((j) => j.key === state.selectedJob);
  const detail = $("job-detail");
  if (!job) {
    detail.hidden = true;
    return;
  }
  detail.hidden = false;
  $("job-detail-title").textContent = `${job.dialect} job ${job.label}`;
  const fields = $("job-fields");
  fields.replaceChildren();
  field(fields, "id", job.id);
  field(fields, "kind", job.kind);
  field(fields, "state", job.state);
  field(fields, "rows", job.count != null ? `${job.done ?? 0} of ${job.count}` : "");
  field(fields, "created", when(job.created));
  if (job.dialect === "runtime") {
    field(fields, "run by", job.raw.runBy?.fullName || job.raw.runBy?.id || "");
    field(fields, "has errors", job.raw.hasErrors);
    if (job.raw.results && Object.keys(job.raw.results).length) field(fields, "results", job.raw.results);
  }
  renderCommands(job);
  $("job-chart").replaceChildren(lineChart(state.samples.get(job.key) || [], job.count, `Rows done over time for ${job.label}`));
  try {
    const lines = await jobLogTail(job);
    if (current() && state.selectedJob === job.key) $("job-log").textContent = lines.join("\n");
  } catch (error) {
    if (current() && state.selectedJob === job.key) $("job-log").textContent = error.message;
  }
}

// ---- start work -------------------------------------------------------------------------------

// A file above 4 MiB goes to S3 itself: ask for a presigned URL, PUT the bytes, complete, import by id.
async function uploadLarge(file) {
  const asked = await api("POST", "/runtime/api/files", {
    json: { fileName: file.name, contentType: file.type || "text/csv", size: file.size },
  });
  const headers = { ...asked.uploadHeaders };
  delete headers["Content-Length"]; // the browser sets it from the body (a script may not)
  let put;
  try {
    put = await fetch(asked.uploadUrl, { method: asked.uploadMethod || "PUT", headers, body: file });
  } catch {
    throw new Error("The browser could not reach the file storage (a file above 4 MiB goes there directly): the bucket must allow this page's origin.");
  }
  if (!put.ok) throw new ApiError(put.status, `The upload to storage failed (${put.status}).`);
  await api("POST", new URL(asked.completeLink).pathname);
  return asked.fileId;
}

async function startImport(event) {
  event.preventDefault();
  show("work-error", null);
  const entity = $("import-entity").value.trim();
  const file = $("import-file").files[0];
  const path = `/runtime/api/data/${encodeURIComponent(entity)}/import`;
  try {
    $("work-status").textContent = `Uploading ${file.name}…`;
    let answer;
    if (file.size > INLINE_MOST) {
      answer = await api("POST", path, { json: { fileId: await uploadLarge(file) } });
    } else {
      const form = new FormData();
      form.append("file", file, file.name);
      answer = await api("POST", path, { body: form });
    }
    rememberEntity(entity);
    $("work-status").textContent = `Import started: job ${answer.jobId}.`;
    state.selectedJob = `runtime:${answer.jobId}`;
    screen("jobs");
  } catch (error) {
    $("work-status").textContent = "";
    show("work-error", error);
  }
}

// The gateway's and Tasks' uploads travel in one request through API Gateway and Lambda, whose payload
// (6 MB, a file's bytes base64-encoded in it) takes about 4.5 MB of file: neither dialect has a presigned
// flow, so a bigger file is refused here, in words, before any byte is sent.
function refusedAsTooBig(file, dialect) {
  if (file.size <= INLINE_MOST) return false;
  const mib = (file.size / 1048576).toFixed(1);
  show("work-error", new Error(`${file.name} is ${mib} MiB: the ${dialect} takes at most 4 MiB in one request (it has no upload straight to storage). Split the file, or import it into a runtime entity, which takes any size.`));
  return true;
}

// The gateway's two steps: the file first (an import file), then the errand that imports it.
async function startGatewayImport(event) {
  event.preventDefault();
  show("work-error", null);
  const file = $("gateway-file").files[0];
  if (refusedAsTooBig(file, "gateway dialect")) return;
  const periods = $("gateway-periods").value.split(",").map((p) => p.trim()).filter(Boolean).map(Number);
  try {
    const form = new FormData();
    form.append("file", file, file.name);
    const uploaded = await api("POST", "/gateway/import/v1/files", { body: form });
    const errand = await api("POST", "/gateway/errand/v1/imports/file", {
      json: { importFileId: uploaded.id, importFileTypeId: $("gateway-type").value.trim(), periodRange: periods },
    });
    $("work-status").textContent = `Errand ${errand.id} started.`;
    state.selectedJob = `gateway:${errand.id}`;
    screen("jobs");
  } catch (error) {
    show("work-error", error);
  }
}

async function startTask(event) {
  event.preventDefault();
  show("work-error", null);
  const file = $("task-file").files[0];
  if (refusedAsTooBig(file, "Tasks dialect")) return;
  const base = `/v2/accounts/${encodeURIComponent(state.session.account)}/tasks`;
  const params = new URLSearchParams({ category: $("task-category").value, action: $("task-action").value, file_name: file.name });
  try {
    const created = await api("PUT", `${base}?${params}`, { body: file, headers: { "Content-Type": "text/csv" } });
    const id = created.data?._read_only?.id;
    await api("PATCH", `${base}/${id}`);
    $("work-status").textContent = `Task ${id} started.`;
    state.selectedJob = `tasks:${id}`;
    screen("jobs");
  } catch (error) {
    show("work-error", error);
  }
}

// ---- data -------------------------------------------------------------------------------------

function rememberEntity(name) {
  if (!name || state.entities.has(name)) return;
  state.entities.add(name);
  sessionStorage.setItem("backroom.entities", JSON.stringify([...state.entities]));
  $("entity-names").replaceChildren(...[...state.entities].sort().map((n) => new Option(n)));
}

// Each known entity's count (its list's `total`): the bars; one the caller may not read is dropped.
async function refreshEntities() {
  $("entity-names").replaceChildren(...[...state.entities].sort().map((n) => new Option(n)));
  const counts = [];
  for (const name of [...state.entities].sort()) {
    try {
      const page = await api("GET", `/runtime/api/data/${encodeURIComponent(name)}?_size=1`);
      counts.push({ name, total: page.total ?? 0 });
    } catch (error) {
      if (error.status === 403 || error.status === 404) continue;
      show("data-error", error);
    }
  }
  $("entity-chart").replaceChildren(barChart(counts, "Records per entity"));
}

function recordsPath() {
  const r = state.records;
  const params = new URLSearchParams(r.query.replace(/^\?/, ""));
  params.set("_size", String(PAGE_SIZE));
  params.set("_format", "plainText"); // values as a person reads them: date-times as UTC dates, not epoch ms
  const cursor = r.cursors[r.cursors.length - 1];
  if (cursor) params.set("_offset", cursor); // the `offset` the previous page answered
  if (r.sortField) {
    params.set("_sortField", r.sortField);
    params.set("_sortType", r.sortType);
  }
  return `/runtime/api/data/${encodeURIComponent(r.entity)}?${params}`;
}

function display(value) {
  if (value == null) return "";
  if (Array.isArray(value)) return value.map(display).join(", ");
  if (typeof value === "object") return value.label ?? JSON.stringify(value);
  return String(value);
}

const SYSTEM = new Set(["id", "version", "label", "entity"]);

function renderRecords(page) {
  const r = state.records;
  const items = page.items || [];
  r.items = items; // as plain text: a record opened from them learns its date-time fields (datetimeFields)
  const columns = ["label", ...new Set(items.flatMap((item) => Object.keys(item).filter((k) => !SYSTEM.has(k))))];
  const head = $("record-table").querySelector("thead tr");
  head.replaceChildren(
    ...columns.map((name) => {
      const th = document.createElement("th");
      th.scope = "col";
      const button = document.createElement("button");
      button.type = "button";
      const sorted = r.sortField === name;
      button.textContent = sorted ? `${name} ${r.sortType === "asc" ? "▲" : "▼"}` : name;
      th.setAttribute("aria-sort", sorted ? (r.sortType === "asc" ? "ascending" : "descending") : "none");
      button.addEventListener("click", () => sortBy(name));
      th.append(button);
      return th;
    }),
  );
  const body = $("record-table").querySelector("tbody");
  body.replaceChildren(
    ...items.map((item) => {
      const row = document.createElement("tr");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "linklike";
      open.textContent = item.label || item.id;
      open.addEventListener("click", () => openRecord(item.id));
      cell(row, open);
      for (const name of columns.slice(1)) cell(row, display(item[name]));
      return row;
    }),
  );
  r.total = page.total ?? items.length;
  r.next = page.offset || null;
  const first = r.cursors.length * PAGE_SIZE;
  const range = items.length ? `${first + 1}–${first + items.length}` : "none";
  $("records-status").textContent = `${r.entity}: records ${range} of ${r.total}`;
  $("prev-page").disabled = r.cursors.length === 0;
  $("next-page").disabled = !r.next;
}

async function loadRecords() {
  show("data-error", null);
  try {
    renderRecords(await api("GET", recordsPath()));
  } catch (error) {
    show("data-error", error);
  }
}

function search(event) {
  event.preventDefault();
  const entity = $("entity").value.trim();
  state.records = { ...state.records, entity, query: $("query").value.trim(), cursors: [] };
  if (entity !== state.records.lastEntity) state.records.sortField = "";
  state.records.lastEntity = entity;
  $("record-detail").hidden = true;
  loadRecords().then(() => {
    if (!$("data-error").textContent) {
      rememberEntity(entity);
      refreshEntities();
    }
  });
}

function sortBy(name) {
  const r = state.records;
  r.sortType = r.sortField === name && r.sortType === "asc" ? "desc" : "asc";
  r.sortField = name;
  r.cursors = [];
  loadRecords();
}

function page(step) {
  const r = state.records;
  if (step > 0 && r.next) r.cursors.push(r.next);
  if (step < 0) r.cursors.pop();
  loadRecords();
}

async function openRecord(id) {
  show("data-error", null);
  try {
    const record = await api("GET", `/runtime/api/data/${encodeURIComponent(state.records.entity)}/${encodeURIComponent(id)}`);
    state.record = record;
    state.datetimes = datetimeFields(record, (state.records.items || []).find((item) => item.id === id));
    const fields = $("record-fields");
    fields.replaceChildren();
    for (const [name, value] of Object.entries(record)) field(fields, name, shown(name, value));
    $("history").replaceChildren();
    $("record-title").textContent = `Record ${record.label || record.id}`;
    $("record-detail").hidden = false;
    $("record-title").setAttribute("tabindex", "-1");
    $("record-title").focus();
  } catch (error) {
    show("data-error", error);
  }
}

// The record's date-time fields: a number in its native answer that the listing's plain text shows as
// the API writes a date-time (`YYYY-MM-DD HH:MM:SS UTC`). The API says it; the page guesses nothing.
const PLAIN_DATETIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/;

function datetimeFields(record, plain) {
  const names = Object.keys(record).filter((n) => typeof record[n] === "number" && PLAIN_DATETIME.test(plain?.[n] ?? ""));
  return new Set(names);
}

function shown(name, value) {
  return state.datetimes?.has(name) && typeof value === "number" ? `${when(value)} UTC` : value;
}

// The fields an entry changed, old -> new (the API leaves out a field the caller may not read).
function changes(entry) {
  const before = entry.oldRecord || {}, after = entry.newRecord || {};
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const changed = names.filter((n) => JSON.stringify(before[n] ?? null) !== JSON.stringify(after[n] ?? null));
  const text = (n, value) => display(shown(n, value)) || "∅";
  return changed.map((n) => `${n}: ${text(n, before[n])} → ${text(n, after[n])}`).join("; ") || "no field changed";
}

async function showHistory() {
  show("data-error", null);
  const { entity } = state.records;
  try {
    const page = await api("GET", `/runtime/api/data/${encodeURIComponent(entity)}/${encodeURIComponent(state.record.id)}/history`);
    const items = page.items || [];
    $("history").replaceChildren(
      ...items.map((entry) => {
        const li = document.createElement("li");
        li.textContent = `${when(entry.timestamp)} ${entry.eventType || ""} by ${display(entry.user)}: ${changes(entry)}`;
        return li;
      }),
    );
    if (!items.length) $("history").replaceChildren(Object.assign(document.createElement("li"), { textContent: "No history." }));
  } catch (error) {
    show("data-error", error);
  }
}

// ---- start ------------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  document.addEventListener("visibilitychange", visibilityChanged);
  for (const button of document.querySelectorAll("#nav button")) {
    button.addEventListener("click", () => screen(button.dataset.screen));
  }
  $("job-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    pollJobs();
  });
  for (const id of ["f-dialect", "f-state", "f-kind", "f-date"]) $(id).addEventListener("change", () => pollJobs());
  $("import-form").addEventListener("submit", startImport);
  $("task-form").addEventListener("submit", startTask);
  $("gateway-form").addEventListener("submit", startGatewayImport);
  $("entity-form").addEventListener("submit", search);
  $("prev-page").addEventListener("click", () => page(-1));
  $("next-page").addEventListener("click", () => page(1));
  $("show-history").addEventListener("click", showHistory);
  if (state.session) enter();
  else {
    $("login-error").textContent = sessionStorage.getItem("backroom.ended") || "";
    sessionStorage.removeItem("backroom.ended");
    $("email").focus();
  }
}

wire();
