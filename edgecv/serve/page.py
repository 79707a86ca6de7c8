"""The preview page: one card per source (live MJPEG + figures), refreshed from ``/api/status`` every second.

Plain HTML and a few lines of JavaScript, no external files (a robot's network may
have no internet). The page asks for ``/api/status``; the ``<img>`` of each source points
at its MJPEG stream, so the browser shows the newest JPEG as it arrives.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecv live</title>
<style>
 body{margin:0;background:#111;color:#ddd;font:14px/1.4 system-ui,sans-serif}
 header{padding:8px 14px;background:#1c1c1c;display:flex;gap:16px;align-items:baseline}
 header b{color:#fff;font-size:16px}
 #sources{display:flex;flex-wrap:wrap;gap:14px;padding:14px}
 .card{background:#1c1c1c;border-radius:6px;padding:10px;display:flex;gap:12px;flex-wrap:wrap}
 .card img{display:block;max-width:min(960px,92vw);max-height:70vh;background:#000;min-width:320px;min-height:240px}
 table{border-collapse:collapse;font-variant-numeric:tabular-nums}
 td,th{padding:1px 8px;text-align:right} td:first-child,th:first-child{text-align:left;color:#999}
 h2{margin:0 0 6px;font-size:15px;color:#fff} .warn{color:#ff6b6b;font-weight:bold} .ok{color:#7bd88f}
 .muted{color:#888}
</style></head>
<body>
<header><b>edgecv live</b><span id="summary" class="muted">connecting…</span></header>
<div id="sources"></div>
<script>
"use strict";
const q = new URLSearchParams(location.search);
const tok = q.get("token");
const withTok = (u) => tok ? u + (u.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(tok) : u;
const fmt = (v, d = 1) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d);
const STAGES = ["capture", "pre", "infer", "post", "sink", "total"];
const cards = {};

function card(s) {
  if (cards[s.id]) return cards[s.id];
  const el = document.createElement("div");
  el.className = "card"; el.id = "src-" + s.id;
  const rows = STAGES.map(st => `<tr><td>${st}</td><td id="${s.id}-${st}-p50"></td><td id="${s.id}-${st}-p99"></td></tr>`).join("");
  el.innerHTML = `<div><h2>${s.id} <span class="muted" id="${s.id}-source"></span></h2>
    <img id="${s.id}-img" alt="live view of ${s.id}"></div>
    <div><table>
     <tr><td>FPS</td><td colspan="2" id="${s.id}-fps"></td></tr>
     <tr><td>frames</td><td colspan="2" id="${s.id}-frames"></td></tr>
     <tr><td>drops</td><td colspan="2" id="${s.id}-dropped"></td></tr>
     <tr><td>bad frames</td><td colspan="2" id="${s.id}-bad"></td></tr>
     <tr><td>reconnects</td><td colspan="2" id="${s.id}-reconnects"></td></tr>
     <tr><td>frame age p50 / p99</td><td colspan="2" id="${s.id}-age"></td></tr>
     <tr><td>last frame</td><td colspan="2" id="${s.id}-last"></td></tr>
     <tr><th>stage ms</th><th>p50</th><th>p99</th></tr>${rows}
     <tr><td>model</td><td colspan="2" id="${s.id}-model"></td></tr>
     <tr><td>task / precision</td><td colspan="2" id="${s.id}-task"></td></tr>
     <tr><td>backend / input</td><td colspan="2" id="${s.id}-backend"></td></tr>
    </table></div>`;
  document.getElementById("sources").appendChild(el);
  el.querySelector("img").src = withTok("/stream/" + encodeURIComponent(s.id) + ".mjpg");
  return cards[s.id] = el;
}

function set(id, text, cls) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = text;
  el.className = cls || "";
}

function render(st) {
  for (const s of st.sources) {
    card(s);
    set(s.id + "-source", s.source + (s.live ? " (live)" : ""), "muted");
    set(s.id + "-fps", "FPS " + fmt(s.fps));
    set(s.id + "-frames", String(s.frames));
    set(s.id + "-dropped", String(s.dropped), s.dropped ? "warn" : "");
    set(s.id + "-bad", String(s.bad_frames), s.bad_frames ? "warn" : "");
    set(s.id + "-reconnects", String(s.reconnects) + (s.reconnecting ? " (reconnecting…)" : ""), s.reconnecting ? "warn" : "");
    set(s.id + "-age", s.age_ms.count ? fmt(s.age_ms.p50) + " / " + fmt(s.age_ms.p99) + " ms" : "–");
    const stale = s.last_frame_s_ago !== null && s.last_frame_s_ago > 2;
    set(s.id + "-last", s.last_frame_s_ago === null ? "none yet" : fmt(s.last_frame_s_ago, 1) + " s ago" + (s.stop_reason !== "running" ? " (" + s.stop_reason + ")" : ""), stale ? "warn" : "ok");
    for (const stg of STAGES) {
      const v = s.stages_ms[stg] || {};
      set(`${s.id}-${stg}-p50`, fmt(v.p50, 2));
      set(`${s.id}-${stg}-p99`, fmt(v.p99, 2));
    }
    set(s.id + "-model", s.model.name || "–");
    set(s.id + "-task", (s.model.task || "–") + " / " + (s.model.precision || "–"));
    set(s.id + "-backend", (s.model.backend || "–") + " / " + (s.model.input_size || "–"));
  }
  set("summary", st.sources.length + " source(s) · edgecv " + st.edgecv + " · up " + fmt(st.uptime_s, 0) + " s", "muted");
}

async function tick() {
  try {
    const r = await fetch(withTok("/api/status"), {cache: "no-store"});
    if (r.ok) render(await r.json());
    else set("summary", "status: HTTP " + r.status + (r.status === 401 ? " (open this page with ?token=…)" : ""), "warn");
  } catch (e) {
    set("summary", "edgecv is not answering (run stopped?)", "warn");
  }
  setTimeout(tick, 1000);
}
tick();
</script>
</body></html>
"""
