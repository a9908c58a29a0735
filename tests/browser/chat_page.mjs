// Drives the chat page in a real headless Chromium (Debian's, via playwright-core) against a running API.
//   node tests/browser/chat_page.mjs <base_url> <api_key> <keyword_id> <new_bid> <screenshot.png>
// Checks: connect, a streamed answer with tool activity shown before the answer, a proposal card with a
// bid-landscape chart, Confirm applies it, Reject of a second one. Prints one JSON line of what it saw;
// exits 1 with the reason on the first failed check.
import { chromium } from "playwright-core";

const [base, key, keyword, newBid, shot] = process.argv.slice(2);
const seen = {};
const fail = (why) => { console.error("FAIL: " + why); process.exitCode = 1; throw new Error(why); };
const check = (ok, why) => { if (!ok) fail(why); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(base + "/", { waitUntil: "domcontentloaded" });
  check(await page.title() === "adguide — ad console chat", "the page title");

  // Record when tool rows and the answer appear, to see that activity streams in before the answer.
  await page.evaluate(() => {
    window.__order = [];
    new MutationObserver(() => {
      for (const li of document.querySelectorAll("#tools li.ok")) {
        if (!li.dataset.logged) { li.dataset.logged = 1; window.__order.push("tool:" + li.textContent.split("(")[0]); }
      }
      for (const li of document.querySelectorAll("#messages li.assistant")) {
        if (li.textContent.includes("$") && !li.dataset.logged) { li.dataset.logged = 1; window.__order.push("answer"); }
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });

  await page.fill("#api-key", key);
  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Connected"));

  await page.fill("#message", "How is my account doing?");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Ready"), null,
                             { timeout: 90000 });
  const answer = await page.locator("#messages li.assistant").last().textContent();
  check(/\$[\d,]+\.\d\d/.test(answer), "the answer quotes figures: " + answer);
  seen.order = await page.evaluate(() => window.__order);
  check(seen.order.indexOf("tool:account_overview") >= 0 &&
        seen.order.indexOf("tool:account_overview") < seen.order.indexOf("answer"),
        "tool activity shows before the answer: " + JSON.stringify(seen.order));

  await page.fill("#message", `Set the bid of ${keyword} to $${newBid}`);
  await page.click("#send");
  await page.waitForSelector("#proposal:not([hidden])", { timeout: 90000 });
  const row = await page.locator("#proposal-changes tbody tr").first().textContent();
  check(row.includes(keyword) && row.includes("bid"), "the proposal names the keyword and field: " + row);
  await page.waitForSelector("#chart-panel:not([hidden]) #chart path[data-series='incremental_profit']", { timeout: 60000 });
  seen.series = await page.locator("#chart path").count();
  check(seen.series >= 2, "the chart draws its series");
  check(await page.locator("#chart line.proposed").count() === 1, "the chart marks the proposed bid");
  await page.screenshot({ path: shot, fullPage: true });

  await page.click("#confirm");
  await page.waitForFunction(() => [...document.querySelectorAll("#messages li.assistant")].some(
    (li) => li.textContent.includes("Applied")), null, { timeout: 90000 });
  check(await page.locator("#proposal").isHidden(), "the proposal card closes after the decision");

  await page.fill("#message", `Set the bid of ${keyword} to $${(Number(newBid) * 1.1).toFixed(2)}`);
  await page.click("#send");
  await page.waitForSelector("#proposal:not([hidden])", { timeout: 90000 });
  await page.click("#reject");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Ready"), null,
                             { timeout: 90000 });
  seen.afterReject = await page.locator("#messages li.assistant").last().textContent();

  // A bad key: the page says what is wrong instead of breaking.
  await page.fill("#api-key", "not-a-key");
  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("not valid"));
  check(consoleErrors.filter((e) => !e.includes("401")).length === 0, "no console errors: " + consoleErrors);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
