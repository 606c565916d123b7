// The front page's accessibility check (tests/test_site.py): axe-core on each page given, at a desktop
// and a phone width, in Debian's Chromium driven by playwright-core (no browser download). Prints one JSON line
// per page and width: {url, width, passes, violations: [{id, impact, nodes}]}; exits 1 on any violation.
const { chromium } = require("playwright-core");
const fs = require("fs");
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  // the pages allow no script at all (their CSP): axe is let in past it, the pages themselves are unchanged
  const context = await browser.newContext({ bypassCSP: true });
  let failed = 0;
  for (const url of process.argv.slice(2)) {
    for (const width of [1280, 390]) {
      const page = await context.newPage();
      await page.setViewportSize({ width, height: 900 });
      await page.goto(url);
      await page.addScriptTag({ content: axeSource });
      const result = await page.evaluate(async () => await axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }));
      const violations = result.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + ": " + n.failureSummary) }));
      failed += violations.length;
      console.log(JSON.stringify({ url, width, passes: result.passes.length, violations }));
      await page.close();
    }
  }
  await browser.close();
  process.exit(failed ? 1 : 0);
})().catch(e => { console.error(String(e)); process.exit(2); });
