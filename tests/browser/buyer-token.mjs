// A shop's customer buys through the embedded page with the buyer token its login signed,
// passed in the URL's fragment; and a page whose stored device token the server no longer
// takes gets a new one. Prints one JSON line of what it saw; throws at the first thing wrong.
//
// Usage: node buyer-token.mjs '{"base", "session", "token"}'
//   token: a buyer token for one customer; the session's pinned product has a live offer
//   with a per-buyer limit of 2.
import { launch, viewer, check, fillSheet } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const url = `${cfg.base}/watch/${cfg.session}?embed=1`;
const browser = await launch();
const seen = {};

async function buy(page, quantity, phone) {
  await page.getByRole("button", { name: "Buy now" }).click();
  await page.getByRole("dialog").waitFor();
  await fillSheet(page, { quantity, phone });
  const sent = page.waitForRequest(r => r.url().endsWith("/orders") && r.method() === "POST");
  await page.getByRole("button", { name: new RegExp(`^Buy ${quantity} for`) }).click();
  return (await sent).headers();
}

try {
  // 1. The customer on one phone buys the limit, 2; the token left the address bar.
  const a = await viewer(browser);
  await a.goto(`${url}#buyer=${cfg.token}`, { waitUntil: "domcontentloaded" });
  await a.getByRole("button", { name: "Buy now" }).waitFor({ timeout: 15000 });
  seen.addressBar = a.url();
  check(!seen.addressBar.includes(cfg.token), `the token stayed in the address bar: ${seen.addressBar}`);
  const headers = await buy(a, 2, "+86 138 0000 0001");
  check(headers["fieldcast-buyer"] === cfg.token, "the order did not carry the buyer token");
  await a.getByText(/^Order ord_\w+ confirmed/).waitFor({ timeout: 15000 });

  // 2. The same customer on another device with another phone number is the same buyer: over
  //    the limit, said in words.
  const b = await viewer(browser);
  await b.goto(`${url}#buyer=${cfg.token}`, { waitUntil: "domcontentloaded" });
  await b.getByRole("button", { name: "Buy now" }).waitFor({ timeout: 15000 });
  await buy(b, 1, "+86 139 9999 9999");
  await b.getByText("You can buy at most 2 in this offer.").waitFor({ timeout: 15000 });

  // 3. A page holding a device token this server did not sign: its order is answered (by the
  //    address's limits) with "renew", and the page keeps a new token from then on.
  const c = await viewer(browser);
  await c.goto(url, { waitUntil: "domcontentloaded" });
  const stale = "d1.0123456789abcdef.1790000000.00112233445566778899aabbccddeeff";
  await c.evaluate(token => localStorage.setItem("fieldcast.device",
    JSON.stringify({ device: token, expires_at: Math.floor(Date.now() / 1000) + 86400 })), stale);
  await c.reload({ waitUntil: "domcontentloaded" });
  await c.getByRole("button", { name: "Buy now" }).waitFor({ timeout: 15000 });
  const first = await buy(c, 1, "+86 137 0000 0001");
  check(first["fieldcast-device"] === stale, "the page did not send its stored token");
  await c.getByText(/^Order ord_\w+ confirmed/).waitFor({ timeout: 15000 });
  await c.waitForFunction(old => {
    try { const t = JSON.parse(localStorage.getItem("fieldcast.device")).device; return t && t !== old; }
    catch (_) { return false; }
  }, stale, { timeout: 10000 });
  seen.renewed = await c.evaluate(() => JSON.parse(localStorage.getItem("fieldcast.device")).device);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
