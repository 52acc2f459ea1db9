// Opens a watch page in Debian's headless Chromium and reports, as one JSON line, how many
// video frames the page decoded (HTMLVideoElement.getVideoPlaybackQuality()), the size, and
// the scripts it loaded.
//
// Usage: node watch.mjs URL SECONDS [SCREENSHOT.png]
import { launch, viewer, shot } from "./lib.mjs";

const [url, seconds = "8", screenshot] = process.argv.slice(2);
if (!url) {
  console.error("usage: node watch.mjs URL SECONDS [SCREENSHOT.png]");
  process.exit(2);
}
const browser = await launch();
try {
  const page = await viewer(browser, { width: 1280, height: 800 });
  await page.goto(url);
  await page.waitForTimeout(Number(seconds) * 1000);
  const result = await page.evaluate(() => {
    const v = document.querySelector("video");
    const q = v.getVideoPlaybackQuality();
    return {
      totalVideoFrames: q.totalVideoFrames,
      droppedVideoFrames: q.droppedVideoFrames,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      state: document.getElementById("badge").dataset.state,
      scripts: performance.getEntriesByType("resource").map(e => e.name).filter(n => n.endsWith(".js")),
    };
  });
  if (screenshot) await shot(page, screenshot);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
