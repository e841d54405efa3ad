// The operators' dashboard: reads the admin API every few seconds and shows it. No library,
// no build step: this file is served from inside the node.
"use strict";

const REFRESH_MS = 3000;
const CHARTS_MS = 60000;
const CHARTS = ["pushed", "popped", "held", "cpu"];

const $ = (id) => document.getElementById(id);
let last = null;

// `/ready` says what it says with a 503 too (a standby, a fenced node).
async function get(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  if (!answer.ok && !(path === "/ready" && answer.status === 503)) {
    throw new Error(`${path}: HTTP ${answer.status}`);
  }
  return answer.json();
}

function text(id, value) {
  $(id).textContent = value;
}

function rows(id, items, cells) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...items.map((item) => {
    const row = document.createElement("tr");
    for (const [value, numeric] of cells(item)) {
      const cell = document.createElement("td");
      cell.textContent = value;
      if (numeric) cell.className = "n";
      row.append(cell);
    }
    return row;
  }));
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function showStatus(status) {
  text("node", status.node);
  text("version", `version ${status.version}`);
  $("draining").hidden = !status.draining;
  text("uptime", duration(status.uptime));
  const t = status.totals, now = Date.now();
  text("pushed", t.pushed);
  text("popped", t.popped);
  text("acked", t.acked);
  text("relayed", t.interactions_ended);
  if (last) {
    const seconds = (now - last.at) / 1000;
    text("pushed-rate", Math.round((t.pushed - last.totals.pushed) / seconds));
    text("popped-rate", Math.round((t.popped - last.totals.popped) / seconds));
    if (status.process.cpu_seconds != null && last.cpu != null) {
      const share = (status.process.cpu_seconds - last.cpu) / seconds;
      text("cpu", `${Math.round(share * 100)} %`);
    }
  }
  last = { at: now, totals: t, cpu: status.process.cpu_seconds };
  const c = status.connections;
  text("open", c.open);
  text("held-pops", c.held.pops_and_subscriptions);
  text("held-polls", c.held.desktop_polls);
  text("held-apps", c.held.app_requests);
  const p = status.process;
  text("rss", p.rss_kib == null ? "–" : `${Math.round(p.rss_kib / 1024)} MiB`);
  text("fds", p.open_files == null ? "–" : `${p.open_files} / ${p.open_files_limit ?? "∞"}`);
  // A primary's chain: the replicas below each of its Redis servers.
  const below = (status.chain || []).flatMap((c) => c.replicas.length
    ? c.replicas.map((r) => [[r.address], [c.server], [r.state], [r.offset, true]])
    : [[[c.server], ["–"], [c.error ?? "no replica"], ["–"]]]);
  if (below.length) rows("replication", below, (cells) => cells);
  rows("shards", status.store.shards, (s) => [
    [s.shard, true], [s.name], [s.ok ? `${s.ms.toFixed(2)} ms` : s.error],
  ]);
}

function showReplication(ready) {
  const r = ready.replication, links = r.links || [];
  text("role", r.role);
  rows("replication", links, (l) => [
    [l.server], [l.upstream], [l.up ? "up" : "down"], [l.offset ?? "–", true],
  ]);
  text("replication-role", links.length ? "" : `This node is ${r.role}.`);
}

// Each part is shown as it comes; one that fails (a standby serves no store) leaves the rest.
const PARTS = [
  ["/ready", showReplication],
  ["/admin/status", showStatus],
  ["/admin/queues?top=10", (q) => rows("queues", q.queues, (q) => [
    [q.queue], [q.high, true], [q.low, true],
  ])],
  ["/admin/connections?limit=20", (c) => rows("connections", c.connections, (c) => [
    [c.kind], [c.queue ?? c.customer], [`${(c.waiting_ms / 1000).toFixed(1)} s`, true],
  ])],
  ["/admin/desktops?limit=20", (d) => rows("desktops", d.desktops, (d) => [
    [d.customer], [d.polls_waiting_ms.length, true], [d.apps_waiting_ms.length, true],
    [d.interactions, true],
  ])],
  ["/admin/regions", (r) => rows("regions", r.regions, (r) => [[r.server], [r.failures, true]])],
];

async function refresh() {
  const answers = await Promise.allSettled(PARTS.map(([path]) => get(path)));
  const failed = [];
  answers.forEach((answer, i) => {
    if (answer.status === "fulfilled") {
      PARTS[i][1](answer.value);
    } else {
      failed.push(answer.reason.message);
    }
  });
  const at = new Date().toLocaleTimeString();
  text("updated", failed.length ? `updated ${at}; not: ${failed.join(", ")}` : `updated ${at}`);
}

function showCharts() {
  const stamp = Date.now();
  $("charts").replaceChildren(...CHARTS.map((name) => {
    const chart = document.createElement("img");
    chart.src = `/admin/charts/${name}.1h.svg?size=M&t=${stamp}`;
    chart.alt = `${name}, last hour`;
    return chart;
  }));
}

async function start() {
  const session = await get("/admin/session");
  if (!session.allowed) {
    if (session.token_required) {
      $("sign-in").hidden = false;
      $("sign-in-failed").hidden = !location.search.includes("failed");
    } else {
      $("refused").hidden = false;
      text("refused", session.reason);
    }
    return;
  }
  $("sign-out").hidden = !session.token_required;
  $("dashboard").hidden = false;
  await refresh();
  showCharts();
  setInterval(refresh, REFRESH_MS);
  setInterval(showCharts, CHARTS_MS);
}

$("sign-out").addEventListener("click", async () => {
  await fetch("/admin/logout", { method: "POST", credentials: "same-origin" });
  location.reload();
});

start().catch((e) => text("updated", `not loaded: ${e.message}`));
