// The demo page at `/` in headless Chromium, against a running thumbd.
//
//   node tests/browser/demo.test.mjs http://127.0.0.1:8080 target/browser/demo.png
//
// Checks that every <img> loads and is as wide as its URL asked, at device
// scale factors 1 and 2 (where srcset's 2x candidate must be chosen); that the
// URL builder shows a thumbnail with its headers, and a problem for a bad
// request; that the page asks nothing of any other origin. Saves a full-page
// screenshot. Exits non-zero with the reason on any failure.
//
// Uses the system Chromium (Debian's `chromium` package); set CHROMIUM to use
// another binary. Never downloads a browser.

import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TIMEOUT_MS = 120_000;
// What the page shows for a header the answer did not carry.
const NOT_SENT = "(not sent)";

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node demo.test.mjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}
const origin = new URL(base).origin;
const home = new URL("/", base).href;

/** Whether a request stays on thumbd's origin (data: URLs are no request). */
function sameOrigin(url) {
  if (url.startsWith("data:")) return true;
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}

/** Opens the page in a fresh context and waits until every <img> is done. */
async function open(browser, deviceScaleFactor, log) {
  const context = await browser.newContext({
    deviceScaleFactor,
    viewport: { width: 1280, height: 900 },
    colorScheme: "light",
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("request", (req) => {
    if (!sameOrigin(req.url())) log.foreign.push(req.url());
  });
  page.on("pageerror", (e) => log.pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") log.console.push(m.text());
  });
  const res = await page.goto(home, { waitUntil: "load" });
  check(res, `no answer for ${home}`);
  check(res.status() === 200, `GET / answered ${res.status()}, not 200 (is server.demo_page on?)`);
  const type = res.headers()["content-type"] || "";
  check(type.startsWith("text/html"), `GET / has Content-Type "${type}", not text/html`);
  await page.waitForFunction(
    () => [...document.images].every((i) => !i.getAttribute("src") || i.complete),
    null,
    { timeout: TIMEOUT_MS },
  );
  return { context, page };
}

/** Every <img> with a src: how it loaded, and the pixel width of what it shows. */
async function images(page) {
  return page.$$eval("img[src]", (imgs) =>
    Promise.all(
      imgs.map(async (img) => {
        // naturalWidth is density-corrected for srcset candidates; a plain
        // Image of the same URL (from the memory cache) gives its pixels.
        let pixelWidth = 0;
        if (img.complete && img.naturalWidth > 0) {
          const probe = new Image();
          probe.src = img.currentSrc;
          try {
            await probe.decode();
            pixelWidth = probe.naturalWidth;
          } catch {
            pixelWidth = -1;
          }
        }
        return {
          src: img.getAttribute("src"),
          srcset: img.getAttribute("srcset"),
          currentSrc: img.currentSrc,
          alt: img.alt,
          complete: img.complete,
          naturalWidth: img.naturalWidth,
          pixelWidth,
        };
      }),
    ),
  );
}

/** Checks the page's pictures at one device scale factor; returns how many. */
async function checkImages(page, dpr) {
  const imgs = await images(page);
  const empty = await page.locator(".empty").allTextContents();
  check(empty.length === 0, `the page says: ${empty.join(" / ")}`);
  const withSrcset = imgs.filter((i) => i.srcset);
  check(withSrcset.length >= 3, `expected gallery pictures with srcset, found ${withSrcset.length} (of ${imgs.length} <img>)`);
  check(
    imgs.some((i) => /[?&]token=/.test(i.src)),
    "no picture of the private sample (a src with ?token=) on the page",
  );
  for (const img of imgs) {
    const where = `<img src="${img.src}"> at device scale factor ${dpr}`;
    check(img.alt.trim() !== "", `${where} has no alt text`);
    check(img.complete && img.naturalWidth > 0, `${where} did not load (complete=${img.complete}, naturalWidth=${img.naturalWidth})`);
    check(sameOrigin(img.currentSrc), `${where} shows ${img.currentSrc}, from another origin`);
    const asked = Number(new URL(img.currentSrc).searchParams.get("width"));
    check(asked > 0, `${where}: its current URL ${img.currentSrc} asks for no width`);
    check(img.pixelWidth === asked, `${where}: ${img.currentSrc} asked for width ${asked} but the picture is ${img.pixelWidth} pixels wide`);
    if (img.srcset) {
      const want = dpr === 1 ? 240 : 480;
      check(asked === want, `${where}: the browser chose ${img.currentSrc}, not the ${dpr}x candidate (width=${want}) of srcset "${img.srcset}"`);
      // A 2x candidate 480 pixels wide is 240 CSS pixels wide, as 1x is.
      check(img.naturalWidth === 240, `${where}: naturalWidth ${img.naturalWidth}, expected 240 (density-corrected)`);
    } else {
      check(img.naturalWidth === asked, `${where}: naturalWidth ${img.naturalWidth}, expected ${asked}`);
    }
  }
  return imgs.length;
}

/** Submits the URL builder and waits for a result or a problem. */
async function submit(page, fields) {
  for (const [id, value] of Object.entries(fields)) {
    const el = page.locator(`#${id}`);
    if ((await el.evaluate((e) => e.tagName)) === "SELECT") await el.selectOption(value);
    else await el.fill(value);
  }
  const before = Number((await page.locator("#builder").getAttribute("data-done")) || 0);
  await page.click("#f-submit");
  // The page counts the requests it has finished.
  await page.waitForFunction((n) => Number(document.getElementById("builder").dataset.done || 0) > n, before);
  const text = (id) => page.locator(`#${id}`).textContent().then((t) => (t || "").trim());
  return {
    result: await page.locator("#result").isVisible(),
    problem: await page.locator("#problem").isVisible(),
    text,
  };
}

async function checkForm(page) {
  const good = {
    "f-org": "demo",
    "f-env": "local",
    "f-key": "portrait.mp4",
    "f-width": "200",
    "f-height": "",
    "f-time": "1",
    "f-fit": "",
    "f-format": "png",
    "f-quality": "",
    "f-token": "",
  };
  const expectPicture = async (outcome, cache) => {
    const problem = outcome.problem ? `${await outcome.text("problem-title")}: ${await outcome.text("problem-detail")}` : "";
    check(outcome.result && !outcome.problem, `the form's request for portrait.mp4 width 200 png showed no picture ${problem}`);
    const img = await page.locator("#result-img").evaluate((i) => ({ complete: i.complete, w: i.naturalWidth, src: i.src }));
    check(img.complete && img.w === 200, `the form's picture is ${img.w} pixels wide (complete=${img.complete}), expected 200`);
    check(img.src.startsWith("blob:"), `the form's picture is ${img.src}, not an object URL`);
    const url = await page.locator("#result-url").getAttribute("href");
    check(/portrait\.mp4\.png\?/.test(url) && /[?&]width=200(&|$)/.test(url) && /[?&]timeStamp=1(&|$)/.test(url), `the form built ${url}`);
    check((await outcome.text("result-type")) === "image/png", `Content-Type shown: "${await outcome.text("result-type")}"`);
    for (const [id, header] of [["result-time", "X-Thumbnail-Time"], ["result-timing", "Server-Timing"]]) {
      const value = await outcome.text(id);
      check(value !== "" && value !== NOT_SENT, `${header} shown for the form's picture: "${value}"`);
    }
    const shownCache = await outcome.text("result-cache");
    check(cache === null ? /^(hit|miss)$/.test(shownCache) : shownCache === cache, `X-Thumbnail-Cache shown: "${shownCache}", expected "${cache}"`);
    const bytes = await outcome.text("result-bytes");
    check(/^[1-9][\d,]* bytes/.test(bytes), `byte size shown: "${bytes}"`);
    const size = await outcome.text("result-size");
    check(size.startsWith("200 \u00d7 "), `picture size shown: "${size}"`);
  };

  await expectPicture(await submit(page, good), null);

  const bad = await submit(page, { "f-width": "99999" });
  check(bad.problem && !bad.result, "a request with width=99999 showed no problem");
  const title = await bad.text("problem-title");
  const detail = await bad.text("problem-detail");
  check(/^400\b/.test(title) && /invalid request/i.test(title), `the problem's title is "${title}", expected "400 Invalid request"`);
  const errors = await page.locator("#problem-errors li").allTextContents();
  const said = [detail, ...errors].join(" / ");
  check(said.includes("query.width") && said.includes("99999"), `the problem shown ("${said}") does not name query.width and the value 99999`);

  // The same picture again comes from thumbd's cache, and the page says so.
  await expectPicture(await submit(page, { "f-width": "200" }), "hit");
}

async function main() {
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 60_000,
  });
  const log = { foreign: [], pageErrors: [], console: [] };
  try {
    const hi = await open(browser, 2, log);
    const hiCount = await checkImages(hi.page, 2);
    await hi.context.close();

    const { context, page } = await open(browser, 1, log);
    const count = await checkImages(page, 1);
    await checkForm(page);
    mkdirSync(dirname(resolve(screenshot)), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    await context.close();

    check(log.pageErrors.length === 0, `the page threw: ${log.pageErrors.join(" | ")}`);
    check(log.foreign.length === 0, `the page requested other origins: ${log.foreign.join(", ")}`);
    console.log(
      `demo page ok: ${count} pictures at 1x and ${hiCount} at 2x loaded at the widths asked, ` +
        `the form's picture and problem shown, nothing asked of other origins; ` +
        `screenshot ${screenshot} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  } catch (e) {
    if (log.console.length) console.error(`browser console errors:\n  ${log.console.join("\n  ")}`);
    throw e;
  } finally {
    await browser.close();
  }
}

const guard = setTimeout(() => {
  console.error(`demo page test FAILED: still running after ${(3 * TIMEOUT_MS) / 1000} s`);
  process.exit(1);
}, 3 * TIMEOUT_MS);

main().then(
  () => clearTimeout(guard),
  (e) => {
    console.error(`demo page test FAILED: ${e instanceof Failure ? e.message : e.stack || e}`);
    process.exit(1);
  },
);
