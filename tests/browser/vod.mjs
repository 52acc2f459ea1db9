// A recording's VOD playlist in hls.js (the watch page's own copy, served by the server), in
// Debian's headless Chromium: it loads as a finished playlist, plays from the start, plays
// through each point it is sought to, and reaches its end. Prints one JSON line of what it
// saw; throws (exit 1) with a sentence at the first thing that is wrong.
//
// Usage: node vod.mjs '{"base", "playlist", "seekTo": [seconds...]}'
import { launch, viewer, check } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const seen = { seeks: [] };
const browser = await launch();
try {
  const page = await viewer(browser, { width: 640, height: 360 });
  // A blank page of no origin: the recording's files are served to any (CORS), as a shop's
  // own player would fetch them.
  await page.setContent("<!doctype html><title>Recording</title><body></body>");
  await page.addScriptTag({ url: `${cfg.base}/web/hls.light.min.js` });
  await page.evaluate(url => {
    document.body.innerHTML = "";
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    document.body.append(video);
    window.hlsErrors = [];
    window.hlsDetails = null;
    const hls = new window.Hls({ lowLatencyMode: false });
    hls.on(window.Hls.Events.ERROR, (_, d) => window.hlsErrors.push(`${d.fatal ? "fatal " : ""}${d.details}`));
    hls.on(window.Hls.Events.LEVEL_LOADED, (_, d) => {
      window.hlsDetails = { live: d.details.live, type: d.details.type, fragments: d.details.fragments.length,
        duration: d.details.totalduration, endList: d.details.endList ?? !d.details.live };
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    window.hls = hls;
    video.play().catch(() => {});
  }, cfg.playlist);
  await page.waitForFunction(() => window.hlsDetails !== null, null, { timeout: 15000 });
  seen.playlist = await page.evaluate(() => window.hlsDetails);
  check(!seen.playlist.live, `hls.js reads the recording as live: ${JSON.stringify(seen.playlist)}`);
  const frames = () => page.evaluate(() => document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames);
  const time = () => page.evaluate(() => document.querySelector("video").currentTime);
  // Plays from the start.
  await page.waitForFunction(() => document.querySelector("video").currentTime > 1.0, null, { timeout: 15000 });
  seen.startFrames = await frames();
  // Each point: it plays on from there (time moves a second past it).
  for (const at of cfg.seekTo ?? []) {
    await page.evaluate(t => { document.querySelector("video").currentTime = t; }, at);
    await page.waitForFunction(t => {
      const v = document.querySelector("video");
      return !v.seeking && v.currentTime > t + 1.0;
    }, at, { timeout: 15000 }).catch(async () => {
      throw new Error(`after a seek to ${at} s, playback stayed at ${await time()} s (errors: ${await page.evaluate(() => window.hlsErrors.join(", "))})`);
    });
    seen.seeks.push({ at, frames: await frames() });
  }
  // The end: 3 s before it, then `ended`.
  const duration = await page.evaluate(() => document.querySelector("video").duration);
  seen.duration = duration;
  await page.evaluate(d => { document.querySelector("video").currentTime = Math.max(0, d - 3); }, duration);
  await page.waitForFunction(() => document.querySelector("video").ended, null, { timeout: 20000 }).catch(async () => {
    throw new Error(`the recording did not reach its end: stuck at ${await time()} of ${duration} s`);
  });
  seen.ended = true;
  seen.errors = await page.evaluate(() => window.hlsErrors);
  check(!seen.errors.some(e => e.startsWith("fatal")), `hls.js failed: ${seen.errors.join(", ")}`);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
