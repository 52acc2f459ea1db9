// Glass-to-glass latency as an HLS viewer in Chromium sees it: reads the wall-clock time
// code the bench's publisher burnt into each frame (src/media/time_code.rs) from the frames
// Chromium decodes, and prints one JSON line: { samples: [ms, ...], frames, debug }.
//
// Usage: node hls-latency.mjs WATCH_URL SECONDS
//          the watch page with ?hls=1: hls.js in low-latency mode, as the page runs it
//        node hls-latency.mjs --plain PLAYLIST_URL HLS_JS_URL SECONDS
//          a bare page with hls.js at its defaults (not low-latency) on any playlist
import { launch, viewer } from "./lib.mjs";

const plain = process.argv[2] === "--plain";
const [url, hlsJs, seconds = "30"] = plain ? process.argv.slice(3) : [process.argv[2], null, process.argv[3]];
const browser = await launch();
try {
  const page = await viewer(browser, { width: 1280, height: 800 });
  if (plain) {
    await page.setContent(`<video muted autoplay playsinline id="debug"></video><script src="${hlsJs}"></script>`);
    await page.waitForFunction(() => window.Hls);
    await page.evaluate(src => {
      const hls = new window.Hls({ lowLatencyMode: false });
      hls.loadSource(src);
      hls.attachMedia(document.querySelector("video"));
      window.hlsPlayer = hls;
    }, url);
  } else {
    await page.goto(`${url}${url.includes("?") ? "&" : "?"}hls=1&debug=1`);
  }
  await page.waitForFunction(() => document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames > 0,
    null, { timeout: 20000 });
  // Let the player settle at its live position first (it may start further back).
  await page.waitForTimeout(5000);
  const result = await page.evaluate(async ms => {
    const video = document.querySelector("video");
    const canvas = new OffscreenCanvas(640, 16);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const samples = [];
    let frames = 0;
    // The row of 40 blocks of 16×16 at (576, 384) of the 1280×720 picture: 32 bits of the
    // Unix time in ms (mod 2^32), 8 bits of check; white 1, black 0.
    const check = v => {
      const b = [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
      const rot = (x, n) => ((x << n) | (x >>> (8 - n))) & 255;
      return (b[0] ^ rot(b[1], 1) ^ rot(b[2], 2) ^ rot(b[3], 3) ^ 0xa5) & 255;
    };
    const read = () => {
      ctx.drawImage(video, 576, 384, 640, 16, 0, 0, 640, 16);
      const px = ctx.getImageData(0, 0, 640, 16).data;
      const bits = [];
      for (let block = 0; block < 40; block++) {
        let sum = 0, n = 0;
        for (let y = 4; y < 12; y++) for (let x = 4; x < 12; x++) {
          const i = (y * 640 + block * 16 + x) * 4;
          sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]; n++;
        }
        bits.push(sum / n >= 128 ? 1 : 0);
      }
      let value = 0;
      for (let i = 0; i < 32; i++) value = (value * 2) + bits[i];
      let sum = 0;
      for (let i = 32; i < 40; i++) sum = sum * 2 + bits[i];
      return check(value >>> 0) === sum ? value >>> 0 : null;
    };
    await new Promise(resolve => {
      const end = performance.now() + ms;
      const step = () => {
        frames++;
        const code = read();
        if (code !== null) {
          const now = Date.now() % 2 ** 32;
          samples.push((now - code + 2 ** 32) % 2 ** 32);
        }
        if (performance.now() < end) video.requestVideoFrameCallback(step);
        else resolve();
      };
      video.requestVideoFrameCallback(step);
    });
    const debug = window.hlsPlayer ? `hls.js latency ${(window.hlsPlayer.latency || 0).toFixed(2)} s` : document.getElementById("debug").textContent;
    return { samples, frames, debug };
  }, Number(seconds) * 1000);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
