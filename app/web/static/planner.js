/* The planners' page: fills the analysis layers folium made (empty) from /api/v1/analytics for
 * the panel's filters, refills them when a filter changes (no reload), writes the summary and
 * the legend, and opens a region's figures with its weekly series as a small SVG chart.
 * window.gridmapPlanner.ready is set once the first analysis is drawn (for people: the status
 * line; for browser tests), and .generation counts the redraws. */
(function () {
  "use strict";

  // ArcGIS's hot-spot colours for Gi_Bin -3…3, with a neutral light grey for "not significant".
  const GI_COLOURS = {
    3: "#d62f27", 2: "#ed7551", 1: "#fab984", 0: "#e3e3e3", "-1": "#c0ccbe", "-2": "#849eba", "-3": "#4575b5",
  };
  const GI_LEGEND = [
    [3, "legend_hot_99"], [2, "legend_hot_95"], [1, "legend_hot_90"], [0, "legend_not_significant"],
    [-1, "legend_cold_90"], [-2, "legend_cold_95"], [-3, "legend_cold_99"],
  ];
  const MORAN_COLOURS = { HH: "#d62f27", HL: "#f4a3a8", LH: "#a6c8ea", LL: "#2f6db5", "": "#e3e3e3" };
  const MORAN_LEGEND = [
    ["HH", "legend_moran_HH"], ["HL", "legend_moran_HL"], ["LH", "legend_moran_LH"],
    ["LL", "legend_moran_LL"], ["", "legend_not_significant"],
  ];
  const EMERGING_COLOURS = {
    "new hot spot": "#ffcc80", "consecutive hot spot": "#ff9800", "intensifying hot spot": "#b71c1c",
    "persistent hot spot": "#e53935", "diminishing hot spot": "#f48fb1", "sporadic hot spot": "#ffab91",
    "oscillating hot spot": "#ba68c8", "historical hot spot": "#a1887f",
    "new cold spot": "#b3e5fc", "consecutive cold spot": "#4fc3f7", "intensifying cold spot": "#0d47a1",
    "persistent cold spot": "#1e88e5", "diminishing cold spot": "#80cbc4", "sporadic cold spot": "#c5cae9",
    "oscillating cold spot": "#7e57c2", "historical cold spot": "#90a4ae", "no pattern": "#e3e3e3",
  };
  // Change in % from the previous period (lower bounds), blue for falls, red for rises.
  const CHANGE = {
    bins: [-Infinity, -50, -20, -5, 5, 20, 50],
    colours: ["#2166ac", "#67a9cf", "#d1e5f0", "#f2f2f2", "#fddbc7", "#ef8a62", "#b2182b"],
  };
  const NEUTRAL = "#e3e3e3";
  // What each analysis depends on, so a filter change refetches only what it changes.
  const DEPENDS = {
    class: ["hotspots", "emerging", "compare", "density"],
    period: ["hotspots", "emerging", "compare", "density"],
    level: ["hotspots", "emerging", "compare"],
    method: ["hotspots"],
    measure: ["hotspots"],
  };

  let cfg = null;
  let labels = {};
  let map = null;
  let analysis = "gi"; // the analysis layer shown (a radio group)
  const filters = {};
  const data = {}; // kind → the last answer drawn
  const seq = {}; // kind → the number of its latest request (older answers are dropped)
  const stale = new Set(["hotspots", "emerging", "compare", "density"]);
  const errors = {}; // kind → why its last request failed
  const seriesCache = new Map();
  const api = { ready: false, config: null, generation: 0, pending: 0 };

  // -- small helpers -----------------------------------------------------------------------------
  function esc(value) {
    return String(value == null ? "" : value).replace(/[&<>"']/g, (c) => (
      { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function label(key, fallback) { return labels[key] || fallback || key; }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, k) => (values[k] == null ? "" : values[k]));
  }
  function locale() { return cfg.lang === "en" ? "en-GB" : "zh-CN"; }
  function num(value, digits) {
    if (value == null || Number.isNaN(value)) return "—";
    return Number(value).toLocaleString(locale(), {
      minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0,
    });
  }
  function byId(id) { return document.getElementById(id); }
  function addDays(iso, days) {
    const d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }
  function spanDays(from, to) {
    return Math.round((Date.parse(to + "T00:00:00Z") - Date.parse(from + "T00:00:00Z")) / 864e5) + 1;
  }
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      let detail = "";
      try { detail = (await response.json()).detail || ""; } catch (err) { /* not problem+json */ }
      throw new Error(`${response.status} ${detail}`.trim());
    }
    return response.json();
  }

  // -- the requests --------------------------------------------------------------------------------
  function weeks() {
    // Emerging hot spots need weekly bins: the period's weeks, at least 10 (ArcGIS's minimum
    // for a meaningful trend), ending on the period's last day.
    return Math.min(cfg.max_weeks, Math.max(10, Math.round(spanDays(filters.from, filters.to) / 7)));
  }
  function url(kind, extra) {
    const p = new URLSearchParams({ region: cfg.region });
    if (filters.class) p.set("class", filters.class);
    if (kind === "emerging") {
      p.set("level", filters.level);
      p.set("to", filters.to);
      p.set("weeks", String(weeks()));
    } else {
      p.set("from", filters.from);
      p.set("to", filters.to);
    }
    if (kind === "hotspots") {
      p.set("level", filters.level);
      p.set("method", filters.method);
      p.set("measure", filters.measure);
    }
    if (kind === "compare") p.set("level", filters.level);
    Object.entries(extra || {}).forEach(([k, v]) => p.set(k, v));
    return `${cfg.urls[kind]}?${p}`;
  }
  function wanted(kind) {
    if (kind === "hotspots") return true; // the summary counts its hot and cold spots
    if (kind === "density") return map.hasLayer(window[cfg.heat.group]);
    return analysis === kind;
  }
  function busy(delta) {
    api.pending += delta;
    byId("planner-status").textContent = api.pending > 0 ? label("planner_loading") : "";
    if (api.pending === 0) {
      api.generation += 1;
      if (!api.ready) {
        api.ready = true;
        document.body.setAttribute("data-ready", "1");
      }
    }
  }
  async function load(kind) {
    stale.delete(kind);
    const n = (seq[kind] || 0) + 1;
    seq[kind] = n;
    busy(+1);
    try {
      const answer = await getJSON(url(kind));
      if (seq[kind] !== n) return; // a newer request for other filters is on its way
      data[kind] = answer;
      delete errors[kind];
      draw(kind);
    } catch (err) {
      if (seq[kind] === n) { errors[kind] = err.message; stale.add(kind); }
    } finally {
      if (seq[kind] === n) { summary(); legend(); }
      busy(-1);
    }
  }
  function refresh(what) {
    (DEPENDS[what] || DEPENDS.period).forEach((kind) => stale.add(kind));
    if (!periodOk()) { summary(); return; }
    [...stale].forEach((kind) => { if (wanted(kind)) load(kind); });
  }
  function periodOk() {
    const box = byId("planner-error");
    let problem = "";
    if (!filters.from || !filters.to) problem = label("planner_bad_period");
    else if (filters.from > filters.to) problem = label("planner_bad_period");
    else if (spanDays(filters.from, filters.to) > cfg.max_days) {
      problem = fill(label("planner_long_period"), { days: cfg.max_days });
    }
    box.hidden = !problem;
    box.textContent = problem;
    return !problem;
  }

  // -- drawing -------------------------------------------------------------------------------------
  function weight() { return filters.level === "grid" ? 0.6 : 1.2; }
  function giStyle(feature) {
    const bin = feature.properties.gi_bin;
    return { color: "#ffffff", weight: weight(), fillColor: GI_COLOURS[bin] || NEUTRAL, fillOpacity: bin ? 0.82 : 0.5 };
  }
  function moranStyle(feature) {
    const cluster = feature.properties.moran_cluster || "";
    return { color: "#ffffff", weight: weight(), fillColor: MORAN_COLOURS[cluster] || NEUTRAL, fillOpacity: cluster ? 0.82 : 0.5 };
  }
  function emergingStyle(feature) {
    const category = feature.properties.category || "no pattern";
    const none = category === "no pattern";
    return { color: "#ffffff", weight: weight(), fillColor: EMERGING_COLOURS[category] || NEUTRAL, fillOpacity: none ? 0.5 : 0.82 };
  }
  function changeValue(p) {
    if (p.change_pct != null) return p.change_pct;
    return p.count > 0 ? Infinity : 0; // from zero: a rise without a percentage
  }
  function changeColour(value) {
    let colour = CHANGE.colours[0];
    CHANGE.bins.forEach((bin, i) => { if (value >= bin) colour = CHANGE.colours[i]; });
    return colour;
  }
  function compareStyle(feature) {
    const p = feature.properties;
    return {
      color: p.significant ? "#212121" : "#ffffff", weight: p.significant ? 2.5 : weight(),
      fillColor: changeColour(changeValue(p)), fillOpacity: 0.8,
    };
  }
  const STYLES = { gi: giStyle, moran: moranStyle, emerging: emergingStyle, compare: compareStyle };

  function draw(kind) {
    if (kind === "density") { drawHeat(); return; }
    const answer = data[kind];
    const name = kind === "hotspots" ? answer.method : kind;
    if (kind === "hotspots") {
      ["gi", "moran"].forEach((m) => window[cfg.analyses[m]].clearLayers());
    }
    const group = window[cfg.analyses[name]];
    group.clearLayers();
    const level = answer.level;
    group.addLayer(L.geoJSON(answer, {
      style: STYLES[name],
      onEachFeature: (feature, layer) => {
        layer.bindTooltip(esc(feature.properties.name || feature.properties.code), { sticky: true });
        layer.bindPopup(() => popup(name, feature), { maxWidth: 320 });
        layer.on("popupopen", (e) => chart(e.popup, feature.properties.code, level));
        layer.on("mouseover", () => layer.setStyle({ weight: 3, color: "#263238" }));
        layer.on("mouseout", () => layer.setStyle(STYLES[name](feature)));
      },
    }));
    outlinesOnTop();
  }
  function drawHeat() {
    const answer = data.density;
    const top = answer.max || 1;
    window[cfg.heat.layer].setLatLngs((answer.cells || []).map((c) => [c[0], c[1], c[2] / top]));
  }
  function outlinesOnTop() {
    Object.values(cfg.outlines).forEach((name) => {
      const layer = window[name];
      if (layer && map.hasLayer(layer)) layer.bringToFront();
    });
  }

  // -- a region's figures and its weekly series ----------------------------------------------------
  function rows(pairs) {
    return pairs.filter((r) => r).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("");
  }
  function popup(name, feature) {
    const p = feature.properties;
    const base = [
      [label("planner_count"), num(p.count)],
      p.per_1000 !== undefined ? [label("planner_per_1000"), num(p.per_1000, 2)] : null,
      p.per_km2 !== undefined ? [label("planner_per_km2"), num(p.per_km2, 1)] : null,
      p.population !== undefined ? [label("planner_population"), num(p.population)] : null,
      p.area_km2 !== undefined ? [label("planner_area"), num(p.area_km2, 3)] : null,
    ];
    let extra = [];
    if (name === "gi") {
      const entry = GI_LEGEND.find(([bin]) => bin === p.gi_bin);
      extra = [[label("planner_layer_gi"), esc(label(entry ? entry[1] : "legend_not_significant"))],
        ["Gi* z", num(p.gi_z, 2)], ["p", num(p.gi_p, 4)]];
    } else if (name === "moran") {
      extra = [[label("planner_layer_moran"), esc(label("legend_moran_" + p.moran_cluster, label("legend_not_significant")))],
        ["I", num(p.moran_i, 3)], ["p", num(p.moran_p, 3)]];
    } else if (name === "emerging") {
      extra = [[label("planner_category"), esc(label("emerging_" + p.category, p.category))],
        [label("planner_trend"), `${esc(label("trend_" + p.trend, p.trend))} (τ ${num(p.trend_tau, 2)}, p ${num(p.trend_p, 3)})`]];
    } else if (name === "compare") {
      const pct = p.change_pct == null ? (p.count > 0 ? label("planner_from_zero") : "—") : `${num(p.change_pct, 1)} %`;
      extra = [[label("planner_previous"), num(p.previous)],
        [label("planner_change"), `${p.change > 0 ? "+" : ""}${num(p.change)} (${esc(pct)})`],
        [label("planner_significant"), p.significant ? "✔" : "—"], ["p", num(p.p, 4)]];
    }
    return `<div class="planner-popup"><b>${esc(p.name || p.code)}</b> <span class="planner-note">${esc(p.code)}</span>` +
      `<table>${rows(base)}${rows(extra)}</table>` +
      `<div class="planner-chart-caption">${esc(label("planner_weekly"))}</div>` +
      `<div class="planner-chart" data-code="${esc(p.code)}">…</div></div>`;
  }
  async function chart(leafletPopup, code, level) {
    const box = leafletPopup.getElement() && leafletPopup.getElement().querySelector(".planner-chart");
    if (!box) return;
    const address = url("series", { region: code, level, period: "week" });
    try {
      if (!seriesCache.has(address)) seriesCache.set(address, await getJSON(address));
      box.innerHTML = svg(seriesCache.get(address));
    } catch (err) {
      box.textContent = label("planner_error");
    }
  }
  function svg(answer) {
    // Drawn by hand: a polyline needs no charting library on an isolated network. A week cut
    // by the period's ends (weeks run Monday to Sunday) is scaled to seven days and drawn
    // dashed, so that a period ending on a Monday does not look like a collapse.
    const series = answer.series || [];
    if (!series.length) return "—";
    const W = 240; const H = 90; const left = 30; const right = 6; const top = 8; const bottom = 18;
    const first = Date.parse(answer.from + "T00:00:00Z");
    const end = Date.parse(answer.to + "T00:00:00Z") + 864e5;
    const values = series.map((s) => {
      const start = Date.parse(s.start.slice(0, 10) + "T00:00:00Z");
      const days = (Math.min(end, start + 7 * 864e5) - Math.max(first, start)) / 864e5;
      return days >= 7 || days <= 0 ? { v: s.count, partial: false } : { v: (s.count * 7) / days, partial: true };
    });
    const max = Math.max(1, ...values.map((p) => p.v));
    const x = (i) => left + (series.length === 1 ? 0 : (i * (W - left - right)) / (series.length - 1));
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const xy = (i) => `${x(i).toFixed(1)},${y(values[i].v).toFixed(1)}`;
    const full = values.map((p, i) => i).filter((i) => !values[i].partial);
    const solid = full.map(xy).join(" ");
    let dashed = "";
    values.forEach((p, i) => {
      if (!p.partial) return;
      const next = i === 0 ? 1 : i - 1; // joined to its neighbour
      if (next >= 0 && next < values.length) {
        dashed += `<polyline points="${xy(next)} ${xy(i)}" fill="none" stroke="#3949ab" stroke-width="1.2" stroke-dasharray="3 2"/>` +
          `<circle cx="${x(i).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="2" fill="#fff" stroke="#3949ab"/>`;
      }
    });
    const base = y(0).toFixed(1);
    const area = full.length ? `<polygon points="${x(full[0]).toFixed(1)},${base} ${solid} ${x(full[full.length - 1]).toFixed(1)},${base}" fill="#c5cae9" fill-opacity="0.5"/>` : "";
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">` +
      `<line x1="${left}" y1="${base}" x2="${W - right}" y2="${base}" stroke="#b0bec5" stroke-width="1"/>` +
      `<line x1="${left}" y1="${top}" x2="${left}" y2="${base}" stroke="#b0bec5" stroke-width="1"/>` +
      area + (full.length > 1 ? `<polyline points="${solid}" fill="none" stroke="#3949ab" stroke-width="1.6"/>` : "") +
      dashed +
      `<text x="${left - 3}" y="${top + 4}" font-size="9" text-anchor="end" fill="#607d8b">${num(max)}</text>` +
      `<text x="${left - 3}" y="${base}" font-size="9" text-anchor="end" fill="#607d8b">0</text>` +
      `<text x="${left}" y="${H - 4}" font-size="9" fill="#607d8b">${esc(series[0].start.slice(0, 10))}</text>` +
      `<text x="${W - right}" y="${H - 4}" font-size="9" text-anchor="end" fill="#607d8b">${esc(series[series.length - 1].start.slice(0, 10))}</text>` +
      "</svg>";
  }

  // -- the summary and the legend -------------------------------------------------------------------
  function tally(features, key) {
    const out = {};
    features.forEach((f) => { const v = f.properties[key]; out[v] = (out[v] || 0) + 1; });
    return out;
  }
  function summary() {
    const box = byId("planner-summary");
    const h = data.hotspots;
    const reasons = [];
    let out = "";
    if (h) {
      out += `<div><span class="planner-total" id="planner-total">${num(h.total)}</span> ` +
        `${esc(label("planner_total"))} · ${esc(h.from)} – ${esc(h.to)}</div>`;
      out += `<div class="planner-note">${esc(label("planner_regions"))}: ${num(h.features.length)}</div>`;
      if (h.reason) reasons.push(h.reason);
      if (h.method === "gi" && h.features.length) {
        const bins = tally(h.features, "gi_bin");
        out += `<table id="planner-spots"><tr><th></th><th>99 %</th><th>95 %</th><th>90 %</th></tr>` +
          `<tr><th>${esc(label("planner_hot_spots"))}</th>${[3, 2, 1].map((b) => `<td data-bin="${b}">${num(bins[b] || 0)}</td>`).join("")}</tr>` +
          `<tr><th>${esc(label("planner_cold_spots"))}</th>${[-3, -2, -1].map((b) => `<td data-bin="${b}">${num(bins[b] || 0)}</td>`).join("")}</tr></table>`;
      } else if (h.method === "moran" && h.features.length) {
        const clusters = tally(h.features, "moran_cluster");
        out += `<table id="planner-spots">${MORAN_LEGEND.slice(0, 4).map(([c, key]) => (
          `<tr><th>${esc(label(key))}</th><td data-cluster="${c}">${num(clusters[c] || 0)}</td></tr>`)).join("")}</table>`;
      }
    }
    const e = data.emerging;
    if (analysis === "emerging" && e) {
      out += `<div class="planner-legend-title">${esc(label("planner_layer_emerging"))}</div>` +
        `<div class="planner-note">${esc(fill(label("planner_weeks_to"), { weeks: e.weeks, to: e.to }))}</div>`;
      if (e.reason) reasons.push(e.reason);
    }
    const c = data.compare;
    if (analysis === "compare" && c) {
      const rises = c.features.filter((f) => f.properties.significant && f.properties.change > 0).length;
      const falls = c.features.filter((f) => f.properties.significant && f.properties.change < 0).length;
      out += `<div class="planner-legend-title">${esc(label("planner_layer_compare"))}</div><table>` +
        rows([[`${label("planner_previous")} (${c.previous_from} – ${c.previous_to})`, num(c.previous_total)],
          [label("planner_rises"), num(rises)], [label("planner_falls"), num(falls)]]) + "</table>";
      if (c.reason) reasons.push(c.reason);
    }
    if (data.density && data.density.reason && wanted("density")) reasons.push(data.density.reason);
    box.innerHTML = out;
    const reasonBox = byId("planner-reason");
    const unique = [...new Set(reasons)];
    reasonBox.hidden = unique.length === 0;
    reasonBox.textContent = unique.join(" · ");
    const failed = Object.entries(errors).filter(([kind]) => wanted(kind));
    if (failed.length && periodOk()) {
      const errorBox = byId("planner-error");
      errorBox.hidden = false;
      errorBox.textContent = `${label("planner_error")}: ${failed.map(([k, m]) => `${k} ${m}`).join("; ")}`;
    }
  }
  function legend() {
    const box = byId("planner-legend");
    let out = "";
    const swatch = (colour, text, n, cls) => (
      `<div><i class="${cls || ""}" style="background:${colour}"></i>${esc(text)}` +
      `${n == null ? "" : ` <span class="planner-note">(${num(n)})</span>`}</div>`);
    if (analysis === "gi") {
      const bins = data.hotspots && data.hotspots.method === "gi" ? tally(data.hotspots.features, "gi_bin") : {};
      out += `<div class="planner-legend-title">${esc(label("planner_layer_gi"))}</div>`;
      GI_LEGEND.forEach(([bin, key]) => { out += swatch(GI_COLOURS[bin], label(key), bins[bin] || 0); });
      out += `<div class="planner-note">${esc(label("planner_fdr_note"))}</div>`;
    } else if (analysis === "moran") {
      const clusters = data.hotspots && data.hotspots.method === "moran" ? tally(data.hotspots.features, "moran_cluster") : {};
      out += `<div class="planner-legend-title">${esc(label("planner_layer_moran"))}</div>`;
      MORAN_LEGEND.forEach(([c, key]) => { out += swatch(MORAN_COLOURS[c], label(key), clusters[c] || 0); });
      out += `<div class="planner-note">${esc(label("planner_moran_note"))}</div>`;
    } else if (analysis === "emerging") {
      const categories = (data.emerging && data.emerging.categories) || {};
      out += `<div class="planner-legend-title">${esc(label("planner_layer_emerging"))}</div>`;
      Object.entries(EMERGING_COLOURS).forEach(([category, colour]) => {
        if (categories[category] || category === "no pattern") {
          out += `<div data-category="${esc(category)}"><i style="background:${colour}"></i>` +
            `${esc(label("emerging_" + category, category))} <span class="planner-note">(${num(categories[category] || 0)})</span></div>`;
        }
      });
    } else if (analysis === "compare") {
      out += `<div class="planner-legend-title">${esc(label("planner_layer_compare"))}</div>`;
      const signed = (v) => `${v > 0 ? "+" : ""}${v}`;
      CHANGE.bins.map((bin, i) => {
        const next = CHANGE.bins[i + 1];
        if (bin === -Infinity) return swatch(CHANGE.colours[i], `< ${next} %`);
        return swatch(CHANGE.colours[i], next === undefined ? `≥ +${bin} % / ${label("planner_from_zero")}`
          : `${signed(bin)} … ${signed(next)} %`);
      }).reverse().forEach((line) => { out += line; });
      out += swatch("#f2f2f2", label("planner_significant"), null, "outlined");
      out += `<div class="planner-note">${esc(label("planner_compare_note"))}</div>`;
    }
    if (map && map.hasLayer(window[cfg.heat.group])) {
      out += `<div class="planner-legend-title">${esc(label("planner_layer_density"))}</div>` +
        `<div class="planner-note">${esc(label("planner_density_note"))}</div>`;
    }
    box.innerHTML = out;
  }

  // -- the panel ----------------------------------------------------------------------------------
  function markPreset() {
    document.querySelectorAll(".planner-preset").forEach((button) => {
      const days = Number(button.dataset.days);
      button.classList.toggle("active", filters.to === cfg.today && filters.from === addDays(cfg.today, 1 - days));
    });
  }
  function setPeriod(from, to) {
    filters.from = from;
    filters.to = to;
    byId("planner-from").value = from;
    byId("planner-to").value = to;
    markPreset();
    refresh("period");
  }
  function showAnalysis(name) {
    const target = window[cfg.analyses[name]];
    if (map.hasLayer(target)) return;
    Object.values(cfg.analyses).forEach((v) => { if (map.hasLayer(window[v])) map.removeLayer(window[v]); });
    map.addLayer(target);
  }
  function wire() {
    byId("planner-class").addEventListener("change", (e) => { filters.class = e.target.value; refresh("class"); });
    byId("planner-level").addEventListener("change", (e) => { filters.level = e.target.value; refresh("level"); });
    byId("planner-measure").addEventListener("change", (e) => { filters.measure = e.target.value; refresh("measure"); });
    byId("planner-method").addEventListener("change", (e) => {
      filters.method = e.target.value;
      if (analysis === "gi" || analysis === "moran") showAnalysis(filters.method);
      refresh("method");
    });
    ["from", "to"].forEach((which) => {
      byId("planner-" + which).addEventListener("change", (e) => {
        if (!e.target.value) return; // half-typed
        setPeriod(which === "from" ? e.target.value : filters.from, which === "to" ? e.target.value : filters.to);
      });
    });
    document.querySelectorAll(".planner-preset").forEach((button) => {
      button.addEventListener("click", () => setPeriod(addDays(cfg.today, 1 - Number(button.dataset.days)), cfg.today));
    });
    map.on("overlayadd", (e) => {
      const name = Object.keys(cfg.analyses).find((k) => window[cfg.analyses[k]] === e.layer);
      if (name) {
        analysis = name;
        if ((name === "gi" || name === "moran") && filters.method !== name) {
          filters.method = name;
          byId("planner-method").value = name;
          stale.add("hotspots");
        }
        [...stale].forEach((kind) => { if (wanted(kind) && periodOk()) load(kind); });
      } else if (e.layer === window[cfg.heat.group] && stale.has("density") && periodOk()) {
        load("density");
      }
      outlinesOnTop();
      summary();
      legend();
    });
    map.on("overlayremove", () => legend());
    map.on("zoomend", namesByZoom);
  }
  function namesByZoom() {
    const z = map.getZoom();
    const box = map.getContainer();
    Object.entries(cfg.label_zoom).forEach(([level, from]) => {
      box.classList.toggle("hide-" + level + "-labels", z < from);
    });
  }

  function start(config) {
    cfg = config;
    api.config = config;
    labels = config.labels || {};
    map = window[config.map];
    Object.assign(filters, config.filters);
    L.control.zoom({ position: "bottomright" }).addTo(map); // the top left holds the panel
    // The density comes as a dense lattice of cells: without this floor every overlapping cell
    // would add 25 % opacity and the whole region would saturate.
    window[config.heat.layer].setOptions({ minOpacity: 0.05 });
    Object.entries(config.analyses).forEach(([name, variable]) => { if (map.hasLayer(window[variable])) analysis = name; });
    wire();
    namesByZoom();
    markPreset();
    legend();
    refresh("period");
  }

  // What an analysis layer draws now: [{code, fill, …the properties}] (for tests and debugging).
  function drawn(name) {
    const out = [];
    const group = window[cfg.analyses[name]];
    group.eachLayer((geo) => geo.eachLayer((layer) => {
      out.push(Object.assign({ fill: layer.options.fillColor }, layer.feature.properties));
    }));
    return out;
  }
  // Open a region's popup on the analysis shown (as a click would).
  function openRegion(code) {
    let found = null;
    window[cfg.analyses[analysis]].eachLayer((geo) => geo.eachLayer((layer) => {
      if (layer.feature.properties.code === code) found = layer;
    }));
    if (found) found.openPopup(found.getBounds().getCenter());
    return Boolean(found);
  }

  Object.assign(api, { start, drawn, openRegion, filters, data });
  window.gridmapPlanner = api;
})();
