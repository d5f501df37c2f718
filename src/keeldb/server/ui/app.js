// KeelDB dashboard: one page over the public JSON API (docs/server.md, docs/ui.md).
//
// Rules this file keeps:
// * every value from the server is put in the page as text (textContent / text nodes via
//   el()); nothing here assigns innerHTML, so stored data can never become markup;
// * the API key lives in sessionStorage of this tab and travels only in the
//   Authorization header, never in a URL;
// * what a key may not do is not shown (whoami), but the server checks every request.
"use strict";

(function () {
  const KEY_STORAGE = "keeldb.key";
  const METRICS_EVERY_MS = 2000;
  const CHART_POINTS = window.KeelUI.CHART_POINTS;

  // --- DOM helpers, formats, charts and the filter editor: widgets.js (window.KeelUI) ---

  const $ = (id) => document.getElementById(id);
  const { el, svg, clear, fact, fmtBytes, fmtInt, fmtMs, jsonText, parseMetrics, quantile, chart } = window.KeelUI;

  // --- the API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const session = {
    key: sessionStorage.getItem(KEY_STORAGE),
    who: null,
    mayWrite(ws) {
      const who = this.who;
      if (!who || !who.permissions.includes("write")) return false;
      return who.workspaces === null || who.workspaces.includes(ws);
    },
    mayAdmin() {
      return Boolean(this.who && this.who.permissions.includes("admin"));
    },
  };

  async function api(method, path, body, keyOverride) {
    const key = keyOverride !== undefined ? keyOverride : session.key;
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const type = resp.headers.get("content-type") || "";
    const data = type.includes("application/json") ? await resp.json() : await resp.text();
    if (!resp.ok) {
      const code = data && data.error ? data.error : "http_" + resp.status;
      const message = data && data.message ? data.message : "HTTP " + resp.status;
      if (resp.status === 401 && keyOverride === undefined) signedOut("The server no longer accepts this key: " + message);
      throw new ApiError(resp.status, code, message);
    }
    return data;
  }

  const enc = encodeURIComponent;
  const colPath = (ws, name) => "/v1/workspaces/" + enc(ws) + "/collections/" + enc(name);

  // --- sign-in -----------------------------------------------------------------------------

  function showOnly(id) {
    for (const section of ["signin", "overview", "collection"]) $(section).hidden = section !== id;
  }

  function banner(message) {
    $("banner").textContent = message || "";
    $("banner").hidden = !message;
  }

  function signedOut(message) {
    session.key = null;
    session.who = null;
    sessionStorage.removeItem(KEY_STORAGE);
    stopMetrics();
    $("signout").hidden = true;
    clear($("whoami"));
    clear($("crumbs"));
    unmountAdmin();
    unmountBackup();
    page.ws = page.name = null;
    $("signin-error").textContent = message || "";
    showOnly("signin");
    $("key-input").focus();
  }

  function showWho() {
    const who = session.who;
    const box = clear($("whoami"));
    if (!who.auth) {
      box.append("no API keys on this server: ", el("span", { class: "role" }, "full access"));
      return;
    }
    box.append(el("span", { class: "role", id: "who-role" }, who.role), " key");
    box.append(" · ", who.workspaces === null ? "all workspaces" : "workspaces: " + who.workspaces.join(", "));
    $("signout").hidden = false;
  }

  async function trySignIn(key) {
    // 200: signed in (key may be null when the server has no keys); 401: refused.
    const who = await api("GET", "/v1/whoami", undefined, key);
    session.key = key;
    session.who = who;
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    showWho();
    route();
  }

  async function start() {
    $("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      $("signin-error").textContent = "";
      if (!key) return;
      try {
        await trySignIn(key);
        $("key-input").value = "";
      } catch (err) {
        $("signin-error").textContent =
          err instanceof ApiError && err.status === 401 ? "The server refused this key (" + err.message + ")." : String(err.message || err);
      }
    });
    $("signout").addEventListener("click", () => signedOut(""));
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
    window.addEventListener("hashchange", route);
    setupCollectionPage();
    try {
      await trySignIn(session.key);
    } catch (err) {
      signedOut(session.key && err.status === 401 ? "The stored key was refused; sign in again." : "");
    }
  }

  // --- routing: #/ (overview), #/c/<ws>/<name> (a collection) ---------------------------------

  function route() {
    if (!session.who) return;
    banner("");
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    if (parts[0] === "c" && parts.length >= 3) {
      stopMetrics();
      openCollection(parts[1], parts[2]).catch(showError);
    } else {
      openOverview().catch(showError);
    }
  }

  function showError(err) {
    banner(err instanceof ApiError ? err.code + ": " + err.message : String(err && err.message ? err.message : err));
  }

  function crumbs(...items) {
    const nav = clear($("crumbs"));
    items.forEach((item, i) => {
      if (i > 0) nav.append(el("span", { class: "sep" }, "/"));
      nav.append(item.href ? el("a", { href: item.href }, item.text) : el("span", {}, item.text));
    });
  }

  // --- overview ---------------------------------------------------------------------------

  async function openOverview() {
    showOnly("overview");
    crumbs({ text: "Overview" });
    if (session.mayAdmin()) mountBackup();
    startMetrics();
    const [{ workspaces }, { collections }] = await Promise.all([
      api("GET", "/v1/workspaces"),
      api("GET", "/v1/collections"),
    ]);
    const perWs = {};
    for (const c of collections) perWs[c.workspace] = (perWs[c.workspace] || 0) + 1;
    const list = clear($("workspaces"));
    for (const ws of workspaces) list.append(el("li", {}, ws, el("span", { class: "count" }, String(perWs[ws] || 0))));
    if (!workspaces.length) list.append(el("li", { class: "muted" }, "none"));

    const stats = await Promise.all(
      collections.map((c) => api("GET", colPath(c.workspace, c.name) + "/stats").catch(() => null)),
    );
    renderCollectionsTable(collections, stats);
  }

  // Columns shown only when some collection's info carries the field: "damaged" (the
  // error of a collection that failed verification).
  const OPTIONAL_COLUMNS = [{ field: "damaged", title: "damaged" }];

  // The full-text index from stats().text: documents and its memory, or "—" without one.
  function textIndexText(s) {
    if (!s || !s.text || !s.text.documents) return "—";
    return fmtInt(s.text.documents) + " docs, " + fmtBytes(s.text.memory_bytes + s.text.disk_bytes);
  }

  // The full-text analyser in a few words: its name, language (stop words and stemming)
  // and any option set otherwise than by default.
  function analyzerText(analyzer) {
    if (!analyzer) return "—";
    const o = analyzer.options || {};
    const parts = [o.language ? o.language : "no language"];
    if (o.lowercase === false) parts.push("case-sensitive");
    if (o.min_token_len !== undefined && o.min_token_len !== 2) parts.push("tokens ≥ " + o.min_token_len);
    return analyzer.name + " (" + parts.join(", ") + ")";
  }

  function renderCollectionsTable(collections, stats) {
    const table = clear($("collections"));
    $("collections-empty").hidden = collections.length > 0;
    table.hidden = collections.length === 0;
    const optional = OPTIONAL_COLUMNS.filter((col) => collections.some((c) => c[col.field] !== undefined));
    const head = ["workspace", "collection", "rows", "dim", "metric", "index", "embedding function", "analyzer", "text index", "segments", "deleted", "on disk", "resident", "WAL"];
    const numeric = new Set(["rows", "dim", "segments", "deleted", "on disk", "resident", "WAL"]);
    table.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { class: numeric.has(h) ? "num" : null }, h)), ...optional.map((o) => el("th", {}, o.title)))));
    const body = el("tbody");
    collections.forEach((c, i) => {
      const s = stats[i];
      const link = el("a", { href: "#/c/" + enc(c.workspace) + "/" + enc(c.name), class: "collection-link" }, c.name);
      const row = el(
        "tr",
        { "data-collection": c.workspace + "/" + c.name },
        el("td", {}, c.workspace),
        el("td", {}, link),
        el("td", { class: "num rows" }, c.damaged ? "—" : fmtInt(c.count)),
        el("td", { class: "num" }, String(c.dim)),
        el("td", {}, c.metric),
        el("td", {}, c.index_type),
        el("td", { class: "embedding" }, c.embedding || "—"),
        el("td", { class: "analyzer" }, analyzerText(c.analyzer)),
        el("td", { class: "text-index" }, textIndexText(s)),
        el("td", { class: "num" }, s ? String(s.segments.length) : "—"),
        el("td", { class: "num" }, s ? fmtInt(s.deleted_count) : "—"),
        el("td", { class: "num" }, s ? fmtBytes(s.disk_bytes) : "—"),
        el("td", { class: "num" }, s ? fmtBytes(s.resident_bytes ?? s.memory_bytes) : "—"),
        el("td", { class: "num" }, s ? fmtBytes(s.wal_bytes) : "—"),
      );
      for (const o of optional) row.append(el("td", {}, c[o.field] === undefined || c[o.field] === null ? "—" : String(c[o.field])));
      body.append(row);
    });
    table.append(body);
  }

  // --- live metrics: Prometheus text from /metrics, differenced between polls --------------

  const metrics = { timer: null, last: null, series: { rate: [], p50: [], p95: [], p99: [] } };

  function startMetrics() {
    stopMetrics();
    const note = $("metrics-note");
    if (!session.mayAdmin()) {
      clear($("charts"));
      note.textContent = "Live request metrics need an admin key (GET /metrics is admin-only).";
      return;
    }
    note.textContent = "Every " + METRICS_EVERY_MS / 1000 + " s; all routes except /metrics.";
    metrics.last = null;
    metrics.series = { rate: [], p50: [], p95: [], p99: [] };
    drawCharts();
    const poll = async () => {
      try {
        const cur = parseMetrics(await api("GET", "/metrics"));
        const prev = metrics.last;
        metrics.last = cur;
        if (prev) {
          const dt = (cur.at - prev.at) / 1000;
          const s = metrics.series;
          push(s.rate, Math.max(cur.requests - prev.requests, 0) / dt);
          push(s.p50, quantile(prev, cur, 0.5));
          push(s.p95, quantile(prev, cur, 0.95));
          push(s.p99, quantile(prev, cur, 0.99));
          drawCharts();
        }
      } catch (err) {
        note.textContent = "metrics: " + err.message;
      }
    };
    poll();
    metrics.timer = setInterval(poll, METRICS_EVERY_MS);
  }

  function stopMetrics() {
    if (metrics.timer !== null) clearInterval(metrics.timer);
    metrics.timer = null;
  }

  function push(list, value) {
    list.push(value);
    if (list.length > CHART_POINTS) list.shift();
  }

  function drawCharts() {
    const s = metrics.series;
    const box = clear($("charts"));
    const last = (list) => (list.length ? list[list.length - 1] : null);
    const rate = last(s.rate);
    box.append(
      chart("chart-rate", "requests / s", rate === null ? "—" : rate.toFixed(1), [s.rate], (v) => v.toFixed(1), ["req/s"]),
      chart(
        "chart-latency",
        "latency p50 / p95 / p99",
        last(s.p99) === null ? "—" : fmtMs(last(s.p50)) + " / " + fmtMs(last(s.p99)),
        [s.p50, s.p95, s.p99].map((list) => list.map((v) => (v === null ? null : v * 1000))),
        (v) => v.toFixed(1) + " ms",
        ["p50", "p95", "p99"],
      ),
    );
  }

  // --- collection page ---------------------------------------------------------------------

  const page = {
    ws: null,
    name: null,
    info: null,
    cursors: [null], // cursor of each page shown so far; the last one is the current page
    next: null,
    record: null,
    filters: {},
    scanSeq: 0, // number of the latest scan started
    searchSeq: 0, // number of the latest search started
  };

  function setupCollectionPage() {
    const countPath = () => colPath(page.ws, page.name) + "/count";
    page.filters.browse = window.KeelUI.filterEditor($("browse-filter"), { countPath, api });
    page.filters.search = window.KeelUI.filterEditor($("search-filter"), { countPath, api });
    $("scan-button").addEventListener("click", () => scan(true));
    $("next-page").addEventListener("click", () => { page.cursors.push(page.next); scan(false); });
    $("prev-page").addEventListener("click", () => { page.cursors.pop(); scan(false); });
    $("page-size").addEventListener("change", () => scan(true));
    $("close-record").addEventListener("click", () => { $("record-panel").hidden = true; });
    $("more-like-this").addEventListener("click", () => moreLikeThis(page.record.id));
    $("search-mode").addEventListener("change", renderModeInputs);
    $("search-button").addEventListener("click", () => runSearch().catch(showSearchError));
  }

  // The admin tab exists in the DOM only while a collection the key may write is open.
  function mountAdmin() {
    if ($("tab-admin")) return;
    const tab = $("admin-tab-template").content.firstElementChild.cloneNode(true);
    tab.addEventListener("click", () => selectTab("admin"));
    $("tabs").append(tab);
    const panel = $("admin-panel-template").content.firstElementChild.cloneNode(true);
    panel.hidden = true;
    $("admin-slot").append(panel);
    const countPath = () => colPath(page.ws, page.name) + "/count";
    page.filters.del = window.KeelUI.filterEditor($("delete-filter"), { countPath, api, label: "Records to delete (JSON filter)" });
    $("compact-button").addEventListener("click", () => compact().catch(showError));
    $("delete-button").addEventListener("click", () => deleteByFilter().catch(showError));
  }

  function unmountAdmin() {
    for (const id of ["admin-tab", "tab-admin"]) {
      const node = $(id);
      if (node) node.remove();
    }
    delete page.filters.del;
  }

  function selectTab(name) {
    for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    for (const panel of ["browse", "search", "admin"]) {
      const node = $("tab-" + panel);
      if (node) node.hidden = panel !== name;
    }
  }

  async function openCollection(ws, name) {
    showOnly("collection");
    crumbs({ text: "Overview", href: "#/" }, { text: ws }, { text: name });
    const changed = page.ws !== ws || page.name !== name;
    Object.assign(page, { ws, name });
    $("col-title").textContent = ws + " / " + name;
    let scansAtOpen = null;
    if (changed) {
      // Everything that belongs to the previous collection goes before the first await:
      // a filter the user types once the page shows is never wiped. The first page is
      // loaded once the collection's details are in, unless the user started a scan of
      // their own meanwhile (theirs is the one to show).
      page.info = null;
      clear($("col-facts"));
      unmountAdmin();
      if (session.mayWrite(ws)) mountAdmin();
      for (const f of Object.values(page.filters)) f.reset();
      $("record-panel").hidden = true;
      $("search-results").hidden = true;
      $("search-error").textContent = "";
      clear($("search-mode"));
      clear($("mode-inputs"));
      $("search-button").disabled = true; // until the collection's search modes are known
      clear($("records"));
      $("page-label").textContent = "";
      $("prev-page").disabled = $("next-page").disabled = true;
      selectTab("browse");
      scansAtOpen = ++page.scanSeq; // drops a scan of the previous collection still in flight
    }
    const [info, stats] = await Promise.all([api("GET", colPath(ws, name)), api("GET", colPath(ws, name) + "/stats")]);
    if (page.ws !== ws || page.name !== name) return; // the user went elsewhere meanwhile
    page.info = info;
    const facts = clear($("col-facts"));
    fact(facts, "rows", fmtInt(info.count));
    fact(facts, "dimension", String(info.dim));
    fact(facts, "metric", info.metric);
    fact(facts, "index", info.index_type);
    fact(facts, "embedding function", info.embedding || "none (vectors only)");
    fact(facts, "analyzer", analyzerText(info.analyzer));
    fact(facts, "segments", String(stats.segments.length));
    fact(facts, "deleted", fmtInt(stats.deleted_count));
    fact(facts, "on disk", fmtBytes(stats.disk_bytes));
    fact(facts, "resident", fmtBytes(stats.memory_bytes));
    fact(facts, "m / ef_construction / ef_search", info.m + " / " + info.ef_construction + " / " + info.ef_search);
    for (const o of OPTIONAL_COLUMNS) if (info[o.field] !== undefined) fact(facts, o.title, info[o.field] === null ? "—" : String(info[o.field]));
    if (changed) {
      renderModes();
      $("search-button").disabled = false;
      if (page.scanSeq === scansAtOpen) await scan(true);
    }
  }

  // Only the latest scan draws its page: an earlier one that answers late (the first page
  // of a collection, a double click, the collection left meanwhile) is dropped.
  async function scan(fromStart) {
    const mine = ++page.scanSeq;
    const filter = page.filters.browse;
    const state = await filter.validate();
    if (mine !== page.scanSeq) return;
    $("scan-error").textContent = "";
    if (!state.valid) {
      $("scan-error").textContent = "Fix the filter first.";
      return;
    }
    if (fromStart) page.cursors = [null];
    const cursor = page.cursors[page.cursors.length - 1];
    const body = { limit: Number($("page-size").value) };
    if (state.value !== null) body.filter = state.value;
    if (cursor !== null) body.cursor = cursor;
    let result;
    try {
      result = await api("POST", colPath(page.ws, page.name) + "/scan", body);
    } catch (err) {
      if (mine === page.scanSeq) $("scan-error").textContent = err.message;
      return;
    }
    if (mine !== page.scanSeq) return;
    page.next = result.next_cursor;
    renderRecords(result.records);
    $("prev-page").disabled = page.cursors.length <= 1;
    $("next-page").disabled = !page.next;
    $("page-label").textContent = "page " + page.cursors.length;
  }

  function metaText(meta) {
    const text = jsonText(meta);
    return text.length > 240 ? text.slice(0, 240) + " …" : text;
  }

  // A document as one short line of text (the whole of it is in the record panel).
  function docText(doc) {
    if (doc === null || doc === undefined) return "—";
    const text = doc.replace(/\s+/g, " ").trim();
    return text.length > 240 ? text.slice(0, 240) + " …" : text;
  }

  function renderRecords(records) {
    const table = clear($("records"));
    table.append(el("thead", {}, el("tr", {}, el("th", {}, "id"), el("th", {}, "metadata"), el("th", {}, "document"), el("th", {}, ""))));
    const body = el("tbody");
    for (const r of records) {
      body.append(
        el(
          "tr",
          { "data-id": r.id },
          el("td", { class: "mono record-id" }, r.id),
          el("td", { class: "meta" }, metaText(r.metadata)),
          el("td", { class: "doc" }, docText(r.document)),
          el("td", {}, el("button", { type: "button", class: "link open-record", onclick: () => openRecord(r.id).catch(showError) }, "open")),
        ),
      );
    }
    if (!records.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No records.")));
    table.append(body);
  }

  async function fetchRecord(id) {
    const { records } = await api("POST", colPath(page.ws, page.name) + "/get", { ids: [id] });
    if (!records[0]) throw new ApiError(404, "not_found", "no record with id " + JSON.stringify(id));
    return records[0];
  }

  async function openRecord(id) {
    const record = await fetchRecord(id);
    page.record = record;
    $("record-id").textContent = record.id;
    $("record-metadata").textContent = jsonText(record.metadata, 2);
    const doc = $("record-document");
    doc.textContent = record.document === null || record.document === undefined ? "(no document)" : record.document;
    doc.classList.toggle("muted", record.document === null || record.document === undefined);
    const v = record.vector;
    const dl = clear($("record-vector"));
    let sum = 0;
    let sq = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const x of v) { sum += x; sq += x * x; if (x < min) min = x; if (x > max) max = x; }
    fact(dl, "dimension", String(v.length));
    fact(dl, "L2 norm", Math.sqrt(sq).toPrecision(6));
    fact(dl, "min", min.toPrecision(4));
    fact(dl, "max", max.toPrecision(4));
    fact(dl, "mean", (sum / v.length).toPrecision(4));
    fact(dl, "first values", "[" + v.slice(0, 8).map((x) => x.toPrecision(4)).join(", ") + (v.length > 8 ? ", …]" : "]"));
    $("record-panel").hidden = false;
    $("record-panel").scrollIntoView({ block: "nearest" });
  }

  // --- search --------------------------------------------------------------------------------
  //
  // A search mode turns its inputs into a request. Dense modes ("kind: dense") give the
  // query vector, sent to `explain` (hits plus the engine's plan and timing); the full-text
  // and hybrid modes give the body of `text_search` / `hybrid_search` (no ef, no exact, no
  // engine stats). The search by text through the collection's embedding function is a
  // dense mode whose "vector" is the text (the server embeds it), offered only when the
  // collection has one; hybrid search then needs no vector either.
  function denseFromInputs(recordInput, vectorInput) {
    const id = $(recordInput).value.trim();
    const pasted = $(vectorInput).value.trim();
    if (id && pasted) throw new Error("Give a record id or a vector, not both.");
    if (id) return fetchRecord(id).then((r) => r.vector);
    if (pasted) return Promise.resolve(parseVector(pasted));
    if (page.info.embedding) return Promise.resolve(null); // the embedding function embeds the words
    throw new Error("Hybrid search needs a vector: a record id (more like this) or a pasted vector.");
  }

  function parseVector(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Error("The vector is not valid JSON: " + err.message);
    }
    if (!Array.isArray(value) || !value.every((x) => typeof x === "number")) throw new Error("The vector must be a JSON list of numbers.");
    return value;
  }

  function wordsFrom(inputId) {
    const query = $(inputId).value.trim();
    if (!query) throw new Error("Enter the words to search for.");
    return query;
  }

  const SEARCH_MODES = [
    {
      id: "embedding",
      kind: "dense",
      label: "text (embedding)",
      available: (info) => Boolean(info.embedding),
      inputs() {
        return el("div", { class: "row" }, el("label", { for: "mode-embedding-query" }, "Text (embedded by " + page.info.embedding + ")"), el("input", { id: "mode-embedding-query", type: "search", class: "wide", placeholder: "what you are looking for, in words" }));
      },
      async vector() {
        return wordsFrom("mode-embedding-query");
      },
    },
    {
      id: "record",
      kind: "dense",
      label: "more like this record",
      available: () => true,
      inputs() {
        return el("div", { class: "row" }, el("label", { for: "mode-record-id" }, "Record id"), el("input", { id: "mode-record-id", type: "text", spellcheck: "false" }));
      },
      async vector() {
        const id = $("mode-record-id").value;
        if (!id) throw new Error("Enter the id of a record.");
        return (await fetchRecord(id)).vector;
      },
    },
    {
      id: "vector",
      kind: "dense",
      label: "vector (JSON list)",
      available: () => true,
      inputs() {
        return el("div", {}, el("label", { for: "mode-vector" }, "Vector (" + page.info.dim + " numbers)"), el("textarea", { id: "mode-vector", spellcheck: "false", placeholder: "[0.1, 0.2, …]" }));
      },
      async vector() {
        return parseVector($("mode-vector").value);
      },
    },
    {
      id: "text",
      kind: "text",
      route: "text_search",
      label: "full text (BM25)",
      available: () => true,
      inputs() {
        return el("div", { class: "row" }, el("label", { for: "mode-text-query" }, "Words"), el("input", { id: "mode-text-query", type: "search", class: "wide", placeholder: "product code, name, rare term…" }));
      },
      async body() {
        return { query: wordsFrom("mode-text-query") };
      },
    },
    {
      id: "hybrid",
      kind: "hybrid",
      route: "hybrid_search",
      label: "hybrid (words + vector)",
      available: () => true,
      inputs() {
        return el(
          "div",
          {},
          el("div", { class: "row" }, el("label", { for: "mode-hybrid-query" }, "Words"), el("input", { id: "mode-hybrid-query", type: "search", class: "wide" })),
          el("div", { class: "row" }, el("label", { for: "mode-hybrid-record" }, "Vector of record"), el("input", { id: "mode-hybrid-record", type: "text", spellcheck: "false", placeholder: "record id (more like this)" }),
            el("label", { for: "mode-hybrid-fusion" }, "Fusion"),
            el("select", { id: "mode-hybrid-fusion" }, el("option", { value: "rrf" }, "reciprocal rank"), el("option", { value: "weighted" }, "weighted scores"))),
          el("label", { for: "mode-hybrid-vector" }, "or a vector (" + page.info.dim + " numbers)" + (page.info.embedding ? "; neither: the words embedded by " + page.info.embedding : "")),
          el("textarea", { id: "mode-hybrid-vector", spellcheck: "false", placeholder: "[0.1, 0.2, …]" }),
        );
      },
      async body() {
        const query = wordsFrom("mode-hybrid-query");
        const vector = await denseFromInputs("mode-hybrid-record", "mode-hybrid-vector");
        return { query, ...(vector === null ? {} : { vector }), fusion: $("mode-hybrid-fusion").value };
      },
    },
  ];

  function renderModes() {
    const select = clear($("search-mode"));
    for (const mode of SEARCH_MODES.filter((m) => m.available(page.info))) select.append(el("option", { value: mode.id }, mode.label));
    renderModeInputs();
  }

  function renderModeInputs() {
    const mode = SEARCH_MODES.find((m) => m.id === $("search-mode").value);
    if (!mode) return; // the collection's details (and so its modes) are not in yet
    clear($("mode-inputs")).append(mode.inputs());
    // ef and exact steer the HNSW walk of a vector search only.
    for (const id of ["search-ef", "search-exact"]) $(id).disabled = mode.kind !== "dense";
  }

  function moreLikeThis(id) {
    if (!page.info) return; // the search modes are not known yet
    selectTab("search");
    $("search-mode").value = "record";
    renderModeInputs();
    $("mode-record-id").value = id;
    runSearch().catch(showSearchError);
  }

  function showSearchError(err) {
    $("search-error").textContent = err instanceof ApiError ? err.code + ": " + err.message : err.message;
  }

  // Like scan(), only the latest search draws its hits; an earlier one answering late is
  // dropped (its error too).
  async function runSearch() {
    const mine = ++page.searchSeq;
    $("search-error").textContent = "";
    const filter = await page.filters.search.validate();
    if (mine !== page.searchSeq) return;
    if (!filter.valid) throw new Error("Fix the filter first.");
    const mode = SEARCH_MODES.find((m) => m.id === $("search-mode").value);
    const k = Number($("search-k").value) || 10;
    let body;
    let route = "explain";
    if (mode.kind === "dense") {
      body = { vector: await mode.vector(), k, exact: $("search-exact").checked };
      const ef = $("search-ef").value.trim();
      if (ef) body.ef = Number(ef);
    } else {
      body = { ...(await mode.body()), k };
      route = mode.route;
    }
    if (filter.value !== null) body.filter = filter.value;
    const t0 = performance.now();
    let result;
    try {
      result = await api("POST", colPath(page.ws, page.name) + "/" + route, body);
    } catch (err) {
      if (mine === page.searchSeq) throw err;
      return;
    }
    if (mine !== page.searchSeq) return;
    const roundTripS = (performance.now() - t0) / 1000;
    renderHits(result.hits, mode.kind);
    if (mode.kind === "dense") renderSearchStats(result.stats, roundTripS);
    else renderRankedStats(mode, body, result.hits.length, roundTripS);
    $("search-results").hidden = false;
  }

  function renderHits(hits, kind) {
    const table = clear($("hits"));
    const scored = kind !== "dense";
    const distance = scored ? (kind === "text" ? "score (BM25)" : "score (fused)") : page.info.metric === "ip" ? "distance (−ip)" : "distance";
    table.append(el("thead", {}, el("tr", {}, el("th", { class: "num" }, "#"), el("th", {}, "id"), el("th", { class: "num" }, distance), el("th", {}, "metadata"), el("th", {}, "document"))));
    const body = el("tbody");
    hits.forEach((h, i) => {
      body.append(
        el(
          "tr",
          { "data-id": h.id },
          el("td", { class: "num" }, String(i + 1)),
          el("td", { class: "mono hit-id" }, el("button", { type: "button", class: "link", onclick: () => { selectTab("browse"); openRecord(h.id).catch(showError); } }, h.id)),
          el("td", { class: "num hit-distance" }, (scored ? h.score : h.distance).toPrecision(6)),
          el("td", { class: "meta" }, metaText(h.metadata)),
          el("td", { class: "doc hit-document" }, docText(h.document)),
        ),
      );
    });
    if (!hits.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, kind === "dense" ? "No hits." : "No document matches these words.")));
    table.append(body);
  }

  function renderSearchStats(stats, roundTripS) {
    const dl = clear($("search-stats"));
    fact(dl, "engine time", fmtMs(stats.latency_s));
    fact(dl, "round trip", fmtMs(roundTripS));
    fact(dl, "k / ef", stats.k + " / " + stats.ef);
    fact(dl, "units searched", String(stats.segments_searched));
    fact(dl, "distance computations", fmtInt(stats.distance_computations));
    fact(dl, "graph hops", fmtInt(stats.nodes_visited));
    fact(dl, "filtered", stats.filtered ? "yes, " + fmtInt(stats.matched_rows) + " matching rows" : "no");
    const plans = Object.entries(stats.plans);
    fact(dl, "plan", plans.length ? plans.map(([unit, plan]) => unit + ": " + plan).join(", ") : "nothing to search");
  }

  // Full-text and hybrid searches report no engine stats (explain is the vector search's).
  function renderRankedStats(mode, body, hits, roundTripS) {
    const dl = clear($("search-stats"));
    fact(dl, "search", mode.kind === "text" ? "full text, BM25 over every live document" : "hybrid, " + (body.fusion === "weighted" ? "weighted scores" : "reciprocal-rank fusion") + " of the dense and BM25 top lists");
    fact(dl, "round trip", fmtMs(roundTripS));
    fact(dl, "k / hits", body.k + " / " + hits);
    fact(dl, "filtered", body.filter ? "yes (both sides)" : "no");
  }

  // --- admin actions (only rendered for keys that may write) ----------------------------------

  // The backup card exists in the DOM only while an admin key is signed in.
  function mountBackup() {
    if ($("backup-card")) return;
    const card = $("backup-card-template").content.firstElementChild.cloneNode(true);
    $("backup-slot").append(card);
    $("backup-button").addEventListener("click", () => backup().catch((err) => showBackupResult(err)));
  }

  function unmountBackup() {
    const node = $("backup-card");
    if (node) node.remove();
  }

  function showBackupResult(err) {
    const result = $("backup-result");
    result.textContent = err instanceof ApiError ? err.code + ": " + err.message : String(err.message || err);
    result.classList.add("error");
  }

  async function backup() {
    const result = $("backup-result");
    result.textContent = "";
    result.classList.remove("error");
    const ok = await confirmDialog(
      "Back up the whole database?",
      "Every collection is copied, verified, into a new directory under the server's --backup-dir; writers keep going meanwhile.",
      "",
      "Back up",
    );
    if (!ok) {
      result.textContent = "Cancelled; no backup taken.";
      return;
    }
    result.textContent = "Backing up…";
    const report = await api("POST", "/v1/backup", {});
    result.textContent =
      "Backup written to " + report.path + ": " + fmtInt(report.collections.length) + " collection" + (report.collections.length === 1 ? "" : "s") +
      ", " + fmtInt(report.files) + " files, " + fmtBytes(report.bytes) + " in " + fmtMs(report.seconds) + ".";
  }

  function confirmDialog(title, text, detail, okLabel) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-detail").textContent = detail || "";
    $("confirm-detail").hidden = !detail;
    $("confirm-ok").textContent = okLabel;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
  }

  async function compact() {
    const ok = await confirmDialog("Compact " + page.ws + "/" + page.name + "?", "Segments are merged and deleted rows dropped; this can take a while on a large collection.", "", "Compact");
    if (!ok) return;
    const report = await api("POST", colPath(page.ws, page.name) + "/compact");
    $("compact-result").textContent = jsonText(report, 2);
    $("compact-result").hidden = false;
    await openCollection(page.ws, page.name);
  }

  async function deleteByFilter() {
    const result = $("delete-result");
    result.textContent = "";
    const state = await page.filters.del.validate();
    if (!state.valid) return;
    if (state.value === null || Object.keys(state.value).length === 0) {
      result.textContent = "Enter a filter: the dashboard does not delete every record at once.";
      return;
    }
    const ok = await confirmDialog(
      "Delete " + fmtInt(state.count) + " record" + (state.count === 1 ? "" : "s") + "?",
      "Every record of " + page.ws + "/" + page.name + " matching this filter is deleted. This cannot be undone.",
      jsonText(state.value, 2),
      "Delete " + fmtInt(state.count),
    );
    if (!ok) {
      result.textContent = "Cancelled; nothing deleted.";
      return;
    }
    const { deleted } = await api("POST", colPath(page.ws, page.name) + "/delete", { filter: state.value });
    result.textContent = "Deleted " + fmtInt(deleted) + " record" + (deleted === 1 ? "" : "s") + ".";
    await openCollection(page.ws, page.name);
    await page.filters.del.validate();
    await scan(true);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
