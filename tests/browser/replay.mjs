// The shoppable replay in Debian's headless Chromium, driven by its labels and roles: the
// chapters list one button per product the show pinned; seeking to each shows that product
// in the panel with its price on the show; the product with an offer left open sells from
// the replay; axe-core finds nothing serious. Screenshots for the docs, on a desktop and on
// a phone. Prints one JSON line of what it saw; throws (exit 1) at the first thing wrong.
//
// Usage: node replay.mjs '{"base", "session", "chapters": [{"name", "showPrice"}], "buy": "name",
//                          "screenshots": "dir"}'
import { launch, viewer, check, fillSheet, shot, axe } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const seen = { chapters: [] };
const browser = await launch();
try {
  const page = await viewer(browser, { width: 1280, height: 800 });
  await page.goto(`${cfg.base}/replay/${cfg.session}`);
  await page.getByRole("status").filter({ hasText: "Replay" }).waitFor({ timeout: 10000 });
  const chapters = page.getByRole("navigation", { name: "Chapters" });
  await chapters.waitFor({ timeout: 15000 });
  const buttons = chapters.getByRole("button");
  seen.chapterButtons = await buttons.allTextContents();
  check(seen.chapterButtons.length === cfg.chapters.length,
    `${seen.chapterButtons.length} chapters (${seen.chapterButtons.join(" | ")}), expected ${cfg.chapters.length}`);
  for (const [i, chapter] of cfg.chapters.entries()) {
    const button = chapters.getByRole("button", { name: new RegExp(chapter.name) });
    check(await button.count() === 1, `no chapter named ${chapter.name}: ${seen.chapterButtons.join(" | ")}`);
    await button.click();
    // The panel names the chapter's product, with its price on the show.
    const panel = page.getByRole("region", { name: chapter.name });
    await panel.waitFor({ timeout: 10000 }).catch(async () => {
      throw new Error(`after the chapter ${chapter.name}, the panel shows ${await page.locator("#p-name").textContent()}`);
    });
    const price = new RegExp(`On the show: .*${chapter.showPrice.replace(".", "\\.")}`);
    await panel.getByText(price).waitFor({ timeout: 5000 }).catch(async () => {
      throw new Error(`${chapter.name}: the panel says ${await page.locator("#p-show").textContent()}`);
    });
    // The video plays on from the chapter.
    await page.waitForFunction(() => { const v = document.querySelector("video"); return !v.seeking && v.readyState >= 3; },
      null, { timeout: 10000 });
    const state = {
      name: chapter.name,
      time: await page.evaluate(() => document.querySelector("video").currentTime),
      current: await button.getAttribute("aria-current"),
      buyEnabled: await page.getByRole("button", { name: "Buy now" }).isEnabled(),
      stock: await page.locator("#p-left").textContent(),
    };
    check(state.current === "true", `${chapter.name}: its chapter is not marked current`);
    seen.chapters.push(state);
    if (i === 0) await shot(page, `${cfg.screenshots}/replay.png`);
  }
  seen.axe = await axe(page);
  check(seen.axe.length === 0, `axe: ${seen.axe.join("; ")}`);

  // Buying from the replay: the product with an offer still open.
  await chapters.getByRole("button", { name: new RegExp(cfg.buy) }).click();
  await page.getByRole("region", { name: cfg.buy }).waitFor({ timeout: 10000 });
  const buy = page.getByRole("button", { name: "Buy now" });
  await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 10000 });
  await buy.click();
  await fillSheet(page, { quantity: 1, phone: "+86 138 0000 0901" });
  await shot(page, `${cfg.screenshots}/replay-buy.png`);
  await page.getByRole("button", { name: /^Buy 1 for/ }).click();
  const confirmation = page.getByText(/^Order ord_\w+ confirmed/);
  await confirmation.waitFor({ timeout: 15000 });
  seen.order = (await confirmation.textContent()).match(/ord_\w+/)[0];

  // On a phone, in Chinese.
  const phone = await viewer(browser, { width: 390, height: 844, locale: "zh-CN" });
  await phone.goto(`${cfg.base}/replay/${cfg.session}`);
  await phone.getByRole("navigation", { name: "章节" }).waitFor({ timeout: 15000 });
  await phone.getByRole("navigation", { name: "章节" }).getByRole("button").first().click();
  await phone.locator("#p-show").filter({ hasText: "直播时价格" }).waitFor({ timeout: 10000 });
  await shot(phone, `${cfg.screenshots}/replay-phone-zh.png`, { fullPage: true });
  seen.phoneAxe = await axe(phone);
  check(seen.phoneAxe.length === 0, `axe on the phone: ${seen.phoneAxe.join("; ")}`);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
