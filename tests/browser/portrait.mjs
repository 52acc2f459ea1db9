// A phone held upright (390×844) watching an upright (720×1280) stream: the video must
// cover most of the screen, with the panel floating over it. Saves the screenshots the
// README shows, with the sheet closed and open. Prints one JSON line.
//
// Usage: node portrait.mjs URL DOCS_DIR
import { launch, viewer, check, waitFrames, axe, shot } from "./lib.mjs";

const [url, docs] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await viewer(browser, { width: 390, height: 844 });
  await page.goto(url);
  await waitFrames(page, 30);
  await page.waitForFunction(() => document.documentElement.classList.contains("upright"), null, { timeout: 10000 });
  await page.getByRole("button", { name: "Buy now" }).waitFor();
  await page.waitForFunction(() => document.getElementById("p-photo").complete
    && document.getElementById("p-photo").naturalWidth > 0);
  await page.waitForTimeout(500);
  const layout = await page.evaluate(() => {
    const v = document.querySelector("video");
    const box = v.getBoundingClientRect();
    // The picture inside the element (object-fit: contain).
    const shown = Math.min(box.height, box.width * v.videoHeight / v.videoWidth);
    const panel = document.getElementById("panel").getBoundingClientRect();
    return {
      videoWidth: v.videoWidth, videoHeight: v.videoHeight,
      pictureHeight: shown, viewportHeight: innerHeight,
      panelTop: panel.top, panelBottom: panel.bottom, pictureBottom: box.top + shown,
    };
  });
  await shot(page, `${docs}/watch-portrait.png`);
  await page.getByRole("button", { name: "Buy now" }).click();
  await page.getByRole("dialog").waitFor();
  await page.getByLabel("Your name").fill("Aygul Tursun");
  await page.getByLabel("City").fill("Kashgar");
  await page.waitForTimeout(400);
  await shot(page, `${docs}/watch-portrait-sheet.png`);
  layout.axe = await axe(page);
  check(layout.videoHeight > layout.videoWidth, `the stream is not upright: ${JSON.stringify(layout)}`);
  console.log(JSON.stringify(layout));
} finally {
  await browser.close();
}
