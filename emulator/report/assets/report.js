// sipemu report: draws the ladder, the timeline and the statistics from the data embedded in
// this file (emulator/report/html.py writes it). Vanilla JS, no build step, no request of any
// kind: the page's Content-Security-Policy forbids them.
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const KIND = { REQUEST: 0, RESPONSE: 1, PING: 2, DNS_QUERY: 3, DNS_ANSWER: 4, MALFORMED: 5 };
  const $ = (id) => document.getElementById(id);

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function html(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(t) {
    return t.toFixed(3);
  }

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  async function loadData() {
    const node = $("sipemu-data");
    const raw = node.textContent;
    if (node.dataset.encoding === "json") return JSON.parse(raw);
    const binary = atob(raw.trim());
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  // -- state shared by the views --------------------------------------------------------------

  let D = null; // the data
  const state = {
    clientFilter: "",
    callid: "",
    tx: -1,
    showSip: true,
    showDns: true,
    showPing: true,
    pageSize: 200,
    page: 0,
    selected: -1,
  };
  let visible = []; // indexes of the messages the ladder's filters let through

  function clientMatches() {
    // Participant indexes of the clients the filter box names (null: no filter).
    const text = state.clientFilter.trim().toLowerCase();
    if (!text) return null;
    const found = new Set();
    D.participants.forEach((p, i) => {
      if (p[1] === "client" && p[0].toLowerCase().includes(text)) found.add(i);
    });
    return found;
  }

  // -- header ---------------------------------------------------------------------------------

  function renderHeader() {
    const m = D.meta;
    $("title").textContent = "sipemu report: " + m.title;
    const clock = m.virtual ? "virtual time (simulated)" : "real time on loopback";
    const verdict = m.failed
      ? `${m.passed} expectation(s) passed, ${m.failed} FAILED`
      : `${m.passed} expectation(s) passed`;
    $("subtitle").textContent =
      `${m.description ? m.description + " \u2014 " : ""}seed ${m.seed}, ${m.duration} s of ${clock}, ` +
      `${D.timeline.clients.length} client(s), ${D.messages.t.length} message(s); ${verdict}`;
    if (m.note) {
      $("note").textContent = m.note;
      $("note").hidden = false;
    }
  }

  // -- timeline -------------------------------------------------------------------------------

  const ROW = 16;
  const GAP = 4;
  const LABEL_W = 230;

  function timelineWidth() {
    return Math.max(900, $("timeline-body").clientWidth || 1200);
  }

  function renderLegend() {
    const box = $("timeline-legend");
    box.textContent = "";
    const items = [
      ["--signed-out", "signed out"], ["--signing-in", "signing in"],
      ["--full", "registered, full"], ["--limited", "registered, limited"],
      ["--silent", "host silent"], ["--stopped", "pool stopped"],
      ["--hb-lost", "heartbeats lost"], ["--failed-over", "failed over"],
      ["--peer-back", "peer answering again"], ["--failing-back", "failing back"],
      ["--step", "step"], ["--fault", "fault"], ["--admin", "admin"], ["--dns", "DNS change"],
      ["--pass", "expectation met"], ["--fail", "expectation failed / violation"],
    ];
    for (const [color, text] of items) {
      const span = html("span");
      const swatch = html("i");
      swatch.style.background = `var(${color})`;
      span.append(swatch, text);
      box.append(span);
    }
  }

  function renderTimeline() {
    const T = D.timeline;
    const width = timelineWidth();
    const end = T.end > 0 ? T.end : 1;
    const x = (t) => LABEL_W + (Math.min(Math.max(t, 0), end) / end) * (width - LABEL_W - 12);
    const root = svg("svg", { id: "timeline-svg", width: width, xmlns: SVGNS });
    const guides = svg("g", { class: "guides" });
    root.append(guides);
    let y = 4;

    function rowLabel(text, cls) {
      const label = svg("text", { x: 4, y: y + ROW - 4, class: "row-label " + (cls || "") }, text);
      if (text.length > 36) {
        label.textContent = text.slice(0, 35) + "\u2026";
        label.append(svg("title", {}, text));
      }
      root.append(label);
    }

    function segments(flat, stride, cls, group, tip) {
      // flat: [t, code, ...] with `stride` numbers per change; the first segment starts at 0.
      const changes = [[0, 0, -1, -1]];
      for (let i = 0; i < flat.length; i += stride) {
        changes.push(flat.slice(i, i + stride));
      }
      for (let i = 0; i < changes.length; i++) {
        const from = changes[i][0];
        const to = i + 1 < changes.length ? changes[i + 1][0] : end;
        if (to < from || (to === from && i + 1 < changes.length)) continue;
        const x0 = x(from);
        const w = Math.max(1, x(to) - x0);
        const rect = svg("rect", { x: x0, y: y, width: w, height: ROW, class: cls + changes[i][1] });
        rect.dataset.t = from;
        const text = tip(changes[i], from, to);
        rect.append(svg("title", {}, text));
        group.append(rect);
        const place = changes[i][2];
        if (stride === 4 && place >= 0 && w > 70) {
          group.append(svg("text", { x: x0 + 3, y: y + ROW - 4, class: "seg-text" }, T.places[place]));
        }
      }
    }

    // Axis.
    const axis = svg("g", { class: "axis" });
    const step = niceStep(end / 10);
    for (let t = 0; t <= end + 1e-9; t += step) {
      axis.append(svg("line", { x1: x(t), x2: x(t), y1: y + 14, y2: y + 18 }));
      const anchor = x(t) > width - 40 ? "end" : "middle";
      axis.append(svg("text", { x: x(t), y: y + 11, "text-anchor": anchor, class: "label" }, fmtTime(t)));
    }
    root.append(axis);
    y += 22;

    // Steps, faults, admin and DNS changes.
    rowLabel("steps, faults, changes");
    const evGroup = svg("g", { class: "events" });
    // One mark per kind and pixel: 10,000 sign-ins at one moment are one mark, not 10,000.
    const marks = new Map();
    for (const [t, kind, source, text] of T.events) {
      const key = kind + "@" + Math.round(x(t));
      let mark = marks.get(key);
      if (!mark) marks.set(key, (mark = { t: t, kind: kind, lines: [], count: 0 }));
      if (mark.count < 12) mark.lines.push(`${seconds(t)} ${kind} ${source}: ${text}`);
      mark.count++;
    }
    for (const mark of marks.values()) {
      const rect = svg("rect", { x: x(mark.t) - 3, y: y + 2, width: 6, height: ROW - 4, class: "event ev-" + mark.kind });
      rect.dataset.count = mark.count;
      const more = mark.count > mark.lines.length ? `\n... and ${mark.count - mark.lines.length} more` : "";
      rect.append(svg("title", {}, mark.lines.join("\n") + more));
      evGroup.append(rect);
      guides.append(svg("line", { class: "guide ev-" + mark.kind, x1: x(mark.t), x2: x(mark.t), y1: 22, y2: 0 }));
    }
    root.append(evGroup);
    y += ROW + GAP;

    // Expectations: a row each (or one for all when there are many).
    const many = T.expectations.length > 40;
    if (many) rowLabel(`${T.expectations.length} expectations`);
    for (const e of T.expectations) {
      if (!many) rowLabel((e.passed ? "\u2713 " : "\u2717 ") + e.text, e.passed ? "pass" : "fail");
      const cls = e.passed ? "pass" : "fail";
      const g = svg("g", { class: "expectation " + cls });
      const tip = `${e.passed ? "PASS" : "FAIL"} ${e.text}${e.line ? " (line " + e.line + ")" : ""}: ${e.detail}`;
      if (e.end > e.start) {
        const span = svg("rect", { x: x(e.start), y: y + 3, width: Math.max(1, x(e.end) - x(e.start)), height: ROW - 6, class: "expect-span " + cls });
        span.append(svg("title", {}, tip));
        g.append(span);
      } else {
        const cx = x(e.start);
        const mid = y + ROW / 2;
        const diamond = svg("path", { d: `M${cx} ${mid - 6}L${cx + 6} ${mid}L${cx} ${mid + 6}L${cx - 6} ${mid}Z`, class: "expect " + cls });
        diamond.append(svg("title", {}, tip));
        g.append(diamond);
      }
      root.append(g);
      if (!many) y += ROW + GAP;
    }
    if (many) y += ROW + GAP;

    // Invariant violations.
    if (T.violations.length) {
      rowLabel(`${T.violations.length} invariant violation(s)`, "fail");
      for (const v of T.violations) {
        const cx = x(v.t);
        const mark = svg("circle", { cx: cx, cy: y + ROW / 2, r: 5, class: "violation" });
        mark.append(svg("title", {}, `${seconds(v.t)} ${v.invariant}: ${v.subject}: ${v.detail}`));
        root.append(mark);
        guides.append(svg("line", { class: "guide", x1: cx, x2: cx, y1: 22, y2: 0, stroke: "var(--fail)" }));
      }
      y += ROW + GAP;
    }

    // Pools (and the fake DNS): the host, then the peers it watches.
    for (const pool of T.pools) {
      const g = svg("g", { class: "pool", "data-pool": pool.name });
      rowLabel(pool.name);
      segments(pool.host, 2, "host-", g, (c, from, to) =>
        `${pool.name}: ${T.host_states[c[1]]} from ${seconds(from)} to ${seconds(to)}`);
      y += ROW + GAP;
      for (const peer in pool.peers) {
        rowLabel(`  ${shortName(pool.name)} watching ${shortName(peer)}`);
        segments(pool.peers[peer], 2, "peer-", g, (c, from, to) =>
          `${pool.name} about ${peer}: ${T.peer_states[c[1]]} from ${seconds(from)} to ${seconds(to)}`);
        y += ROW + GAP;
      }
      root.append(g);
    }

    // Counts of clients per state.
    const clients = T.clients.length;
    if (clients >= D.meta.aggregate_from) {
      y += 4;
      const height = 120;
      rowLabel(`clients by state (${clients})`);
      const agg = drawAggregate(T.aggregate, x, y, height, clients);
      root.append(agg);
      y += height + GAP + 6;
    }

    // A band per client: every client, or those the filter names (at most band_limit).
    const filter = state.clientFilter.trim().toLowerCase();
    const limit = D.meta.band_limit;
    const chosen = [];
    let matched = 0;
    for (let i = 0; i < clients; i++) {
      if (filter ? !T.clients[i].toLowerCase().includes(filter) : clients > limit) continue;
      matched++;
      if (chosen.length < limit) chosen.push(i);
    }
    const bands = svg("g", { class: "bands" });
    for (const i of chosen) {
      const name = T.clients[i];
      const g = svg("g", { class: "band", "data-client": name });
      rowLabel(name);
      segments(T.bands[i], 4, "seg-", g, (c, from, to) => {
        const where = c[2] >= 0 ? " at " + T.places[c[2]] : "";
        const cause = c[3] >= 0 ? " \u2014 " + T.causes[c[3]] : "";
        return `${name}: ${T.client_states[c[1]]}${where} from ${seconds(from)} to ${seconds(to)}${cause}`;
      });
      bands.append(g);
      y += ROW + 2;
    }
    root.append(bands);
    bands.addEventListener("click", (event) => {
      const rect = event.target.closest("rect");
      const band = event.target.closest("g.band");
      if (!rect || !band) return;
      const filter = $("client-filter");
      filter.value = band.dataset.client;
      state.clientFilter = filter.value;
      refilter();
      gotoTime(Number(rect.dataset.t));
      $("ladder").scrollIntoView();
    });

    const total = y + 6;
    root.setAttribute("height", total);
    for (const line of guides.children) line.setAttribute("y2", total);
    const body = $("timeline-body");
    body.textContent = "";
    body.append(root);

    let info = "";
    if (!filter && clients > limit) {
      info = `${clients} clients: the chart above counts them per state; type part of a name in the filter box for the bands of up to ${limit} of them.`;
    } else if (filter) {
      info = `${matched} client(s) match the filter` + (matched > limit ? `; the first ${limit} are shown.` : ".");
    }
    info += " Click a band to see that client's messages in the ladder from that moment.";
    $("timeline-info").textContent = info;
    $("client-count").textContent = filter ? `${matched} of ${clients} client(s)` : `${clients} client(s)`;
  }

  function shortName(fqdn) {
    return fqdn.split(".")[0];
  }

  function drawAggregate(agg, x, top, height, total) {
    const g = svg("g", { class: "aggregate", "data-series": agg.series.length });
    const n = agg.times.length;
    const base = new Array(n).fill(0);
    let drawn = 0;
    const y = (count) => top + height - (count / Math.max(1, total)) * height;
    agg.series.forEach((name, s) => {
      const values = agg.values[s];
      if (!values.some((v) => v > 0)) return;
      const upper = [];
      const lower = [];
      for (let i = 0; i < n; i++) {
        upper.push(`${x(agg.times[i]).toFixed(1)},${y(base[i] + values[i]).toFixed(1)}`);
        lower.push(`${x(agg.times[i]).toFixed(1)},${y(base[i]).toFixed(1)}`);
      }
      for (let i = 0; i < n; i++) base[i] += values[i];
      const fill = seriesColor(name, s);
      const area = svg("polygon", { points: upper.concat(lower.reverse()).join(" "), class: "area", fill: fill });
      const peak = Math.max(...values);
      area.append(svg("title", {}, `${name}: up to ${peak} client(s)`));
      g.append(area);
      // Its key, under the row's label (the label column has room for eight).
      if (drawn < 8) {
        const ky = top + 28 + drawn * 12;
        g.append(svg("rect", { x: 10, y: ky - 9, width: 10, height: 10, fill: fill, class: "key" }));
        g.append(svg("text", { x: 24, y: ky, class: "label" }, name.replace("@", " at ")));
      }
      drawn++;
    });
    g.append(svg("line", { x1: x(0), x2: x(agg.times[n - 1] || 0), y1: top + height, y2: top + height, class: "guide" }));
    g.append(svg("text", { x: x(0) - 4, y: top + 8, "text-anchor": "end", class: "label" }, String(total)));
    return g;
  }

  const poolShades = new Map();
  function seriesColor(name, index) {
    if (name === "signed-out") return "var(--signed-out)";
    if (name === "signing-in") return "var(--signing-in)";
    const [mode, pool] = name.split("@");
    if (!poolShades.has(pool)) poolShades.set(pool, poolShades.size);
    const shade = poolShades.get(pool);
    const light = [38, 52, 30, 60, 45][shade % 5];
    return mode === "full" ? `hsl(128, 42%, ${light}%)` : `hsl(30, 88%, ${light + 8}%)`;
  }

  function niceStep(raw) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];
    for (const s of steps) if (s >= raw) return s;
    return Math.ceil(raw / 3600) * 3600;
  }

  function fmtTime(t) {
    if (t < 60 || t % 60) return `${+t.toFixed(1)} s`;
    return t % 3600 ? `${t / 60} min` : `${t / 3600} h`;
  }

  // -- ladder ---------------------------------------------------------------------------------

  const COL_W = 140;
  const MAX_CLIENT_COLUMNS = 6;
  const LEFT = 78;
  const ROW_H = 24;

  function refilter() {
    const M = D.messages;
    const n = M.t.length;
    const clients = clientMatches();
    const text = state.callid.trim();
    let calls = null;
    if (text) {
      calls = new Set();
      D.callids.forEach((c, i) => {
        if (c.includes(text)) calls.add(i);
      });
    }
    const out = [];
    for (let i = 0; i < n; i++) {
      const k = M.k[i];
      if (k === KIND.PING ? !state.showPing : k === KIND.DNS_QUERY || k === KIND.DNS_ANSWER ? !state.showDns : !state.showSip) continue;
      if (clients !== null && !clients.has(M.s[i]) && !clients.has(M.d[i])) continue;
      if (calls !== null && !calls.has(M.c[i])) continue;
      if (state.tx >= 0 && M.x[i] !== state.tx) continue;
      out.push(i);
    }
    visible = out;
    const pages = Math.max(1, Math.ceil(visible.length / state.pageSize));
    if (state.page >= pages) state.page = pages - 1;
    renderLadder();
  }

  function gotoTime(t) {
    const M = D.messages;
    let lo = 0;
    let hi = visible.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (M.t[visible[mid]] < t) lo = mid + 1;
      else hi = mid;
    }
    state.page = Math.floor(Math.min(lo, Math.max(0, visible.length - 1)) / state.pageSize);
    renderLadder();
    const row = lo - state.page * state.pageSize;
    $("ladder-scroll").scrollTop = Math.max(0, row * ROW_H - ROW_H);
  }

  function renderLadder() {
    const M = D.messages;
    const P = D.participants;
    const head = $("ladder-head");
    const root = $("ladder-svg");
    root.textContent = "";
    head.textContent = "";
    const pages = Math.max(1, Math.ceil(visible.length / state.pageSize));
    const first = state.page * state.pageSize;
    const rows = visible.slice(first, first + state.pageSize);
    $("page-info").textContent = visible.length
      ? `${first + 1}\u2013${first + rows.length} of ${visible.length} (page ${state.page + 1} of ${pages})`
      : "no message";
    $("page-first").disabled = $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = $("page-last").disabled = state.page >= pages - 1;
    if (!D.meta.packets_recorded && M.t.length === 0) {
      root.setAttribute("width", 600);
      root.setAttribute("height", 40);
      root.append(svg("text", { x: 10, y: 24 }, "This run recorded no packets (see the note above)."));
      return;
    }

    // Columns: every host that is not a client and took part in the run, and the clients
    // of this page (all of them when there are few).
    const used = usedParticipants();
    const onPage = new Set();
    for (const i of rows) {
      onPage.add(M.s[i]);
      onPage.add(M.d[i]);
    }
    // Clients: a column each while few; else one "clients" column, the arrows naming theirs.
    const fewClients = used.clients.length <= MAX_CLIENT_COLUMNS;
    let pageClients = 0;
    for (const p of onPage) if (P[p][1] === "client") pageClients++;
    const merged = !fewClients && pageClients > MAX_CLIENT_COLUMNS;
    const cols = [];
    if (merged) cols.push(-1);
    for (let p = 0; p < P.length; p++) {
      const isClient = P[p][1] === "client";
      if (isClient ? !merged && (fewClients ? used.all.has(p) : onPage.has(p)) : used.all.has(p) || onPage.has(p)) cols.push(p);
    }
    const colX = new Map();
    cols.forEach((p, i) => colX.set(p, LEFT + COL_W / 2 + i * COL_W));
    if (merged) {
      for (const p of onPage) if (P[p][1] === "client") colX.set(p, colX.get(-1));
    }
    const width = LEFT + cols.length * COL_W + 10;
    const height = rows.length * ROW_H + 12;
    head.style.width = width + "px";
    for (const p of cols) {
      const label = p < 0
        ? html("div", { title: "the clients of this page; filter by client name for a column each" }, "clients")
        : html("div", { title: `${P[p][0]} (${P[p][1]}, ${P[p][2]})` }, P[p][0]);
      label.style.left = colX.get(p) + "px";
      const note = p < 0 ? `${pageClients} on this page` : P[p][1] === "other" ? "" : `${P[p][1]} ${P[p][2]}`;
      label.append(html("small", {}, note));
      head.append(label);
    }
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    const defs = svg("defs");
    const marker = svg("marker", { id: "head", viewBox: "0 0 10 10", refX: 9, refY: 5, markerUnits: "userSpaceOnUse", markerWidth: 9, markerHeight: 9, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M0,0L10,5L0,10z", fill: "context-stroke" }));
    defs.append(marker);
    root.append(defs);
    for (const p of cols) {
      root.append(svg("line", { class: "lifeline", x1: colX.get(p), x2: colX.get(p), y1: 0, y2: height }));
    }
    const selectedCall = state.selected >= 0 ? M.c[state.selected] : -1;
    rows.forEach((i, r) => {
      const y = 16 + r * ROW_H;
      const x1 = colX.get(M.s[i]);
      const x2 = colX.get(M.d[i]);
      const k = M.k[i];
      let cls = "arrow";
      if (k === KIND.RESPONSE) cls += " resp resp-" + Math.floor(M.code[i] / 100);
      else if (k === KIND.REQUEST) cls += " req";
      else if (k === KIND.PING) cls += " ping";
      else if (k === KIND.MALFORMED) cls += " malformed";
      else cls += " dns";
      if (M.r[i]) cls += " retrans";
      if (i === state.selected) cls += " selected";
      else if (selectedCall >= 0 && M.c[i] === selectedCall) cls += " same-call";
      const g = svg("g", { class: cls, "data-i": i });
      g.append(svg("rect", { class: "row-hit", x: 0, y: y - 8, width: width, height: ROW_H, fill: "transparent" }));
      let full = D.labels[M.l[i]] + (M.r[i] ? " (again)" : "");
      if (merged) {
        const client = P[M.s[i]][1] === "client" ? M.s[i] : P[M.d[i]][1] === "client" ? M.d[i] : -1;
        if (client >= 0) full = P[client][0] + ": " + full;
      }
      const room = Math.max(8, Math.floor((x1 === x2 ? COL_W - 40 : Math.abs(x2 - x1) - 10) / 6.2));
      const label = full.length > room ? full.slice(0, room - 1) + "\u2026" : full;
      if (x1 === x2) {
        g.append(svg("path", { d: `M${x1} ${y}h30v10h-30`, "marker-end": "url(#head)" }));
        g.append(svg("text", { x: x1 + 34, y: y + 8 }, label));
      } else {
        g.append(svg("line", { x1: x1, x2: x2, y1: y + 6, y2: y + 6, "marker-end": "url(#head)" }));
        g.append(svg("text", { x: (x1 + x2) / 2, y: y + 2, "text-anchor": "middle" }, label));
      }
      g.append(svg("text", { x: 4, y: y + 9, class: "time" }, seconds(M.t[i])));
      if (label !== full) g.append(svg("title", {}, full));
      root.append(g);
    });
  }

  let usedCache = null;
  function usedParticipants() {
    if (usedCache) return usedCache;
    const M = D.messages;
    const all = new Set();
    for (let i = 0; i < M.t.length; i++) {
      all.add(M.s[i]);
      all.add(M.d[i]);
    }
    const clients = [...all].filter((p) => D.participants[p][1] === "client");
    usedCache = { all: all, clients: clients };
    return usedCache;
  }

  function transactionName(i) {
    // What the transaction key holds besides the Call-ID (packets.py): from the text.
    const text = D.texts[D.messages.m[i]];
    const k = D.messages.k[i];
    if (k === KIND.DNS_QUERY || k === KIND.DNS_ANSWER) {
      const id = /^id (\d+)/.exec(text);
      return "DNS id " + (id ? id[1] : "?") + " with " + D.participants[k === KIND.DNS_QUERY ? D.messages.s[i] : D.messages.d[i]][0];
    }
    const cseq = /^CSeq[ \t]*:[ \t]*(.*?)\r?$/im.exec(text);
    const via = /^(?:Via|v)[ \t]*:[^\r\n,]*;[ \t]*branch[ \t]*=[ \t]*([^; \t,\r\n]*)/im.exec(text);
    return `CSeq ${cseq ? cseq[1] : "?"}, branch ${via ? via[1] : "?"}`;
  }

  function select(i) {
    const M = D.messages;
    state.selected = i;
    const P = D.participants;
    const call = M.c[i] >= 0 ? D.callids[M.c[i]] : null;
    const tx = M.x[i] >= 0 ? transactionName(i) : null;
    const meta = $("message-meta");
    meta.classList.remove("hint");
    meta.textContent =
      `${seconds(M.t[i])} s  ${P[M.s[i]][0]} \u2192 ${P[M.d[i]][0]}\n${D.flows[M.f[i]]}` +
      (M.r[i] ? "  (sent again: a retransmission)" : "") +
      (call ? `\nCall-ID ${call}` : "") +
      (tx ? `\ntransaction ${tx}` : "");
    $("message-text").textContent = D.texts[M.m[i]];
    $("only-callid").disabled = call === null;
    $("only-tx").disabled = tx === null;
    const root = $("ladder-svg");
    for (const g of root.querySelectorAll("g.arrow")) {
      const j = Number(g.dataset.i);
      g.classList.toggle("selected", j === i);
      g.classList.toggle("same-call", j !== i && M.c[i] >= 0 && M.c[j] === M.c[i]);
    }
  }

  // -- statistics -----------------------------------------------------------------------------

  function table(id, head, rows, numeric) {
    const t = html("table", { id: id });
    const tr = html("tr");
    head.forEach((h, c) => tr.append(html("th", numeric[c] ? { class: "num" } : {}, h)));
    t.append(tr);
    for (const row of rows) {
      const line = html("tr", row.attrs || {});
      row.cells.forEach((cell, c) => {
        const attrs = { class: (numeric[c] ? "num " : "") + (row.classes ? row.classes[c] || "" : "") };
        line.append(html("td", attrs, cell === null || cell === undefined ? "\u2013" : String(cell)));
      });
      t.append(line);
    }
    return t;
  }

  function section(title, node) {
    const box = html("div");
    box.append(html("h3", {}, title), node);
    return box;
  }

  function renderStats() {
    const S = D.stats;
    const body = $("stats-body");
    body.textContent = "";
    const grid = html("div", { class: "stats-grid" });
    const methods = (m) => Object.entries(m).map(([k, v]) => `${k} ${v}`).join(", ");
    grid.append(section("Responses by code", table("stats-responses", ["code", "reason", "count", "to"],
      S.responses.map((r) => ({ attrs: { "data-code": r.code }, cells: [r.code, r.reason, r.count, methods(r.methods)], classes: ["", "", "count", ""] })),
      [true, false, true, false])));
    grid.append(section("Requests by method", table("stats-requests", ["method", "count"],
      Object.entries(S.requests).map(([m, n]) => ({ attrs: { "data-method": m }, cells: [m, n], classes: ["", "count"] })),
      [false, true])));
    grid.append(section(`Retransmissions (${S.retransmitted})`, table("stats-retransmissions", ["message", "sent again"],
      Object.entries(S.retransmissions).map(([m, n]) => ({ attrs: { "data-message": m }, cells: [m, n], classes: ["", "count"] })),
      [false, true])));
    grid.append(section("Response times (request to final response, ms)", table("stats-times",
      ["method", "answered", "unanswered", "min", "median", "p90", "p99", "max"],
      S.response_times.map((r) => ({ attrs: { "data-method": r.method }, cells: [r.method, r.count, r.unanswered, r.min, r.p50, r.p90, r.p99, r.max] })),
      [false, true, true, true, true, true, true, true])));
    const ex = D.timeline.expectations;
    grid.append(section("Expectations", table("stats-expectations", ["", "expectation", "result"],
      ex.map((e) => ({ cells: [e.passed ? "PASS" : "FAIL", e.text + (e.line ? ` (line ${e.line})` : ""), e.detail], classes: [e.passed ? "pass-mark" : "fail-mark", "", ""] })),
      [false, false, false])));
    body.append(grid);
  }

  // -- wiring ---------------------------------------------------------------------------------

  function wire() {
    const onClients = debounce(() => {
      state.clientFilter = $("client-filter").value;
      state.page = 0;
      renderTimeline();
      refilter();
    }, 150);
    $("client-filter").addEventListener("input", onClients);
    $("callid-filter").addEventListener("input", debounce(() => {
      state.callid = $("callid-filter").value;
      state.page = 0;
      refilter();
    }, 150));
    for (const [id, key] of [["show-sip", "showSip"], ["show-dns", "showDns"], ["show-ping", "showPing"]]) {
      $(id).addEventListener("change", () => {
        state[key] = $(id).checked;
        state.page = 0;
        refilter();
      });
    }
    $("page-size").addEventListener("change", () => {
      const firstShown = state.page * state.pageSize;
      state.pageSize = Number($("page-size").value);
      state.page = Math.floor(firstShown / state.pageSize);
      refilter();
    });
    const pages = () => Math.max(1, Math.ceil(visible.length / state.pageSize));
    $("page-first").addEventListener("click", () => { state.page = 0; renderLadder(); });
    $("page-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderLadder(); });
    $("page-next").addEventListener("click", () => { state.page = Math.min(pages() - 1, state.page + 1); renderLadder(); });
    $("page-last").addEventListener("click", () => { state.page = pages() - 1; renderLadder(); });
    $("goto-time").addEventListener("change", () => {
      const t = Number($("goto-time").value);
      if (Number.isFinite(t)) gotoTime(t);
    });
    $("ladder-svg").addEventListener("click", (event) => {
      const g = event.target.closest("g.arrow");
      if (g) select(Number(g.dataset.i));
    });
    $("only-callid").addEventListener("click", () => {
      if (state.selected < 0) return;
      const c = D.messages.c[state.selected];
      if (c < 0) return;
      $("callid-filter").value = state.callid = D.callids[c];
      state.page = 0;
      refilter();
    });
    $("only-tx").addEventListener("click", () => {
      if (state.selected < 0) return;
      const x = D.messages.x[state.selected];
      if (x < 0) return;
      state.tx = x;
      $("tx-name").textContent = transactionName(state.selected);
      $("tx-filter").hidden = false;
      state.page = 0;
      refilter();
    });
    const clearTx = () => {
      state.tx = -1;
      $("tx-filter").hidden = true;
    };
    $("tx-clear").addEventListener("click", () => { clearTx(); refilter(); });
    $("show-all").addEventListener("click", () => {
      clearTx();
      $("callid-filter").value = state.callid = "";
      $("client-filter").value = state.clientFilter = "";
      renderTimeline();
      refilter();
    });
    window.addEventListener("resize", debounce(renderTimeline, 200));
    // Up and down move the selection through the ladder (across pages), as in sngrep.
    document.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
      if (event.target.closest && event.target.closest("input, select, textarea")) return;
      if (!visible.length) return;
      let at = visible.indexOf(state.selected);
      at = at < 0 ? state.page * state.pageSize : at + (event.key === "ArrowDown" ? 1 : -1);
      if (at < 0 || at >= visible.length) return;
      event.preventDefault();
      const page = Math.floor(at / state.pageSize);
      if (page !== state.page) {
        state.page = page;
        renderLadder();
      }
      select(visible[at]);
      const row = document.querySelector(`#ladder-svg g.arrow[data-i="${visible[at]}"]`);
      if (row) row.scrollIntoView({ block: "nearest" });
    });
  }

  async function main() {
    try {
      D = await loadData();
      state.pageSize = D.meta.page_size;
      $("page-size").value = String(state.pageSize);
      renderHeader();
      renderLegend();
      wire();
      renderTimeline();
      refilter();
      renderStats();
      document.body.dataset.ready = "1";
    } catch (error) {
      $("error").textContent = "The report could not be drawn: " + error;
      $("error").hidden = false;
      document.body.dataset.ready = "error";
      throw error;
    }
  }

  main();
})();
