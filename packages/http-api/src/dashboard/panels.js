// The dashboard's panels, built with DOM calls only: every value from the API goes in as text,
// never as markup.

/** `el("td", {class: "num"}, "3")`: an element with attributes and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** "45s", "3m 05s", "2h 10m", "3d 4h". */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function money(v) {
  return `$${v.toFixed(v < 10 ? 3 : 2)}`;
}

function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19);
}

function table(headers, rows, empty) {
  if (rows.length === 0) return el("p", { class: "empty" }, empty);
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows),
  );
}

/** The panel's text when the dispatcher answers 404 for its endpoint (an older dispatcher). */
function notProvided(what, path) {
  return el(
    "p",
    { class: "empty not-provided" },
    `This dispatcher does not provide ${what} (`,
    el("code", {}, `GET ${path}`),
    " is not found).",
  );
}

export function renderSummary(box, { instances, running, queued, costPerHour }) {
  const card = (id, value, label) =>
    el(
      "div",
      { class: "card", id },
      el("div", { class: "value" }, value),
      el("div", { class: "label" }, label),
    );
  box.replaceChildren(
    card("summary-instances", String(instances), "instances"),
    card("summary-running", String(running), "containers running"),
    card("summary-queued", String(queued), "containers queued"),
    card("summary-cost", money(costPerHour), "fleet cost per hour"),
  );
}

/**
 * Instances with their admin buttons. `since(i)` gives {ms, exact} for the time in state;
 * `act(instance, action)` runs hold/drain/run/kill after confirmation.
 */
export function renderInstances(box, instances, since, act) {
  const rows = instances.map((i) => {
    const pending = i.instance === "";
    const spent = since(i);
    const buttons = pending
      ? el("span", { class: "muted" }, "being created")
      : el(
          "span",
          {},
          ...["hold", "drain", "run"].map((b) =>
            el(
              "button",
              {
                type: "button",
                "data-action": b,
                disabled: i.idle_behavior === b || i.worker_state === "shutdown",
                onclick: () => act(i, b),
              },
              b,
            ),
          ),
          el(
            "button",
            {
              type: "button",
              class: "danger",
              "data-action": "kill",
              disabled: i.worker_state === "shutdown",
              onclick: () => act(i, "kill"),
            },
            "kill",
          ),
        );
    return el(
      "tr",
      { "data-instance": i.instance },
      el("td", { class: "id" }, pending ? "(pending)" : i.instance),
      el(
        "td",
        {},
        i.arvados_instance_type,
        el("div", { class: "muted" }, i.provider_instance_type),
      ),
      el("td", { class: `state state-${i.worker_state}` }, i.worker_state),
      el("td", { class: "idle-behavior" }, i.idle_behavior),
      el("td", { class: "num" }, money(i.price)),
      el(
        "td",
        { class: "num" },
        spent === null ? "" : `${spent.exact ? "" : "≥ "}${duration(spent.ms)}`,
      ),
      el("td", { class: "id" }, ...(i.running_container_uuids ?? []).map((u) => el("div", {}, u))),
      el("td", { class: "id muted" }, i.address),
      el("td", { class: "actions" }, buttons),
    );
  });
  box.replaceChildren(
    table(
      [
        "instance",
        "type",
        "state",
        "idle behaviour",
        "price/h",
        "in state",
        "containers",
        "address",
        "",
      ],
      rows,
      "No instances.",
    ),
  );
}

export function renderQueue(box, queue, now, act) {
  const rows = queue.map((e) => {
    const c = e.container;
    const type = e.instance_types?.[0];
    return el(
      "tr",
      { "data-container": c.uuid },
      el("td", { class: "id" }, c.uuid),
      el("td", { class: `state container-${c.state}` }, c.state),
      el("td", { class: "num" }, String(c.priority)),
      // The cheapest type that fits (the API's list is sorted so); Go does not serialise names.
      el("td", {}, type ? type.ProviderType : ""),
      el("td", { class: "num" }, duration(now - Date.parse(e.first_seen_at))),
      el("td", { class: "scheduling-status" }, e.scheduling_status),
      el(
        "td",
        { class: "actions" },
        c.state === "Running"
          ? el(
              "button",
              {
                type: "button",
                class: "danger",
                "data-action": "kill",
                onclick: () => act(c.uuid),
              },
              "kill",
            )
          : null,
      ),
    );
  });
  box.replaceChildren(
    table(
      ["container", "state", "priority", "instance type", "waiting", "scheduling status", ""],
      rows,
      "The queue is empty.",
    ),
  );
}

/** `holds`: the endpoint's items, or null when the dispatcher answered 404. */
export function renderHolds(box, holds, now) {
  if (holds === null) {
    box.replaceChildren(notProvided("create holds", "/arvados/v1/dispatch/holds"));
    return;
  }
  const rows = holds.map((h) => {
    const until = Date.parse(h.until);
    return el(
      "tr",
      { "data-hold": h.kind },
      el("td", { class: "hold-kind" }, h.kind.replace("_", " ")),
      el("td", {}, h.scope),
      el("td", {}, clock(h.since)),
      el("td", { class: "num next-try" }, until > now ? `in ${duration(until - now)}` : "now"),
      el("td", { class: "message" }, h.message),
    );
  });
  box.replaceChildren(
    table(
      ["hold", "scope", "since", "next try", "cloud's message"],
      rows,
      "No create holds: instances are created as needed.",
    ),
  );
}

/** `events`: newest first, or null when the dispatcher answered 404. */
export function renderEvents(box, events) {
  if (events === null) {
    box.replaceChildren(notProvided("an events journal", "/arvados/v1/dispatch/events"));
    return;
  }
  const rows = events.map((e) =>
    el(
      "tr",
      { "data-seq": e.seq },
      el("td", {}, clock(e.time)),
      el("td", { class: `kind kind-${e.kind}` }, e.kind.replaceAll("_", " ")),
      el("td", { class: "id" }, e.instance_id ?? ""),
      el("td", {}, e.instance_type ?? ""),
      el("td", { class: "id" }, e.container_uuid ?? ""),
      el("td", { class: "reason" }, e.reason ?? ""),
      el("td", { class: "message" }, e.message ?? ""),
    ),
  );
  box.replaceChildren(
    table(
      ["time (UTC)", "event", "instance", "type", "container", "reason", "message"],
      rows,
      "No events yet.",
    ),
  );
}
