// The watch page on a weak or filtered network: run inside a network namespace whose link the
// Rust test shapes (tc) or filters (nftables). Prints one JSON line of what the page did;
// throws (exit 1) with a sentence at the first thing that is wrong.
//
// Usage: node reach.mjs '{"base", "session", "seconds", "hls": false, "screenshot"}'
//   WebRTC (the default): `firstFrameMs` from opening the page to its first decoded frame,
//   and the debug panel's transport (`UDP`, `TCP`, `TURN (…)`) and rendition.
//   With "hls": true the page plays HLS (`?hls=1`): the multivariant playlist through hls.js,
//   which picks a rendition by its own bandwidth estimate. `hlsLog` is hls.js's own account
//   (errors, level switches, each fragment's load time, the buffered ranges); with
//   "hlsDebug": true, also its remuxer's warnings about holes, overlaps and injected audio.
//
// Either way it samples, every 250 ms for `seconds`, the rendition on screen (from the
// decoded picture's size: the light one has a short side of 360) and the frames played,
// and reports the stalls: `waiting` events once playing, and spans of half a second or more in
// which no new frame was shown.
import { launch, viewer, check, waitFrames, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const seen = { samples: [] };
const browser = await launch();
try {
  const page = await viewer(browser, { width: 1280, height: 800 });
  const started = Date.now();
  // Which rendition's media the page fetches, and when (HLS): `light/` or the main one.
  seen.media = [];
  page.on("request", r => {
    const m = r.url().match(/\/hls\/[^/]+\/(light\/)?[ps]\d+\.\d+\.ts/);
    if (m) seen.media.push([Date.now() - started, m[1] ? "light" : "main"]);
  });
  // hls.js's own account, when it plays: errors (stalls included), level switches, and each
  // fragment or part loaded with how long it took.
  if (cfg.hlsDebug) {
    seen.console = [];
    page.on("console", m => { const t = m.text(); if (/hole|[Dd]rop|gap|overlap|[Ii]nject|missing|[Dd]iscontinu|nudge|[Ss]tall|skip/.test(t)) seen.console.push(t.slice(0, 300)); });
    await page.addInitScript(() => { window.__hlsDebug = true; });
  }
  await page.addInitScript(() => {
    window.__hlsLog = [];
    let wrapped;
    Object.defineProperty(window, "Hls", {
      configurable: true,
      get: () => wrapped,
      set: Hls => {
        wrapped = class extends Hls {
          constructor(config) {
            super(window.__hlsDebug ? { ...config, debug: true } : config);
            const log = (...e) => window.__hlsLog.push([Math.round(performance.now()), ...e]);
            this.on(Hls.Events.ERROR, (_, d) => log("error", d.details, d.fatal ? "fatal" : "", d.response ? d.response.code : "", (d.context && d.context.url || d.url || "").replace(/^.*\/hls\/[^/]+\//, "")));
            this.on(Hls.Events.LEVEL_SWITCHED, (_, d) => log("level", d.level));
            this.on(Hls.Events.FRAG_LOADED, (_, d) => {
              const f = d.part || d.frag, st = f.stats;
              log("loaded", d.frag.level, d.frag.sn, d.part ? d.part.index : "", Math.round(st.loading.end - st.loading.start), st.total);
            });
            this.on(Hls.Events.FRAG_BUFFERED, (_, d) => {
              const v = document.querySelector("video");
              const b = v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
              const ranges = [];
              for (let i = 0; i < v.buffered.length; i++) ranges.push([+v.buffered.start(i).toFixed(3), +v.buffered.end(i).toFixed(3)]);
              log("buffered", d.frag.sn, d.part ? d.part.index : "", +(b - v.currentTime).toFixed(2), +v.currentTime.toFixed(3), ranges.slice(-3));
            });
          }
        };
      },
    });
  });
  await page.goto(`${cfg.base}/watch/${cfg.session}?debug=1${cfg.hls ? "&hls=1" : ""}`);
  await waitFrames(page, 1, cfg.hls ? 20000 : 10000);
  seen.firstFrameMs = Date.now() - started;
  await page.evaluate(() => {
    window.__waiting = 0;
    const v = document.querySelector("video");
    v.addEventListener("waiting", () => { window.__waiting += 1; });
  });
  const until = Date.now() + cfg.seconds * 1000;
  while (Date.now() < until) {
    await page.waitForTimeout(250);
    seen.samples.push(await page.evaluate(started => {
      const v = document.querySelector("video");
      const w = v.videoWidth, h = v.videoHeight;
      return {
        at: Date.now() - started,
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        rendition: !w || !h ? "?" : Math.min(w, h) > 360 ? "main" : "light",
        size: `${w}x${h}`,
        waiting: window.__waiting,
      };
    }, started));
  }
  // Stalls: spans of at least half a second in which the frame count did not move.
  let still = null;
  seen.stalls = [];
  for (const s of seen.samples) {
    const prev = seen.samples[seen.samples.indexOf(s) - 1];
    if (prev && s.frames === prev.frames) {
      still = still ?? prev.at;
    } else {
      if (still !== null && s.at - still >= 500) seen.stalls.push({ from: still, ms: s.at - still });
      still = null;
    }
  }
  if (still !== null && seen.samples.at(-1).at - still >= 500) seen.stalls.push({ from: still, ms: seen.samples.at(-1).at - still });
  seen.debug = await page.locator("#debug").textContent();
  seen.hlsLog = await page.evaluate(() => window.__hlsLog);
  if (cfg.hls) {
    check(/path\s+HLS, hls\.js/.test(seen.debug), `not playing HLS through hls.js: ${seen.debug}`);
    seen.levels = await page.evaluate(() => {
      const v = document.querySelector("video");
      return { width: v.videoWidth, height: v.videoHeight };
    });
  } else {
    check(/path\s+WebRTC/.test(seen.debug), `not playing WebRTC: ${seen.debug}`);
    seen.transport = (seen.debug.match(/over (.+)/) || [])[1];
  }
  seen.rendition = (seen.debug.match(/rendition (\S+)/) || [])[1];
  if (cfg.screenshot) await shot(page, cfg.screenshot);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
