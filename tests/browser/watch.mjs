// Opens a watch page in Debian's headless Chromium and reports, as one JSON line, how many
// video frames the page decoded (HTMLVideoElement.getVideoPlaybackQuality()) and the size.
//
// Usage: node watch.mjs URL SECONDS [SCREENSHOT.png]
import { chromium } from "playwright-core";

const [url, seconds = "8", screenshot] = process.argv.slice(2);
if (!url) {
  console.error("usage: node watch.mjs URL SECONDS [SCREENSHOT.png]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", m => logs.push(m.text()));
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
      status: document.getElementById("status").textContent,
    };
  });
  if (screenshot) await page.screenshot({ path: screenshot });
  result.console = logs.slice(-5);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
