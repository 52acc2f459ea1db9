// The live state refused, as a crowd behind one address can meet it: the first three reads of
// /state answer 429 with Retry-After. The page must say that it is reconnecting to the shop,
// keep asking, and then show the product with an enabled Buy button and drop the notice.
// Prints one JSON line of what it saw; throws (exit 1) at the first thing that is wrong.
//
// Usage: node state-retry.mjs '{"base", "session", "shots"}'
import { launch, viewer, check, shot } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const browser = await launch();
const seen = { reads: [] };
try {
  const page = await viewer(browser);
  let refused = 0;
  await page.route(/\/api\/v1\/sessions\/[^/]+\/state/, async route => {
    seen.reads.push(Date.now());
    if (refused < 3) {
      refused++;
      await route.fulfill({ status: 429, headers: { "Retry-After": "1", "Content-Type": "application/problem+json" },
        body: JSON.stringify({ title: "Too Many Requests", status: 429, detail: "too many" }) });
    } else {
      await route.continue();
    }
  });
  await page.goto(`${cfg.base}/watch/${cfg.session}`);
  const notice = page.getByRole("status").filter({ hasText: "Reconnecting to the shop" });
  await notice.waitFor({ timeout: 10000 });
  await shot(page, `${cfg.shots}/watch-shop-reconnecting.png`);
  const buy = page.getByRole("button", { name: "Buy now" });
  await buy.waitFor({ timeout: 15000 });
  check(await buy.isEnabled(), "the Buy button is not enabled once the state came");
  await notice.waitFor({ state: "hidden", timeout: 5000 });
  const gaps = seen.reads.slice(1, 4).map((t, i) => t - seen.reads[i]);
  seen.retryGapsMs = gaps;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
