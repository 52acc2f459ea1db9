// The phone's publish page, with Chromium's fake camera and microphone, driven by its labels.
// Line protocol: one JSON line per step, then a line on stdin ("next") before the next.
//   pages    the page in English, Chinese and Uyghur (screenshots, axe), the preview playing
//   live     "Go live" pressed: the badge says Live, the connection is up
//   busy     a second phone with the same key is refused ("another device is live")
//   refused  a phone with a wrong key is refused
//   stopped  "Stop" pressed: the badge says Stopped
//
// Usage: node studio.mjs STUDIO_URL(with #key=) DOCS_DIR
import { createInterface } from "node:readline";
import { launch, viewer, check, axe, shot } from "./lib.mjs";

const [url, docs] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => { await lines.next(); };
const say = (step, more = {}) => console.log(JSON.stringify({ step, ...more }));
const browser = await launch(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);

async function phone(locale, href = url) {
  const page = await viewer(browser, { width: 390, height: 844, locale });
  await page.context().grantPermissions(["camera", "microphone"]);
  await page.goto(href);
  await page.waitForFunction(() => document.getElementById("preview").readyState >= 2, null, { timeout: 15000 });
  return page;
}
const badge = page => page.locator("#badge").getAttribute("data-state");

try {
  // The three languages, as a host's phone shows them.
  const violations = {};
  for (const [locale, name] of [["zh-CN", "zh"], ["ug", "ug"]]) {
    const page = await phone(locale);
    check(await page.locator("html").getAttribute("lang") === name, `${locale}: not in ${name}`);
    await page.waitForTimeout(300);
    await shot(page, `${docs}/studio-${name}.png`);
    violations[name] = await axe(page);
    await page.context().close();
  }
  const host = await phone("en-US");
  check(!(await host.evaluate(() => location.hash)), "the key stays in the address bar");
  await host.waitForTimeout(300);
  await shot(host, `${docs}/studio-en.png`);
  violations.en = await axe(host);
  say("pages", { violations });
  await next();

  await host.getByRole("button", { name: "Go live" }).click();
  await host.waitForFunction(() => document.getElementById("badge").dataset.state === "live", null, { timeout: 20000 });
  const codec = await host.evaluate(async () => {
    const stats = await window.fieldcastStudio.pc.getStats();
    for (const s of stats.values()) if (s.type === "outbound-rtp" && s.kind === "video" && s.codecId) return stats.get(s.codecId).mimeType;
    return null;
  });
  await host.waitForTimeout(1500);
  await shot(host, `${docs}/studio-live.png`);
  say("live", { badge: await badge(host), codec, timer: await host.locator("#elapsed").textContent() });
  await next();

  const second = await phone("en-US");
  await second.getByRole("button", { name: "Go live" }).click();
  await second.getByRole("alert").filter({ hasText: "Another device is live" }).waitFor({ timeout: 15000 });
  say("busy", { badge: await badge(second), host: await badge(host) });
  await second.context().close();
  await next();

  const stranger = await phone("en-US", url.replace(/#key=.*/, "#key=not-the-key"));
  await stranger.getByRole("button", { name: "Go live" }).click();
  await stranger.getByRole("alert").filter({ hasText: "refused" }).waitFor({ timeout: 15000 });
  say("refused", { badge: await badge(stranger) });
  await stranger.context().close();
  await next();

  await host.getByRole("button", { name: "Stop" }).click();
  await host.waitForFunction(() => document.getElementById("badge").dataset.state === "stopped", null, { timeout: 10000 });
  say("stopped", { badge: await badge(host) });
  await next();
} finally {
  await browser.close();
}
