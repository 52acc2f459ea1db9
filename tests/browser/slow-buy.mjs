// Buying through the sheet while the server's disk stalls, as a buyer meets it. Line protocol
// with tests/watch_page.rs: one JSON line per step, then a line on stdin ("next").
//   ready  the page shows the offer and the sheet is filled in; the test makes every fsync
//          of the server take longer than the server waits for its ledger
//   done   the buyer tapped once: the first try was answered 503 with Retry-After, the page
//          said it was still confirming, sent the same request with the same
//          Idempotency-Key (and its device token) again by itself, and showed the one
//          confirmed order: {keys, devices, statuses, order}
// Throws (exit 1) with a sentence at the first thing that is wrong.
//
// Usage: node slow-buy.mjs '{"base", "session", "shots"}'
import { createInterface } from "node:readline";
import { launch, viewer, fillSheet, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const step = (name, extra = {}) => console.log(JSON.stringify({ step: name, ...extra }));
const browser = await launch();
const seen = { keys: [], devices: [], statuses: [] };
const isOrder = r => r.method() === "POST" && /\/orders$/.test(new URL(r.url()).pathname);
try {
  const page = await viewer(browser);
  page.on("request", r => {
    if (!isOrder(r)) return;
    seen.keys.push(r.headers()["idempotency-key"]);
    seen.devices.push(r.headers()["fieldcast-device"] || null);
  });
  page.on("response", r => { if (isOrder(r.request())) seen.statuses.push(r.status()); });
  await page.goto(`${cfg.base}/watch/${cfg.session}`);
  await page.getByRole("button", { name: "Buy now" }).click();
  await page.getByRole("dialog").waitFor();
  await fillSheet(page, { quantity: 1, phone: "+86 138 0000 0009" });
  step("ready");
  await lines.next();

  await page.getByRole("button", { name: /^Buy 1 for/ }).click();
  await page.getByText(/^Still confirming your order/).waitFor({ timeout: 20000 });
  await shot(page, `${cfg.shots}/watch-still-confirming.png`);
  const confirmation = page.getByText(/^Order ord_\w+ confirmed/);
  await confirmation.waitFor({ timeout: 45000 });
  seen.order = (await confirmation.textContent()).match(/ord_\w+/)[0];
  await shot(page, `${cfg.shots}/watch-confirmed-after-stall.png`);
  step("done", seen);
} finally {
  await browser.close();
}
