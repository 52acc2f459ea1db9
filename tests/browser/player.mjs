// The player's states on one page that is never reloaded, while the test changes the world
// around it. Line protocol: this script prints one JSON line per step and then waits for a
// line on stdin ("next") before the next step.
//   live       the page plays (frames decoded, state "live")
//   right_back the publisher stopped: "the host will be right back", without a reload
//   back       the publisher returned: live again, frames still counting
//   restarted  the server was killed and started again: the page reconnected by itself
//   ended      the operator ended the show: "the show has ended", without a reload
//
// Usage: node player.mjs URL
import { createInterface } from "node:readline";
import { launch, viewer, frames, waitFrames, waitPlayerState } from "./lib.mjs";

const [url] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => { await lines.next(); };
const browser = await launch();
try {
  const page = await viewer(browser);
  await page.goto(url);
  const report = async step => {
    console.log(JSON.stringify({ step, frames: await frames(page), text: await page.locator("#badge-text").textContent() }));
  };

  await waitFrames(page, 30);
  await waitPlayerState(page, "live");
  await report("live");
  await next();

  await waitPlayerState(page, "right_back", 20000);
  await report("right_back");
  await next();

  await waitPlayerState(page, "live", 20000);
  await waitFrames(page, (await frames(page)) + 30);
  await report("back");
  await next();

  // The server is gone and back: the page must reconnect by itself (backoff up to 15 s).
  const before = await frames(page);
  await waitFrames(page, before + 30, 60000);
  await page.waitForFunction(() => ["live", "right_back"].includes(document.getElementById("badge").dataset.state),
    null, { timeout: 20000 });
  await report("restarted");
  await next();

  await waitPlayerState(page, "ended", 20000);
  await report("ended");
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit(process.exitCode ?? 0);
}
