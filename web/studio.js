// The phone's publish page: the camera and microphone (upright, front or back), Go live /
// Stop over WHIP, a live timer, the connection's state, and the shop's counters. It goes live
// again by itself after a network change. No framework, no build step.
"use strict";
(() => {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const id = boot.session_id;
  const $ = sel => document.getElementById(sel);
  const root = document.documentElement;
  // The stream key rides in the link's fragment (never sent to a server), then leaves the
  // address bar so that a screenshot or a shared tab does not show it.
  const key = new URLSearchParams(location.hash.slice(1)).get("key") || "";
  if (key) history.replaceState(null, "", location.pathname + location.search);

  // ---- Language: the server picked one from Accept-Language; a choice in the switcher wins.
  let lang = boot.lang;
  let strings = boot.strings;
  const t = key => strings[key] || key;
  let state = "ready";

  function applyStrings() {
    const info = boot.languages.find(l => l.tag === lang) || { dir: "ltr" };
    root.lang = lang;
    root.dir = info.dir;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    $("lang").value = lang;
    show(state);
  }

  for (const l of boot.languages) {
    const option = document.createElement("option");
    option.value = l.tag;
    option.textContent = l.name;
    option.lang = l.tag;
    $("lang").append(option);
  }
  $("lang").addEventListener("change", async e => {
    try {
      const res = await fetch(`/web/i18n/${encodeURIComponent(e.target.value)}.json`);
      if (!res.ok) return;
      strings = await res.json();
      lang = e.target.value;
      try { localStorage.setItem("fieldcast.lang", JSON.stringify(lang)); } catch (_) { /* private mode */ }
      applyStrings();
    } catch (_) { /* keep the current language */ }
  });

  // ---- What the host sees: the state badge, a problem in words, the buttons.
  const BADGE = { ready: "studio_ready", connecting: "connecting", live: "live", retrying: "studio_retrying", stopped: "studio_stopped" };
  function show(next, problem) {
    state = next;
    $("badge").dataset.state = next;
    $("badge-text").textContent = t(BADGE[next]);
    if (problem !== undefined) {
      $("problem").hidden = !problem;
      $("problem").textContent = problem ? t(problem) : "";
      $("problem").dataset.problem = problem || "";
    }
    const onAir = next === "connecting" || next === "live" || next === "retrying";
    $("go").hidden = onAir;
    $("stop").hidden = !onAir;
    $("go").disabled = !key || !stream;
    $("timer").hidden = next !== "live";
  }

  // ---- The camera: upright by default, the front one first.
  let stream = null;
  let facing = "user";
  async function openCamera() {
    const video = { facingMode: facing, width: { ideal: 720 }, height: { ideal: 1280 }, frameRate: { ideal: 30 } };
    const next = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    if (stream) for (const track of stream.getVideoTracks()) track.stop();
    const audio = stream ? stream.getAudioTracks() : next.getAudioTracks();
    if (stream) for (const track of next.getAudioTracks()) track.stop();
    stream = new MediaStream([...next.getVideoTracks(), ...audio]);
    $("preview").srcObject = stream;
    $("preview").classList.toggle("mirrored", facing === "user");
  }

  $("switch").addEventListener("click", async () => {
    facing = facing === "user" ? "environment" : "user";
    try {
      await openCamera();
      // On air: the new camera replaces the old one without a new connection.
      const sender = pc && pc.getSenders().find(s => s.track && s.track.kind === "video");
      if (sender) await sender.replaceTrack(stream.getVideoTracks()[0]);
    } catch (_) {
      show(state, "studio_no_camera");
    }
  });

  // ---- Publishing over WHIP. `wanted` is the host's wish; the connection follows it.
  let pc = null, resource = null, wanted = false, liveSince = 0, attempt = 0, retryTimer = 0;

  async function publish() {
    clearTimeout(retryTimer);
    await hangUp();
    show(attempt ? "retrying" : "connecting");
    const conn = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    pc = conn;
    for (const track of stream.getTracks()) {
      const transceiver = conn.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      // H.264 first where the phone has it: its encoder is usually in hardware.
      if (track.kind === "video" && transceiver.setCodecPreferences && RTCRtpSender.getCapabilities) {
        const codecs = RTCRtpSender.getCapabilities("video").codecs;
        const rank = c => (/h264/i.test(c.mimeType) ? 0 : /vp8/i.test(c.mimeType) ? 1 : 2);
        transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
      }
    }
    conn.addEventListener("connectionstatechange", () => {
      if (conn !== pc) return;
      if (conn.connectionState === "connected") {
        attempt = 0;
        liveSince = liveSince || Date.now();
        show("live", "");
      } else if (conn.connectionState === "failed" || conn.connectionState === "disconnected") {
        retry();
      }
    });
    try {
      await conn.setLocalDescription(await conn.createOffer());
      const res = await fetch(`/whip/${encodeURIComponent(id)}`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${key}` },
        body: conn.localDescription.sdp,
      });
      if (conn !== pc) return;
      if (res.status === 401) return giveUp("studio_refused");
      if (res.status === 409) return giveUp("studio_busy");
      if (res.status !== 201) throw new Error(`WHIP answered ${res.status}`);
      resource = res.headers.get("Location");
      await conn.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (_) {
      if (conn === pc) retry();
    }
  }

  function retry() {
    if (!wanted) return;
    attempt++;
    show("retrying");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(publish, Math.min(10000, 500 * 2 ** Math.min(attempt, 5)));
  }

  function giveUp(problem) {
    wanted = false;
    hangUp();
    show("ready", problem);
  }

  async function hangUp() {
    const [conn, url] = [pc, resource];
    pc = null;
    resource = null;
    if (conn) conn.close();
    if (url) {
      try {
        await fetch(url, { method: "DELETE", headers: { Authorization: `Bearer ${key}` } });
      } catch (_) { /* the server ends a silent publisher by itself */ }
    }
  }

  $("go").addEventListener("click", () => {
    wanted = true;
    attempt = 0;
    liveSince = 0;
    show("connecting", "");
    publish();
  });
  $("stop").addEventListener("click", async () => {
    wanted = false;
    clearTimeout(retryTimer);
    await hangUp();
    show("stopped");
  });
  // A new network (Wi-Fi to 4G): the old path is gone; connect again at once.
  const onNetworkChange = () => { if (wanted && state !== "connecting") { attempt = Math.max(attempt, 1); publish(); } };
  window.addEventListener("online", onNetworkChange);
  if (navigator.connection) navigator.connection.addEventListener("change", onNetworkChange);

  setInterval(() => {
    if (state !== "live") return;
    const s = Math.floor((Date.now() - liveSince) / 1000);
    const hh = Math.floor(s / 3600), mm = Math.floor(s / 60) % 60, ss = String(s % 60).padStart(2, "0");
    $("elapsed").textContent = hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
  }, 500);

  // ---- The shop's counters, from the same live state the watch page follows.
  async function followState() {
    let version = 0, failures = 0;
    for (;;) {
      try {
        const res = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/state${version ? `?after=${version}` : ""}`);
        if (res.ok) {
          const live = await res.json();
          failures = 0;
          if (live.version > version) {
            version = live.version;
            $("n-viewers").textContent = live.viewers;
            $("n-likes").textContent = live.likes;
            $("n-sold").textContent = live.offers.reduce((sum, o) => sum + o.sold, 0);
          }
          continue;
        }
        if (res.status === 400) version = 0;
      } catch (_) { /* the network, or the server restarting */ }
      failures++;
      await new Promise(done => setTimeout(done, Math.min(30000, 1000 * 2 ** Math.min(failures, 5))));
    }
  }

  // For tests and the curious: the connection, as the browser sees it.
  window.fieldcastStudio = { get pc() { return pc; }, get state() { return state; } };

  applyStrings();
  if (!key) show("ready", "studio_no_key");
  openCamera().then(() => show(state), () => show("ready", "studio_no_camera"));
  followState();
})();
