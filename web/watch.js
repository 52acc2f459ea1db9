// The watch page: a WHEP player that reconnects by itself, the product panel and counters
// from the live state (SSE), the buy sheet, and likes. No framework, no build step.
// The replay (`/replay/{id}`) is this page on the show's recording: chapters at each product
// the show pinned, and the panel following the replay's time (`boot.replay`).
"use strict";
(() => {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const id = boot.session_id;
  const params = new URLSearchParams(location.search);
  const $ = sel => document.getElementById(sel);
  const root = document.documentElement;
  const store = {
    get(key) { try { return JSON.parse(localStorage.getItem(key)); } catch (_) { return null; } },
    set(key, value) { try { localStorage.setItem(key, JSON.stringify(value)); } catch (_) { /* private mode */ } },
    drop(key) { try { localStorage.removeItem(key); } catch (_) { /* private mode */ } },
  };
  if (params.get("embed") === "1") root.classList.add("embed");
  // The replay: the recording's playlist, each change of the card's product or price
  // ({at_ms, product_id, price}, from the on-screen record), and those products.
  const replay = boot.replay || null;
  let shown = null;
  if (replay) root.classList.add("replay");
  $("demo").hidden = !boot.demo;

  // ---- Language: the server picked one from Accept-Language; a choice in the switcher wins.
  let lang = boot.lang;
  let strings = boot.strings;
  const t = (key, vars = {}) =>
    (strings[key] || key).replace(/\{(\w+)\}/g, (_, name) => (name in vars ? vars[name] : ""));

  function applyStrings() {
    const info = boot.languages.find(l => l.tag === lang) || { dir: "ltr" };
    root.lang = lang;
    root.dir = info.dir;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    for (const el of document.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t(el.dataset.tLabel));
    $("lang").value = lang;
    renderBadge();
    render();
  }

  async function useLanguage(tag) {
    try {
      const res = await fetch(`/web/i18n/${encodeURIComponent(tag)}.json`);
      if (!res.ok) return;
      strings = await res.json();
      lang = tag;
      applyStrings();
    } catch (_) { /* keep the current language */ }
  }

  for (const l of boot.languages) {
    const option = document.createElement("option");
    option.value = l.tag;
    option.textContent = l.name;
    option.lang = l.tag;
    $("lang").append(option);
  }
  $("lang").addEventListener("change", e => {
    store.set("fieldcast.lang", e.target.value);
    useLanguage(e.target.value);
  });

  // ---- Money: integers in minor units, shown in the viewer's language.
  function money(amount, currency) {
    try {
      const format = new Intl.NumberFormat(lang, { style: "currency", currency });
      const digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / 10 ** digits);
    } catch (_) {
      return `${(amount / 100).toFixed(2)} ${currency}`;
    }
  }

  // ---- Live state (versions of /state), on the server's clock.
  let live = null;
  // The server's clock minus ours. A cached answer carries an older server time, which only
  // ever makes this smaller than the truth, so the largest seen is the best.
  let clockOffset = -Infinity;
  const serverNow = () => Date.now() + (Number.isFinite(clockOffset) ? clockOffset : 0);

  // The live state as versions any cache can share: the current one, then each next one
  // (`?after=`, which the server holds until there is one). A refused or failed read is asked
  // again with backoff (Retry-After when the server gives one), and the page says so while
  // it keeps the last state it had.
  let stateVersion = 0, stateFailures = 0;
  async function followState() {
    for (;;) {
      const after = stateVersion ? `?after=${stateVersion}` : "";
      let wait = 0;
      try {
        const res = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/state${after}`);
        if (res.ok) {
          const next = await res.json();
          stateFailures = 0;
          $("shop-status").hidden = true;
          if (next.version > stateVersion) {
            stateVersion = next.version;
            applyState(next);
          }
          continue;
        }
        wait = Number(res.headers.get("Retry-After")) * 1000 || 0;
        // A version this server never gave (it restarted with its clock behind): start over.
        if (res.status === 400) stateVersion = 0;
      } catch (_) { /* no answer: the network, or the server restarting */ }
      stateFailures++;
      $("shop-status").hidden = false;
      const backoff = Math.min(30000, 1000 * 2 ** Math.min(stateFailures - 1, 5));
      await new Promise(done => setTimeout(done, Math.max(wait, backoff * (0.5 + Math.random() / 2))));
    }
  }

  function applyState(next) {
    if (typeof next.server_time_ms === "number") clockOffset = Math.max(clockOffset, next.server_time_ms - Date.now());
    const pictureWas = live && live.picture;
    live = next;
    if (pictureWas === "ended" && live.picture !== "ended") reconnectSoon(0);
    renderBadge();
    render();
  }

  function productName(p) {
    const names = p.translations || {};
    return names[lang] || names[lang.split("-")[0]] || p.name;
  }

  // The product the panel shows: the pinned one, or in the replay the one on screen then.
  function panelProduct() {
    if (!replay) return live && live.pinned;
    return shown && shown.product_id ? replay.products[shown.product_id] || null : null;
  }

  // The offer the panel shows: the product's running (or next) one, else its last. In the
  // replay, only a running one: what can be bought now.
  function currentOffer() {
    const p = panelProduct();
    if (!live || !p) return null;
    const mine = live.offers.filter(o => o.product_id === p.id);
    if (replay) return mine.find(o => o.state === "live") || null;
    return mine.find(o => o.state === "live") || mine.find(o => o.state === "scheduled")
      || mine.find(o => o.state === "sold_out") || mine[mine.length - 1] || null;
  }

  function clock(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const m = Math.floor(s / 60), h = Math.floor(m / 60);
    const two = n => String(n).padStart(2, "0");
    return h ? `${h}:${two(m % 60)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
  }

  function render() {
    if (!live) return;
    $("n-viewers").textContent = live.viewers;
    $("n-likes").textContent = live.likes + pendingLikes + sendingLikes;
    $("n-sold").textContent = live.offers.reduce((sum, o) => sum + o.sold, 0);
    const p = panelProduct();
    $("panel").hidden = !p;
    if (!p) { refreshSheet(); return; }
    const offer = currentOffer();
    $("p-name").textContent = productName(p);
    const photo = $("p-photo");
    if (p.image_url) {
      if (photo.getAttribute("src") !== p.image_url) photo.src = p.image_url;
      photo.alt = productName(p);
      photo.hidden = false;
    } else {
      photo.hidden = true;
    }
    const history = $("p-show");
    history.hidden = !(replay && shown && shown.price !== null);
    if (!history.hidden) history.textContent = t("show_price", { price: money(shown.price, p.currency) });
    const onSale = offer && (offer.state === "live" || offer.state === "scheduled");
    $("p-sale").textContent = money(onSale ? offer.unit_amount : p.unit_amount, p.currency);
    const old = $("p-old");
    old.hidden = !(onSale && offer.unit_amount !== p.unit_amount);
    old.textContent = money(p.unit_amount, p.currency);
    old.setAttribute("aria-label", t("was", { price: money(p.unit_amount, p.currency) }));
    const left = $("p-left"), bar = $("p-bar");
    bar.hidden = !offer;
    if (offer) {
      const soldOut = offer.state === "sold_out" || (offer.state === "live" && offer.remaining === 0);
      left.textContent = soldOut ? t("sold_out") : offer.state === "ended" ? t("offer_over") : t("left", { n: offer.remaining });
      const pct = offer.allocated ? Math.round(100 * offer.sold / offer.allocated) : 0;
      bar.firstElementChild.style.width = `${pct}%`;
      bar.setAttribute("aria-valuenow", pct);
      bar.setAttribute("aria-label", t("left", { n: offer.remaining }));
    } else {
      left.textContent = t(replay ? "replay_no_offer" : "no_offer");
    }
    tick();
    const buyable = offer && offer.state === "live" && offer.remaining > 0;
    const buy = $("buy");
    buy.disabled = !buyable;
    buy.textContent = buyable || !offer ? t("buy") : left.textContent;
    refreshSheet();
  }

  // The countdown runs every second on the server's clock.
  function tick() {
    const offer = currentOffer();
    const el = $("p-clock");
    if (!offer) { el.textContent = ""; return; }
    // To the millisecond, rounded up like the countdown on the video, so the two agree.
    const endsAt = offer.ends_at_ms ?? offer.ends_at * 1000;
    const startsAt = offer.starts_at_ms ?? offer.starts_at * 1000;
    if (offer.state === "live") el.textContent = t("ends_in", { t: clock(endsAt - serverNow()) });
    else if (offer.state === "scheduled") el.textContent = t("starts_in", { t: clock(startsAt - serverNow()) });
    else el.textContent = "";
  }
  setInterval(tick, 1000);

  // ---- Player (WHEP): receive-only H.264 + Opus; reconnects with backoff. When WebRTC
  // cannot connect within a few seconds, or the server says its WebRTC audience is full,
  // the page plays the session's Low-Latency HLS instead (natively on Safari and iOS,
  // otherwise with hls.js, loaded only then) and stays on it.
  const video = $("video");
  let pc = null, resource = null, retryTimer = null, backoff = 1000, playerState = "connecting";
  let path = "webrtc", hls = null, everConnected = false, whepStatus = 0;
  const FALLBACK_AFTER = 4000;
  // The multivariant playlist: the main and the light rendition; hls.js picks by bandwidth.
  const hlsUrl = `/hls/${encodeURIComponent(id)}/master.m3u8`;

  function renderBadge() {
    let state = playerState;
    if (replay) {
      $("badge").dataset.state = "replay";
      $("badge-text").textContent = t(replay.url ? "replay" : "no_recording");
      return;
    }
    if (state === "live" && live) {
      if (live.picture === "slate") state = "right_back";
      if (live.picture === "ended") state = "ended";
    }
    if (state !== "live" && live && live.picture === "ended") state = "ended";
    const badge = $("badge");
    badge.dataset.state = state;
    $("badge-text").textContent = t(state);
  }
  function setPlayer(state) { playerState = state; renderBadge(); }

  function gatheringDone(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(resolve => {
      peer.addEventListener("icegatheringstatechange", () => { if (peer.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, 1000);
    });
  }

  function hangUp() {
    if (resource) { fetch(resource, { method: "DELETE", keepalive: true }).catch(() => {}); resource = null; }
    if (pc) { pc.close(); pc = null; }
  }

  function reconnectSoon(delay) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function retry(state) {
    setPlayer(state);
    const jitter = Math.random() * 0.3 * backoff;
    reconnectSoon(backoff + jitter);
    backoff = Math.min(backoff * 2, 15000);
  }

  function nativeHls() {
    // Safari and every iOS browser (WebKit) play HLS themselves, low-latency included.
    return !!video.canPlayType("application/vnd.apple.mpegurl")
      && (navigator.vendor === "Apple Computer, Inc." || !(window.MediaSource || window.ManagedMediaSource));
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.append(script);
    });
  }

  async function fallBack(reason) {
    if (path !== "webrtc") return;
    clearTimeout(retryTimer);
    hangUp();
    video.srcObject = null;
    video.addEventListener("playing", () => { setPlayer("live"); $("unmute").hidden = !video.muted; });
    video.addEventListener("waiting", () => { if (playerState === "live") setPlayer("connecting"); });
    path = nativeHls() ? "hls-native" : "hls.js";
    console.info(`playing HLS (${path}): ${reason}`);
    setPlayer("connecting");
    if (path === "hls-native") {
      video.src = hlsUrl;
      video.play().catch(() => {});
      return;
    }
    try {
      await loadScript("/web/hls.light.min.js");
    } catch (_) {
      setPlayer("reconnecting");
      return;
    }
    if (!window.Hls || !window.Hls.isSupported()) { setPlayer("reconnecting"); return; }
    // hls.js starts on whole segments (three segments behind the live edge), and takes parts
    // (low-latency mode, PART-HOLD-BACK behind the edge, catching up by playing up to 1.5×
    // faster) once it plays the main rendition. On the light one the link is weak: part by
    // part there, hls.js left holes in its buffer (the rest of a segment after a late part
    // never played), each a stall of two or three seconds, and a move from parts to whole
    // segments drains the buffer; whole segments from the start play through.
    // `startLevel: -1`: hls.js times its first fragment before it picks the rendition to
    // start on, so a weak network starts on the light one instead of stalling on the main one.
    // Its estimate moves up more slowly than by default: a few small fragments that arrive
    // fast would otherwise move a weak link up to a rendition it cannot carry.
    hls = new window.Hls({
      lowLatencyMode: false, maxLiveSyncPlaybackRate: 1.5, backBufferLength: 30, startLevel: -1,
      abrEwmaFastLive: 5, abrEwmaSlowLive: 15, abrBandWidthUpFactor: 0.6,
    });
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_, data) => {
      const main = data.level === hls.levels.length - 1;
      hls.lowLatencyMode = main;
      // hls.js leaves a catch-up rate as it was when low-latency mode goes off.
      if (!main) video.playbackRate = 1;
    });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      // A network error (server restart, a lost connection) or a media one: recover in place.
      setPlayer("reconnecting");
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else setTimeout(() => hls.startLoad(), 2000);
    });
    hls.loadSource(hlsUrl);
    hls.attachMedia(video);
    video.play().catch(() => {});
  }

  async function connect() {
    if (path !== "webrtc") return;
    if (!window.RTCPeerConnection || params.get("hls") === "1") { fallBack("WebRTC is not available here"); return; }
    hangUp();
    // TURN servers, if the server names any (with credentials made for this viewer): the
    // browser then tries UDP, ICE-TCP to the server, and the relay, in that order.
    let iceServers = [];
    try {
      const res = await fetch("/api/v1/ice-servers");
      if (res.ok) iceServers = (await res.json()).ice_servers.map(s => ({ urls: s.urls, username: s.username, credential: s.credential }));
    } catch (_) { /* none: UDP and ICE-TCP only */ }
    if (path !== "webrtc") return;
    const peer = new RTCPeerConnection({ iceServers });
    pc = peer;
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    video.srcObject = stream;
    peer.ontrack = e => {
      stream.addTrack(e.track);
      video.play().catch(() => {});
    };
    peer.onconnectionstatechange = () => {
      if (pc !== peer) return;
      const s = peer.connectionState;
      if (s === "connected") { everConnected = true; backoff = 1000; setPlayer("live"); $("unmute").hidden = !video.muted; }
      if (s === "failed" || s === "closed" || s === "disconnected") retry("reconnecting");
    };
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await gatheringDone(peer);
      const res = await fetch(`/whep/${encodeURIComponent(id)}`, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: peer.localDescription.sdp,
      });
      if (pc !== peer) return;
      whepStatus = res.status;
      if (res.status !== 201) {
        // 503: the WebRTC audience is full (HLS serves everyone); 409: not on air; anything
        // else: try again later.
        if (res.status === 503) fallBack("the WebRTC audience is full");
        else retry("reconnecting");
        return;
      }
      resource = new URL(res.headers.get("Location"), location.href).href;
      await peer.setRemoteDescription({ type: "answer", sdp: await res.text() });
      // Answered but never connected (UDP blocked, a stale answer): try again.
      setTimeout(() => { if (pc === peer && peer.connectionState !== "connected") retry("reconnecting"); }, 12000);
    } catch (_) {
      if (pc === peer) retry("reconnecting");
    }
  }

  function fitLayout() {
    const upright = video.videoHeight > video.videoWidth;
    root.classList.toggle("portrait-stream", upright);
    root.classList.toggle("upright", upright && matchMedia("(max-width: 767px)").matches);
  }
  video.addEventListener("resize", fitLayout);
  addEventListener("resize", fitLayout);

  $("unmute").addEventListener("click", () => {
    video.muted = false;
    video.play().catch(() => {});
    $("unmute").hidden = true;
  });
  addEventListener("pagehide", hangUp);

  // ---- Debug: what getStats() says, once a second.
  // The light rendition has a short side of 360 pixels; the main one is larger.
  const renditionOf = (w, h) => !w || !h ? "?" : `${Math.min(w, h) > 360 ? "main" : "light"} (${w}×${h})`;
  if (params.get("debug") === "1") {
    const out = $("debug");
    out.hidden = false;
    let last = null;
    setInterval(async () => {
      if (path !== "webrtc") {
        const q = video.getVideoPlaybackQuality();
        const buffered = video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;
        out.textContent = [
          `path     HLS, ${path === "hls.js" ? `hls.js (${hls && !hls.lowLatencyMode ? "whole segments" : "low-latency"})` : "native (low-latency)"}`,
          `latency  ${hls && hls.latency ? hls.latency.toFixed(2) + " s" : "?"}`,
          `buffer   ${buffered.toFixed(2)} s`,
          `bitrate  ${hls && hls.bandwidthEstimate ? Math.round(hls.bandwidthEstimate / 1000) + " kb/s estimated" : "?"}`,
          `frames   ${q.totalVideoFrames} (${q.droppedVideoFrames} dropped)`,
          `rendition ${renditionOf(video.videoWidth, video.videoHeight)}`,
        ].join("\n");
        return;
      }
      if (!pc) return;
      const stats = await pc.getStats();
      let rtt = null, v = null, pair = null;
      stats.forEach(s => {
        if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        if (s.type === "inbound-rtp" && s.kind === "video") v = s;
      });
      if (pair && pair.currentRoundTripTime !== undefined) rtt = pair.currentRoundTripTime;
      // UDP, ICE-TCP, or a TURN relay (and how the page reaches it).
      const local = pair && stats.get(pair.localCandidateId);
      const transport = !local ? "?" : local.candidateType === "relay"
        ? `TURN (${local.relayProtocol || "?"})` : (local.protocol || "?").toUpperCase();
      if (!v) return;
      const kbps = last ? Math.round(8 * (v.bytesReceived - last.bytes) / (v.timestamp - last.at)) : 0;
      last = { bytes: v.bytesReceived, at: v.timestamp };
      const jitterMs = v.jitterBufferEmittedCount ? Math.round(1000 * v.jitterBufferDelay / v.jitterBufferEmittedCount) : 0;
      out.textContent = [
        `path     WebRTC (WHEP) over ${transport}`,
        `rendition ${renditionOf(v.frameWidth || video.videoWidth, v.frameHeight || video.videoHeight)}`,
        `rtt      ${rtt === null ? "?" : Math.round(rtt * 1000) + " ms"}`,
        `jitter   ${jitterMs} ms buffer`,
        `bitrate  ${kbps} kb/s`,
        `fps      ${v.framesPerSecond || 0}`,
        `lost     ${v.packetsLost || 0} packets`,
        `freezes  ${v.freezeCount || 0} (${(v.totalFreezesDuration || 0).toFixed(1)} s)`,
      ].join("\n");
    }, 1000);
  }

  // ---- Likes: taps are batched into one request a second at most (at most 100 taps each),
  // so that a storm of taps from a big audience is one request per viewer a second.
  const LIKE_BATCH_MS = 1000;
  let pendingLikes = 0, sendingLikes = 0, likeTimer = null;
  async function flushLikes() {
    likeTimer = null;
    const count = Math.min(pendingLikes, 100);
    if (!count) return;
    pendingLikes -= count;
    sendingLikes += count;
    try {
      await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/likes`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ count }),
      });
    } catch (_) { /* a lost like is not worth a retry */ }
    sendingLikes -= count;
    if (pendingLikes && !likeTimer) likeTimer = setTimeout(flushLikes, LIKE_BATCH_MS);
  }
  $("like").addEventListener("click", () => {
    pendingLikes += 1;
    if (!likeTimer) likeTimer = setTimeout(flushLikes, LIKE_BATCH_MS);
    const heart = document.createElement("span");
    heart.textContent = "♥";
    heart.style.setProperty("--dx", `${Math.round(Math.random() * 40 - 20)}px`);
    $("hearts").append(heart);
    setTimeout(() => heart.remove(), 1700);
    if (live) $("n-likes").textContent = live.likes + pendingLikes + sendingLikes;
  });

  // ---- Buying: a bottom sheet; one Idempotency-Key per purchase attempt.
  const sheet = $("sheet");
  const fields = ["name", "phone", "address", "city"];
  let attempt = null; // { key, body }: reused by a retry or a double tap, so never two orders
  let sending = false, unanswered = false;
  /** Undecided answers (none, a timeout, a 5xx) the page sends again by itself, same key. */
  const AUTO_RETRIES = 3;

  // A device token (POST /api/v1/devices, good for a week): orders are then limited per
  // phone, not per network, so buyers behind one shared address are not refused each other's
  // turns. Asked for when the buy sheet first opens (most viewers never buy, and the origin
  // should not mint one per viewer); asked again before an order if it could not be had.
  async function deviceToken() {
    const saved = store.get("fieldcast.device");
    if (saved && saved.device && saved.expires_at * 1000 > Date.now() + 3600e3) return saved.device;
    try {
      const res = await fetch("/api/v1/devices", { method: "POST" });
      if (!res.ok) return null;
      const fresh = await res.json();
      store.set("fieldcast.device", fresh);
      return fresh.device;
    } catch (_) { return null; }
  }
  let device = null;

  // A shop with its own login vouches for its customer with a buyer token (a JWT), passed to
  // the embedded page in the URL's fragment (`#buyer=…`, never sent to any server or log) or
  // later by message (`{type: "fieldcast:buyer", token}`); orders carry it as Fieldcast-Buyer.
  let buyerToken = new URLSearchParams(location.hash.slice(1)).get("buyer");
  if (buyerToken) history.replaceState(null, "", location.pathname + location.search);
  addEventListener("message", e => {
    if (e.source === window.parent && e.data && e.data.type === "fieldcast:buyer"
      && typeof e.data.token === "string") buyerToken = e.data.token;
  });

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    const h = [...b].map(x => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function limitFor(offer) {
    return Math.max(1, Math.min(offer.per_buyer_limit || 99, offer.remaining || 1, 99));
  }

  function updatePlace() {
    const offer = currentOffer();
    if (!offer || !panelProduct()) return;
    const n = Math.max(1, Number($("f-quantity").value) || 1);
    $("place").textContent = sending ? t("sending") : unanswered ? t("try_again")
      : t("place", { n, amount: money(n * offer.unit_amount, panelProduct().currency) });
  }

  function openSheet() {
    const offer = currentOffer();
    if (!offer || offer.state !== "live" || offer.remaining === 0) return;
    const saved = store.get("fieldcast.buyer") || {};
    for (const f of fields) if (saved[f] && !$(`f-${f}`).value) $(`f-${f}`).value = saved[f];
    const max = limitFor(offer);
    const quantity = $("f-quantity");
    quantity.max = max;
    if (Number(quantity.value) > max) quantity.value = max;
    $("sheet-title").textContent = t("buy_title", { name: productName(panelProduct()) });
    $("sheet-limit").textContent = offer.per_buyer_limit ? t("per_buyer", { n: offer.per_buyer_limit }) : "";
    if (!device) device = deviceToken();
    say("", "");
    updatePlace();
    sheet.showModal();
  }

  function refreshSheet() {
    // An open sheet stays open with its answer; its button follows the live state.
    if (sheet.open) updatePlace();
  }

  function say(text, kind) {
    const out = $("outcome");
    out.textContent = text;
    out.dataset.kind = kind;
    $("place").hidden = false;
  }

  async function placeOrder() {
    if (sending) return; // a double tap while the first is on its way
    const offer = currentOffer();
    if (!offer) return;
    const form = $("order");
    if (!form.reportValidity()) return;
    const buyer = {};
    for (const f of fields) buyer[f] = $(`f-${f}`).value.trim();
    store.set("fieldcast.buyer", buyer);
    const body = JSON.stringify({ offer_id: offer.id, quantity: Number($("f-quantity").value), buyer });
    // A new purchase attempt gets a new key; the same request again (a retry) keeps its key.
    if (!attempt || attempt.body !== body) attempt = { key: uuid(), body };
    unanswered = false;
    sending = true;
    $("place").disabled = true;
    updatePlace();
    let token = await device;
    if (!token) token = await (device = deviceToken());
    const headers = { "Content-Type": "application/json", "Idempotency-Key": attempt.key };
    if (token) headers["Fieldcast-Device"] = token;
    if (buyerToken) headers["Fieldcast-Buyer"] = buyerToken;
    // No answer, a timeout or a 5xx leaves the order undecided: the server may still store
    // it. The page sends the same request with the same key again (after Retry-After), so a
    // slow answer can never become a second order; the key goes only with a final answer.
    for (let tries = 0; ; tries++) {
      let status = 0, answer = {}, wait = 2;
      try {
        const res = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/orders`, {
          method: "POST",
          headers,
          body: attempt.body,
        });
        status = res.status;
        // The server no longer takes this device token (it expired, or the server's secret
        // changed): the next order carries a new one.
        if (res.headers.get("Fieldcast-Device") === "renew") {
          store.drop("fieldcast.device");
          device = deviceToken();
        }
        answer = await res.json().catch(() => ({}));
        wait = Math.min(10, Math.max(1, Number(res.headers.get("Retry-After")) || 2));
      } catch (_) { /* no answer at all */ }
      const undecided = status === 0 || status === 408 || status >= 500;
      if (undecided && tries < AUTO_RETRIES) {
        say(t("confirming"), "");
        await new Promise(done => setTimeout(done, wait * 1000));
        continue;
      }
      if (status === 0) { unanswered = true; say(t("network"), "error"); }
      else outcome(status, answer);
      break;
    }
    sending = false;
    $("place").disabled = false;
    updatePlace();
  }

  function outcome(status, answer) {
    const done = () => { attempt = null; };
    // 200 is a replay of this key's first answer: the same order.
    if (status === 201 || status === 200) {
      done();
      say(t("confirmed", { id: answer.id }), "ok");
      $("place").hidden = true;
      if (window.parent !== window) {
        window.parent.postMessage({ type: "fieldcast:order", session_id: id, order_id: answer.id,
          offer_id: answer.offer_id, quantity: answer.quantity, amount: answer.amount, currency: answer.currency }, "*");
      }
      return;
    }
    // Not final: the key stays for the buyer's next tap.
    if (status === 429) { say(t("slow_down"), "error"); return; }
    if (status === 408 || status >= 500) { unanswered = true; say(t("busy"), "error"); return; }
    done();
    const code = answer.code;
    if (code === "only_left") say(t("only_left", { n: answer.remaining }), "error");
    else if (code === "sold_out") say(t("sold_out"), "error");
    else if (code === "not_started") say(t("not_started"), "error");
    else if (code === "ended") say(t("offer_ended"), "error");
    else if (code === "over_limit") say(t("over_limit", { n: answer.limit }), "error");
    else if (code === "network_share") say(t("network_share", { n: answer.limit }), "error");
    else say(t("invalid", { detail: answer.detail || status }), "error");
  }

  $("buy").addEventListener("click", openSheet);
  $("sheet-close").addEventListener("click", () => sheet.close());
  $("order").addEventListener("submit", e => { e.preventDefault(); placeOrder(); });
  $("f-quantity").addEventListener("input", updatePlace);
  $("forget").addEventListener("click", () => {
    store.drop("fieldcast.buyer");
    for (const f of fields) $(`f-${f}`).value = "";
    say(t("forgotten"), "ok");
  });
  sheet.addEventListener("close", () => { if (!sending) say("", ""); });

  // ---- Replay: the recording (hls.js, or the browser's own HLS), its wall-clock start from
  // the playlist's PROGRAM-DATE-TIME, and the card's moments mapped onto its time.
  let recordingStart = null;
  function onReplayTime() {
    if (recordingStart === null) return;
    const at = recordingStart + video.currentTime * 1000;
    let now = null;
    for (const m of replay.moments) { if (m.at_ms <= at) now = m; else break; }
    if (now !== shown) { shown = now; render(); }
    // The chapter playing now is marked for screen readers and the eye.
    const buttons = [...document.querySelectorAll("#chapter-list button")];
    const current = buttons.filter(b => Number(b.dataset.at) <= at).pop();
    for (const b of buttons) {
      if (b === current) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
    }
  }

  // A chapter at each product the show pinned (where the card's product changes).
  function buildChapters() {
    const list = $("chapter-list");
    list.textContent = "";
    let last = null;
    for (const m of replay.moments) {
      if (!m.product_id || m.product_id === last) { last = m.product_id; continue; }
      last = m.product_id;
      const p = replay.products[m.product_id];
      if (!p) continue;
      const offset = Math.max(0, (m.at_ms - recordingStart) / 1000);
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chapter";
      b.dataset.at = m.at_ms;
      b.dataset.product = m.product_id;
      const time = document.createElement("span");
      time.className = "at";
      time.textContent = clock(offset * 1000);
      b.append(time, " ", productName(p));
      // Just past the first frame that showed it.
      b.addEventListener("click", () => { video.currentTime = offset + 0.2; video.play().catch(() => {}); });
      li.append(b);
      list.append(li);
    }
    $("chapters").hidden = !list.childElementCount;
    onReplayTime();
  }

  async function playReplay() {
    path = "replay";
    renderBadge();
    if (!replay.url) return;
    video.controls = true;
    video.addEventListener("timeupdate", onReplayTime);
    video.addEventListener("seeked", onReplayTime);
    if (nativeHls()) {
      video.src = replay.url;
      video.addEventListener("loadedmetadata", () => {
        const start = video.getStartDate ? video.getStartDate().getTime() : NaN;
        if (Number.isFinite(start)) { recordingStart = start; buildChapters(); }
      }, { once: true });
      return;
    }
    try { await loadScript("/web/hls.light.min.js"); } catch (_) { return; }
    if (!window.Hls || !window.Hls.isSupported()) return;
    hls = new window.Hls({ lowLatencyMode: false, backBufferLength: 30 });
    hls.on(window.Hls.Events.LEVEL_LOADED, (_, data) => {
      const first = data.details.fragments[0];
      if (recordingStart === null && first && first.programDateTime) {
        recordingStart = first.programDateTime;
        buildChapters();
      }
    });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else setTimeout(() => hls.startLoad(), 2000);
    });
    hls.loadSource(replay.url);
    hls.attachMedia(video);
  }

  // ---- Start.
  const chosen = store.get("fieldcast.lang");
  applyStrings();
  if (chosen && chosen !== lang && boot.languages.some(l => l.tag === chosen)) useLanguage(chosen);
  followState();
  if (replay) {
    playReplay();
    return;
  }
  connect();
  // Not connected within a few seconds (UDP blocked, an app's browser without WebRTC): HLS.
  // Not while the session is off air (409): there is nothing to play either way.
  setTimeout(() => {
    if (!everConnected && whepStatus !== 409) fallBack(`WebRTC did not connect within ${FALLBACK_AFTER / 1000} s`);
  }, FALLBACK_AFTER);
})();
