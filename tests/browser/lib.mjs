// Shared by the page tests: Debian's Chromium through playwright-core (no browser
// download), waiting helpers, and axe-core run inside a page.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";

const require = createRequire(import.meta.url);

/**
 * Content-Security-Policy violations any page of this run reported in its console. The pages
 * run under their real policy (no bypass): a violation fails the script at exit, whatever
 * else it checked.
 */
const cspViolations = [];
process.on("exit", () => {
  if (cspViolations.length) {
    console.error(`Content-Security-Policy violations:\n${cspViolations.join("\n")}`);
    process.exitCode = 1;
  }
});

function watchCsp(context) {
  context.on("console", message => {
    const text = message.text();
    if (/Content Security Policy/i.test(text)) cspViolations.push(`${message.page()?.url() ?? "?"}: ${text}`);
  });
}

export async function launch(extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      ...extraArgs,
    ],
  });
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async options => {
    const context = await newContext(options);
    watchCsp(context);
    return context;
  };
  return browser;
}

/** A page in its own context (its own storage), sized and in a language like a viewer's. */
export async function viewer(browser, { width = 390, height = 844, locale = "en-US" } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on("pageerror", e => { console.error(`page error: ${e.message}`); });
  return page;
}

/**
 * A screenshot of the page as it is now. Playwright's own first waits for the page's fonts
 * (`document.fonts.ready`); in a loaded browser that wait has hung for 30 s on a page that
 * answered everything else (a crowd of forty pages sharing four renderers, in CI). So it gets
 * 15 s, and then the picture is taken straight from the browser (DevTools'
 * Page.captureScreenshot, which waits for nothing). A page that cannot give even that fails.
 */
export async function shot(page, path, { fullPage = false } = {}) {
  try {
    await page.screenshot({ path, fullPage, timeout: 15000 });
  } catch (e) {
    if (e.name !== "TimeoutError") throw e;
    console.error(`screenshot of ${page.url()} timed out (${e.message.split("\n")[0]}); taking it through DevTools`);
    const cdp = await page.context().newCDPSession(page);
    const { data } = await cdp.send("Page.captureScreenshot", { format: "png", captureBeyondViewport: fullPage });
    writeFileSync(path, Buffer.from(data, "base64"));
    await cdp.detach();
  }
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Decoded video frames (HTMLVideoElement.getVideoPlaybackQuality). */
export function frames(page) {
  return page.evaluate(() => document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames);
}

export async function waitFrames(page, atLeast, timeout = 20000) {
  await page.waitForFunction(n => document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames >= n,
    atLeast, { timeout, polling: 200 });
  return frames(page);
}

/** The player's state: connecting, live, right_back, ended, reconnecting, full. */
export function playerState(page) {
  return page.evaluate(() => document.getElementById("badge").dataset.state);
}

export async function waitPlayerState(page, state, timeout = 20000) {
  await page.waitForFunction(s => document.getElementById("badge").dataset.state === s, state,
    { timeout, polling: 200 });
}

/** Serious and critical axe-core violations on the page as it is now. */
export async function axe(page) {
  // Evaluated by DevTools, which the page's policy does not govern (a script tag would be an
  // inline script, which it forbids).
  if (!(await page.evaluate(() => !!window.axe))) {
    await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
  }
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", ")}`);
}

/** Fills the buy sheet by its labels. */
export async function fillSheet(page, { quantity, name = "Aygul Tursun", phone, city = "Kashgar" }) {
  await page.getByLabel("Quantity").fill(String(quantity));
  await page.getByLabel("Your name").fill(name);
  await page.getByLabel("Phone").fill(phone);
  await page.getByLabel("Address").fill("12 Orchard Lane");
  await page.getByLabel("City").fill(city);
}

export async function api(base, token, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}
