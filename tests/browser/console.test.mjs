// The console at / in a real browser (Debian's chromium through
// playwright-core), against the real app: two spindle-runner hosts ("a" and
// "b") on one Redis. Run by ./run.sh, which starts them and sets:
//   SPINDLE_URL_A, SPINDLE_URL_B  the two hosts (host_id a and b)
//   API_LIMIT                     the /api quota per window (fixed_window N/60s)
//   ARTIFACTS                     where screenshots go
// The tests run in order and share two pages: alice on host a, bob on host b.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const A = process.env.SPINDLE_URL_A;
const B = process.env.SPINDLE_URL_B;
const LIMIT = Number(process.env.API_LIMIT || 5);
const ARTIFACTS = process.env.ARTIFACTS || "artifacts";
assert.ok(A && B, "SPINDLE_URL_A and SPINDLE_URL_B are required (run ./run.sh)");
mkdirSync(ARTIFACTS, { recursive: true });

const tag = Date.now().toString(36);
const alice = { username: `alice-${tag}`, password: "correct horse battery" };
const bob = { username: `bob-${tag}`, password: "staple staple staple" };
const topic = `room-${tag}`;

let browser, pageA, pageB;
const problems = []; // CSP violations, uncaught errors

before(async () => {
  // launch() gives chromium a fresh temporary --user-data-dir of its own.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
});

async function openPage(base, name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (e) => problems.push(`${name}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`${name}: ${m.text()}`);
  });
  await page.goto(base + "/");
  await page.waitForFunction(() => document.documentElement.dataset.ready === "1");
  return page;
}

// Waits until the element's text matches; on a timeout, says what it was.
async function waitText(page, sel, re, timeout = 10_000) {
  try {
    await page.waitForFunction(([s, src, fl]) => {
      const n = document.querySelector(s);
      return !!n && new RegExp(src, fl).test(n.textContent);
    }, [sel, re.source, re.flags], { timeout });
  } catch (e) {
    const now = await page.textContent(sel).catch(() => "(missing)");
    throw new Error(`${sel}: waited for ${re}, text is ${JSON.stringify(now)}`);
  }
  return (await page.textContent(sel)).trim();
}

const shot = (page, name, fullPage = true) => page.screenshot({ path: join(ARTIFACTS, name), fullPage });

async function registerAndLogin(page, who) {
  await page.fill("#auth-user", who.username);
  await page.fill("#auth-pass", who.password);
  await page.click("#register-btn");
  await waitText(page, "#me-user", new RegExp(`^${who.username}$`));
}

test("GET / serves one self-contained page with a strict CSP; other methods are 405", async () => {
  const r = await fetch(A + "/");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  assert.equal(r.headers.get("spindle-host"), "a");
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
  assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  assert.doesNotMatch(csp, /unsafe/);
  const html = await r.text();
  assert.ok(html.length < 40 * 1024, `page is ${html.length} bytes`);
  assert.doesNotMatch(html, /<(link|img|iframe)\b|\ssrc=/i, "no external resources");
  const etag = r.headers.get("etag");
  assert.equal((await fetch(A + "/", { headers: { "if-none-match": etag } })).status, 304);
  const head = await fetch(A + "/", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal((await head.text()).length, 0);
  const post = await fetch(A + "/", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  assert.equal(post.headers.get("content-type"), "application/problem+json");
  assert.equal((await post.json()).type, "urn:spindle:problem:method-not-allowed");
});

test("register and log in through the page: who am I, which host answered, health", async () => {
  pageA = await openPage(A, "A");
  await waitText(pageA, "#me-user", /^not logged in$/);
  await waitText(pageA, "#health-transport", /^TCP/);
  assert.match(await pageA.textContent("#health-latency"), /^\d+\.\d\d ms$/);
  assert.equal(await pageA.textContent("#health-host"), "a");
  // Every form control has a label.
  const unlabelled = await pageA.evaluate(() => [...document.querySelectorAll("input")].filter((i) => !i.labels.length).map((i) => i.id));
  assert.deepEqual(unlabelled, []);

  await registerAndLogin(pageA, alice);
  assert.equal(await pageA.textContent("#me-host"), "a");
  assert.equal(await pageA.textContent("#last-host"), "a");
  assert.match(await pageA.textContent("#me-id"), /^\d+$/);
  assert.match(await pageA.textContent("#me-session"), /^[0-9a-f]{16}$/);
  // The session cookie is HttpOnly: the page cannot read it, yet it is sent.
  assert.equal(await pageA.evaluate(() => document.cookie), "");
  // The login also loaded alice's own card, with the edit form.
  await waitText(pageA, "#user-name", new RegExp(`^${alice.username}$`));
  assert.equal(await pageA.isVisible("#profile-form"), true);
  await shot(pageA, "01-logged-in.png");
});

test("fire requests until the quota is spent: 429 and Retry-After, read from the RateLimit headers", async () => {
  // A fixed window is aligned to the minute: start well inside one, so the
  // run cannot straddle a reset.
  const into = Date.now() % 60_000;
  if (into > 55_000) await new Promise((r) => setTimeout(r, 60_500 - into));
  const n = LIMIT + 3;
  await pageA.fill("#quota-n", String(n));
  await pageA.click("#quota-fire");
  const state = await waitText(pageA, "#quota-state", /429 Too Many Requests/);
  assert.equal(await pageA.getAttribute("#quota-state", "class"), "status deny");
  assert.match(state, new RegExp(`${LIMIT} passed, 3 denied\\. Retry-After: \\d+ s\\. Policy: ${LIMIT} per 60 s\\.`));
  const retryAfter = Number(/Retry-After: (\d+) s/.exec(state)[1]);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.match(await pageA.textContent("#quota-retry"), /^Quota back in \d+ s\.$/);
  const rows = await pageA.$$eval("#quota-table tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.equal(rows.length, n);
  const expected = [];
  for (let i = 1; i <= n; i++) expected.push(i <= LIMIT ? [String(i), "200", String(LIMIT - i)] : [String(i), "429", "0"]);
  assert.deepEqual(rows.map((r) => r.slice(0, 3)), expected);
  // Retry-After counts down to the window's end, so it may tick by a second
  // between the denied requests: never up, never below the last one's.
  const waits = rows.slice(LIMIT).map((r) => Number(r[3]));
  assert.equal(waits[waits.length - 1], retryAfter);
  for (let k = 1; k < waits.length; k++) assert.ok(waits[k] <= waits[k - 1] && waits[k - 1] - waits[k] <= 1, `Retry-After ${waits}`);
  assert.ok(rows.every((r) => r[4] === "a"), "host a answered every request");
  assert.equal(await pageA.locator("#quota-chart rect.bar.ok").count(), LIMIT);
  assert.equal(await pageA.locator("#quota-chart rect.bar.deny").count(), 3);
  // The chart labels the first denied request's Retry-After (the state line
  // the last one's): they differ when the second ticked between them.
  assert.match(await pageA.textContent("#quota-chart"), new RegExp(`Retry-After: ${waits[0]} s`));
  await shot(pageA, "02-quota-429.png");
});

test("edit your profile: the write invalidates, the card shows MISS, then HIT", async () => {
  const id = (await pageA.textContent("#me-id")).trim();
  await pageA.fill("#profile-display", "Alice Liddell");
  await pageA.fill("#profile-email", "alice@example.org");
  await pageA.click("#profile-save");
  await waitText(pageA, "#user-status", /^Saved version 2\. .*the next read was a MISS/);
  assert.equal(await pageA.textContent("#user-xcache"), "MISS");
  assert.equal(await pageA.textContent("#user-display"), "Alice Liddell");
  assert.equal(await pageA.textContent("#user-email"), "alice@example.org");
  assert.equal(await pageA.textContent("#user-version"), "2");
  const before = await pageA.locator("#user-history li").count();
  await pageA.click("#user-load");
  await pageA.waitForFunction((n) => document.querySelectorAll("#user-history li").length > n, before);
  assert.equal(await pageA.textContent("#user-xcache"), "HIT");
  const history = await pageA.$$eval("#user-history li", (lis) => lis.map((li) => li.textContent.replace(/^\S+\s+/, "")));
  assert.deepEqual(history.slice(0, 3), [
    `GET /users/${id} → 200 HIT`,
    `GET /users/${id} → 200 MISS (after the write)`,
    `PATCH /users/${id} → 200`,
  ]);
  // Another host, without a session, sees the new version from the shared cache.
  const other = await fetch(`${B}/users/${id}`);
  assert.equal(other.headers.get("x-cache"), "HIT");
  assert.equal(other.headers.get("spindle-host"), "b");
  assert.equal((await other.json()).user.display_name, "Alice Liddell");
  await shot(pageA, "03-profile-miss-hit.png");
});

test("two pages on two hosts: a publish on one arrives in the other over SSE; presence shows both", async () => {
  pageB = await openPage(B, "B");
  await registerAndLogin(pageB, bob);
  assert.equal(await pageB.textContent("#me-host"), "b");
  for (const page of [pageA, pageB]) {
    await page.fill("#topic", topic);
    await page.click("#topic-join");
  }
  for (const page of [pageA, pageB]) await waitText(page, "#stream-state", new RegExp(`^live on ${topic}$`));

  await pageA.fill("#pub-text", `hello from alice ${tag}`);
  await pageA.click("#pub-send");
  await waitText(pageA, "#pub-status", new RegExp(`^Published \\d+-\\d+ to ${topic}\\.$`));
  const gotB = await waitText(pageB, "#feed", new RegExp(`chat ${alice.username}: hello from alice ${tag}`));
  await waitText(pageA, "#feed", new RegExp(`hello from alice ${tag}`));

  await pageB.fill("#pub-text", `hi alice, bob here ${tag}`);
  await pageB.click("#pub-send");
  await waitText(pageA, "#feed", new RegExp(`chat ${bob.username}: hi alice, bob here ${tag}`));
  assert.match(gotB, /\d+-\d+/, "each feed entry shows its event id");
  // Order is the stream's on both pages.
  const feedB = await pageB.$$eval("#feed li", (lis) => lis.map((li) => li.textContent));
  assert.equal(feedB.length, 2);
  assert.match(feedB[0], /hello from alice/);
  assert.match(feedB[1], /bob here/);

  await waitText(pageA, "#presence", new RegExp(bob.username), 12_000);
  await waitText(pageB, "#presence", new RegExp(alice.username), 12_000);
  assert.match(await pageA.textContent("#presence li.you"), new RegExp(`^${alice.username} \\(you\\)`));
  await shot(pageA, "04-notify-host-a.png");
  await shot(pageB, "05-notify-host-b.png");
  await shot(pageA, "console.png");
});

test("readable on a phone: no sideways scrolling at 390 px", async () => {
  await pageA.setViewportSize({ width: 390, height: 844 });
  const { scroll, client } = await pageA.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(scroll <= client, `page is ${scroll}px wide in a ${client}px viewport`);
  const cards = await pageA.$$eval(".card", (cs) => cs.map((c) => c.getBoundingClientRect().right));
  assert.ok(cards.every((r) => r <= 390), `cards end at ${cards}`);
  // The chart redraws at its new size, so its text stays legible.
  await pageA.waitForFunction(() => {
    const g = document.getElementById("quota-chart");
    return Number(g.getAttribute("viewBox").split(" ")[2]) === Math.max(240, Math.round(g.clientWidth));
  });
  assert.ok((await pageA.$eval("#quota-chart", (g) => g.clientWidth)) < 390);
  await shot(pageA, "06-phone.png");
  await pageA.locator("#quota").screenshot({ path: join(ARTIFACTS, "06-phone-quota.png") });
  await pageA.setViewportSize({ width: 1280, height: 900 });
});

test("log out: the page forgets the user and closes the stream", async () => {
  await pageB.click("#logout-btn");
  await waitText(pageB, "#auth-status", /^Logged out\.$/);
  await waitText(pageB, "#me-user", /^not logged in$/);
  assert.equal(await pageB.textContent("#stream-state"), "not connected");
  assert.equal(await pageB.isDisabled("#pub-send"), true);
  assert.equal(await pageB.evaluate(async () => (await fetch("/auth/me")).status), 401);
  await shot(pageB, "07-logged-out.png");
});

test("no CSP violations or script errors on either page", () => {
  assert.deepEqual(problems, []);
});
