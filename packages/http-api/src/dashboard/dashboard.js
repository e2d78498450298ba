// The operator's dashboard: asks for the ManagementToken, keeps it in this tab's session
// storage only, and polls the management API with it every few seconds.
//
// The charts' history is kept here, in memory, rather than by the dispatcher: the page is the
// only reader of an hour of samples, a dispatcher with nobody watching keeps nothing extra, and
// longer or shared history is Prometheus's job (examples/grafana). So the charts start empty
// when the page is opened.
import { drawLineChart } from "./charts.js";
import {
  renderEvents,
  renderHolds,
  renderInstances,
  renderQueue,
  renderSummary,
} from "./panels.js";

const API = "/arvados/v1/dispatch";
const TOKEN_KEY = "dispatch-cloud.management-token";
const REFRESH_MS = 5000;
const HOUR_MS = 3600_000;
const EVENTS_KEPT = 100;
const STATES = ["booting", "idle", "running", "shutdown", "unknown"];
const STATE_COLOURS = {
  booting: "#2457c5",
  idle: "#8a94a6",
  running: "#1b7a3d",
  shutdown: "#a15c00",
  unknown: "#7b3fb3",
};
/** What "only failures and shutdowns" keeps. */
const PROBLEM_EVENTS = new Set([
  "create_failed",
  "boot_timed_out",
  "shutdown_requested",
  "instance_gone",
  "spot_interruption_notice",
]);
/** Events that put an instance into a state: where its time in that state starts. */
const STATE_EVENTS = {
  booting: ["create_succeeded"],
  idle: ["boot_succeeded", "container_ended"],
  running: ["container_started"],
  shutdown: ["shutdown_requested"],
};

const $ = (id) => document.getElementById(id);

/** A refusal of the token: back to the token form. */
class Refused extends Error {}

const state = {
  /** Samples for the charts, oldest first, at most an hour. */
  history: [],
  /** Newest first; null when the dispatcher has no events endpoint. */
  events: [],
  /** @type {number | null} The newest event's seq seen so far. */
  lastSeq: null,
  /** Instance id → {state, since, exact}: when the page saw it enter its current state. */
  seen: new Map(),
  firstPoll: true,
  timer: undefined,
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, init = {}) {
  const res = await fetch(`${API}/${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token()}` },
    cache: "no-store",
    credentials: "omit",
  });
  if (res.status === 401 || res.status === 403) {
    throw new Refused(`the dispatcher refused the token (HTTP ${res.status})`);
  }
  return res;
}

async function getJson(path) {
  const res = await api(path);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${(await res.text()).trim()}`);
  return res.json();
}

/** The endpoint's JSON, or null when this dispatcher does not have the endpoint. */
async function getOptional(path) {
  const res = await api(path);
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${(await res.text()).trim()}`);
  return res.json();
}

async function pollEvents() {
  const query =
    state.lastSeq === null ? `limit=${EVENTS_KEPT}` : `since_seq=${state.lastSeq}&limit=1000`;
  const body = await getOptional(`events?${query}`);
  if (body === null) {
    state.events = null;
    state.lastSeq = null;
    return;
  }
  if (
    state.lastSeq !== null &&
    typeof body.next_seq === "number" &&
    body.next_seq <= state.lastSeq
  ) {
    // Numbering started again (a restarted dispatcher): read the journal afresh next time.
    state.lastSeq = null;
    state.events = [];
    return;
  }
  const fresh = body.items ?? [];
  if (fresh.length > 0) state.lastSeq = fresh[fresh.length - 1].seq;
  else if (state.lastSeq === null && typeof body.next_seq === "number") {
    state.lastSeq = body.next_seq - 1;
  }
  state.events = [...fresh.toReversed(), ...(state.events ?? [])].slice(0, EVENTS_KEPT);
}

/** Time in state: exact from last_busy or an event, else "at least" since the page saw it. */
function trackStates(instances, now) {
  const present = new Set();
  for (const i of instances) {
    if (i.instance === "") continue;
    present.add(i.instance);
    const known = state.seen.get(i.instance);
    if (known !== undefined && known.state === i.worker_state) continue;
    // Seen changing (or appearing) while the page watched: right to within one refresh.
    let since = now;
    let exact = !state.firstPoll;
    const busy = Date.parse(i.last_busy);
    const event = (state.events ?? []).find(
      (e) => e.instance_id === i.instance && (STATE_EVENTS[i.worker_state] ?? []).includes(e.kind),
    );
    if (i.worker_state === "idle" && busy > 0) {
      since = busy;
      exact = true;
    } else if (event !== undefined) {
      since = Date.parse(event.time);
      exact = true;
    }
    state.seen.set(i.instance, { state: i.worker_state, since, exact });
  }
  for (const id of state.seen.keys()) if (!present.has(id)) state.seen.delete(id);
}

function record(instances, queue, now) {
  const sample = { t: now, states: {}, queued: 0, running: 0 };
  for (const s of STATES) sample.states[s] = 0;
  for (const i of instances) {
    sample.states[i.worker_state] = (sample.states[i.worker_state] ?? 0) + 1;
    sample.running += i.running_container_uuids?.length ?? 0;
  }
  sample.queued = queue.filter((e) => e.container.state === "Queued").length;
  state.history.push(sample);
  while (state.history.length > 0 && state.history[0].t < now - HOUR_MS) state.history.shift();
  return sample;
}

/** The span the charts show: what the page has seen, from 5 minutes up to an hour. */
function chartWindow(now) {
  const first = state.history[0]?.t ?? now;
  return Math.min(HOUR_MS, Math.max(5 * 60_000, now - first));
}

function drawCharts(now) {
  drawLineChart(
    $("chart-states"),
    state.history,
    STATES.map((s) => ({ label: s, colour: STATE_COLOURS[s], value: (x) => x.states[s] })),
    now,
    chartWindow(now),
  );
  drawLineChart(
    $("chart-containers"),
    state.history,
    [
      { label: "queued", colour: "#a15c00", value: (x) => x.queued },
      { label: "running", colour: "#1b7a3d", value: (x) => x.running },
    ],
    now,
    chartWindow(now),
  );
}

function describe(err) {
  return err instanceof Error ? err.message : String(err);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

/** One refresh at a time: a request for another while one runs makes one more after it. */
let inFlight = null;
let again = false;
function refresh() {
  if (inFlight !== null) {
    again = true;
    return inFlight;
  }
  inFlight = poll().finally(() => {
    inFlight = null;
    if (again) {
      again = false;
      void refresh();
    }
  });
  return inFlight;
}

async function poll() {
  if (token() === null) return;
  try {
    const [instancesBody, queueBody, holdsBody] = await Promise.all([
      getJson("instances"),
      getJson("containers"),
      getOptional("holds"),
      pollEvents(),
    ]);
    const now = Date.now();
    const instances = instancesBody.items ?? [];
    const queue = queueBody.items ?? [];
    const cost = instances.reduce((sum, i) => sum + (i.instance === "" ? 0 : i.price), 0);
    trackStates(instances, now);
    const sample = record(instances, queue, now);
    state.firstPoll = false;
    showBoard();
    renderSummary($("summary"), {
      instances: instances.length,
      running: sample.running,
      queued: sample.queued,
      costPerHour: cost,
    });
    renderInstances(
      $("instances"),
      instances,
      (i) => {
        const s = state.seen.get(i.instance);
        return s === undefined ? null : { ms: now - s.since, exact: s.exact };
      },
      confirmInstanceAction,
    );
    renderQueue($("queue"), queue, now, confirmContainerKill);
    renderHolds($("holds"), holdsBody === null ? null : (holdsBody.items ?? []), now);
    showEvents();
    drawCharts(now);
    setStatus(`updated ${new Date(now).toLocaleTimeString()}`);
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    setStatus(`cannot read the dispatcher: ${describe(err)}`, true);
  }
  schedule();
}

function showEvents() {
  const onlyProblems = $("events-problems").checked;
  renderEvents(
    $("events"),
    state.events === null || !onlyProblems
      ? state.events
      : state.events.filter((e) => PROBLEM_EVENTS.has(e.kind)),
  );
}

function schedule() {
  clearTimeout(state.timer);
  if (token() !== null) state.timer = setTimeout(refresh, REFRESH_MS);
}

/** The open confirmation's resolver, if any. */
let answer = null;

/** Asks in a modal dialog; resolves with the reason typed (kill) or "" — or null if cancelled. */
function confirmAction(text, withReason) {
  settle(false);
  $("confirm-text").textContent = text;
  $("confirm-reason-label").hidden = !withReason;
  $("confirm-reason").value = "";
  $("confirm").showModal();
  return new Promise((resolve) => (answer = resolve));
}

function settle(ok) {
  const resolve = answer;
  answer = null;
  if ($("confirm").open) $("confirm").close();
  resolve?.(ok ? $("confirm-reason").value : null);
}

$("confirm-ok").addEventListener("click", () => settle(true));
$("confirm-cancel").addEventListener("click", () => settle(false));
// Escape closes the dialog: a cancel.
$("confirm").addEventListener("close", () => settle(false));

const DESCRIBE = {
  hold: "Hold: it keeps running and takes no new containers, and is never shut down automatically.",
  drain: "Drain: it takes no new containers and shuts down once its containers are done.",
  run: "Run: back to normal scheduling and idle shutdown.",
  kill: "Kill: it shuts down now, and the containers on it fail.",
};

async function post(path, params) {
  const res = await api(`${path}?${new URLSearchParams(params)}`, { method: "POST" });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${(await res.text()).trim()}`);
}

async function confirmInstanceAction(instance, action) {
  const reason = await confirmAction(
    `${action} instance ${instance.instance} (${instance.arvados_instance_type})? ${DESCRIBE[action]}`,
    action === "kill",
  );
  if (reason === null) return;
  const params = { instance_id: instance.instance };
  if (action === "kill") params.reason = reason;
  await runAction(`instances/${action}`, params);
}

async function confirmContainerKill(uuid) {
  const reason = await confirmAction(
    `Kill container ${uuid}? Its crunch-run is stopped and the container ends.`,
    true,
  );
  if (reason === null) return;
  await runAction("containers/kill", { container_uuid: uuid, reason });
}

async function runAction(path, params) {
  try {
    await post(path, params);
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    setStatus(describe(err), true);
    return;
  }
  await refresh();
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
}

/** Forget the token and every piece of data the page showed. */
function signOut(message = "") {
  clearTimeout(state.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, {
    history: [],
    events: [],
    lastSeq: null,
    seen: new Map(),
    firstPoll: true,
  });
  for (const id of [
    "summary",
    "instances",
    "queue",
    "holds",
    "events",
    "chart-states",
    "chart-containers",
  ]) {
    $(id).replaceChildren();
  }
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  setStatus("");
  $("token").focus();
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("token").value.trim();
  if (value === "") return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  $("login-error").textContent = "";
  setStatus("connecting…");
  void refresh();
});
$("sign-out").addEventListener("click", () => signOut());
$("events-problems").addEventListener("change", showEvents);

if (token() !== null) void refresh();
else signOut();
