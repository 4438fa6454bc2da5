"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const S = { me: null, es: null, topic: null, listening: new Set(), timers: [], user: null, etag: null, filled: "", retryAt: 0 };

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function svg(tag, attrs, text) {
    const n = document.createElementNS(SVG, tag);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    return n;
  }
  const clock = () => new Date().toLocaleTimeString([], { hour12: false });
  const setText = (id, t) => { $(id).textContent = t; };
  function say(id, text, cls) { const n = $(id); n.textContent = text; n.className = "status" + (cls ? " " + cls : ""); }
  const hostOf = (r) => (r.headers && r.headers.get("spindle-host")) || "—";

  // Every request goes through here: same origin, the session cookie along,
  // never the HTTP cache (so X-Cache is always the server's own answer).
  function logRow(method, path, status, headers, ms) {
    const host = headers && headers.get("spindle-host");
    if (host) setText("last-host", host);
    const tr = document.createElement("tr");
    const cells = [clock(), method + " " + path, String(status), host || "—", (headers && headers.get("x-cache")) || "", ms === null ? "" : ms.toFixed(0)];
    cells.forEach((c, i) => {
      const td = el("td", i === 2 ? "s" + (status === 429 ? "429" : String(status)[0]) : "", c);
      tr.append(td);
    });
    const tb = $("log-table").tBodies[0];
    tb.prepend(tr);
    while (tb.rows.length > 25) tb.deleteRow(-1);
  }
  async function call(method, path, body, headers, quiet) {
    const init = { method, credentials: "same-origin", cache: "no-store", headers: Object.assign({ accept: "application/json" }, headers || {}) };
    if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
    const t0 = performance.now();
    let res, text;
    try { res = await fetch(path, init); text = await res.text(); } catch (e) {
      logRow(method, path, "network error", null, null);
      return { status: 0, json: null, headers: new Headers(), error: String(e) };
    }
    const ms = performance.now() - t0;
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    if (!quiet) logRow(method, path, res.status, res.headers, ms);
    return { status: res.status, json, headers: res.headers };
  }
  const problem = (r) => (r.json && (r.json.detail || r.json.title)) || r.error || "HTTP " + r.status;

  // ---- account -----------------------------------------------------------
  function creds() {
    if (!$("auth-form").reportValidity()) return null;
    return { username: $("auth-user").value.trim(), password: $("auth-pass").value };
  }
  async function login(c) {
    say("auth-status", "Logging in…");
    const r = await call("POST", "/auth/login", c);
    if (r.status !== 200) {
      const wait = r.headers.get("retry-after");
      return say("auth-status", "Login failed: " + problem(r) + (wait ? " Retry after " + wait + " s." : ""), "err");
    }
    $("auth-pass").value = "";
    say("auth-status", "Logged in as " + r.json.user.username + ".");
    await whoami();
    if (S.me) { $("user-id").value = S.me.id; await loadUser(S.me.id, "your card"); }
  }
  async function register() {
    const c = creds();
    if (!c) return;
    say("auth-status", "Registering…");
    const r = await call("POST", "/auth/register", c);
    if (r.status !== 201) return say("auth-status", "Registration failed: " + problem(r), "err");
    await login(c);
  }
  async function logout() {
    leave();
    const r = await call("POST", "/auth/logout");
    say("auth-status", r.status === 204 ? "Logged out." : "Logout failed: " + problem(r), r.status === 204 ? "" : "err");
    await whoami();
  }
  async function whoami() {
    const r = await call("GET", "/auth/me");
    setText("me-host", hostOf(r));
    const s = r.status === 200 ? r.json.session : null;
    S.me = r.status === 200 ? r.json.user : null;
    setText("me-user", S.me ? S.me.username : r.status === 401 ? "not logged in" : "unknown: " + problem(r));
    setText("me-id", S.me ? String(S.me.id) : "—");
    setText("me-session", s ? s.handle : "—");
    setText("me-expires", s ? new Date(s.expires_at).toLocaleString() : "—");
    $("logout-btn").disabled = !S.me;
    ui();
  }
  function ui() {
    $("pub-send").disabled = !(S.me && S.es);
    const own = S.me && S.user && S.user.id === S.me.id;
    $("profile-form").hidden = !own;
  }

  // ---- health ------------------------------------------------------------
  async function health() {
    const r = await call("GET", "/healthz");
    setText("health-host", hostOf(r));
    if (r.status === 200 && r.json && r.json.redis) {
      const x = r.json.redis, ms = Number(x.latency_ms).toFixed(2) + " ms";
      setText("health-status", r.json.status);
      setText("health-transport", x.transport === "rest" ? "REST (Upstash API over HTTP)" : "TCP (Spin outbound Redis)");
      setText("health-latency", ms);
      setText("top-health", "Redis: " + x.transport.toUpperCase() + ", " + ms);
    } else {
      setText("health-status", "unavailable: " + problem(r));
      setText("health-transport", "—");
      setText("health-latency", "—");
      setText("top-health", "Redis: unavailable");
    }
  }

  // ---- rate limit --------------------------------------------------------
  function limits(h) {
    const o = {}, num = (re, s) => { const m = s && re.exec(s); return m ? Number(m[1]) : undefined; };
    const rl = h.get("ratelimit"), pol = h.get("ratelimit-policy");
    o.remaining = num(/;\s*r=(\d+)/, rl);
    o.reset = num(/;\s*t=(\d+)/, rl);
    o.limit = num(/;\s*q=(\d+)/, pol);
    o.window = num(/;\s*w=(\d+)/, pol);
    if (o.remaining === undefined) o.remaining = num(/^(\d+)$/, h.get("x-ratelimit-remaining"));
    if (o.limit === undefined) o.limit = num(/^(\d+)$/, h.get("x-ratelimit-limit"));
    o.retryAfter = num(/^(\d+)$/, h.get("retry-after"));
    o.note = h.get("ratelimit-status") || "";
    return o;
  }
  // Drawn at the element's own pixel size (redrawn on resize), so text stays readable on a phone.
  function chart(run) {
    S.run = run;
    const g = $("quota-chart"), W = Math.max(240, Math.round(g.clientWidth) || 600), H = 200, L = 34, R = 8, T = 34, B = 24;
    g.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (g.lastChild && g.lastChild.nodeName !== "title") g.removeChild(g.lastChild);
    const limit = Math.max(1, ...run.map((x) => Math.max(x.limit || 0, x.remaining || 0)));
    const slots = Math.max(run.length, 10), bw = (W - L - R) / slots, y = (v) => T + (H - T - B) * (1 - v / limit);
    g.append(svg("text", { x: 2, y: 12, class: "tick" }, "remaining"));
    g.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    if (!run.length) return g.append(svg("text", { x: (L + W) / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, "Nothing fired yet"));
    const step = Math.max(1, Math.ceil(limit / 5));
    const ticks = [];
    for (let v = 0; v < limit; v += step) ticks.push(v);
    ticks.push(limit);
    for (const v of ticks) {
      g.append(svg("line", { x1: L, y1: y(v), x2: W - R, y2: y(v), class: "axis", "stroke-dasharray": "2 4" }));
      g.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, String(v)));
    }
    const every = Math.ceil(run.length / 20);
    let first429 = true;
    run.forEach((x, i) => {
      const cx = L + i * bw + bw * 0.15, w = bw * 0.7;
      if (x.status === 429) {
        g.append(svg("rect", { x: cx, y: y(0) - 14, width: w, height: 14, class: "bar deny" }));
        g.append(svg("text", { x: cx + w / 2, y: y(0) - 18, "text-anchor": "middle", class: "deny-t" }, "429"));
        if (first429 && x.retryAfter !== undefined) {
          const tx = Math.min(cx, W - R - 120);
          g.append(svg("text", { x: tx, y: 12, class: "deny-t" }, "Retry-After: " + x.retryAfter + " s"));
          first429 = false;
        }
      } else {
        const rem = x.remaining || 0;
        g.append(svg("rect", { x: cx, y: y(rem), width: w, height: Math.max(2, y(0) - y(rem)), class: "bar ok" }));
        if (run.length <= 30) g.append(svg("text", { x: cx + w / 2, y: y(rem) - 4, "text-anchor": "middle", class: "val" }, String(rem)));
      }
      if (i % every === 0) g.append(svg("text", { x: cx + w / 2, y: H - 8, "text-anchor": "middle", class: "tick" }, String(x.i)));
    });
    const ok = run.filter((x) => x.status !== 429).length;
    if (run.length) g.querySelector("title").textContent = "Remaining quota per request: " + ok + " passed, " + (run.length - ok) + " denied with 429, of " + run.length + " requests";
  }
  function table(run) {
    const tb = $("quota-table").tBodies[0];
    tb.replaceChildren(...run.map((x) => {
      const tr = document.createElement("tr");
      for (const c of [x.i, x.status, x.remaining === undefined ? "—" : x.remaining, x.status === 429 ? x.retryAfter : x.reset, x.host || "—"]) tr.append(el("td", "", String(c === undefined ? "—" : c)));
      return tr;
    }));
  }
  function countdown() {
    const left = Math.ceil((S.retryAt - Date.now()) / 1000);
    setText("quota-retry", S.retryAt ? (left > 0 ? "Quota back in " + left + " s." : "The window has passed: fire again.") : "");
    if (left <= 0) S.retryAt = 0;
  }
  async function fire(e) {
    e.preventDefault();
    const n = Math.min(200, Math.max(1, Math.floor(Number($("quota-n").value)) || 10));
    const run = [];
    $("quota-fire").disabled = true;
    say("quota-state", "Firing " + n + " requests…");
    for (let i = 1; i <= n; i++) {
      const r = await call("GET", "/api/ping");
      run.push(Object.assign({ i, status: r.status, host: r.headers.get("spindle-host") || "" }, limits(r.headers)));
      chart(run);
    }
    table(run);
    $("quota-fire").disabled = false;
    const denied = run.filter((x) => x.status === 429), ok = run.length - denied.length, last = run[run.length - 1];
    const policy = last.limit ? " Policy: " + last.limit + " per " + last.window + " s." : "";
    if (denied.length) {
      const ra = denied[denied.length - 1].retryAfter;
      say("quota-state", "429 Too Many Requests: " + ok + " passed, " + denied.length + " denied. Retry-After: " + ra + " s." + policy, "deny");
      S.retryAt = Date.now() + ra * 1000;
    } else {
      say("quota-state", "All " + run.length + " passed; " + (last.remaining === undefined ? "unknown" : last.remaining) + " left, resets in " + last.reset + " s." + policy + (last.note ? " (" + last.note + ")" : ""));
    }
    countdown();
  }
  async function peek() {
    const r = await call("GET", "/api/quota");
    if (r.status !== 200) return say("quota-state", "Peek failed: " + problem(r), "err");
    const q = r.json;
    say("quota-state", "Peek (spends nothing): " + q.remaining + " of " + q.limit + " left for " + q.identity + " (" + q.algorithm + "), reset in " + Math.ceil(q.reset_ms / 1000) + " s.");
  }

  // ---- user card ---------------------------------------------------------
  function history(text) {
    const li = el("li", "", clock() + "  " + text);
    $("user-history").prepend(li);
    while ($("user-history").children.length > 12) $("user-history").lastChild.remove();
  }
  async function loadUser(id, why) {
    id = String(id || $("user-id").value || "").trim();
    if (!id) return null;
    const r = await call("GET", "/users/" + encodeURIComponent(id));
    const xc = r.headers.get("x-cache") || "—";
    const b = $("user-xcache");
    b.textContent = xc;
    b.className = "badge " + xc;
    history("GET /users/" + id + " → " + r.status + " " + xc + (why ? " (" + why + ")" : ""));
    if (r.status !== 200) {
      S.user = null;
      ["user-name", "user-display", "user-email", "user-version", "user-etag"].forEach((k) => setText(k, k === "user-etag" ? "" : "—"));
      say("user-status", r.status === 404 ? "No user " + id + "." : problem(r), "err");
      ui();
      return xc;
    }
    const u = r.json.user;
    S.user = u;
    S.etag = r.headers.get("etag");
    setText("user-name", u.username);
    setText("user-display", u.display_name || "(none)");
    setText("user-email", u.email === undefined ? "(only its owner sees it)" : u.email || "(none)");
    setText("user-version", String(u.version));
    setText("user-etag", S.etag || "");
    const key = u.id + ":" + u.version;
    if (S.filled !== key) {
      S.filled = key;
      $("profile-display").value = u.display_name || "";
      $("profile-email").value = u.email || "";
    }
    ui();
    return xc;
  }
  async function save(e) {
    e.preventDefault();
    if (!S.user) return;
    const body = { display_name: $("profile-display").value.trim() || null, email: $("profile-email").value.trim() || null };
    say("user-status", "Saving…");
    const r = await call("PATCH", "/users/" + S.user.id, body, { "if-match": S.etag || "*" });
    history("PATCH /users/" + S.user.id + " → " + r.status);
    if (r.status === 200) {
      const v = r.json.user.version;
      const xc = await loadUser(S.user.id, "after the write");
      say("user-status", "Saved version " + v + ". The write invalidated the cached entry: the next read was a " + xc + ". Load again to see a HIT.");
    } else if (r.status === 412) {
      await loadUser(S.user.id, "after a 412");
      say("user-status", "Changed elsewhere first (412): reloaded the current version; edit and save again.", "err");
    } else {
      say("user-status", "Save failed: " + problem(r), "err");
    }
  }

  // ---- notifications -----------------------------------------------------
  const EVENT_NAME = /^[A-Za-z0-9_.:\/-]{1,64}$/;
  function listen(names) {
    if (!S.es) return;
    for (const n of names) {
      if (!EVENT_NAME.test(n) || S.listening.has(n)) continue;
      S.listening.add(n);
      S.es.addEventListener(n, onEvent);
    }
  }
  const listNames = () => $("listen").value.split(/[\s,]+/).filter(Boolean);
  function streamState(t) { setText("stream-state", t); }
  function onEvent(m) {
    let ev;
    try { ev = JSON.parse(m.data); } catch (_) { ev = { event: m.type, data: m.data, id: m.lastEventId }; }
    const d = ev.data, li = el("li");
    const from = d && typeof d === "object" && d.from ? d.from + ": " : "";
    const text = d && typeof d === "object" && "text" in d ? String(d.text) : JSON.stringify(d);
    li.append(el("span", "ev", ev.event), document.createTextNode(" " + from + text + " "),
      el("small", "", (ev.published_at ? new Date(ev.published_at).toLocaleTimeString([], { hour12: false }) : "") + " · " + ev.id));
    const feed = $("feed");
    feed.append(li);
    while (feed.children.length > 100) feed.firstChild.remove();
    feed.scrollTop = feed.scrollHeight;
  }
  async function beat() {
    if (!S.topic) return;
    await call("POST", "/notify/presence", { topic: S.topic }, null, true);
    await presence();
  }
  async function presence() {
    if (!S.topic) return;
    const r = await call("GET", "/notify/presence?topic=" + encodeURIComponent(S.topic), undefined, null, true);
    if (r.status !== 200) return;
    if (!r.json.present.length) return $("presence").replaceChildren(el("li", "none", "nobody"));
    $("presence").replaceChildren(...r.json.present.map((p) => {
      const you = S.me && p.id === S.me.id, li = el("li", you ? "you" : "", p.username + (you ? " (you)" : "") + " ");
      li.append(el("small", "", Math.max(0, Math.round((Date.now() - Date.parse(p.last_seen)) / 1000)) + " s ago"));
      return li;
    }));
  }
  function join(e) {
    e.preventDefault();
    leave();
    const topic = $("topic").value.trim();
    if (!topic) return;
    const path = "/notify/stream?topic=" + encodeURIComponent(topic);
    const es = new EventSource(path);
    S.es = es;
    S.topic = topic;
    listen(listNames().concat([$("pub-event").value.trim()]));
    es.onmessage = onEvent;
    es.onopen = () => { streamState("live on " + topic); logRow("GET", path, "SSE open", null, null); };
    es.onerror = () => streamState(es.readyState === EventSource.CLOSED ? "closed (logged in? the topic allowed?)" : "reconnecting…");
    streamState("connecting…");
    $("topic-leave").disabled = false;
    beat();
    S.timers.push(setInterval(beat, 10000), setInterval(presence, 4000));
    ui();
  }
  function leave() {
    if (S.es) S.es.close();
    S.timers.forEach(clearInterval);
    Object.assign(S, { es: null, topic: null, timers: [], listening: new Set() });
    $("presence").replaceChildren(el("li", "none", "nobody (join a topic)"));
    streamState("not connected");
    $("topic-leave").disabled = true;
    ui();
  }
  async function publish(e) {
    e.preventDefault();
    if (!S.topic) return;
    const event = $("pub-event").value.trim(), text = $("pub-text").value;
    listen([event]);
    const r = await call("POST", "/notify/publish", { topic: S.topic, event, data: { text, from: S.me ? S.me.username : "" } });
    if (r.status === 201 || r.status === 200) {
      say("pub-status", "Published " + r.json.id + " to " + r.json.topic + ".");
      $("pub-text").value = "";
    } else {
      const wait = r.headers.get("retry-after");
      say("pub-status", "Publish failed: " + problem(r) + (wait ? " Retry after " + wait + " s." : ""), "err");
    }
  }

  // ---- wiring ------------------------------------------------------------
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); const c = creds(); if (c) login(c); });
  $("register-btn").addEventListener("click", register);
  $("logout-btn").addEventListener("click", logout);
  $("me-btn").addEventListener("click", whoami);
  $("health-btn").addEventListener("click", health);
  $("quota-form").addEventListener("submit", fire);
  $("quota-peek").addEventListener("click", peek);
  $("user-form").addEventListener("submit", (e) => { e.preventDefault(); loadUser(); });
  $("profile-form").addEventListener("submit", save);
  $("topic-form").addEventListener("submit", join);
  $("topic-leave").addEventListener("click", leave);
  $("listen").addEventListener("change", () => listen(listNames()));
  $("publish-form").addEventListener("submit", publish);
  setInterval(() => { if (S.retryAt) countdown(); }, 1000);
  let resizing = 0;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => { if (S.run) chart(S.run); }, 100); });
  chart([]);
  document.documentElement.dataset.ready = "1";
  (async () => {
    await health();
    await whoami();
    if (S.me) { $("user-id").value = S.me.id; await loadUser(S.me.id, "your card"); }
  })();
})();
