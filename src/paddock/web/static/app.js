// paddock web UI: plain ES module, no build step, no third-party code.
// Data: the Marathon v2 API (same origin on a marathon; via <prefix>/api/marathon on a
// master), the UI's own api/cluster and api/tasklog endpoints, and the /v2/events stream
// (EventSource) with a periodic refresh as the fallback.

import { REASON_TEXT, backoffLeft, declinedReasons, inBackoff, waitReason } from "./waiting.js";

const $ = (id) => document.getElementById(id);

const EVENT_TYPES = [
  "api_post_event", "status_update_event", "health_status_changed_event",
  "failed_health_check_event", "unhealthy_task_kill_event", "unhealthy_instance_kill_event",
  "group_change_success", "group_change_failed", "deployment_success", "deployment_failed",
  "deployment_info", "deployment_step_success", "deployment_step_failure",
  "app_terminated_event", "instance_changed_event", "instance_health_changed_event",
  "unknown_instance_terminated_event",
];
const FAST_REFRESH_MS = 5000;   // when the event stream is down
const SLOW_REFRESH_MS = 30000;  // safety net while it is up
const CLUSTER_REFRESH_MS = 10000;

const EXAMPLE_APP = {
  id: "/hello",
  cmd: "echo hello from $MESOS_TASK_ID; exec python3 -m http.server $PORT0 --bind $HOST",
  cpus: 0.1,
  mem: 32,
  instances: 1,
  portDefinitions: [{ port: 0, name: "http" }],
  healthChecks: [{ protocol: "HTTP", path: "/", portIndex: 0, gracePeriodSeconds: 15,
    intervalSeconds: 2, timeoutSeconds: 1, maxConsecutiveFailures: 3 }],
};

const state = {
  marathon: "",          // prefix of the Marathon API
  apps: [],
  queue: [],
  queueFetchedAt: 0,     // Date.now() of the queue's answer (backoff counts down from it)
  failures: new Map(),   // app id -> lastTaskFailure, for apps in launch backoff
  deployments: [],
  tasks: [],
  info: null,
  cluster: null,
  confirmDestroy: null,  // app id awaiting confirmation
  log: null,             // {task, file}
  sseOpen: false,
  lastRefresh: 0,
  refreshTimer: null,
  clusterTimer: null,
  appsError: false,
};

// ------------------------------------------------------------------ DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(kind, text) {
  return h("span", { class: `badge ${kind}` }, text);
}

function table(caption, headers, rows, emptyText) {
  if (!rows.length) return h("p", { class: "muted" }, emptyText);
  return h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows));
}

// Update a container in place: nodes whose content did not change stay in the document, so
// a live refresh never swallows a click (a button replaced between mouse-down and mouse-up
// loses it) nor moves keyboard focus. Elements with an identity (data-key on controls,
// data-app/-task/-deployment on rows) are reused only for the same identity, so a kept
// control's event handler always belongs to what it shows.
function identity(el) {
  const d = el.dataset || {};
  return d.key ?? d.app ?? d.task ?? d.deployment ?? "";
}

function morph(oldNode, newNode) {
  if (oldNode.nodeType !== newNode.nodeType) return false;
  if (oldNode.nodeType === Node.TEXT_NODE) {
    if (oldNode.nodeValue !== newNode.nodeValue) oldNode.nodeValue = newNode.nodeValue;
    return true;
  }
  if (oldNode.nodeType !== Node.ELEMENT_NODE) return false;
  if (oldNode.tagName !== newNode.tagName || identity(oldNode) !== identity(newNode)) return false;
  if (oldNode.isEqualNode(newNode)) return true;
  for (const a of [...oldNode.attributes]) if (!newNode.hasAttribute(a.name)) oldNode.removeAttribute(a.name);
  for (const a of [...newNode.attributes]) {
    if (oldNode.getAttribute(a.name) !== a.value) oldNode.setAttribute(a.name, a.value);
  }
  morphChildren(oldNode, [...newNode.childNodes]);
  return true;
}

function morphChildren(parent, fresh) {
  const old = [...parent.childNodes];
  fresh.forEach((n, i) => {
    const o = old[i];
    if (o === undefined) parent.append(n);
    else if (!morph(o, n)) parent.replaceChild(n, o);
  });
  for (const o of old.slice(fresh.length)) o.remove();
}

function render(container, ...nodes) {
  const probe = document.createElement("div");
  probe.append(...nodes);
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : null;
  morphChildren(container, [...probe.childNodes]);
  if (key && !container.contains(active)) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function fmtRes(r) {
  if (!r) return "";
  const parts = [];
  if (r.cpus !== undefined) parts.push(`cpus ${+(+r.cpus).toFixed(2)}`);
  if (r.mem !== undefined) parts.push(`mem ${Math.round(r.mem)} MB`);
  if (r.disk !== undefined) parts.push(`disk ${Math.round(r.disk)} MB`);
  // (no port lists: they grow and wrap as tasks come and go, moving everything below)
  return parts.join(", ");
}

function usage(used, total, key, unit = "") {
  const u = +(used?.[key] ?? 0), t = +(total?.[key] ?? 0);
  const fmt = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  return `${fmt(u)} / ${fmt(t)}${unit}`;
}

function attrs(a) {
  const entries = Object.entries(a || {});
  return entries.length ? entries.map(([k, v]) => `${k}:${v}`).join(", ") : "none";
}

// A timestamp as local wall-clock time (stable between refreshes, unlike "5 s ago").
function when(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const sameDay = t.toDateString() === new Date().toDateString();
  return sameDay ? t.toLocaleTimeString() : t.toLocaleString();
}

// ------------------------------------------------------------------ HTTP

async function call(method, url, body) {
  const opts = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(url, opts);
  } catch (err) {
    return { ok: false, status: 0, body: { message: `network error: ${err.message}` } };
  }
  let data = null;
  const text = await r.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  return { ok: r.ok, status: r.status, body: data };
}

const api = (path) => state.marathon + path;
const appUrl = (id) => api("/v2/apps" + (id.startsWith("/") ? id : "/" + id));

// ------------------------------------------------------------------ overview

async function loadCluster() {
  const r = await call("GET", "api/cluster");
  if (!r.ok) {
    showOverviewErrors([`cluster overview: HTTP ${r.status} ${r.body?.message ?? ""}`]);
    return;
  }
  state.cluster = r.body;
  renderCluster();
}

function showOverviewErrors(errors) {
  const box = $("overview-errors");
  box.hidden = !errors.length;
  render(box, ...(errors.length ? [h("strong", {}, "Problems: "), errors.join("; ")] : []));
}

function renderCluster() {
  const c = state.cluster;
  showOverviewErrors(c.errors || []);
  // coordination
  const co = c.coordination;
  if (!co) {
    render($("coord-summary"), "Not configured");
    render($("coord-table"));
  } else {
    const q = co.quorum;
    render($("coord-summary"),
      co.healthy ? badge("ok", "Healthy")
        : co.healthy === null ? badge("warn", "Unknown (srvr not allowed)") : badge("bad", "No quorum"),
      ` ${q.serving} of ${q.size} serving (quorum ${q.needed}); leader: ${co.leader ?? "none"}`);
    render($("coord-table"), table("Coordination servers", ["Server", "Status", "Mode", "Zxid", "Connections"],
      co.servers.map((s) => h("tr", {},
        h("td", {}, s.address),
        h("td", {}, !s.up ? badge("bad", "Down") : s.mode === "not serving" ? badge("bad", "Not serving")
          : s.mode === "unknown" ? badge("warn", "Answering") : badge("ok", "Up"), s.error ? ` ${s.error}` : ""),
        h("td", {}, s.mode ?? ""),
        h("td", {}, s.zxid ?? ""),
        h("td", { class: "num" }, s.connections ?? ""))), "No servers"));
  }
  // masters
  const m = c.masters;
  const serving = m.known.filter((x) => x.elected).length;
  render($("masters-summary"),
    m.leader && serving === 1 ? badge("ok", "Leader serving") : m.leader ? badge("warn", "Leader elected, not serving yet") : badge("bad", "No leader"),
    ` ${m.known.length} master(s) registered${m.quorum ? `, quorum ${m.quorum}` : ""}; leader: ${m.leader ?? "none"}`);
  render($("masters-table"), table("Masters", ["Master", "Role", "Status"],
    m.known.map((x) => h("tr", {},
      h("td", {}, x.address, x.hostname && !x.address.startsWith(x.hostname) ? ` (${x.hostname})` : ""),
      h("td", {}, x.leading ? "leader" : "standby"),
      h("td", {}, x.up === false ? badge("bad", `Unreachable: ${x.error ?? ""}`)
        : x.elected ? badge("ok", "Serving as leader") : badge("ok", "Up")))), "No masters found"));
  // agents
  render($("agents-table"), table("Agents", ["Agent", "Status", "CPUs used / total", "Memory used / total", "Disk", "Ports", "Attributes"],
    c.agents.map((a) => h("tr", {},
      h("td", {}, h("div", {}, `${a.hostname}:${a.port}`), h("div", { class: "muted" }, a.id)),
      h("td", {}, a.active ? badge("ok", "Active") : badge("bad", "Inactive")),
      h("td", { class: "num" }, usage(a.used_resources, a.resources, "cpus")),
      h("td", { class: "num" }, usage(a.used_resources, a.resources, "mem", " MB")),
      h("td", { class: "num" }, `${Math.round(a.resources?.disk ?? 0)} MB`),
      h("td", {}, a.resources?.ports ?? ""),
      h("td", {}, attrs(a.attributes)))), "No agents registered"));
  render($("frameworks-table"), table("Frameworks", ["Framework", "Status", "Tasks", "Resources used", "Web UI"],
    c.frameworks.map((f) => h("tr", {},
      h("td", {}, h("div", {}, f.name), h("div", { class: "muted" }, f.id)),
      h("td", {}, f.active && f.connected ? badge("ok", "Active") : f.connected ? badge("warn", "Inactive") : badge("bad", "Disconnected")),
      h("td", { class: "num" }, f.tasks),
      h("td", {}, fmtRes(f.used_resources)),
      h("td", {}, f.webui_url ? h("a", { href: f.webui_url + "/ui/" }, f.webui_url) : ""))), "No frameworks registered"));
}

async function loadInfo() {
  const r = await call("GET", api("/v2/info"));
  if (!r.ok) {
    render($("marathon-summary"), badge("bad", "Unavailable"), ` HTTP ${r.status}: ${r.body?.message ?? ""}`);
    return;
  }
  const i = r.body;
  state.info = i;
  render($("marathon-summary"),
    i.leader ? badge("ok", "Leader elected") : badge("bad", "No leader"),
    ` leader: ${i.leader ?? "none"}; framework id: ${i.frameworkId ?? "not registered yet"}; version ${i.version}`);
}

// ------------------------------------------------------------------ apps

function whyWaiting(q) {
  return waitReason(q, state.failures.get(q.app?.id) ?? null, state.queueFetchedAt);
}

function appHealth(a, q) {
  const total = a.instances;
  if (total === 0 && a.tasksRunning === 0) return badge("muted", "Suspended");
  if (q) {
    return [badge("warn", inBackoff(q) ? "Waiting (launch backoff)" : "Waiting for offers"),
      h("div", { class: "why" }, h("span", { class: "visually-hidden" }, "Why: "),
        `${q.count} waiting, ${whyWaiting(q)}`)];
  }
  if (a.deployments?.length) return badge("warn", "Deploying");
  if (a.tasksUnhealthy > 0) return badge("bad", "Unhealthy");
  if (a.healthChecks?.length) {
    return a.tasksHealthy >= total ? badge("ok", "Healthy") : badge("warn", "Not yet healthy");
  }
  return a.tasksRunning >= total ? badge("ok", "Running") : badge("warn", "Starting");
}

function instancesText(a) {
  const parts = [`${a.tasksRunning} of ${a.instances} running`];
  if (a.healthChecks?.length) parts.push(`${a.tasksHealthy} healthy`);
  if (a.tasksUnhealthy) parts.push(`${a.tasksUnhealthy} unhealthy`);
  if (a.tasksStaged) parts.push(`${a.tasksStaged} staged`);
  return parts.join(", ");
}

async function loadApps() {
  const [apps, queue] = await Promise.all([call("GET", api("/v2/apps")), call("GET", api("/v2/queue"))]);
  if (apps.ok) state.apps = apps.body.apps || [];
  if (queue.ok) {
    state.queue = queue.body.queue || [];
    state.queueFetchedAt = Date.now();
    await loadFailures();
  }
  // the status line also reports the user's last action: only touch it for list errors
  if (!apps.ok) {
    state.appsError = true;
    render($("apps-status"), `Cannot list apps: HTTP ${apps.status} ${apps.body?.message ?? ""}`);
  } else if (state.appsError) {
    state.appsError = false;
    render($("apps-status"));
  }
  renderApps();
  renderQueue();
}

// The last task failure of each app in launch backoff (one request per such app, like the
// CLI: embedding it in the app list would read every app's failure from the store).
async function loadFailures() {
  const backing = state.queue.filter(inBackoff).map((q) => q.app?.id).filter(Boolean).slice(0, 50);
  const answers = await Promise.all(backing.map((id) => call("GET", appUrl(id) + "?embed=apps.lastTaskFailure")));
  const failures = new Map();
  backing.forEach((id, i) => {
    const f = answers[i].ok ? answers[i].body?.app?.lastTaskFailure : null;
    if (f && typeof f === "object") failures.set(id, f);
  });
  state.failures = failures;
}

function renderApps() {
  const queued = new Map(state.queue.map((q) => [q.app?.id, q]));
  const rows = [...state.apps].sort((x, y) => x.id.localeCompare(y.id)).map((a) => {
    const id = a.id;
    let actions;
    if (state.confirmDestroy === id) {
      actions = h("div", { class: "actions confirm", role: "group", "aria-label": `Confirm destroying ${id}` },
        `Destroy ${id} and kill its tasks?`,
        h("button", { type: "button", class: "danger", dataset: { key: `yes:${id}` }, onclick: () => destroyApp(id) }, "Yes, destroy"),
        h("button", { type: "button", dataset: { key: `no:${id}` }, onclick: () => { state.confirmDestroy = null; renderApps(); focusKey(`destroy:${id}`); } }, "Cancel"));
    } else {
      const inputId = `scale-${id.replace(/[^a-zA-Z0-9_-]/g, "_")}`;
      actions = h("div", { class: "actions" },
        h("label", { for: inputId }, "Instances"),
        h("input", { type: "number", id: inputId, min: 0, value: a.instances, dataset: { key: `n:${id}` },
          "aria-label": `Instances of ${id}`,
          onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); scaleApp(id, e.target.value); } } }),
        h("button", { type: "button", dataset: { key: `scale:${id}` }, "aria-label": `Scale ${id}`,
          onclick: () => scaleApp(id, document.getElementById(inputId).value) }, "Scale"),
        h("button", { type: "button", dataset: { key: `restart:${id}` }, "aria-label": `Restart ${id}`, onclick: () => restartApp(id) }, "Restart"),
        h("button", { type: "button", class: "danger", dataset: { key: `destroy:${id}` }, "aria-label": `Destroy ${id}`,
          onclick: () => { state.confirmDestroy = id; renderApps(); focusKey(`yes:${id}`); } }, "Destroy"),
        h("button", { type: "button", dataset: { key: `edit:${id}` }, "aria-label": `Edit ${id}`, onclick: () => editApp(id) }, "Edit"));
    }
    return h("tr", { dataset: { app: id } },
      h("th", { scope: "row" }, h("code", {}, id)),
      h("td", { class: "instances" }, instancesText(a)),
      h("td", { class: "health" }, appHealth(a, queued.get(id))),
      h("td", {}, fmtRes({ cpus: a.cpus, mem: a.mem })),
      h("td", {}, a.deployments?.length ? a.deployments.map((d) => d.id).join(", ") : "none"),
      h("td", {}, actions));
  });
  render($("apps-table"), table("Apps", ["App", "Instances", "Health", "Per instance", "Deployments", "Actions"], rows,
    "No apps yet: deploy one below."));
}

function focusKey(key) {
  const el = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (el) el.focus();
}

function renderQueue() {
  const items = state.queue.map((q) => {
    const s = q.processedOffersSummary || {};
    const id = q.app?.id ?? "?";
    const failure = inBackoff(q) ? state.failures.get(q.app?.id) : null;
    const reasons = declinedReasons(q).map((d) => h("li", {},
      h("strong", {}, REASON_TEXT[d.reason] ?? d.reason), ` (${d.reason}): declined ${d.declined} offer(s)`));
    return h("li", { class: "queued", dataset: { app: q.app?.id } },
      h("code", {}, id), `: ${q.count} instance(s) waiting`,
      inBackoff(q) ? `, launch delayed ${backoffLeft(q, state.queueFetchedAt)} s (backoff)` : "",
      `; ${s.processedOffersCount ?? 0} offers processed, ${s.unusedOffersCount ?? 0} unused`,
      s.lastUnusedOfferAt ? ` (last unused at ${when(s.lastUnusedOfferAt)})` : "",
      h("p", { class: "why" }, h("strong", {}, "Why: "), whyWaiting(q)),
      failure ? h("p", { class: "failure" }, `Last failure (${failure.state || "?"}`,
        failure.host ? ` on ${failure.host}` : "", failure.timestamp ? ` at ${when(failure.timestamp)}` : "",
        `): ${failure.message || "no message"}`) : "",
      reasons.length ? h("ul", { class: "reasons", "aria-label": `Declined offers of ${id} by reason` }, reasons)
        : failure ? "" : h("div", { class: "muted" }, "No offer declined yet."));
  });
  render($("queue"), items.length ? h("ul", {}, items) : h("p", { class: "muted" }, "Nothing is waiting."));
}

async function scaleApp(id, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    render($("apps-status"), `Instances for ${id} must be a whole number ≥ 0 (got "${value}").`);
    return;
  }
  const r = await call("PUT", appUrl(id) + "?force=true", { instances: n });
  report(r, `Scaling ${id} to ${n}`);
}

async function restartApp(id) {
  report(await call("POST", appUrl(id) + "/restart"), `Restarting ${id}`);
}

async function destroyApp(id) {
  state.confirmDestroy = null;
  report(await call("DELETE", appUrl(id) + "?force=true"), `Destroying ${id}`);
  focusKey("deploy-submit");
}

async function editApp(id) {
  const r = await call("GET", appUrl(id));
  if (!r.ok) return report(r, `Loading ${id}`);
  const a = r.body.app;
  const keep = ["id", "cmd", "args", "cpus", "mem", "disk", "instances", "env", "portDefinitions",
    "healthChecks", "constraints", "labels", "upgradeStrategy", "backoffSeconds", "container", "user"];
  const out = {};
  for (const k of keep) if (a[k] !== undefined && a[k] !== null) out[k] = a[k];
  $("app-json").value = JSON.stringify(out, null, 2);
  $("app-json").focus();
}

function report(r, what) {
  const msg = r.ok
    ? `${what}: accepted${r.body?.deploymentId ? ` (deployment ${r.body.deploymentId})` : ""}.`
    : `${what} failed: HTTP ${r.status} ${r.body?.message ?? ""}`;
  render($("apps-status"), msg);
  scheduleRefresh(100);
}

// ------------------------------------------------------------------ deploy

function showDeployErrors(title, items) {
  const box = $("deploy-errors");
  const ta = $("app-json");
  if (!title) {
    box.hidden = true;
    box.replaceChildren();
    ta.removeAttribute("aria-invalid");
    return;
  }
  ta.setAttribute("aria-invalid", "true");
  box.hidden = false;
  box.replaceChildren(h("strong", {}, title), items.length ? h("ul", {}, items) : "");
  box.focus();
}

async function deploy(ev) {
  ev.preventDefault();
  const text = $("app-json").value;
  render($("deploy-result"));
  let body;
  try {
    body = JSON.parse(text);
  } catch (err) {
    showDeployErrors("Not valid JSON", [h("li", {}, err.message)]);
    return;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    showDeployErrors("Not valid JSON", [h("li", {}, "expecting one JSON object (an app definition)")]);
    return;
  }
  const force = $("deploy-force").checked ? "?force=true" : "";
  const id = typeof body.id === "string" ? (body.id.startsWith("/") ? body.id : "/" + body.id) : null;
  const exists = id && state.apps.some((a) => a.id === id);
  const button = $("deploy-submit");
  button.disabled = true;
  let r;
  try {
    r = exists ? await call("PUT", appUrl(id) + force, text) : await call("POST", api("/v2/apps") + force, text);
  } finally {
    button.disabled = false;
  }
  if (r.ok) {
    showDeployErrors(null);
    const dep = r.body?.deploymentId ?? r.body?.deployments?.[0]?.id ?? "";
    render($("deploy-result"), badge("ok", exists ? "Updated" : "Created"),
      ` ${id ?? r.body?.id ?? "app"}${dep ? `: deployment ${dep}` : ""}`);
    scheduleRefresh(100);
    return;
  }
  const details = Array.isArray(r.body?.details) ? r.body.details : [];
  const items = details.map((d) => h("li", {},
    h("code", {}, d.path || "/"), ": ", (d.errors || []).join("; ")));
  showDeployErrors(`HTTP ${r.status}: ${r.body?.message ?? "rejected"}`, items);
}

// ------------------------------------------------------------------ deployments

async function loadDeployments() {
  const r = await call("GET", api("/v2/deployments"));
  if (!r.ok) return;
  state.deployments = r.body || [];
  const items = state.deployments.map((d) => h("div", { class: "deployment", dataset: { deployment: d.id } },
    h("h3", {}, `Deployment ${d.id}`),
    h("p", {}, `Apps: ${(d.affectedApps || []).join(", ")}; step ${d.currentStep} of ${d.totalSteps}; version ${d.version}`),
    h("ol", { class: "steps", "aria-label": `Steps of deployment ${d.id}` },
      (d.steps || []).map((s, i) => h("li", { class: i + 1 === d.currentStep ? "current" : "" },
        i + 1 === d.currentStep ? "▶ (in progress) " : i + 1 < d.currentStep ? "✓ (done) " : "",
        (s.actions || []).map((a) => `${a.action} ${a.app ?? a.pod ?? ""}`).join(", ")))),
    (d.currentActions || []).some((a) => a.readinessCheckResults?.length)
      ? h("p", {}, "Readiness checks pending") : "",
    h("div", { class: "actions" },
      h("button", { type: "button", dataset: { key: `rollback:${d.id}` }, "aria-label": `Roll back deployment ${d.id}`,
        onclick: async () => report(await call("DELETE", api(`/v2/deployments/${d.id}`)), `Rolling back ${d.id}`) }, "Roll back"),
      h("button", { type: "button", class: "danger", dataset: { key: `stop:${d.id}` }, "aria-label": `Stop deployment ${d.id} without rollback`,
        onclick: async () => report(await call("DELETE", api(`/v2/deployments/${d.id}?force=true`)), `Stopping ${d.id}`) }, "Stop"))));
  render($("deployments-list"), ...(items.length ? items : [h("p", { class: "muted" }, "No deployment is running.")]));
}

// ------------------------------------------------------------------ tasks and logs

function taskHealth(t) {
  const res = t.healthCheckResults || [];
  if (!res.length) return h("span", { class: "muted" }, "no result");
  return res.every((x) => x.alive) ? badge("ok", "Healthy") : badge("bad", "Unhealthy");
}

async function loadTasks() {
  const r = await call("GET", api("/v2/tasks"));
  if (!r.ok) return;
  state.tasks = (r.body.tasks || []).sort((a, b) => (a.appId + a.id).localeCompare(b.appId + b.id));
  const rows = state.tasks.map((t) => h("tr", { dataset: { task: t.id } },
    h("th", { scope: "row" }, h("code", {}, t.id)),
    h("td", {}, t.appId),
    h("td", {}, t.state === "TASK_RUNNING" ? badge("ok", t.state) : badge("warn", t.state)),
    h("td", {}, t.host),
    h("td", {}, (t.ports || []).join(", ")),
    h("td", {}, taskHealth(t)),
    h("td", {}, t.startedAt ? h("time", { datetime: t.startedAt }, when(t.startedAt)) : "not started"),
    h("td", {}, h("button", { type: "button", dataset: { key: `log:${t.id}` }, "aria-label": `Show log of task ${t.id}`,
      onclick: () => openLog(t.id) }, "Log"))));
  render($("tasks-table"), table("Tasks", ["Task", "App", "State", "Host", "Ports", "Health", "Started", "Sandbox"], rows, "No tasks."));
}

async function openLog(task) {
  state.log = { task };
  $("log").hidden = false;
  await loadLog();
  $("log-text").focus();
}

async function loadLog() {
  if (!state.log) return;
  const file = $("log-file").value;
  const { task } = state.log;
  render($("log-meta"), `Loading ${file} of ${task}…`);
  const r = await call("GET", `api/tasklog?task=${encodeURIComponent(task)}&file=${file}&bytes=16384`);
  if (!r.ok) {
    render($("log-meta"), badge("bad", "Error"), ` ${file} of ${task}: HTTP ${r.status} ${r.body?.message ?? ""}`);
    $("log-text").textContent = "";
    return;
  }
  const l = r.body;
  render($("log-meta"), `${l.file} of task ${l.task} on agent ${l.agent} (${l.state}); ` +
    (l.truncated ? `last ${l.size - l.offset} of ${l.size} bytes` : `${l.size} bytes`));
  const pre = $("log-text");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = l.data || "(empty)";
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

// ------------------------------------------------------------------ refresh and events

async function refreshMarathon() {
  state.lastRefresh = Date.now();
  await Promise.allSettled([loadInfo(), loadApps(), loadDeployments(), loadTasks()]);
}

function scheduleRefresh(ms = 300) {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    await refreshMarathon();
  }, ms);
}

function setLive(text) {
  $("live").textContent = `Live updates: ${text}`;
}

function connectEvents() {
  if (!("EventSource" in window)) {
    setLive(`not supported by this browser; refreshing every ${FAST_REFRESH_MS / 1000} s`);
    return;
  }
  const es = new EventSource(api("/v2/events"));
  es.onopen = () => {
    state.sseOpen = true;
    setLive("connected (event stream)");
    scheduleRefresh(50);
  };
  es.onerror = () => {
    state.sseOpen = false;
    setLive(`event stream disconnected; refreshing every ${FAST_REFRESH_MS / 1000} s`);
  };
  const onEvent = (e) => {
    $("live").dataset.events = String(Number($("live").dataset.events || 0) + 1);
    scheduleRefresh(e.type === "status_update_event" || e.type === "instance_changed_event" ? 200 : 300);
    // tasks change the agents' used resources: refresh the overview too, at most every 2 s
    if (!state.clusterTimer) {
      state.clusterTimer = setTimeout(() => { state.clusterTimer = null; loadCluster(); }, 2000);
    }
  };
  for (const t of EVENT_TYPES) es.addEventListener(t, onEvent);
  window.addEventListener("beforeunload", () => es.close());
}

async function start() {
  const cfg = await call("GET", "api/config");
  if (cfg.ok) state.marathon = cfg.body.marathon_api || "";
  document.body.dataset.servedBy = cfg.body?.served_by ?? "unknown";
  $("deploy-form").addEventListener("submit", deploy);
  $("app-json").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("deploy-form").requestSubmit();
  });
  $("deploy-example").addEventListener("click", () => {
    $("app-json").value = JSON.stringify(EXAMPLE_APP, null, 2);
    $("app-json").focus();
  });
  $("refresh").addEventListener("click", () => { loadCluster(); refreshMarathon(); });
  $("log-refresh").addEventListener("click", loadLog);
  $("log-file").addEventListener("change", loadLog);
  $("log-close").addEventListener("click", () => {
    const task = state.log?.task;
    state.log = null;
    $("log").hidden = true;
    if (task) focusKey(`log:${task}`);
  });
  connectEvents();
  await Promise.allSettled([loadCluster(), refreshMarathon()]);
  document.body.dataset.ready = "true";
  setInterval(() => {
    const due = state.sseOpen ? SLOW_REFRESH_MS : FAST_REFRESH_MS;
    if (Date.now() - state.lastRefresh >= due - 100) refreshMarathon();
  }, FAST_REFRESH_MS);
  setInterval(loadCluster, CLUSTER_REFRESH_MS);
  // a launch backoff counts down between refreshes (text changes only: render keeps nodes)
  setInterval(() => {
    if (!state.queue.some(inBackoff)) return;
    renderApps();
    renderQueue();
    // the delay ended: fetch the queue again rather than show "backoff 0s" for long
    if (state.queue.some((q) => inBackoff(q) && backoffLeft(q, state.queueFetchedAt) === 0)) scheduleRefresh(500);
  }, 1000);
}

start();
