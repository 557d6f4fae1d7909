/* The command wall's behaviour: marker styles for the live layers, the grid choropleth, the
 * headline figures, the clock, names by zoom, and a ready flag (window.gridmapReady) set once
 * every layer has its first data — for people (the "updated" time) and for browser tests.
 * folium builds the map and the layers; gridmapWall.start() gets their JavaScript names. */
(function () {
  "use strict";

  const CASE_COLOURS = {
    reported: "#ffd54f", filed: "#ffb74d", dispatched: "#ff8a65", handling: "#4fc3f7",
    handled: "#81c784", verified: "#aed581", parked: "#90a4ae",
  };
  const GRADE_COLOURS = { red: "#ff1744", yellow: "#ffea00", blue: "#2979ff" };
  const ENDED = ["closed", "escalated", "cancelled"];
  // Bins (lower bounds) and colours for each grid metric; z uses the 90/95/99 % cut-offs.
  const SCALES = {
    reports_today: { bins: [1, 2, 3, 5, 8], colours: ["#3b1f5c", "#6a1b9a", "#ad1457", "#e53935", "#ff6f00"] },
    open_cases: { bins: [1, 3, 6, 11, 21], colours: ["#0d3b66", "#1565c0", "#7b1fa2", "#c2185b", "#ff5252"] },
    hotspot_z: {
      bins: [-Infinity, -2.58, -1.96, -1.65, 1.65, 1.96, 2.58],
      colours: ["#0d47a1", "#1976d2", "#64b5f6", null, "#ffab91", "#ff5722", "#d50000"],
    },
    anomaly_z: {
      bins: [-Infinity, -2.58, -1.96, -1.65, 1.65, 1.96, 2.58],
      colours: ["#0d47a1", "#1976d2", "#64b5f6", null, "#ffab91", "#ff5722", "#d50000"],
    },
  };

  // The hot-spot overlay: Gi* confidence bins (FDR-corrected), ArcGIS's colours; 0 is not drawn.
  const HOT_BINS = [
    [3, "#d62f27", "legend_hot_99"], [2, "#ed7551", "legend_hot_95"], [1, "#fab984", "legend_hot_90"],
    [-1, "#c0ccbe", "legend_cold_90"], [-2, "#849eba", "legend_cold_95"], [-3, "#4575b5", "legend_cold_99"],
  ];

  let cfg = null;
  let labels = {};
  let gridValues = {};
  let metric = "reports_today";
  const pending = new Set();

  function esc(value) {
    return String(value == null ? "" : value).replace(/[&<>"']/g, (c) => (
      { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function label(key, fallback) { return labels[key] || fallback || key; }
  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return d.toLocaleString(cfg.lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
  }

  function loaded(name) {
    pending.delete(name);
    if (pending.size === 0 && !window.gridmapReady) {
      window.gridmapReady = true;
      document.body.setAttribute("data-ready", "1");
    }
  }

  // -- cases -----------------------------------------------------------------------------------
  function caseMarker(feature, latlng) {
    const p = feature.properties;
    return L.circleMarker(latlng, {
      radius: 7, weight: p.overdue ? 3 : 1, color: p.overdue ? "#ff1744" : "#0b1320",
      fillColor: CASE_COLOURS[p.status] || "#eceff1", fillOpacity: 0.9,
    });
  }
  function casePopup(feature, layer) {
    const p = feature.properties;
    layer.bindPopup(
      `<div class="wall-popup"><b>${esc(label("wall_case"))} #${esc(p.id)}</b>` +
      `<table><tr><th>${esc(label("wall_class"))}</th><td>${esc(p.class_code)}</td></tr>` +
      `<tr><th>${esc(label("wall_status"))}</th><td>${esc(label("status_" + p.status, p.status))}` +
      `${p.overdue ? ` <span class="wall-bad">${esc(label("wall_overdue"))}</span>` : ""}</td></tr>` +
      `<tr><th>${esc(label("wall_reported"))}</th><td>${esc(when(p.reported_at))}</td></tr>` +
      `<tr><th>${esc(label("wall_due"))}</th><td>${esc(when(p.due_at))}</td></tr>` +
      `<tr><th>${esc(label("wall_grid"))}</th><td>${esc(p.grid_code)}</td></tr></table>` +
      `<a href="/api/v1/incidents/${encodeURIComponent(p.id)}" target="_blank">` +
      `${esc(label("wall_details"))}</a></div>`);
  }

  // Vector-tile cases: single cases from zoom 14, server-side clusters (count) below.
  function caseTileStyle(properties) {
    const n = properties.count || 1;
    const late = properties.count ? properties.overdue_count > 0 : properties.overdue;
    return {
      radius: Math.min(4 + 2.2 * Math.sqrt(n), 26), weight: late ? 2 : 1, fill: true,
      color: late ? "#ff1744" : "#0b1320", fillOpacity: 0.75,
      fillColor: properties.count ? "#ff7043" : CASE_COLOURS[properties.status] || "#b0bec5",
    };
  }

  // -- whistles ----------------------------------------------------------------------------------
  function whistleMarker(feature, latlng) {
    const p = feature.properties;
    const ended = ENDED.includes(p.status);
    const cls = ["wall-whistle", "grade-" + p.grade, p.overdue ? "wall-pulse" : "",
      ended ? "wall-ended" : ""].join(" ");
    return L.marker(latlng, {
      icon: L.divIcon({ className: "", html: `<div class="${cls}"></div>`, iconSize: [0, 0] }),
      keyboard: false,
    });
  }
  function whistleStyle(feature) {
    const p = feature.properties;
    return {
      color: p.far ? "#ff1744" : GRADE_COLOURS[p.grade] || "#eceff1", weight: 3,
      dashArray: p.late ? "6 6" : null, opacity: 0.9,
    };
  }
  function whistlePopup(feature, layer) {
    const p = feature.properties;
    if (p.kind === "check_in") {
      layer.bindTooltip(
        `${esc(label("wall_checkin"))}: ${esc(p.name)} · ${esc(label("wall_distance"))} ` +
        `${esc(p.distance_m)} m${p.far ? " · " + esc(label("wall_far")) : ""}` +
        `${p.late ? " · " + esc(label("wall_late")) : ""}`);
      return;
    }
    layer.bindPopup(
      `<div class="wall-popup"><b>${esc(label("wall_whistle"))} #${esc(p.whistle_id)}</b> ` +
      `<span class="wall-grade grade-${esc(p.grade)}">${esc(label("grade_" + p.grade, p.grade))}` +
      `</span><div>${esc(p.title)}</div><table>` +
      `<tr><th>${esc(label("wall_status"))}</th><td>${esc(label("status_" + p.status, p.status))}` +
      `${p.overdue ? ` <span class="wall-bad">${esc(label("wall_overdue"))}</span>` : ""}</td></tr>` +
      `<tr><th>${esc(label("wall_blown"))}</th><td>${esc(when(p.blown_at))}</td></tr></table>` +
      `<a href="/api/v1/whistles/${encodeURIComponent(p.whistle_id)}" target="_blank">` +
      `${esc(label("wall_details"))}</a></div>`);
  }

  // -- gridworkers -------------------------------------------------------------------------------
  function workerMarker(feature, latlng) {
    return L.circleMarker(latlng, {
      radius: 5, weight: 1.5, color: "#0b1320", fillColor: "#69f0ae", fillOpacity: 1,
    });
  }
  function workerTooltip(feature, layer) {
    const p = feature.properties;
    layer.bindTooltip(
      `${esc(label("wall_worker"))} ${esc(p.name || p.worker)} · ${esc(p.grid_code || "")} · ` +
      `${esc(Math.round(p.age_s))} ${esc(label("wall_seconds_ago"))}`);
  }

  // -- the grid choropleth -----------------------------------------------------------------------
  function colourFor(value, scale) {
    if (value == null) return null;
    let colour = null;
    scale.bins.forEach((bin, i) => { if (value >= bin) colour = scale.colours[i]; });
    return colour;
  }
  function gridStyle(feature) {
    const base = { color: "#cfd8dc", weight: 1, fillColor: "#90a4ae", fillOpacity: 0.06 };
    if (metric === "none") return base;
    const values = gridValues[feature.properties.code] || {};
    const fill = colourFor(values[metric] ?? (metric.endsWith("_z") ? null : 0), SCALES[metric]);
    return fill ? Object.assign(base, { fillColor: fill, fillOpacity: 0.6 }) : base;
  }
  function restyle() {
    const grid = cfg.grid_layer && window[cfg.grid_layer];
    if (grid) {
      grid.options.style = gridStyle; // resetStyle (on mouse-out) keeps the choropleth
      grid.setStyle(gridStyle);
    }
    legend();
  }
  function legend() {
    const box = document.getElementById("wall-legend");
    if (!box) return;
    let out = "";
    if (metric !== "none") {
      const scale = SCALES[metric];
      out += `<div class="wall-legend-title">${esc(label("metric_" + metric))}</div>`;
      scale.bins.forEach((bin, i) => {
        if (!scale.colours[i]) return;
        const next = scale.bins[i + 1];
        const diverging = metric === "anomaly_z" || metric === "hotspot_z";
        const text = diverging
          ? (bin === -Infinity ? `< ${next}` : next === undefined || next > 2.58 ? `≥ ${bin}` : `${bin} … ${next}`)
          : (next === undefined ? `≥ ${bin}` : next - 1 === bin ? `${bin}` : `${bin}–${next - 1}`);
        out += `<div><i style="background:${scale.colours[i]}"></i>${esc(text)}</div>`;
      });
      if (metric === "anomaly_z") out += `<div class="wall-note">${esc(label("legend_anomaly"))}</div>`;
      if (metric === "hotspot_z") out += `<div class="wall-note">${esc(label("legend_hotspot"))}</div>`;
    }
    if (hotspotsShown()) {
      out += `<div class="wall-legend-title">${esc(label("legend_hotspots_7d"))}</div>`;
      HOT_BINS.forEach(([, colour, key]) => { out += `<div><i style="background:${colour}"></i>${esc(label(key))}</div>`; });
    }
    out += `<div class="wall-legend-title">${esc(label("legend_cases"))}</div>`;
    Object.entries(CASE_COLOURS).forEach(([status, colour]) => {
      out += `<div><i class="dot" style="background:${colour}"></i>${esc(label("status_" + status, status))}</div>`;
    });
    out += `<div class="wall-legend-title">${esc(label("legend_whistles"))}</div>`;
    Object.entries(GRADE_COLOURS).forEach(([grade, colour]) => {
      out += `<div><i class="dot" style="background:${colour}"></i>${esc(label("grade_" + grade, grade))}</div>`;
    });
    out += `<div class="wall-note">${esc(label("legend_pulse"))}</div>`;
    box.innerHTML = out;
  }

  // -- data the page polls -----------------------------------------------------------------------
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }
  function percent(value) { return value == null ? "—" : `${(value * 100).toFixed(1)}%`; }
  async function refreshFigures() {
    try {
      const f = await getJSON(cfg.urls.figures);
      Object.entries(f).forEach(([key, value]) => {
        const cell = document.getElementById("fig-" + key);
        if (!cell) return;
        cell.textContent = key.endsWith("_rate") ? percent(value) : Number(value).toLocaleString();
        cell.classList.toggle("wall-bad", key.endsWith("overdue") || key.startsWith("overdue") ? value > 0 : false);
      });
      document.getElementById("wall-updated").textContent = `${label("wall_updated")} ${when(f.at)}`;
    } catch (err) {
      document.getElementById("wall-updated").textContent = label("wall_offline");
    } finally {
      loaded("figures");
    }
  }
  async function refreshGrids() {
    try {
      gridValues = await getJSON(cfg.urls.grid_values);
      restyle();
    } catch (err) {
      /* keep the last colours */
    } finally {
      loaded("grids");
    }
  }

  // -- the hot-spot overlay: the last 7 Beijing days at grid level, fetched while shown ----------
  function hotspotsShown() {
    const group = cfg && window[cfg.hotspots];
    return Boolean(group && group._map);
  }
  function beijingDay(offsetDays) {
    const day = new Date(Date.now() + offsetDays * 864e5);
    return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(day); // YYYY-MM-DD
  }
  async function refreshHotspots() {
    if (!hotspotsShown()) return;
    const url = `${cfg.urls.hotspots}&from=${beijingDay(1 - cfg.hotspot_days)}&to=${beijingDay(0)}`;
    try {
      const answer = await getJSON(url);
      const group = window[cfg.hotspots];
      const colours = Object.fromEntries(HOT_BINS.map(([bin, colour]) => [bin, colour]));
      group.clearLayers();
      group.addLayer(L.geoJSON(answer.features.filter((f) => f.properties.gi_bin), {
        interactive: false,
        style: (f) => ({ color: colours[f.properties.gi_bin], weight: 1.5, fillColor: colours[f.properties.gi_bin], fillOpacity: 0.55 }),
      }));
    } catch (err) {
      /* keep the last spots */
    }
  }
  // The grids the overlay draws, by bin ({"3": n, …}).
  function hotspotBins() {
    const out = {};
    const group = cfg && window[cfg.hotspots];
    if (group) group.eachLayer((geo) => geo.eachLayer((l) => { const b = l.feature.properties.gi_bin; out[b] = (out[b] || 0) + 1; }));
    return out;
  }

  function clock() {
    const now = new Date();
    document.getElementById("wall-clock").textContent = now.toLocaleString(
      cfg.lang === "en" ? "en-GB" : "zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });
  }
  function namesByZoom(map) {
    const z = map.getZoom();
    const box = map.getContainer();
    Object.entries(cfg.label_zoom).forEach(([level, from]) => {
      box.classList.toggle("hide-" + level + "-labels", z < from);
    });
  }

  function start(config) {
    cfg = config;
    window.gridmapWall.config = config;
    labels = config.labels || {};
    const map = window[config.map];
    L.control.zoom({ position: "bottomright" }).addTo(map); // the top left holds the figures
    Object.keys(config.realtime).forEach((k) => pending.add(k));
    ["figures", "grids"].forEach((k) => pending.add(k));
    Object.entries(config.realtime).forEach(([name, variable]) => {
      const layer = window[variable];
      if (!layer) { loaded(name); return; }
      layer.once("update", () => loaded(name));
      layer.on("error", () => loaded(name));
    });
    Object.entries(config.tiles || {}).forEach(([name, variable]) => {
      const layer = window[variable];
      if (!layer || !map.hasLayer(layer)) return; // hidden at start: nothing to wait for
      pending.add(name);
      layer.once("load", () => loaded(name));
    });
    // The choropleth switches are empty layers in a radio group: the chosen one names the metric.
    Object.entries(config.switches).forEach(([variable, name]) => {
      if (map.hasLayer(window[variable])) metric = name;
    });
    map.on("overlayadd", (e) => {
      const name = config.switches[Object.keys(config.switches).find((v) => window[v] === e.layer)];
      if (name) { metric = name; restyle(); }
      if (e.layer === window[config.hotspots]) { refreshHotspots(); legend(); }
    });
    map.on("overlayremove", (e) => { if (e.layer === window[config.hotspots]) legend(); });
    map.on("zoomend", () => namesByZoom(map));
    namesByZoom(map);
    restyle();
    clock();
    setInterval(clock, 1000);
    refreshFigures();
    refreshGrids();
    setInterval(refreshFigures, config.figures_ms);
    setInterval(refreshGrids, config.figures_ms * 2);
    setInterval(refreshHotspots, config.figures_ms * 2);
  }

  // How many features a live layer holds (leaflet-realtime keeps them by id).
  function featureCount(name) {
    const layer = cfg && window[cfg.realtime[name]];
    return layer ? Object.keys(layer._features || {}).length : 0;
  }

  window.gridmapWall = {
    start, featureCount, hotspotBins, caseTileStyle, caseMarker, casePopup, whistleMarker, whistleStyle, whistlePopup, workerMarker,
    workerTooltip,
  };
})();
