// An operator runs a show from the console, in headless Chromium, by its labels and roles.
// Line protocol with tests/console.rs: one JSON line per step, then a line on stdin ("next")
// before the next step.
//   created  the session exists: {session, key}; the test starts an ffmpeg publisher
//   dragged  the ingest panel said connected, a product with a photo is pinned, an offer of 5
//            is live and the card was dragged to the top-right corner: the test decodes
//   hidden   orders came into the table without a reload, one was cancelled, the CSV was
//            exported, and "Hide all overlays" is on: the test decodes again
// The last line is the report.
//
// Usage: node console.mjs '{"base", "token", "photo", "docs"}'
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { launch, viewer, check, axe, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => { await lines.next(); };
const step = (name, extra = {}) => console.log(JSON.stringify({ step: name, ...extra }));
const seen = { axe: {} };
const browser = await launch();

async function publicOrder(session, offer, quantity, name, phone) {
  const res = await fetch(`${cfg.base}/api/v1/sessions/${session}/orders`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": `console-test-${phone}` },
    body: JSON.stringify({ offer_id: offer, quantity, buyer: { name, phone, address: "3 Vine Row", city: "Turpan" } }),
  });
  const text = await res.text();
  check(res.status === 201, `a public order was answered ${res.status}: ${text}`);
  return JSON.parse(text).id;
}

async function operator(path) {
  const res = await fetch(cfg.base + path, { headers: { Authorization: `Bearer ${cfg.token}` } });
  return res.json();
}

try {
  const page = await viewer(browser, { width: 1440, height: 960 });
  page.on("dialog", d => d.accept());
  if (process.env.CONSOLE_DEBUG) await page.addInitScript(() => { const P = window.RTCPeerConnection; window.__pcs = []; window.RTCPeerConnection = function (...a) { const pc = new P(...a); window.__pcs.push(pc); return pc; }; window.RTCPeerConnection.prototype = P.prototype; });
  if (process.env.CONSOLE_DEBUG) page.on("response", r => { if (r.url().includes("/whep")) console.error("whep", r.status(), r.request().method()); });
  await page.goto(`${cfg.base}/console`);

  // 1. Sign-in: a wrong token is refused on screen and not kept; the right one is kept in
  //    sessionStorage only.
  await page.getByLabel("Operator token").fill("not-the-token-at-all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "That token is not valid" }).waitFor();
  check(await page.evaluate(() => sessionStorage.length === 0), "a refused token was kept");
  seen.axe.signIn = await axe(page);
  await page.getByLabel("Operator token").fill(cfg.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Sessions" }).waitFor();
  const kept = await page.evaluate(() => ({ storage: sessionStorage.getItem("fieldcast.token"), cookie: document.cookie, url: location.href, local: localStorage.length }));
  check(kept.storage === cfg.token && kept.cookie === "" && kept.local === 0 && !kept.url.includes(cfg.token),
    `the token is not kept in sessionStorage alone: ${JSON.stringify(kept)}`);

  // 2. A session: created by its form; its key revealed and read; the OBS panel opened.
  await page.locator("#new-session").getByLabel("Title").fill("Rose jam live");
  await page.getByRole("button", { name: "Create session" }).click();
  const card = page.getByRole("listitem", { name: "Rose jam live" });
  await card.waitFor();
  check((await card.locator("code[data-key]").textContent()).startsWith("•"), "the stream key is shown before it is revealed");
  await card.getByRole("button", { name: "Reveal key" }).click();
  const key = (await card.locator("code[data-key]").textContent()).trim();
  check(/^[0-9a-f]{20,}$/.test(key), `the revealed key is ${key}`);
  await card.getByRole("button", { name: "Hide key" }).click();
  await card.getByText("Set up OBS").click();
  await card.getByRole("img", { name: /QR code of the watch page/ }).waitFor();
  // The other ways in: the phone's QR code (fetched with the token) and the SRT and WHIP URLs.
  await card.getByText("Phone, SRT and WHIP").click();
  await card.getByRole("button", { name: "Show phone QR code" }).click();
  await card.getByRole("img", { name: /QR code to go live from a phone/ }).waitFor();
  check(await card.getByRole("img", { name: /QR code to go live from a phone/ }).evaluate(img => img.complete && img.naturalWidth > 0),
    "the phone QR code did not load");
  check((await card.getByText(/^srt:\/\//).count()) === 0, "the SRT URL (it carries the key) is shown before the key is revealed");
  const session = await page.locator("#current").inputValue();
  await shot(page, `${cfg.docs}/console-sessions.png`);
  seen.axe.sessions = await axe(page);
  step("created", { session, key });
  await next();

  // 3. The live view: the ingest panel turns to connected once the publisher starts.
  await card.getByRole("button", { name: "Open live view" }).click();
  const summary = page.locator("#ingest-summary");
  await page.getByText("Connected, H.264 1280×720 30 fps").waitFor({ timeout: 30000 });
  seen.ingest = await summary.textContent();

  // 4. A product with a translation and a photo, pinned to the show.
  await page.getByRole("link", { name: "Products" }).click();
  const productForm = page.locator("#product-form");
  await productForm.getByLabel("Name", { exact: true }).fill("Rose jam");
  await productForm.getByLabel("Name in Chinese").fill("玫瑰花酱");
  await productForm.getByLabel("Price").fill("59");
  await productForm.getByLabel("Origin").fill("Kashgar");
  await productForm.getByLabel("Photo").setInputFiles(cfg.photo);
  await page.getByRole("button", { name: "Create product" }).click();
  await page.getByRole("img", { name: "Photo of Rose jam" }).waitFor();
  await page.getByRole("button", { name: "Pin Rose jam" }).click();
  await page.getByRole("button", { name: "Unpin Rose jam" }).waitFor({ timeout: 10000 });
  await shot(page, `${cfg.docs}/console-products.png`);
  seen.axe.products = await axe(page);

  // 5. An offer of 5 units, from the live view's form.
  await page.getByRole("link", { name: "Live" }).click();
  const offerForm = page.locator("#new-offer");
  await offerForm.getByLabel("Product").selectOption({ label: "Rose jam" });
  await offerForm.getByLabel("Price").fill("59");
  await offerForm.getByLabel("Quantity").fill("5");
  await page.getByRole("button", { name: "Start offer" }).click();
  const offerItem = page.getByRole("listitem", { name: "Offer of Rose jam" });
  await offerItem.getByText("5 remaining").waitFor({ timeout: 10000 });

  // 5b. Restream: a wrong URL is refused with its reason; a destination nobody listens on
  //     shows "Retrying" with why, and is removed.
  const restream = page.locator("#new-restream");
  await restream.getByLabel("Server URL").fill("http://example.com/live");
  await restream.getByLabel("Stream key").fill("secret-key");
  await page.getByRole("button", { name: "Add destination" }).click();
  seen.restreamRefused = await page.locator("#restream-error").filter({ hasText: "rtmp://" }).textContent({ timeout: 10000 });
  await restream.getByLabel("Server URL").fill("rtmp://127.0.0.1:9/live");
  await page.getByRole("button", { name: "Add destination" }).click();
  const destination = page.getByRole("listitem", { name: "Restream to rtmp://127.0.0.1:9/live" });
  await destination.getByText(/^Retrying/).waitFor({ timeout: 15000 });
  seen.restreamRetrying = await destination.textContent();
  check(!seen.restreamRetrying.includes("secret-key"), `the key is shown: ${seen.restreamRetrying}`);
  await destination.getByRole("button", { name: "Remove rtmp://127.0.0.1:9/live" }).click();
  await destination.waitFor({ state: "detached", timeout: 10000 });
  // Back up to the preview (the restream panel is below the fold).
  await page.evaluate(() => window.scrollTo(0, 0));

  // 6. The card dragged to the top-right corner of the preview.
  await page.waitForFunction(() => document.getElementById("preview").getVideoPlaybackQuality().totalVideoFrames > 30,
    null, { timeout: 20000, polling: 200 }).catch(async e => {
    const video = await page.evaluate(() => { const v = document.getElementById("preview"); return JSON.stringify({ rs: v.readyState, paused: v.paused, w: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames, tracks: v.srcObject && v.srcObject.getTracks().map(t => `${t.kind} ${t.readyState} muted=${t.muted}`) }); });
    if (process.env.CONSOLE_DEBUG) console.error(await page.evaluate(async () => { const out = []; for (const pc of window.__pcs) { const st = await pc.getStats(); const r = [pc.connectionState]; st.forEach(x => { if (x.type === "inbound-rtp") r.push(`${x.kind} pkts=${x.packetsReceived} dec=${x.framesDecoded} kf=${x.keyFramesDecoded} pli=${x.pliCount} nack=${x.nackCount} lost=${x.packetsLost}`); }); out.push(r.join(" | ")); } return out.join("\n"); }));
    throw new Error(`the preview shows no frames (${await page.locator("#preview-state").textContent()}, ${video}): ${e.message}`);
  });
  const box = page.locator('.box[data-kind="product_card"]');
  const from = await box.boundingBox();
  const stage = await page.locator("#stage").boundingBox();
  await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await page.mouse.down();
  await page.mouse.move(stage.x + stage.width - from.width / 2 - 4, stage.y + from.height / 2 + 4, { steps: 12 });
  await page.mouse.up();
  await page.getByText("Product card moved").waitFor();
  await page.waitForTimeout(1500);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, `${cfg.docs}/console-live.png`, { fullPage: true });
  seen.axe.live = await axe(page);
  step("dragged");
  await next();

  // 7. Orders through the public API appear in the table without a reload.
  await page.getByRole("link", { name: "Orders" }).click();
  await page.evaluate(() => { window.notReloaded = true; });
  const offer = (await operator(`/api/v1/sessions/${session}/offers`))[0];
  const first = await publicOrder(session, offer.id, 2, "Aygul Tursun", "+86 138 0000 0101");
  const second = await publicOrder(session, offer.id, 1, "Mehmet Ali", "+86 138 0000 0102");
  await page.getByRole("row", { name: new RegExp(first) }).waitFor({ timeout: 10000 });
  await page.getByRole("row", { name: new RegExp(second) }).waitFor({ timeout: 10000 });
  check(await page.evaluate(() => window.notReloaded === true), "the page was reloaded");

  // A cancel returns the stock.
  await page.getByRole("button", { name: `Cancel ${first}` }).click();
  await page.getByRole("row", { name: new RegExp(`${first}.*cancelled`) }).waitFor({ timeout: 10000 });
  seen.remainingAfterCancel = (await operator(`/api/v1/sessions/${session}/offers/${offer.id}`)).remaining;

  // The CSV export holds the orders.
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  seen.csv = readFileSync(await (await download).path(), "utf8");
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, `${cfg.docs}/console-orders.png`);
  seen.axe.orders = await axe(page);
  seen.orders = [first, second];

  // A big show's orders come a page at a time: 55 more make two pages, newest first.
  const bulk = await fetch(`${cfg.base}/api/v1/sessions/${session}/offers`, {
    method: "POST",
    headers: { Authorization: `Bearer ${cfg.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ product_id: offer.product_id, unit_amount: 100, quantity: 100 }),
  }).then(r => r.json());
  let last = null;
  for (let i = 0; i < 55; i++) {
    last = await publicOrder(session, bulk.id, 1, `Buyer ${i}`, `+86 137 0000 ${String(1000 + i)}`);
  }
  await page.getByRole("row", { name: new RegExp(last) }).waitFor({ timeout: 10000 });
  const pager = page.getByRole("navigation", { name: "Order pages" });
  seen.pages = { first: await pager.getByRole("status").textContent() };
  check(await pager.getByRole("button", { name: "Newer" }).isDisabled(), "Newer is enabled on the newest page");
  await pager.getByRole("button", { name: "Older" }).click();
  await page.getByRole("row", { name: new RegExp(first) }).waitFor({ timeout: 10000 });
  seen.pages.second = await pager.getByRole("status").textContent();
  seen.pages.secondRows = await page.locator("#order-table tbody tr").count();
  check(await pager.getByRole("button", { name: "Older" }).isDisabled(), "Older is enabled on the oldest page");
  await pager.getByRole("button", { name: "Newer" }).click();
  await page.getByRole("row", { name: new RegExp(last) }).waitFor({ timeout: 10000 });
  seen.axe.ordersPaged = await axe(page);

  // 8. One switch hides every layer.
  await page.getByRole("link", { name: "Live" }).click();
  await page.getByRole("switch", { name: "Hide all overlays" }).check();
  await page.waitForFunction(async s => {
    const res = await fetch(`/api/v1/sessions/${s}/overlays`, { headers: { Authorization: `Bearer ${sessionStorage.getItem("fieldcast.token")}` } });
    return (await res.json()).hidden === true;
  }, session, { timeout: 10000, polling: 300 });
  step("hidden");
  await next();
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
