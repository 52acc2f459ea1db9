// Selling through the watch page, as viewers do it, in headless Chromium. Prints one JSON
// line of what it saw; throws (exit 1) with a sentence at the first thing that is wrong.
//
// Usage: node buy.mjs '{"base", "session", "token", "offer", "product", "docs"}'
//   offer: a live offer of 5 units of the pinned product; product: its names by language.
import { launch, viewer, check, waitFrames, fillSheet, axe, api, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const url = `${cfg.base}/watch/${cfg.session}`;
const seen = { axe: {} };
const browser = await launch();

async function buy(page, quantity, phone, how = "click") {
  await page.getByRole("button", { name: "Buy now" }).click();
  await page.getByRole("dialog").waitFor();
  await fillSheet(page, { quantity, phone });
  const submit = page.getByRole("button", { name: new RegExp(`^Buy ${quantity} for`) });
  if (how === "double") await submit.dblclick();
  else await submit.click();
  const confirmation = page.getByText(/^Order ord_\w+ confirmed/);
  await confirmation.waitFor({ timeout: 15000 });
  return (await confirmation.textContent()).match(/ord_\w+/)[0];
}

try {
  // 1. A desktop viewer: the video plays, the panel shows the product and the offer.
  const a = await viewer(browser, { width: 1280, height: 800 });
  await a.goto(url);
  seen.frames = await waitFrames(a, 30);
  await a.getByRole("heading", { name: cfg.product.en, exact: true }).waitFor();
  await a.getByText("5 left").waitFor();
  await a.waitForFunction(() => document.getElementById("p-photo").complete
    && document.getElementById("p-photo").naturalWidth > 0);
  check(await a.getByRole("button", { name: "Buy now" }).isEnabled(), "the buy button is not enabled during a live offer");
  await shot(a, `${cfg.docs}/watch-landscape.png`);
  seen.axe.landscape = await axe(a);

  // It buys 2 through the sheet and sees the confirmation and the sold counter.
  seen.orderA = await buy(a, 2, "+86 138 0000 0001");
  await a.waitForFunction(() => document.getElementById("n-sold").textContent === "2", null, { timeout: 10000 });
  seen.soldShownA = await a.locator("#n-sold").textContent();
  seen.axe.sheet = await axe(a);
  await a.getByRole("button", { name: "Close" }).click();

  // 2. A second viewer (a phone) buys the other 3, with a double tap on the button.
  const b = await viewer(browser);
  await b.goto(url);
  await b.getByText("3 left").waitFor({ timeout: 15000 });
  seen.orderB = await buy(b, 3, "+86 138 0000 0002", "double");

  // 3. A third sees "sold out" in its panel and cannot open the sheet.
  const c = await viewer(browser);
  await c.goto(url);
  await c.locator("#p-left", { hasText: "Sold out" }).waitFor({ timeout: 15000 });
  const buyC = c.locator("#buy");
  check(await buyC.isDisabled(), "the buy button is enabled on a sold-out offer");
  await buyC.click({ force: true, timeout: 2000 }).catch(() => {});
  check(!(await c.evaluate(() => document.getElementById("sheet").open)), "the sheet opened on a sold-out offer");
  seen.soldOutShown = await c.locator("#p-left").textContent();

  // 4. A new offer; the answers to this viewer's buy are lost on the way back (the server
  //    stored the order with the first). The page sends the same key again by itself (3
  //    times), then says "Network error"; "Try again" must get the same order, not a second.
  const second = await api(cfg.base, cfg.token, "POST", `/api/v1/sessions/${cfg.session}/offers`,
    { product_id: cfg.product.id, unit_amount: 3900, quantity: 5 });
  check(second.status === 201, `second offer: HTTP ${second.status}`);
  seen.offer2 = second.body.id;
  const d = await viewer(browser);
  let dropped = null;
  const lostKeys = [];
  await d.route("**/orders", async route => {
    if (lostKeys.length < 4 && route.request().method() === "POST") {
      const response = await route.fetch();
      const key = route.request().headers()["idempotency-key"];
      if (dropped === null) dropped = { status: response.status(), body: await response.json(), key };
      lostKeys.push(key);
      await route.abort("connectionreset");
    } else {
      seen.retryKey = route.request().headers()["idempotency-key"];
      await route.continue();
    }
  });
  await d.goto(url);
  await d.getByText("5 left").waitFor({ timeout: 15000 });
  await d.getByRole("button", { name: "Buy now" }).click();
  await fillSheet(d, { quantity: 1, phone: "+86 138 0000 0003" });
  await d.getByRole("button", { name: /^Buy 1 for/ }).click();
  await d.getByText(/^Still confirming your order/).waitFor({ timeout: 15000 });
  await d.getByText(/^Network error/).waitFor({ timeout: 30000 });
  check(dropped && dropped.status === 201, `the dropped answer was not a stored order: ${JSON.stringify(dropped)}`);
  check(lostKeys.length === 4 && lostKeys.every(k => k === dropped.key),
    `the page's own retries changed the key or did not happen: ${JSON.stringify(lostKeys)}`);
  await d.getByRole("button", { name: "Try again" }).click();
  const confirmation = d.getByText(/^Order ord_\w+ confirmed/);
  await confirmation.waitFor({ timeout: 15000 });
  seen.droppedOrder = dropped.body.id;
  seen.droppedKey = dropped.key;
  seen.lostAnswers = lostKeys.length;
  seen.retriedOrder = (await confirmation.textContent()).match(/ord_\w+/)[0];

  // 4b. Embedded in a shop's page (another origin's document): the chromeless player sells,
  //     and the shop hears of the order through postMessage.
  const shop = await viewer(browser);
  await shop.setContent(`<h1>Our shop</h1><iframe title="Live sale" src="${url}?embed=1" width="390" height="700"></iframe>`);
  await shop.evaluate(() => { window.orders = []; addEventListener("message", e => window.orders.push(e.data)); });
  const frame = shop.frameLocator("iframe");
  await frame.getByText("4 left").waitFor({ timeout: 15000 });
  seen.embedHeaderShown = await frame.locator("#top").isVisible();
  await frame.getByRole("button", { name: "Buy now" }).click();
  await fillSheet(frame, { quantity: 1, phone: "+86 138 0000 0004" });
  await frame.getByRole("button", { name: /^Buy 1 for/ }).click();
  await frame.getByText(/^Order ord_\w+ confirmed/).waitFor({ timeout: 15000 });
  await shop.waitForFunction(() => window.orders.length > 0, null, { timeout: 5000 });
  seen.shopHeard = await shop.evaluate(() => window.orders[0]);

  // 4c. Refusals get their sentence: over the per-buyer limit, and fewer left than asked
  //     (the stock went while the sheet was open).
  const third = await api(cfg.base, cfg.token, "POST", `/api/v1/sessions/${cfg.session}/offers`,
    { product_id: cfg.product.id, unit_amount: 3900, quantity: 6, per_buyer_limit: 2 });
  check(third.status === 201, `third offer: HTTP ${third.status}`);
  // The other offers are over: this one is the panel's.
  for (const other of [seen.offer2]) {
    await api(cfg.base, cfg.token, "POST", `/api/v1/sessions/${cfg.session}/offers/${other}/end`);
  }
  const e = await viewer(browser);
  await e.goto(url);
  await e.getByText("6 left").waitFor({ timeout: 15000 });
  seen.orderE = await buy(e, 2, "+86 138 0000 0005");
  await e.getByRole("button", { name: "Close" }).click();
  await e.getByRole("button", { name: "Buy now" }).click();
  await fillSheet(e, { quantity: 1, phone: "+86 138 0000 0005" });
  await e.getByRole("button", { name: /^Buy 1 for/ }).click();
  await e.getByText(/^You can buy at most/).waitFor({ timeout: 15000 });
  seen.overLimit = await e.locator("#outcome").textContent();
  await e.getByRole("button", { name: "Close" }).click();
  await e.getByRole("button", { name: "Buy now" }).click();
  await fillSheet(e, { quantity: 2, phone: "+86 138 0000 0006" });
  for (const [phone, quantity] of [["+86 138 0000 0007", 2], ["+86 138 0000 0008", 1]]) {
    const res = await fetch(`${cfg.base}/api/v1/sessions/${cfg.session}/orders`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify({ offer_id: third.body.id, quantity,
        buyer: { name: "Other buyer", phone, address: "1 Road", city: "Aksu" } }),
    });
    check(res.status === 201, `another buyer's order: HTTP ${res.status}`);
  }
  await e.getByRole("button", { name: /^Buy 2 for/ }).click();
  await e.getByText(/^Only 1 left/).waitFor({ timeout: 15000 });
  seen.onlyLeft = await e.locator("#outcome").textContent();
  seen.offer3 = third.body.id;

  // 5. Languages: from Accept-Language; Uyghur is right to left and names the product in it.
  const zh = await viewer(browser, { locale: "zh-CN" });
  await zh.goto(url);
  await zh.getByRole("button", { name: "立即购买" }).waitFor({ timeout: 15000 });
  seen.zh = { lang: await zh.evaluate(() => document.documentElement.lang), name: await zh.locator("#p-name").textContent() };
  const ug = await viewer(browser, { locale: "ug" });
  await ug.goto(url);
  await ug.getByRole("heading", { name: cfg.product.ug, exact: true }).waitFor({ timeout: 15000 });
  seen.ug = {
    dir: await ug.evaluate(() => document.documentElement.dir),
    name: await ug.locator("#p-name").textContent(),
    // Mirrored: the language switcher sits at the left edge, the badge at the right.
    switcherLeft: (await ug.locator("#lang").boundingBox()).x,
    badgeLeft: (await ug.locator("#badge").boundingBox()).x,
  };
  seen.axe.uyghur = await axe(ug);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
