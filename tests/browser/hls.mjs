// The watch page when WebRTC is full: it falls back to Low-Latency HLS through hls.js, in
// Debian's headless Chromium, shows the same product panel, and sells. Prints one JSON line
// of what it saw; throws (exit 1) with a sentence at the first thing that is wrong.
//
// Usage: node hls.mjs '{"base", "session", "product", "screenshot"}'
//        node hls.mjs '{"base", "session", "udpBlocked": true}'
//   The second: WebRTC to the server is lost on the way, UDP and TCP alike, as on a network
//   that lets only HTTP through. The WHEP answer's candidates are rewritten to a port nobody
//   listens on (the discard port), so WHEP answers, ICE never connects, and the page falls
//   back after its 4 s wait. (A network that drops only UDP gets WebRTC over ICE-TCP:
//   tests/browser/reach.mjs.)
import { launch, viewer, check, waitFrames, playerState, fillSheet, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const seen = {};
if (cfg.udpBlocked) {
  const browser = await launch();
  try {
    const page = await viewer(browser, { width: 1280, height: 800 });
    await page.route("**/whep/**", async route => {
      const response = await route.fetch();
      if (route.request().method() !== "POST") return route.fulfill({ response });
      const answer = (await response.text()).replace(/(a=candidate:\S+ \d+ (?:udp|tcp) \d+ \S+ )\d+/gi, "$19");
      seen.candidateRewritten = /a=candidate:\S+ \d+ udp \d+ \S+ 9 /i.test(answer)
        && !/a=candidate:\S+ \d+ (?:udp|tcp) \d+ \S+ (?!9 )\d+ /i.test(answer);
      return route.fulfill({ response, body: answer });
    });
    const whep = [];
    page.on("response", r => { if (r.url().includes("/whep/")) whep.push(r.status()); });
    const started = Date.now();
    await page.goto(`${cfg.base}/watch/${cfg.session}?debug=1`);
    await waitFrames(page, 1, 10000);
    seen.firstFrameMs = Date.now() - started;
    seen.whep = whep;
    check(whep.includes(201), `WHEP did not answer the offer: ${JSON.stringify(whep)}`);
    check(seen.candidateRewritten, "the answer's candidate was not rewritten");
    seen.frames = await waitFrames(page, 30, 10000);
    // The debug panel is redrawn once a second, and hls.js may have played its 30 frames
    // (catching up at 1.5×) before the first redraw since the fallback.
    await page.waitForFunction(() => /path\s+\S/.test(document.getElementById("debug").textContent),
      null, { timeout: 5000 }).catch(() => {});
    seen.debug = await page.locator("#debug").textContent();
    check(/path\s+HLS, hls\.js/.test(seen.debug), `not playing HLS: ${seen.debug}`);
    seen.state = await playerState(page);
    console.log(JSON.stringify(seen));
  } finally {
    await browser.close();
  }
  process.exit(0);
}
const browser = await launch();
try {
  const page = await viewer(browser, { width: 1280, height: 800 });
  const requests = [];
  page.on("request", r => requests.push(r.url()));
  const whep = [];
  page.on("response", r => { if (r.url().includes("/whep/")) whep.push(r.status()); });
  const started = Date.now();
  await page.goto(`${cfg.base}/watch/${cfg.session}?debug=1`);
  // The first decoded frame within 6 s of opening the page.
  await waitFrames(page, 1, 6000);
  seen.firstFrameMs = Date.now() - started;
  seen.frames = await waitFrames(page, 90, 20000);
  seen.whep = whep;
  check(whep.includes(503), `WHEP never answered 503 (the test fills the WebRTC audience): ${JSON.stringify(whep)}`);
  seen.state = await playerState(page);
  check(seen.state === "live", `the badge says ${seen.state}, not live`);
  await page.waitForFunction(() => /latency\s+\d/.test(document.getElementById("debug").textContent), null, { timeout: 10000 });
  seen.debug = await page.locator("#debug").textContent();
  check(/path\s+HLS, hls\.js \(low-latency\)/.test(seen.debug), `?debug=1 does not say HLS through hls.js: ${seen.debug}`);
  seen.latency = Number(seen.debug.match(/latency\s+([\d.]+)/)[1]);
  seen.size = await page.evaluate(() => [document.querySelector("video").videoWidth, document.querySelector("video").videoHeight]);
  check(seen.size[0] === 1280 && seen.size[1] === 720, `the picture is ${seen.size}`);
  seen.hlsJsLoaded = requests.filter(u => u.endsWith("/web/hls.light.min.js")).length;
  seen.blockingReloads = requests.filter(u => /\/ll\.m3u8\?_HLS_msn=\d+&_HLS_part=\d+/.test(u)).length;
  seen.parts = requests.filter(u => /\/p\d+\.\d+\.ts$/.test(u)).length;
  seen.segments = requests.filter(u => /\/s\d+\.ts$/.test(u)).length;
  check(seen.hlsJsLoaded === 1, "hls.js was not loaded (once)");
  check(seen.blockingReloads >= 5, `only ${seen.blockingReloads} blocking playlist reloads: hls.js is not in low-latency mode`);
  check(seen.parts >= 5, `only ${seen.parts} parts fetched`);

  // The same product panel, and buying works.
  await page.getByRole("heading", { name: cfg.product, exact: true }).waitFor({ timeout: 10000 });
  await page.getByText("5 left").waitFor({ timeout: 10000 });
  await shot(page, cfg.screenshot);
  await page.getByRole("button", { name: "Buy now" }).click();
  await page.getByRole("dialog").waitFor();
  await fillSheet(page, { quantity: 2, phone: "+86 138 0000 0009" });
  await page.getByRole("button", { name: /^Buy 2 for/ }).click();
  const confirmation = page.getByText(/^Order ord_\w+ confirmed/);
  await confirmation.waitFor({ timeout: 15000 });
  seen.order = (await confirmation.textContent()).match(/ord_\w+/)[0];
  await page.getByRole("button", { name: "Close" }).click();
  // Still playing after the sheet.
  const before = (await page.evaluate(() => document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames));
  seen.framesAfterBuying = await waitFrames(page, before + 30, 10000);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
