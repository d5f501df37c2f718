// KeelDB dashboard widgets (loaded before app.js, which uses them as window.KeelUI): DOM
// helpers that only ever create text nodes, number formats, the Prometheus text parser and
// its quantiles, inline SVG line charts, and the JSON filter editor.
//
// Same rule as app.js: every value from the server goes into the page as text
// (textContent / text nodes via el()); nothing here assigns innerHTML.
"use strict";

(function () {
  const CHART_POINTS = 60; // points per chart: app.js keeps the same number of samples

  // --- tiny DOM helpers --------------------------------------------------------------


  // el("td", {class: "num"}, "text", child...): strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function fact(dl, label, value) {
    dl.append(el("div", {}, el("dt", {}, label), el("dd", {}, value)));
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
  }

  function fmtInt(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
  }

  function fmtMs(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    const ms = seconds * 1000;
    return (ms < 10 ? ms.toFixed(2) : ms.toFixed(1)) + " ms";
  }

  function jsonText(value, indent) {
    return JSON.stringify(value, null, indent);
  }

  // --- live metrics: Prometheus text from /metrics ---------------------------------------

  function parseMetrics(text) {
    // Sums over every route except /metrics itself (the dashboard's own polling).
    let requests = 0;
    const buckets = new Map();
    let inFlight = 0;
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      // Label values hold braces (route="/v1/workspaces/{ws}/..."): the label set runs to
      // the last "}" of the line.
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
      if (!m) continue;
      const [, name, labels = "", value] = m;
      if (labels.includes('route="/metrics"')) continue;
      if (name === "keeldb_http_requests_total") requests += Number(value);
      else if (name === "keeldb_http_requests_in_flight") inFlight = Number(value);
      else if (name === "keeldb_http_request_duration_seconds_bucket") {
        const le = /le="([^"]+)"/.exec(labels)[1];
        const bound = le === "+Inf" ? Infinity : Number(le);
        buckets.set(bound, (buckets.get(bound) || 0) + Number(value));
      }
    }
    const cumulative = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    return { at: performance.now(), requests, inFlight, cumulative };
  }

  // The p-quantile of the requests between two scrapes, interpolated inside its bucket.
  function quantile(prev, cur, p) {
    const deltas = cur.cumulative.map(([bound, n], i) => [bound, n - (prev.cumulative[i] ? prev.cumulative[i][1] : 0)]);
    const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
    if (total <= 0) return null;
    const target = p * total;
    let lower = 0;
    let below = 0;
    for (const [bound, n] of deltas) {
      if (n >= target) {
        if (!isFinite(bound)) return lower;
        return lower + (bound - lower) * ((target - below) / Math.max(n - below, 1e-12));
      }
      lower = bound;
      below = n;
    }
    return lower;
  }

  // A line chart as inline SVG: one polyline per series, a zero line and the max label.
  function chart(id, title, now, series, fmt, names) {
    const W = 300;
    const H = 90;
    const pad = 4;
    const values = series.flat().filter((v) => v !== null && isFinite(v));
    const max = Math.max(1e-9, ...values);
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": title });
    root.append(svg("line", { x1: 0, y1: H - pad, x2: W, y2: H - pad, class: "axis" }));
    series.forEach((list, k) => {
      const pts = [];
      list.forEach((v, i) => {
        if (v === null || !isFinite(v)) return;
        const x = (W * (i + CHART_POINTS - list.length)) / (CHART_POINTS - 1);
        const y = H - pad - ((H - 2 * pad) * v) / max;
        pts.push([x.toFixed(1), y.toFixed(1)]);
      });
      if (!pts.length) return;
      root.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: "series s" + k }));
      const [x, y] = pts[pts.length - 1];
      root.append(svg("circle", { cx: x, cy: y, r: 2.5, class: "dot d" + k }));
    });
    const label = svg("text", { x: 4, y: 12, class: "label" });
    label.textContent = values.length ? "max " + fmt(max) : "waiting for traffic…";
    root.append(label);
    const legend = el("div", { class: "legend" }, ...names.map((n, k) => el("span", { class: "k" + k }, "— " + n)));
    return el("div", { class: "chart", id }, el("h3", {}, title), el("div", { class: "now" }, now), root, legend);
  }

  // --- filter editor: JSON, checked as you type (parse here, semantics by the server) -------

  function filterEditor(container, opts) {
    const id = container.id + "-input";
    const input = el("textarea", {
      id,
      class: "filter-input",
      spellcheck: "false",
      placeholder: '{"year": {"$gte": 2020}}   (empty: every record)',
    });
    const status = el("p", { class: "filter-status", id: container.id + "-status", role: "status" });
    clear(container).append(el("div", { class: "filter-editor" }, el("label", { for: id }, opts.label || "Filter (JSON)"), input, status));
    let timer = null;
    let seq = 0;

    function setStatus(kind, text) {
      status.className = "filter-status " + kind;
      status.textContent = text;
      input.setAttribute("aria-invalid", kind === "error" ? "true" : "false");
    }

    // Local check: null for "no filter", an object, or throws with the reason.
    function parse() {
      const text = input.value.trim();
      if (!text) return null;
      let value;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new Error("Not valid JSON: " + err.message);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error('A filter is a JSON object, e.g. {"year": {"$gte": 2020}}');
      }
      return value;
    }

    // Full check of the text as it is now: parse, then ask the server to count matches
    // (it compiles the filter). Returns {value, valid, count} for that text; the status
    // line shows the latest check only.
    async function validate() {
      const mine = ++seq;
      let value;
      try {
        value = parse();
      } catch (err) {
        setStatus("error", err.message);
        return { value: null, valid: false, count: null };
      }
      try {
        const body = value === null ? undefined : { filter: value };
        const { count } = await opts.api("POST", opts.countPath(), body);
        if (mine === seq) {
          const s = count === 1 ? "" : "s";
          setStatus("ok", (value === null ? "No filter: " : "") + fmtInt(count) + " matching record" + s);
        }
        return { value, valid: true, count };
      } catch (err) {
        if (mine === seq) setStatus("error", "Filter rejected: " + err.message);
        return { value, valid: false, count: null };
      }
    }

    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(validate, 300);
    });
    return {
      input,
      validate,
      reset() { input.value = ""; setStatus("", ""); },
    };
  }

  window.KeelUI = Object.freeze({
    CHART_POINTS,
    el,
    svg,
    clear,
    fact,
    fmtBytes,
    fmtInt,
    fmtMs,
    jsonText,
    parseMetrics,
    quantile,
    chart,
    filterEditor,
  });
})();
