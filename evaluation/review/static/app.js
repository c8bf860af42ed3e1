// The review page: vanilla JS over the JSON API under /api. No external requests.
"use strict";

const PAGE = 50;
const KINDS = { false_positive: "FP", false_negative: "FN", uncertain: "unsure" };
const FILTERS = ["head", "kind", "source", "status", "score_min", "score_max", "cell"];
const state = { meta: null, filters: {}, page: 0, total: 0, items: [], index: -1, detail: null, head: null };

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

let toastTimer = null;
function toast(message, kind = "ok") {
  const node = $("#toast");
  node.textContent = message;
  node.className = kind;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.textContent = ""; }, 4000);
}

const fmt = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(2));
const labelText = (x) => (x === null || x === undefined ? "n/a" : x >= 0.5 ? `yes (${fmt(x)})` : `no (${fmt(x)})`);

// ---- location hash: filters, page and open sample survive a reload ----
function saveHash() {
  const params = new URLSearchParams();
  for (const key of FILTERS) if (state.filters[key]) params.set(key, state.filters[key]);
  if (state.page) params.set("page", state.page);
  if (state.detail) params.set("sample", state.detail.sample.id);
  if (state.head) params.set("h", state.head);
  history.replaceState(null, "", `#${params}`);
}

function loadHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const key of FILTERS) state.filters[key] = params.get(key) || "";
  state.page = Number(params.get("page")) || 0;
  state.head = params.get("h");
  return params.get("sample");
}

// ---- header, filters, confusion matrices ----
function showProgress(progress) {
  const share = progress.total ? (100 * progress.reviewed) / progress.total : 0;
  $("#progress-fill").style.width = `${share}%`;
  $("#progress-text").textContent = `${progress.reviewed} / ${progress.total} reviewed`;
}

function fillFilters() {
  const form = $("#filters");
  for (const head of state.meta.heads) form.head.append(el("option", { value: head }, head));
  for (const source of state.meta.sources) form.source.append(el("option", { value: source }, source || "(none)"));
  for (const key of FILTERS) if (form[key]) form[key].value = state.filters[key] || form[key].value;
  form.addEventListener("change", () => {
    for (const key of FILTERS) if (form[key]) state.filters[key] = form[key].value;
    if (!state.filters.head) state.filters.cell = "";
    focusHead(state.filters.head);
    state.page = 0;
    refreshQueue();
  });
  $("#reset").addEventListener("click", () => {
    form.reset();
    for (const key of FILTERS) state.filters[key] = "";
    state.page = 0;
    refreshQueue();
  });
  $("#cell-chip").addEventListener("click", () => { state.filters.cell = ""; refreshQueue(); });
}

async function drawMatrices() {
  const counts = await api("/api/confusion");
  const box = $("#matrices");
  box.replaceChildren();
  for (const head of state.meta.heads) {
    const c = counts[head];
    const cell = (name) => el("td", {
      class: `${name}${state.filters.head === head && state.filters.cell === name ? " active" : ""}`,
      "data-head": head, "data-cell": name, title: `${head}: ${name.toUpperCase()} (click to list)`,
      onclick: () => pickCell(head, name),
    }, c[name]);
    box.append(el("table", { class: "matrix" },
      el("caption", {}, head, c.unlabelled ? el("span", { class: "muted" }, ` · ${c.unlabelled} unlabelled`) : null),
      el("tr", {}, el("th"), el("th", {}, "said yes"), el("th", {}, "said no")),
      el("tr", {}, el("th", {}, "label yes"), cell("tp"), cell("fn")),
      el("tr", {}, el("th", {}, "label no"), cell("fp"), cell("tn"))));
  }
}

function pickCell(head, cell) {
  const form = $("#filters");
  Object.assign(state.filters, { head, cell, kind: "" });
  focusHead(head);
  form.head.value = head;
  form.kind.value = "";
  state.page = 0;
  refreshQueue();
}

// ---- the queue ----
async function refreshQueue(keepSample = false) {
  const params = new URLSearchParams({ offset: state.page * PAGE, limit: PAGE });
  for (const key of FILTERS) if (state.filters[key]) params.set(key, state.filters[key]);
  let body;
  try {
    body = await api(`/api/queue?${params}`);
  } catch (error) {
    toast(error.message, "err");
    return;
  }
  Object.assign(state, { items: body.items, total: body.total });
  showProgress(body.progress);
  const chip = $("#cell-chip");
  chip.hidden = !state.filters.cell;
  chip.textContent = state.filters.cell ? `${state.filters.head} ${state.filters.cell.toUpperCase()} ×` : "";
  const pages = Math.max(1, Math.ceil(body.total / PAGE));
  $("#queue-count").textContent = `${body.total} sample${body.total === 1 ? "" : "s"}${state.filters.cell ? " in this cell" : " in the queue"}`;
  $("#page-text").textContent = `${state.page + 1} / ${pages}`;
  $("#prev-page").disabled = state.page === 0;
  $("#next-page").disabled = state.page + 1 >= pages;
  const list = $("#queue");
  list.replaceChildren(...body.items.map((item, i) => el("li", {
    class: item.reviewed ? "reviewed" : "", "data-id": item.id, onclick: () => openSample(i),
  },
  el("div", { class: "qhead" }, el("span", { class: "qid" }, item.id), el("span", {}, item.source)),
  el("div", { class: "qtext" }, item.text),
  el("div", { class: "badges" },
    item.errors.map((e) => el("span", { class: `badge ${e.kind}` }, `${e.head} ${KINDS[e.kind]}`)),
    item.label_issue ? el("span", { class: "badge issue" }, "label issue") : null))));
  const open = state.detail ? state.items.findIndex((it) => it.id === state.detail.sample.id) : -1;
  state.index = keepSample ? open : -1;
  markCurrent();
  drawMatrices();
  saveHash();
}

function markCurrent() {
  [...$("#queue").children].forEach((li, i) => li.classList.toggle("current", i === state.index));
  const current = $("#queue").children[state.index];
  if (current) current.scrollIntoView({ block: "nearest" });
}

async function move(step) {
  const next = state.index + step;
  if (next >= 0 && next < state.items.length) return openSample(next);
  const pages = Math.ceil(state.total / PAGE);
  if (step > 0 && state.page + 1 < pages) { state.page += 1; await refreshQueue(); return openSample(0); }
  if (step < 0 && state.page > 0) { state.page -= 1; await refreshQueue(); return openSample(state.items.length - 1); }
}

async function openSample(index) {
  state.index = index;
  markCurrent();
  await showSample(state.items[index].id);
}

// ---- one sample ----
async function showSample(id) {
  try {
    state.detail = await api(`/api/samples/${encodeURIComponent(id)}`);
  } catch (error) {
    toast(error.message, "err");
    return;
  }
  const errors = state.detail.sample.errors;
  if (!state.head || !state.meta.heads.includes(state.head)) {
    state.head = state.filters.head || (errors[0] && errors[0].head) || state.meta.heads[0];
  }
  drawDetail();
  saveHash();
}

function highlighted(sample, attribution, head) {
  const drops = attribution.drops[head];
  const peak = Math.max(0.05, ...drops.map(Math.abs));
  const parts = [];
  let at = 0;
  attribution.spans.forEach(([start, end], i) => {
    parts.push(sample.text.slice(at, start));
    const w = drops[i] / peak;
    const color = w >= 0 ? `rgba(234, 88, 12, ${0.55 * w})` : `rgba(37, 99, 235, ${0.55 * -w})`;
    parts.push(el("mark", { style: `background:${color}`, title: `${drops[i] >= 0 ? "+" : ""}${drops[i].toFixed(3)}` },
      sample.text.slice(start, end)));
    at = end;
  });
  parts.push(sample.text.slice(at));
  return el("div", { class: "text", id: "sample-text" }, parts);
}

function drivers(sample, attribution, head) {
  const drops = attribution.drops[head];
  const ranked = attribution.spans.map(([s, e], i) => [sample.text.slice(s, e), drops[i]])
    .filter(([, d]) => d > 0.005).sort((a, b) => b[1] - a[1]);
  const seen = new Set();
  const top = ranked.filter(([w]) => !seen.has(w) && seen.add(w)).slice(0, 6);
  return el("p", { class: "drivers" },
    top.length ? `Words that raised ${head}: ${top.map(([w, d]) => `${w} (+${d.toFixed(2)})`).join(", ")}` : `No single word raised ${head} by more than 0.005.`,
    attribution.grouped ? " · long text: words removed in groups" : "");
}

// `over` is serving's decision from the report (sample.predicted), never recomputed here
function scoreBar(score, cut, over) {
  return el("span", {},
    el("span", { class: "bar" },
      el("span", { class: `fill${over ? " over" : ""}`, style: `width:${100 * score}%` }),
      el("span", { class: "cut", style: `left:${100 * cut}%`, title: `threshold ${fmt(cut)}` })),
    el("span", { class: "num" }, `${fmt(score)} ${over ? "≥" : "<"} ${fmt(cut)}`));
}

function headRow(head) {
  const { sample, hard_labels: hard, cells, in_force: force } = state.detail;
  const error = sample.errors.find((e) => e.head === head);
  const judged = force[head];
  const current = judged ? judged.label : undefined;
  const button = (text, label, title, disabled = false) => el("button", {
    type: "button", class: current === label ? "on" : "", "data-head": head, "data-label": String(label),
    title, disabled, onclick: (event) => { event.stopPropagation(); judge(head, label); },
  }, text);
  return el("tr", { class: head === state.head ? "selected" : "", "data-head": head, onclick: () => selectHead(head) },
    el("td", {}, el("span", { class: "hname" }, head)),
    el("td", {}, labelText(sample.labels[head])),
    el("td", {}, scoreBar(sample.scores[head], sample.thresholds[head], sample.predicted[head])),
    el("td", {}, cells[head] ? el("span", { class: `cellkind ${cells[head]}` }, cells[head].toUpperCase()) : "–",
      error && error.kind === "uncertain" ? el("span", { class: "badge uncertain" }, "near threshold") : null),
    el("td", { class: "inforce-cell" }, judged
      ? el("span", { class: `inforce ${judged.action}`, title: `${judged.author}, ${judged.channel}, ${judged.created_at}` },
        `${judged.action} → ${judged.label === null ? "n/a" : judged.label ? "yes" : "no"}`)
      : el("span", { class: "muted" }, "not reviewed")),
    el("td", {}, el("div", { class: "judge" },
      button("Confirm", hard[head], hard[head] === null ? "no dataset label to confirm" : "c: the dataset label is right", hard[head] === null),
      button("Yes", 1, "y"), button("No", 0, "n"),
      head === "legitimacy" ? button("N/A", null, "u: not a complaint") : null)));
}

function drawDetail() {
  const { sample, attribution } = state.detail;
  const route = sample.route;
  $("#detail").replaceChildren(
    el("div", { class: "dhead" },
      el("h2", {}, sample.id),
      el("span", { class: "muted" }, `${sample.source} · ${sample.split}`),
      sample.label_quality !== null ? el("span", { class: "muted" }, `label quality ${fmt(sample.label_quality)}`) : null,
      sample.label_issue ? el("span", { class: "badge issue" }, "label issue") : null),
    route ? el("div", { class: "route" }, "Route ", el("b", {}, route.name),
      route.priority ? ` (${route.priority})` : "", route.reason ? el("span", { class: "muted" }, ` · ${route.reason}`) : null) : null,
    el("div", { class: "headtabs" }, "Attribution for ",
      state.meta.heads.map((h, i) => el("button", { type: "button", class: h === state.head ? "active" : "", onclick: () => selectHead(h) }, `${i + 1} ${h}`)),
      el("span", { class: "legend" }, el("i", { style: "background:rgba(234,88,12,.55)" }), "raised the score",
        el("i", { style: "background:rgba(37,99,235,.55)" }), "lowered it")),
    highlighted(sample, attribution, state.head),
    drivers(sample, attribution, state.head),
    el("table", { class: "heads" },
      el("tr", {}, ["head", "dataset label", "model score vs threshold", "outcome", "judgement in force", "your judgement"].map((t) => el("th", {}, t))),
      state.meta.heads.map(headRow)));
}

// A head chosen in the filters or the matrices is the one to look at in the open sample.
function focusHead(head) {
  if (head && state.detail) selectHead(head);
  else if (head) state.head = head;
}

function selectHead(head) {
  if (!state.detail || head === state.head) return;
  state.head = head;
  drawDetail();
  saveHash();
}

async function judge(head, label) {
  if (!state.detail) return;
  const id = state.detail.sample.id;
  try {
    const body = await api("/api/judgements", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ sample_id: id, head, label }),
    });
    state.detail.in_force[head] = body.record;
    showProgress(body.progress);
    drawDetail();
    const li = $("#queue").children[state.index];
    if (li) li.classList.add("reviewed");
    toast(`saved: ${head} ${body.record.action} → ${label === null ? "n/a" : label ? "yes" : "no"}`);
  } catch (error) {
    toast(error.message, "err");
  }
}

// ---- agent flags ----
async function drawFlags() {
  const channel = $("#flag-channel").value;
  const body = await api(`/api/feedback?limit=200${channel ? `&channel=${channel}` : ""}`);
  $("#flags tbody").replaceChildren(...body.items.map((r) => el("tr", {},
    el("td", {}, new Date(r.created_at).toLocaleString()), el("td", {}, r.channel), el("td", {}, r.sample_id),
    el("td", {}, r.head), el("td", {}, r.action), el("td", {}, r.label === null ? "n/a" : r.label ? "yes" : "no"),
    el("td", {}, fmt(r.model_score)), el("td", {}, r.author),
    el("td", { class: "t" }, r.text || "", r.comment ? el("div", { class: "muted" }, r.comment) : null))));
  if (!body.items.length) $("#flags tbody").append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No feedback in this channel yet.")));
}

async function countFlags() {
  const body = await api("/api/feedback?channel=api&limit=1000");
  $("#flag-count").textContent = body.items.length ? String(body.items.length) : "";
}

function showTab(name) {
  for (const button of document.querySelectorAll(".tab")) button.classList.toggle("active", button.dataset.tab === name);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `tab-${name}`;
  if (name === "flags") drawFlags();
}

// ---- keyboard ----
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
  const key = event.key;
  if (key === "?") return showTab("help");
  if (key === "Escape") return showTab("queue");
  if (key === "j") return move(1);
  if (key === "k") return move(-1);
  const headIndex = "1234".indexOf(key);
  if (headIndex >= 0 && state.meta.heads[headIndex]) return selectHead(state.meta.heads[headIndex]);
  if (!state.detail || !state.head) return;
  const hard = state.detail.hard_labels[state.head];
  if (hard === null && (key === "c" || key === "x")) return toast(`no dataset label for ${state.head}: use y or n`, "err");
  if (key === "u" && state.head !== "legitimacy") return toast("u (does not apply) is for legitimacy", "err");
  const actions = { c: hard, x: 1 - hard, y: 1, n: 0, u: null };
  if (key in actions) judge(state.head, actions[key]);
}

async function main() {
  const sample = loadHash();
  state.meta = await api("/api/meta");
  const folder = state.meta.report.split("/").filter(Boolean).pop();
  $("#model").textContent = `${state.meta.model.name} ${state.meta.model.version} · report ${folder}`;
  $("#model").title = `report folder: ${state.meta.report}`;
  $("#reviewer").textContent = `reviewer: ${state.meta.reviewer}`;
  $("#store").textContent = state.meta.store;
  $("#author").textContent = state.meta.reviewer;
  showProgress(state.meta.progress);
  fillFilters();
  for (const button of document.querySelectorAll(".tab")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#flag-channel").addEventListener("change", drawFlags);
  $("#prev-page").addEventListener("click", () => { state.page -= 1; refreshQueue(); });
  $("#next-page").addEventListener("click", () => { state.page += 1; refreshQueue(); });
  document.addEventListener("keydown", onKey);
  if (sample) await showSample(sample);
  await refreshQueue(true);
  countFlags();
  document.body.dataset.ready = "1";
}

main().catch((error) => toast(error.message, "err"));
