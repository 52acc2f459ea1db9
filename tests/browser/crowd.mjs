// A crowd behind one address, as a village's shared connection or a carrier's NAT makes it:
// many phone-sized watch pages, each in its own browser context (its own storage, so its own
// device token), all from 127.0.0.1. Every page must show an enabled Buy button; then a number
// of them fill the buy sheet and press Buy at the same moment, and each must be confirmed.
// Prints one JSON line of what it saw; throws (exit 1) at the first thing that is wrong.
//
// Usage: node crowd.mjs '{"base", "session", "pages", "buyers", "shots"}'
import { launch, check, fillSheet, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
// Each page is its own origin (p1.crowd.test, p2.crowd.test, …, all resolved to the server's
// 127.0.0.1), so each keeps its own storage and device token, as separate phones do, while
// all come from one address. The pages share a few renderer processes: forty of Chromium's own
// would starve the two cores the server runs on, and time the browser instead of the shop.
const base = new URL(cfg.base);
const urlOf = i => `http://p${i + 1}.crowd.test:${base.port}/watch/${cfg.session}`;
const browser = await launch([`--host-resolver-rules=MAP *.crowd.test ${base.hostname}`, "--renderer-process-limit=4"]);
const seen = {};
try {
  // All pages open at once. The time each takes to show an enabled Buy button is measured from
  // the moment all were asked for, so it includes the crowd's own contention.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "en-US", deviceScaleFactor: 1 });
  const pages = await Promise.all(Array.from({ length: cfg.pages }, async () => {
    const page = await context.newPage();
    page.on("pageerror", e => { console.error(`page error: ${e.message}`); });
    return page;
  }));
  const started = Date.now();
  const loadedMs = seen.loadedMs = [];
  seen.readyMs = await Promise.all(pages.map(async (page, i) => {
    // Not "load": with no picture on air yet, the player keeps asking and the page never idles.
    await page.goto(urlOf(i), { waitUntil: "domcontentloaded" });
    loadedMs[i] = Date.now() - started;
    const buy = page.getByRole("button", { name: "Buy now" });
    await buy.waitFor({ timeout: 20000 }).catch(() => { throw new Error(`page ${i} shows no Buy button after 20 s`); });
    await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 20000, polling: 100 })
      .catch(() => { throw new Error(`page ${i}'s Buy button is still disabled after 20 s`); });
    return Date.now() - started;
  }));
  await shot(pages[0], `${cfg.shots}/crowd-page.png`);

  // The buyers open the sheet and fill it in, each with their own phone; then all press Buy at
  // once.
  const buyers = pages.slice(0, cfg.buyers);
  await Promise.all(buyers.map(async (page, i) => {
    await page.getByRole("button", { name: "Buy now" }).click();
    await page.getByRole("dialog").waitFor();
    await fillSheet(page, { quantity: 1, name: `Buyer ${i + 1}`, phone: `138 0000 ${String(1000 + i)}` });
    await page.getByRole("button", { name: /^Buy 1 for/ }).waitFor();
  }));
  const pressed = Date.now();
  seen.orders = await Promise.all(buyers.map(async (page, i) => {
    await page.getByRole("button", { name: /^Buy 1 for/ }).click();
    const confirmation = page.getByText(/^Order ord_\w+ confirmed/);
    await confirmation.waitFor({ timeout: 20000 }).catch(async () => {
      const said = await page.locator("#sheet").innerText().catch(() => "?");
      throw new Error(`buyer ${i} got no confirmation in 20 s; the sheet says: ${said}`);
    });
    return (await confirmation.textContent()).match(/ord_\w+/)[0];
  }));
  seen.confirmedWithinMs = Date.now() - pressed;
  await shot(buyers[0], `${cfg.shots}/crowd-confirmed.png`);
  check(new Set(seen.orders).size === cfg.buyers, `the buyers' orders are not distinct: ${seen.orders}`);
  seen.devices = await Promise.all(buyers.map(page => page.evaluate(() => {
    try { return JSON.parse(localStorage.getItem("fieldcast.device")).device; } catch (_) { return null; }
  })));
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
