// Tally operator console: the token, the views, live charts and replay (ADR 10).
// Data is rendered by the API (escaped templates); this script never builds HTML from data:
// it only sets text, and hands the token to htmx and fetch as an Authorization header.
"use strict";

(function () {
  const KEY = "tally.console.token"; // sessionStorage: this tab only, gone when it closes
  const EVERY_MS = 2000;
  const WINDOW_S = 15 * 60;
  const $ = (id) => document.getElementById(id);
  const charts = {};
  let timer = null;

  const token = () => sessionStorage.getItem(KEY);

  function say(text) {
    $("status").textContent = text;
  }

  function alarm(text) {
    const alert = $("alert");
    alert.textContent = text || "";
    alert.hidden = !text;
  }

  async function problemText(status, body) {
    try {
      const problem = JSON.parse(body);
      return `${problem.status || status} ${problem.title || ""}: ${problem.detail || ""}`;
    } catch (_) {
      return `The API answered ${status}.`;
    }
  }

  async function refused(status, body) {
    const text = await problemText(status, body);
    if (status === 401 || status === 403) {
      forget(); // a refused token is of no further use: ask for another
      alarm(`Refused: ${text}`);
    } else {
      alarm(text);
    }
  }

  // ---- token -------------------------------------------------------------------------------
  function showSignedIn() {
    const held = Boolean(token());
    $("token-form").hidden = held;
    $("signed-in").hidden = !held;
  }

  function useToken(event) {
    event.preventDefault();
    const field = $("token");
    const value = field.value.trim();
    field.value = ""; // the token never stays in the page
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    alarm("");
    showSignedIn();
    show(current());
  }

  function forget(event) {
    sessionStorage.removeItem(KEY);
    stopPolling();
    showSignedIn();
    if (event) say("Token forgotten.");
  }

  // ---- views -------------------------------------------------------------------------------
  const VIEWS = ["overview", "dead-letters", "lookups"];

  function current() {
    return VIEWS.find((v) => !$(`view-${v}`).hidden) || "overview";
  }

  function show(view) {
    for (const v of VIEWS) {
      $(`view-${v}`).hidden = v !== view;
      $(`tab-${v}`).setAttribute("aria-selected", String(v === view));
    }
    stopPolling();
    if (!token()) return;
    if (view === "overview") startPolling();
    if (view === "dead-letters") htmx.trigger("#dead-letter-filter", "refresh");
  }

  function startPolling() {
    tick();
    timer = setInterval(tick, EVERY_MS);
  }

  function stopPolling() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  function tick() {
    if (!token() || document.hidden) return;
    htmx.trigger("#overview", "refresh");
    htmx.trigger("#watch", "refresh");
    series();
    volumes();
  }

  // ---- charts (uPlot) ----------------------------------------------------------------------
  const COLOURS = ["#2364aa", "#d1495b", "#3da35d", "#edae49", "#8e44ad", "#00798c",
    "#6b4226", "#c2185b", "#455a64", "#7cb342", "#ff7043", "#5c6bc0"];

  function chart(name, labels, data) {
    const element = $(`chart-${name}`);
    const old = charts[name];
    const same = old && old.labels.join() === labels.join();
    if (same) {
      old.plot.setData(data);
      return;
    }
    if (old) old.plot.destroy();
    const series = [{}].concat(labels.map((label, i) => ({
      label, stroke: COLOURS[i % COLOURS.length], width: 1.5, points: { show: false },
    })));
    const options = {
      width: Math.max(260, element.clientWidth),
      height: 220,
      series,
      // Both charts span the same window, the last 15 minutes, however few samples exist.
      scales: { x: { time: true, range: (u, min, max) => [max - WINDOW_S, max] } },
      axes: [{}, { size: 50 }],
      legend: { live: false },
    };
    charts[name] = { labels, plot: new uPlot(options, data, element) };
  }

  async function series() {
    const response = await fetch("/v1/ops/series?minutes=15", {
      headers: { Authorization: `Bearer ${token()}` },
    });
    const body = await response.text();
    if (!response.ok) return refused(response.status, body);
    const s = JSON.parse(body);
    const t = s.throughput;
    chart("throughput", ["accepted", "rejected"], [t.t, t.accepted, t.rejected]);
    const names = Object.keys(s.lag.partitions);
    chart("lag", names, [s.lag.t].concat(names.map((n) => s.lag.partitions[n])));
  }

  // The watch's tumbling minutes (contract §16), one line per currency and outcome type, on a
  // grid of the last 15 minutes so that a quiet minute reads 0.
  async function volumes() {
    const response = await fetch("/v1/ops/watch?minutes=15", {
      headers: { Authorization: `Bearer ${token()}` },
    });
    const body = await response.text();
    if (!response.ok) return refused(response.status, body);
    const w = JSON.parse(body);
    if (!w.volumes) return; // the watch did not answer: its card says why
    const last = Math.floor(Date.parse(w.at) / 60000) * 60;
    const minutes = Array.from({ length: 15 }, (_, i) => last - (14 - i) * 60);
    const names = [...new Set(w.volumes.map((v) => `${v.currency} ${v.type}`))].sort();
    const data = [minutes].concat(names.map(() => minutes.map(() => 0)));
    for (const v of w.volumes) {
      const at = minutes.indexOf(Date.parse(v.minute) / 1000);
      if (at >= 0) data[1 + names.indexOf(`${v.currency} ${v.type}`)][at] += v.count;
    }
    chart("volumes", names, data);
  }

  function resize() {
    for (const [name, c] of Object.entries(charts)) {
      const width = Math.max(260, $(`chart-${name}`).clientWidth);
      c.plot.setSize({ width, height: 220 });
    }
  }

  // ---- replay ------------------------------------------------------------------------------
  async function replay(positions) {
    if (!positions.length) {
      say("Select the dead letters to replay first.");
      return;
    }
    const what = positions.length === 1 ? `dead letter ${positions[0]}` :
      `${positions.length} dead letters (${positions.join(", ")})`;
    if (!window.confirm(`Replay ${what} to its original topic? The workers decide it again.`)) {
      say("Replay cancelled.");
      return;
    }
    const response = await fetch("/v1/ops/dead-letters/replay", {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify({ positions }),
    });
    const body = await response.text();
    if (!response.ok) return refused(response.status, body);
    const done = JSON.parse(body);
    const missing = done.missing.length ? `; not found: ${done.missing.join(", ")}` : "";
    say(`Replayed ${done.replayed} dead letter${done.replayed === 1 ? "" : "s"}${missing}.`);
  }

  function selected() {
    const boxes = document.querySelectorAll("#dead-letters input[name=position]:checked");
    return Array.from(boxes, (box) => box.value);
  }

  // ---- htmx: the token on every request, problems shown as text ----------------------------
  function configure(event) {
    if (!token()) {
      event.preventDefault();
      alarm("Enter an operator token first.");
      return;
    }
    event.detail.headers.Authorization = `Bearer ${token()}`;
    for (const [name, value] of Object.entries(event.detail.parameters)) {
      if (value === "") delete event.detail.parameters[name]; // no empty filters
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.body.addEventListener("htmx:configRequest", configure);
    document.body.addEventListener("htmx:responseError", (event) => {
      const xhr = event.detail.xhr;
      refused(xhr.status, xhr.responseText);
    });
    document.body.addEventListener("htmx:sendError", () => alarm("The API did not answer."));
    document.body.addEventListener("htmx:afterSwap", (event) => {
      if (event.detail.xhr.status < 300 && event.detail.target.id !== "overview") alarm("");
    });
    $("token-form").addEventListener("submit", useToken);
    $("forget").addEventListener("click", forget);
    for (const view of VIEWS) $(`tab-${view}`).addEventListener("click", () => show(view));
    $("replay-selected").addEventListener("click", () => replay(selected()));
    $("dead-letters").addEventListener("click", (event) => {
      const button = event.target.closest("button.replay-one");
      if (button) replay([button.dataset.position]);
    });
    window.addEventListener("resize", resize);
    showSignedIn();
    show("overview");
  });
})();
