// Render an HTML report in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core: no browser download) and print what the page showed, as JSON:
//   node tests/browser/render.mjs REPORT.html SCREENSHOT.png
// The network is cut: any request that is not the file itself is recorded and aborted, so
// a report that needs the network shows up as `requests`.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [report, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "sfn-mlops-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  chromiumSandbox: false, // --no-sandbox: CI runs as root
  viewport: { width: 1400, height: 900 },
  args: [
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});
const out = { console: [], errors: [], requests: [], plots: [], title: "", text: "" };
try {
  const url = pathToFileURL(resolve(report)).href;
  await context.route("**/*", (route) => {
    const u = route.request().url();
    if (u === url) return route.continue();
    out.requests.push(u);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") out.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => out.errors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });
  out.title = await page.title();
  out.text = await page.evaluate(() => document.body.innerText);
  // every figure: its size on the page and how many shapes it drew
  out.plots = await page.evaluate(() =>
    [...document.querySelectorAll("svg.plot")].map((svg) => {
      const box = svg.getBoundingClientRect();
      return {
        id: svg.dataset.plot,
        width: box.width,
        height: box.height,
        shapes: svg.querySelectorAll("path, rect, use, polygon, polyline, image").length,
        texts: svg.querySelectorAll("text").length,
      };
    }),
  );
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
