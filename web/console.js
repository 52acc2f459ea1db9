// The operator console: one page, no framework, no build step. It signs in with the
// operator token (kept in sessionStorage only), then uses the API like any client: the
// sessions and their keys, the live view (preview over WHEP, ingest health, charts, overlays
// dragged on the preview, flash sales), products with photos, and the orders table.
"use strict";
(() => {
  const $ = id => document.getElementById(id);
  const TOKEN_KEY = "fieldcast.token";
  const SESSION_KEY = "fieldcast.session";
  const POLL_MS = 2000;
  const CHART_POINTS = 60;

  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let sessions = [];
  let products = [];
  let current = sessionStorage.getItem(SESSION_KEY) || "";
  let live = null;            // the session's live state (SSE)
  let events = null;          // its EventSource
  let scene = { hidden: false, layers: [] };
  let orders = [];             // the page of orders the table shows
  // The orders table's pages: each page's cursor (the first is none), the page shown, and
  // the cursor of the page after it.
  const ORDERS_PAGE = 50;
  let orderPages = [null], orderPage = 0, olderCursor = null;
  let revealed = new Set();   // sessions whose key is shown
  let timer = null;
  let ticker = null;
  const drawn = {};           // what each list was last drawn from: no rebuild when unchanged
  const history = { viewers: [], likes: [], orders: [] };
  let likesSeen = [];         // [time ms, likes total] over the last minute
  let soldSeen = [];          // [time ms, units sold in the live offers] over the last minute

  // ---- helpers --------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function say(text) {
    const t = $("toast");
    t.textContent = text;
    clearTimeout(say.t);
    say.t = setTimeout(() => { t.textContent = ""; }, 4000);
  }

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(method, path, body, { type = "application/json", raw = false } = {}) {
    const headers = { Authorization: `Bearer ${token}` };
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = type;
      payload = type === "application/json" ? JSON.stringify(body) : body;
    }
    const res = await fetch(path, { method, headers, body: payload });
    if (res.status === 401) {
      signOut("The server refused the token. Sign in again.");
      throw new ApiError(401, "signed out");
    }
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      throw new ApiError(res.status, problem.detail || `${res.status} ${res.statusText}`);
    }
    if (raw) return res;
    if (res.status === 204) return null;
    return res.json();
  }

  function money(minor, currency) {
    return `${(minor / 100).toFixed(2)} ${currency || ""}`.trim();
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    return `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`;
  }

  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      say(`${what} copied`);
    } catch (_) {
      say(`Copy failed: select the ${what.toLowerCase()} and copy it by hand`);
    }
  }

  const session = () => sessions.find(s => s.id === current);

  // ---- sign-in --------------------------------------------------------------------------

  async function signIn(candidate) {
    const res = await fetch("/api/v1/sessions", { headers: { Authorization: `Bearer ${candidate}` } });
    if (res.status === 401) return false;
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    token = candidate;
    sessionStorage.setItem(TOKEN_KEY, token);
    sessions = await res.json();
    return true;
  }

  function signOut(message = "") {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    clearInterval(ticker);
    timer = null;
    if (events) events.close();
    events = null;
    stopPreview();
    $("nav").hidden = true;
    $("who").hidden = true;
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "sign-in";
    $("sign-in-error").textContent = message;
  }

  $("sign-in-form").addEventListener("submit", async e => {
    e.preventDefault();
    $("sign-in-error").textContent = "";
    const candidate = $("token").value.trim();
    try {
      if (!(await signIn(candidate))) {
        $("sign-in-error").textContent = "That token is not valid. Check it and try again.";
        return;
      }
    } catch (err) {
      $("sign-in-error").textContent = `Could not reach the server: ${err.message}`;
      return;
    }
    $("token").value = "";
    await start();
  });

  $("sign-out").addEventListener("click", () => signOut());

  async function start() {
    $("nav").hidden = false;
    $("who").hidden = false;
    if (!location.hash) location.hash = "#sessions";
    await refreshSessions();
    await refreshProducts();
    chooseSession(current && sessions.some(s => s.id === current) ? current : (sessions[0] || {}).id || "");
    route();
    clearInterval(timer);
    timer = setInterval(poll, POLL_MS);
    clearInterval(ticker);
    ticker = setInterval(renderOffers, 1000);
    poll();
  }

  // ---- navigation -----------------------------------------------------------------------

  function route() {
    if (!token) return;
    const name = (location.hash || "#sessions").slice(1);
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== name;
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (name === "live") startPreview(); else stopPreview();
    if (name === "orders") refreshOrders();
  }
  window.addEventListener("hashchange", route);

  function chooseSession(id) {
    if (id === current && events) return;
    current = id || "";
    sessionStorage.setItem(SESSION_KEY, current);
    $("current").value = current;
    live = null;
    offerNodes.clear();
    orders = [];
    orderPages = [null];
    orderPage = 0;
    olderCursor = null;
    likesSeen = [];
    soldSeen = [];
    for (const k of Object.keys(history)) history[k] = [];
    if (events) events.close();
    events = null;
    if (current) {
      events = new EventSource(`/api/v1/sessions/${encodeURIComponent(current)}/events`);
      events.addEventListener("state", e => { live = JSON.parse(e.data); live.receivedAt = Date.now(); onLive(); });
      refreshScene();
      refreshOrders();
    }
    renderSessionChooser();
    if (!$("live").hidden) { stopPreview(); startPreview(); }
  }

  $("current").addEventListener("change", e => chooseSession(e.target.value));

  function renderSessionChooser() {
    const select = $("current");
    select.replaceChildren(...sessions.map(s => el("option", { value: s.id, text: s.title })));
    if (!sessions.length) select.append(el("option", { value: "", text: "No session yet" }));
    select.value = current;
  }

  // ---- sessions -------------------------------------------------------------------------

  async function refreshSessions() {
    sessions = await api("GET", "/api/v1/sessions");
    renderSessionChooser();
    renderSessions();
  }

  $("new-session").addEventListener("submit", async e => {
    e.preventDefault();
    try {
      const created = await api("POST", "/api/v1/sessions", { title: $("new-title").value });
      $("new-title").value = "";
      await refreshSessions();
      chooseSession(created.id);
      say(`Session "${created.title}" created`);
    } catch (err) { say(err.message); }
  });

  function renderSessions() {
    const list = $("session-list");
    // Not while a title is being typed: the poll would take the field away.
    const typing = document.activeElement;
    if (list.contains(typing) && typing.tagName === "INPUT" && typing.value !== typing.defaultValue) return;
    if (unchanged("sessions", sessions, [...revealed])) return;
    const open = new Set([...list.querySelectorAll("details[data-id][open]")].map(d => d.dataset.id));
    const ways = new Set([...list.querySelectorAll("details[data-ways][open]")].map(d => d.dataset.ways));
    list.replaceChildren(...sessions.map(s => sessionCard(s, open.has(s.id), ways.has(s.id))));
  }

  function sessionCard(s, obsOpen, waysOpen) {
    const shown = revealed.has(s.id);
    const titleInput = el("input", { id: `title-${s.id}`, value: s.title, maxlength: 200 });
    const stateLabel = { live: "On air", idle: "Off air", "waiting-for-publisher": "On air, waiting for the publisher" }[s.state] || s.state;
    const portrait = s.orientation === "portrait";
    return el("li", { class: "card", "aria-label": s.title },
      el("div", { class: "row" },
        el("h3", { text: s.title }),
        el("span", { class: `badge ${s.state}`, text: stateLabel }),
        el("span", { class: "muted", text: `${s.viewers} watching` })),
      el("form", { class: "row", onsubmit: async e => {
        e.preventDefault();
        try { await api("PATCH", `/api/v1/sessions/${s.id}`, { title: titleInput.value }); await refreshSessions(); say("Renamed"); }
        catch (err) { say(err.message); }
      } },
        el("label", { for: `title-${s.id}`, text: "Title" }), titleInput,
        el("button", { type: "submit", text: "Rename" })),
      el("dl", { class: "facts" },
        el("dt", { text: "RTMP server" }),
        el("dd", {}, el("code", { text: s.rtmp_server }), " ",
          el("button", { type: "button", class: "quiet", "aria-label": `Copy the RTMP server of ${s.title}`, text: "Copy", onclick: () => copy(s.rtmp_server, "RTMP server") })),
        el("dt", { text: "Stream key" }),
        el("dd", {}, el("code", { "data-key": s.id, text: shown ? s.stream_key : "•".repeat(12) }), " ",
          el("button", { type: "button", class: "quiet", "aria-pressed": shown ? "true" : "false",
            text: shown ? "Hide key" : "Reveal key",
            onclick: () => { shown ? revealed.delete(s.id) : revealed.add(s.id); renderSessions(); } }),
          el("button", { type: "button", class: "quiet", "aria-label": `Copy the stream key of ${s.title}`, text: "Copy", onclick: () => copy(s.stream_key, "Stream key") }),
          el("button", { type: "button", class: "quiet", text: "Rotate key", onclick: async () => {
            if (!confirm("Rotate the key? The publisher using the old one is refused from its next connection.")) return;
            try { await api("POST", `/api/v1/sessions/${s.id}/rotate-key`); await refreshSessions(); say("New stream key issued"); }
            catch (err) { say(err.message); }
          } })),
        el("dt", { text: "Watch page" }),
        el("dd", {}, el("a", { href: s.watch_url, target: "_blank", rel: "noopener", text: s.watch_url }), " ",
          el("button", { type: "button", class: "quiet", "aria-label": `Copy the watch URL of ${s.title}`, text: "Copy", onclick: () => copy(s.watch_url, "Watch URL") })),
        el("dt", { text: "Replay" }),
        el("dd", {}, s.recording_url
          ? el("a", { href: s.replay_url, target: "_blank", rel: "noopener", text: s.replay_url })
          : el("span", { class: "muted", text: s.record ? "Recorded when the show goes on air" : "Not recorded (turned off)" }))),
      el("div", { class: "row" },
        el("img", { class: "qr", src: `/watch/${encodeURIComponent(s.id)}/qr.svg`, alt: `QR code of the watch page of ${s.title}`, width: 120, height: 120 }),
        el("details", { "data-id": s.id, open: obsOpen },
          el("summary", { text: "Set up OBS" }),
          el("ol", {},
            el("li", { text: "Settings → Stream: Service “Custom…”." }),
            el("li", {}, "Server: ", el("code", { text: s.rtmp_server })),
            el("li", {}, "Stream Key: ", el("code", { text: shown ? s.stream_key : "(reveal the key above)" })),
            el("li", { text: `Settings → Video: ${portrait ? "720×1280" : "1280×720"} at 30 fps.` }),
            el("li", { text: "Settings → Output (Advanced): x264, CBR 2500–4000 kbps, keyframe interval 2 s, profile high or main, tune zerolatency." }),
            el("li", { text: "Audio: AAC, 48 kHz. Then “Start Streaming”." }))),
        waysIn(s, shown, waysOpen)),
      el("div", { class: "row" },
        el("button", { type: "button", text: "Open live view", onclick: () => { chooseSession(s.id); location.hash = "#live"; } }),
        s.state === "idle"
          ? el("button", { type: "button", text: "Go on air", onclick: () => setState(s, "live") })
          : el("button", { type: "button", text: "End show", onclick: () => setState(s, "idle") }),
        el("button", { type: "button", class: "danger", text: "Archive", onclick: async () => {
          if (!confirm(`Archive "${s.title}"? Its key stops working; its orders stay.`)) return;
          try { await api("DELETE", `/api/v1/sessions/${s.id}`); if (current === s.id) current = ""; await refreshSessions(); chooseSession(current || (sessions[0] || {}).id); }
          catch (err) { say(err.message); }
        } })));
  }

  // The other ways in: the host's phone (a QR code of the publish page, whose link carries
  // the key), SRT (Larix, OBS, ffmpeg) and WHIP (OBS 30 and later). Links with the key are
  // shown only while the key is revealed.
  function waysIn(s, shown, open) {
    const hidden = "(reveal the key above)";
    const qr = el("img", { class: "qr", alt: `QR code to go live from a phone: ${s.title}`, width: 120, height: 120, hidden: true });
    return el("details", { "data-ways": s.id, open },
      el("summary", { text: "Phone, SRT and WHIP" }),
      el("h3", { text: "From a phone's browser" }),
      el("p", { text: "Scan with the host's phone: the page opens the camera and has a “Go live” button." }),
      el("div", { class: "row" },
        el("button", { type: "button", class: "quiet", text: "Show phone QR code", onclick: async () => {
          try {
            const res = await api("GET", `/api/v1/sessions/${s.id}/publish-qr.svg`, undefined, { raw: true });
            qr.src = URL.createObjectURL(await res.blob());
            qr.hidden = false;
          } catch (err) { say(err.message); }
        } }),
        el("button", { type: "button", class: "quiet", "aria-label": `Copy the phone link of ${s.title}`, text: "Copy phone link", onclick: () => copy(s.publish_page_url, "Phone link") }),
        qr),
      el("h3", { text: "SRT (Larix Broadcaster, OBS, ffmpeg)" }),
      el("p", {}, "URL, complete: ", el("code", { text: shown ? s.srt_url : hidden }), " ",
        el("button", { type: "button", class: "quiet", "aria-label": `Copy the SRT URL of ${s.title}`, text: "Copy", onclick: () => copy(s.srt_url, "SRT URL") })),
      el("p", { text: "Send MPEG-TS with H.264 or HEVC and AAC. Larix: paste the URL; or its server without “?streamid=…” and the stream key as the Stream ID." }),
      el("h3", { text: "WHIP (OBS 30 and later)" }),
      el("p", {}, "Settings → Stream: Service “WHIP”, Server ", el("code", { text: s.whip_url }), " ",
        el("button", { type: "button", class: "quiet", "aria-label": `Copy the WHIP URL of ${s.title}`, text: "Copy", onclick: () => copy(s.whip_url, "WHIP URL") }),
        ", Bearer Token: the stream key."),
      el("p", { text: "OBS 30 and later can also send HEVC or AV1 over RTMP, with the OBS steps above." }));
  }

  async function setState(s, state) {
    try { await api("PATCH", `/api/v1/sessions/${s.id}`, { state }); await refreshSessions(); }
    catch (err) { say(err.message); }
  }

  // ---- the live view: preview ----------------------------------------------------------

  let pc = null;
  let previewRetry = null;

  function previewState(text) { $("preview-state").textContent = `Preview: ${text}`; }

  async function startPreview() {
    if (pc || !current) return;
    const peer = new RTCPeerConnection();
    pc = peer;
    previewState("connecting…");
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    const video = $("preview");
    video.srcObject = stream;
    peer.ontrack = e => { stream.addTrack(e.track); video.play().catch(() => {}); };
    peer.onconnectionstatechange = () => {
      if (pc !== peer) return;
      previewState(peer.connectionState === "connected" ? "live" : peer.connectionState);
      if (["failed", "closed", "disconnected"].includes(peer.connectionState)) restartPreview();
    };
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await new Promise(resolve => {
        if (peer.iceGatheringState === "complete") return resolve();
        peer.addEventListener("icegatheringstatechange", () => { if (peer.iceGatheringState === "complete") resolve(); });
        setTimeout(resolve, 1000);
      });
      if (pc !== peer) return;
      const res = await fetch(`/whep/${encodeURIComponent(current)}`, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: peer.localDescription.sdp,
      });
      if (res.status === 201) peer.resource = new URL(res.headers.get("Location"), location.href).href;
      if (pc !== peer) {
        // Stopped while the offer was out: leave at once rather than wait for the timeout.
        if (peer.resource) fetch(peer.resource, { method: "DELETE", keepalive: true }).catch(() => {});
        return;
      }
      if (res.status !== 201) {
        previewState(res.status === 409 ? "the session is not on air" : `refused (${res.status}), trying again`);
        restartPreview();
        return;
      }
      await peer.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (_) {
      if (pc === peer) restartPreview();
    }
  }

  function stopPreview() {
    clearTimeout(previewRetry);
    if (!pc) return;
    const peer = pc;
    pc = null;
    if (peer.resource) fetch(peer.resource, { method: "DELETE", keepalive: true }).catch(() => {});
    peer.close();
  }

  function restartPreview() {
    stopPreview();
    previewRetry = setTimeout(() => { if (!$("live").hidden) startPreview(); }, 2000);
  }

  $("preview").addEventListener("resize", renderBoxes);
  window.addEventListener("resize", renderBoxes);

  // ---- the live view: overlays ---------------------------------------------------------

  const KIND_NAMES = { product_card: "Product card", counter: "Counters", countdown: "Countdown", toast: "Purchase toasts", text: "Text", image: "Image", qr: "QR code" };

  async function refreshScene() {
    if (!current) return;
    scene = await api("GET", `/api/v1/sessions/${current}/overlays`);
    renderLayers();
  }

  function frameSize() {
    const v = $("preview");
    if (v.videoWidth) return [v.videoWidth, v.videoHeight];
    const s = session();
    return s && s.orientation === "portrait" ? [720, 1280] : [1280, 720];
  }

  // As src/overlay/layout.rs places a layer: anchor, then offset towards the centre.
  function placeOf(layer, fw, fh) {
    const p = layer.portrait && fh > fw ? layer.portrait : layer;
    const w = p.size[0] * fw, h = p.size[1] * fh;
    const [dx, dy] = [p.offset[0] * fw, p.offset[1] * fh];
    const col = { "top-left": 0, left: 0, "bottom-left": 0, top: 1, center: 1, bottom: 1 }[p.anchor] ?? 2;
    const row = { "top-left": 0, top: 0, "top-right": 0, left: 1, center: 1, right: 1 }[p.anchor] ?? 2;
    const x = col === 0 ? dx : col === 1 ? (fw - w) / 2 + dx : fw - w - dx;
    const y = row === 0 ? dy : row === 1 ? (fh - h) / 2 + dy : fh - h - dy;
    return { x, y, w, h };
  }

  function renderLayers() {
    $("hide-all").checked = !!scene.hidden;
    const ul = $("layers");
    ul.replaceChildren(...[...scene.layers].sort((a, b) => b.z - a.z).map(layer => {
      const name = layer.kind === "text" && layer.content.text ? `Text “${layer.content.text}”` : KIND_NAMES[layer.kind] || layer.kind;
      return el("li", { class: "row" },
        el("label", { class: "switch" },
          el("input", { type: "checkbox", role: "switch", checked: layer.visible, "aria-label": `Show ${name}`,
            onchange: e => patchLayer(layer.id, { visible: e.target.checked }) }),
          ` ${name}`),
        el("button", { type: "button", class: "quiet", "aria-label": `Delete ${name}`, text: "Delete", onclick: async () => {
          try { await api("DELETE", `/api/v1/sessions/${current}/overlays/${layer.id}`); await refreshScene(); }
          catch (err) { say(err.message); }
        } }));
    }));
    const theme = scene.layers.find(l => l.style && l.style.theme);
    if (theme && document.activeElement !== $("theme")) $("theme").value = theme.style.theme;
    renderBoxes();
  }

  async function patchLayer(id, patch) {
    try {
      const layer = await api("PATCH", `/api/v1/sessions/${current}/overlays/${id}`, patch);
      scene.layers = scene.layers.map(l => (l.id === id ? layer : l));
      renderLayers();
      return layer;
    } catch (err) { say(err.message); await refreshScene(); }
  }

  // The boxes over the preview: one per visible layer, dragged with the pointer. On release
  // the new place is saved as fractions of the frame, anchored top-left.
  function renderBoxes() {
    const box = $("boxes");
    const rect = $("stage").getBoundingClientRect();
    const [fw, fh] = frameSize();
    // The video is letterboxed inside the stage: the frame's own area.
    const scale = Math.min(rect.width / fw, rect.height / fh) || 0;
    const ox = (rect.width - fw * scale) / 2, oy = (rect.height - fh * scale) / 2;
    box.replaceChildren(...scene.layers.filter(l => l.visible && !scene.hidden).map(layer => {
      const p = placeOf(layer, fw, fh);
      const div = el("div", { class: "box", "data-layer": layer.id, "data-kind": layer.kind, title: KIND_NAMES[layer.kind] || layer.kind },
        el("span", { text: KIND_NAMES[layer.kind] || layer.kind }));
      Object.assign(div.style, { left: `${ox + p.x * scale}px`, top: `${oy + p.y * scale}px`, width: `${p.w * scale}px`, height: `${p.h * scale}px` });
      div.addEventListener("pointerdown", e => drag(e, div, layer, { fw, fh, scale, ox, oy, p }));
      return div;
    }));
  }

  function drag(e, div, layer, g) {
    e.preventDefault();
    div.setPointerCapture(e.pointerId);
    const start = { x: e.clientX, y: e.clientY };
    let x = g.p.x, y = g.p.y;
    const move = ev => {
      x = Math.min(Math.max(0, g.p.x + (ev.clientX - start.x) / g.scale), g.fw - g.p.w);
      y = Math.min(Math.max(0, g.p.y + (ev.clientY - start.y) / g.scale), g.fh - g.p.h);
      div.style.left = `${g.ox + x * g.scale}px`;
      div.style.top = `${g.oy + y * g.scale}px`;
    };
    const up = async () => {
      div.removeEventListener("pointermove", move);
      div.removeEventListener("pointerup", up);
      const round = v => Math.round(v * 1000) / 1000;
      const offset = [round(x / g.fw), round(y / g.fh)];
      const upright = g.fh > g.fw;
      const patch = upright && layer.portrait
        ? { portrait: { anchor: "top-left", offset, size: layer.portrait.size } }
        : { anchor: "top-left", offset };
      await patchLayer(layer.id, patch);
      say(`${KIND_NAMES[layer.kind] || layer.kind} moved`);
    };
    div.addEventListener("pointermove", move);
    div.addEventListener("pointerup", up);
  }

  $("hide-all").addEventListener("change", async e => {
    try {
      scene = await api("POST", `/api/v1/sessions/${current}/overlays/${e.target.checked ? "hide" : "show"}`);
      renderLayers();
    } catch (err) { say(err.message); }
  });

  $("theme").addEventListener("change", async e => {
    const theme = e.target.value;
    for (const layer of scene.layers) await patchLayer(layer.id, { style: { theme } });
    say("Theme colour applied");
  });

  $("add-text").addEventListener("submit", async e => {
    e.preventDefault();
    try {
      await api("POST", `/api/v1/sessions/${current}/overlays`, { kind: "text", content: { text: $("layer-text").value } });
      $("layer-text").value = "";
      await refreshScene();
    } catch (err) { say(err.message); }
  });

  $("add-qr").addEventListener("click", async () => {
    try { await api("POST", `/api/v1/sessions/${current}/overlays`, { kind: "qr" }); await refreshScene(); }
    catch (err) { say(err.message); }
  });

  // ---- the live view: ingest, audience, egress ---------------------------------------

  function fact(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  async function refreshIngest() {
    if (!current) return;
    const i = await api("GET", `/api/v1/sessions/${current}/ingest`);
    const v = i.video;
    let summary = "Not connected";
    if (i.connected) {
      summary = "Connected";
      if (v && v.width) summary += `, ${v.codec} ${v.width}×${v.height}${v.fps ? ` ${Math.round(v.fps)} fps` : ""}`;
    }
    $("ingest-summary").textContent = summary;
    $("ingest-summary").dataset.connected = i.connected;
    const rows = [];
    if (i.connected) {
      rows.push(["Since", `${new Date(i.since_ms).toLocaleTimeString()} (${ago(i.since_ms)})`],
        ["From", `${i.address} over ${(i.transport || "rtmp").toUpperCase()}`]);
      if (v) {
        rows.push(["Video", `${v.codec} ${v.profile} ${v.level}`.trim()],
          ["Keyframe interval", v.keyframe_interval_s ? `${v.keyframe_interval_s.toFixed(1)} s` : "–"],
          ["B-frames", v.b_frames ? `yes (${v.b_frames})` : "none"]);
      }
      if (i.audio) rows.push(["Audio", i.audio.sample_rate ? `${i.audio.codec} ${i.audio.sample_rate / 1000} kHz, ${i.audio.channels} ch` : i.audio.codec]);
      rows.push(["Bitrate (5 s)", `${i.bitrate_kbps} kbit/s`], ["Dropped frames", String(i.dropped_frames)]);
    } else if (i.last_left_ms) {
      rows.push(["Left", `${ago(i.last_left_ms)} ago`]);
    }
    rows.push(["Reconnects", String(i.reconnects)]);
    fact($("ingest"), rows);
  }

  async function refreshStats() {
    const s = await api("GET", "/api/v1/stats");
    const ms = v => (v === null || v === undefined ? "–" : `${v.toFixed(1)} ms`);
    fact($("egress"), [
      ["Packets dropped", String(s.packets_dropped)],
      ["Server-added latency p50", ms(s.server_latency_p50_ms)],
      ["Overlay update p50", ms(s.overlay_update_p50_ms)],
    ]);
  }

  function push(series, value) {
    series.push(value);
    if (series.length > CHART_POINTS) series.shift();
  }

  function chart(canvas, series) {
    const ctx = canvas.getContext("2d");
    const { width: w, height: h } = canvas;
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...series);
    ctx.strokeStyle = getComputedStyle(canvas).color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach((v, i) => {
      const x = (i / (CHART_POINTS - 1)) * (w - 2) + 1;
      const y = h - 2 - (v / max) * (h - 4);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  }

  function sampleAudience() {
    const s = session();
    const now = Date.now();
    const viewers = s ? s.viewers : 0;
    let likesPerMin = 0;
    if (live) {
      likesSeen.push([now, live.likes || 0]);
      likesSeen = likesSeen.filter(([t]) => now - t <= 60000);
      const first = likesSeen[0];
      const span = Math.max(1, now - first[0]);
      likesPerMin = Math.round(((live.likes || 0) - first[1]) * 60000 / Math.max(span, 10000));
    }
    // Units sold a minute, from the live state's counters (exact at any size of show; the
    // orders table holds one page only).
    let ordersPerMin = 0;
    if (live) {
      const sold = (live.offers || []).reduce((n, o) => n + (o.sold || 0), 0);
      soldSeen.push([now, sold]);
      soldSeen = soldSeen.filter(([t]) => now - t <= 60000);
      const first = soldSeen[0];
      ordersPerMin = Math.max(0, Math.round((sold - first[1]) * 60000 / Math.max(now - first[0], 10000)));
    }
    push(history.viewers, viewers);
    push(history.likes, likesPerMin);
    push(history.orders, ordersPerMin);
    $("now-viewers").textContent = viewers;
    $("now-likes").textContent = likesPerMin;
    $("now-orders").textContent = ordersPerMin;
    chart($("chart-viewers"), history.viewers);
    chart($("chart-likes"), history.likes);
    chart($("chart-orders"), history.orders);
  }

  // ---- flash sales ---------------------------------------------------------------------

  function onLive() {
    renderOffers();
    renderOfferFilter();
  }

  function productName(id) {
    const p = products.find(x => x.id === id);
    return p ? p.name : id;
  }

  // Offers are updated in place (the clock every second, the stock on every change): a
  // rebuild would take away an "Add units" field being typed in.
  const offerNodes = new Map();

  function clockText(o, now) {
    const mmss = s => `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    if (o.state === "scheduled") return `starts in ${mmss(Math.max(0, Math.round((o.starts_at_ms - now) / 1000)))}`;
    if (o.state === "live") return `${mmss(Math.max(0, Math.round((o.ends_at_ms - now) / 1000)))} left`;
    return "";
  }

  function offerNode(o) {
    const stockId = `stock-${o.id}`;
    const node = { state: o.state, clock: el("span", { class: "clock" }), remaining: el("span"), sold: el("span") };
    node.li = el("li", { class: "offer", "data-offer": o.id, "aria-label": `Offer of ${productName(o.product_id)}` },
      el("div", { class: "row" },
        el("strong", { text: productName(o.product_id) }),
        el("span", { class: `badge ${o.state.replace("_", "-")}`, text: o.state.replace("_", " ") }),
        node.clock),
      el("div", { class: "row" }, node.remaining, node.sold,
        el("span", { class: "muted", text: `of ${o.allocated} at ${money(o.unit_amount, (products.find(p => p.id === o.product_id) || {}).currency)}` })),
      o.state === "ended" ? null : el("form", { class: "row", onsubmit: async e => {
        e.preventDefault();
        try { await api("POST", `/api/v1/sessions/${current}/offers/${o.id}/stock`, { quantity: Number(e.target.elements[0].value) }); e.target.reset(); say("Stock added"); }
        catch (err) { say(err.message); }
      } },
        el("label", { for: stockId, text: "Add units" }),
        el("input", { id: stockId, type: "number", min: 1, step: 1, required: true }),
        el("button", { type: "submit", text: "Add stock" }),
        el("button", { type: "button", class: "danger", text: "End now", onclick: async () => {
          try { await api("POST", `/api/v1/sessions/${current}/offers/${o.id}/end`); say("Offer ended"); }
          catch (err) { say(err.message); }
        } })));
    return node;
  }

  function renderOffers() {
    const offers = live ? live.offers || [] : [];
    const now = Date.now() + (live && live.server_time_ms ? live.server_time_ms - live.receivedAt : 0);
    let rebuilt = offers.length !== offerNodes.size;
    for (const o of offers) {
      let node = offerNodes.get(o.id);
      if (!node || node.state !== o.state || node.allocated !== o.allocated) {
        node = offerNode(o);
        offerNodes.set(o.id, node);
        rebuilt = true;
      }
      node.allocated = o.allocated;
      node.clock.textContent = clockText(o, now);
      node.remaining.textContent = `${o.remaining} remaining`;
      node.sold.textContent = `${o.sold} sold`;
    }
    for (const id of [...offerNodes.keys()]) if (!offers.some(o => o.id === id)) offerNodes.delete(id);
    if (rebuilt) $("offers").replaceChildren(...offers.map(o => offerNodes.get(o.id).li));
  }

  $("new-offer").addEventListener("submit", async e => {
    e.preventDefault();
    $("offer-error").textContent = "";
    const limit = $("offer-limit").value;
    const body = {
      product_id: $("offer-product").value,
      unit_amount: Math.round(Number($("offer-price").value) * 100),
      quantity: Number($("offer-quantity").value),
      duration_s: Math.round(Number($("offer-duration").value) * 60),
    };
    if (limit) body.per_buyer_limit = Number(limit);
    const startIn = Number($("offer-start").value || 0);
    if (startIn > 0) body.starts_at = Math.floor(Date.now() / 1000) + startIn * 60;
    try {
      await api("POST", `/api/v1/sessions/${current}/offers`, body);
      say("Offer started");
    } catch (err) { $("offer-error").textContent = err.message; }
  });

  // ---- products ------------------------------------------------------------------------

  async function refreshProducts() {
    products = await api("GET", "/api/v1/products");
    renderProducts();
  }

  function unchanged(list, ...data) {
    const signature = JSON.stringify(data);
    if (drawn[list] === signature) return true;
    drawn[list] = signature;
    return false;
  }

  function renderProducts() {
    const pinned = live && live.pinned ? live.pinned.id : null;
    if (unchanged("products", products, pinned, current)) return;
    $("product-table").tBodies[0].replaceChildren(...products.map(p => el("tr", { "data-product": p.id },
      el("td", {}, p.image_url ? el("img", { src: p.image_url, alt: `Photo of ${p.name}`, width: 48, height: 48 }) : el("span", { class: "muted", text: "no photo" })),
      el("th", { scope: "row" }, p.name, pinned === p.id ? el("span", { class: "badge live", text: "pinned" }) : null,
        el("div", { class: "muted", text: Object.entries(p.translations || {}).map(([k, v]) => `${k}: ${v}`).join(" · ") })),
      el("td", { text: `${money(p.unit_amount, p.currency)} / ${p.unit}` }),
      el("td", {}, el("div", { class: "row" },
        pinned === p.id
          ? el("button", { type: "button", "aria-label": `Unpin ${p.name}`, text: "Unpin", onclick: () => pin(null) })
          : el("button", { type: "button", "aria-label": `Pin ${p.name}`, text: "Pin", disabled: !current, onclick: () => pin(p.id) }),
        el("button", { type: "button", class: "quiet", "aria-label": `Edit ${p.name}`, text: "Edit", onclick: () => edit(p) }),
        el("button", { type: "button", class: "danger", "aria-label": `Delete ${p.name}`, text: "Delete", onclick: async () => {
          if (!confirm(`Delete ${p.name}?`)) return;
          try { await api("DELETE", `/api/v1/products/${p.id}`); await refreshProducts(); }
          catch (err) { $("product-error").textContent = err.message; }
        } }))))));
    const select = $("offer-product");
    const chosen = select.value;
    select.replaceChildren(...products.map(p => el("option", { value: p.id, text: p.name })));
    if (chosen) select.value = chosen;
    if (pinned && !chosen) select.value = pinned;
  }

  async function pin(id) {
    try {
      if (id) await api("PUT", `/api/v1/sessions/${current}/pinned`, { product_id: id });
      else await api("DELETE", `/api/v1/sessions/${current}/pinned`);
      say(id ? "Pinned to the show" : "Unpinned");
    } catch (err) { $("product-error").textContent = err.message; }
  }

  function edit(p) {
    $("product-id").value = p.id;
    $("p-name").value = p.name;
    $("p-zh").value = (p.translations || {}).zh || "";
    $("p-ug").value = (p.translations || {}).ug || "";
    $("p-price").value = (p.unit_amount / 100).toFixed(2);
    $("p-currency").value = p.currency;
    $("p-unit").value = p.unit;
    $("p-origin").value = p.origin || "";
    $("p-harvest").value = p.harvest_date || "";
    $("p-description").value = p.description || "";
    $("p-save").textContent = "Save product";
    $("p-cancel").hidden = false;
    $("p-name").focus();
  }

  function resetProductForm() {
    $("product-form").reset();
    $("product-id").value = "";
    $("p-save").textContent = "Create product";
    $("p-cancel").hidden = true;
  }
  $("p-cancel").addEventListener("click", resetProductForm);

  $("product-form").addEventListener("submit", async e => {
    e.preventDefault();
    $("product-error").textContent = "";
    const translations = {};
    if ($("p-zh").value.trim()) translations.zh = $("p-zh").value.trim();
    if ($("p-ug").value.trim()) translations.ug = $("p-ug").value.trim();
    const opt = v => (v.trim() ? v.trim() : undefined);
    const body = {
      name: $("p-name").value,
      translations,
      unit_amount: Math.round(Number($("p-price").value) * 100),
      currency: $("p-currency").value.toUpperCase(),
      unit: $("p-unit").value,
      origin: opt($("p-origin").value),
      harvest_date: opt($("p-harvest").value),
      description: opt($("p-description").value),
    };
    try {
      const id = $("product-id").value;
      const product = id ? await api("PATCH", `/api/v1/products/${id}`, body) : await api("POST", "/api/v1/products", body);
      const file = $("p-photo").files[0];
      if (file) await api("PUT", `/api/v1/products/${product.id}/image`, file, { type: file.type || "application/octet-stream" });
      resetProductForm();
      await refreshProducts();
      say(id ? `${product.name} saved` : `${product.name} created`);
    } catch (err) { $("product-error").textContent = err.message; }
  });

  // ---- orders --------------------------------------------------------------------------

  function orderQuery() {
    const q = new URLSearchParams();
    if ($("filter-offer").value) q.set("offer_id", $("filter-offer").value);
    if ($("filter-status").value) q.set("status", $("filter-status").value);
    const s = q.toString();
    return s ? `?${s}` : "";
  }

  // The table shows one page of orders, newest first, filtered by the server; Older and Newer
  // walk the pages by cursor (a big show has tens of thousands of orders).

  async function refreshOrders() {
    if (!current) return;
    const q = new URLSearchParams(orderQuery().slice(1));
    q.set("order", "newest");
    q.set("limit", String(ORDERS_PAGE));
    if (orderPages[orderPage]) q.set("after", orderPages[orderPage]);
    const res = await api("GET", `/api/v1/sessions/${current}/orders?${q}`, undefined, { raw: true });
    orders = await res.json();
    olderCursor = res.headers.get("Fieldcast-Next-Cursor");
    renderOrders();
  }

  function showOrderPage(page) {
    orderPage = page;
    orderPages.length = page + 1;
    refreshOrders().catch(err => say(err.message));
  }

  function renderOfferFilter() {
    const select = $("filter-offer");
    const chosen = select.value;
    const offers = live ? live.offers || [] : [];
    if (unchanged("offer-filter", offers.map(o => o.id), products.length)) return;
    select.replaceChildren(el("option", { value: "", text: "All offers" }),
      ...offers.map(o => el("option", { value: o.id, text: `${productName(o.product_id)} (${o.id})` })));
    select.value = offers.some(o => o.id === chosen) ? chosen : "";
  }

  function renderOrders() {
    const first = orderPage * ORDERS_PAGE + 1;
    $("orders-page").textContent = orders.length
      ? `Orders ${first}–${first + orders.length - 1}, newest first` : "No orders";
    $("orders-newer").disabled = orderPage === 0;
    $("orders-older").disabled = !olderCursor;
    if (unchanged("orders", orders, products.length)) return;
    $("order-table").tBodies[0].replaceChildren(...orders.map(o => el("tr", { "data-order": o.id },
      el("td", { text: new Date(o.created_at * 1000).toLocaleTimeString() }),
      el("th", { scope: "row" }, el("code", { text: o.id })),
      el("td", { text: productName(o.product_id) }),
      el("td", { text: String(o.quantity) }),
      el("td", { text: money(o.amount, o.currency) }),
      el("td", { text: o.buyer.name }),
      el("td", { text: o.buyer.phone }),
      el("td", { text: [o.buyer.address, o.buyer.city].filter(Boolean).join(", ") }),
      el("td", {}, el("span", { class: `badge ${o.status}`, text: o.status })),
      el("td", {}, o.status === "confirmed"
        ? el("button", { type: "button", class: "danger", "aria-label": `Cancel ${o.id}`, text: "Cancel", onclick: async () => {
          if (!confirm(`Cancel ${o.id}? Its ${o.quantity} units go back on sale.`)) return;
          try { await api("POST", `/api/v1/sessions/${current}/orders/${o.id}/cancel`); await refreshOrders(); say(`${o.id} cancelled`); }
          catch (err) { say(err.message); }
        } })
        : null))));
  }

  $("filter-offer").addEventListener("change", () => showOrderPage(0));
  $("filter-status").addEventListener("change", () => showOrderPage(0));
  $("orders-newer").addEventListener("click", () => showOrderPage(Math.max(0, orderPage - 1)));
  $("orders-older").addEventListener("click", () => {
    if (!olderCursor) return;
    orderPages[orderPage + 1] = olderCursor;
    showOrderPage(orderPage + 1);
  });

  $("export-csv").addEventListener("click", async () => {
    try {
      const res = await api("GET", `/api/v1/sessions/${current}/orders.csv${orderQuery()}`, undefined, { raw: true });
      const url = URL.createObjectURL(await res.blob());
      const a = el("a", { href: url, download: `orders-${current}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) { say(err.message); }
  });

  // ---- restream: destinations and their state -------------------------------------------

  const RESTREAM_STATES = { idle: "Idle (the show is off air)", connecting: "Connecting", connected: "Connected", retrying: "Retrying" };

  async function refreshRestreams() {
    if (!current) return;
    const { restreams } = await api("GET", `/api/v1/sessions/${current}/restreams`);
    const items = restreams.map(d => {
      let state = RESTREAM_STATES[d.state] || d.state;
      if (d.state === "retrying" && d.retry_at_ms) state += ` in ${Math.max(0, Math.ceil((d.retry_at_ms - Date.now()) / 1000))} s`;
      const detail = d.reason ? ` — ${d.reason}` : "";
      const sent = d.bytes ? `, ${(d.bytes / 1e6).toFixed(1)} MB sent` : "";
      return el("li", { "data-state": d.state, "aria-label": `Restream to ${d.url}` },
        el("span", { class: "restream-url", text: d.url }), " ",
        el("b", { text: state }), el("span", { text: `${detail}${sent}` }), " ",
        el("button", { type: "button", class: "quiet", "aria-label": `Remove ${d.url}`, onclick: async () => {
          try { await api("DELETE", `/api/v1/sessions/${current}/restreams/${d.id}`); refreshRestreams(); }
          catch (err) { say(err.message); }
        } }, "Remove"));
    });
    $("restreams").replaceChildren(...items);
  }

  $("new-restream").addEventListener("submit", async e => {
    e.preventDefault();
    $("restream-error").textContent = "";
    try {
      await api("POST", `/api/v1/sessions/${current}/restreams`, { url: $("restream-url").value, key: $("restream-key").value });
      $("restream-key").value = "";
      refreshRestreams();
    } catch (err) { $("restream-error").textContent = err.message; }
  });

  // ---- the clock -----------------------------------------------------------------------

  async function poll() {
    if (!token) return;
    const jobs = [refreshSessions()];
    if (current) jobs.push(refreshIngest(), refreshStats(), refreshOrders(), refreshRestreams());
    await Promise.allSettled(jobs);
    renderProducts();
    renderOffers();
    sampleAudience();
  }

  if (token) {
    signIn(token).then(ok => (ok ? start() : signOut("The saved token was refused. Sign in again.")))
      .catch(err => { $("sign-in-error").textContent = `Could not reach the server: ${err.message}`; });
  }
})();
