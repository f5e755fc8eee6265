// The chat page in a real browser: headless Chromium from the system (apt), driven by
// playwright-core, against the real todo-backend binary with PostgreSQL and mock-llm.
//
// Environment: TODO_BACKEND_BIN, MOCK_LLM_BIN (paths to the built binaries), DATABASE_URL
// (PostgreSQL), SCREENSHOT_DIR (where the pictures go; printed), CHROMIUM (default
// /usr/bin/chromium). Every process it starts listens on 127.0.0.1 and is stopped at the end.

import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (k, d) => process.env[k] || d;
const BACKEND = env("TODO_BACKEND_BIN");
const MOCK = env("MOCK_LLM_BIN");
const DATABASE_URL = env("DATABASE_URL");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const SHOTS = path.resolve(env("SCREENSHOT_DIR", "target/browser-screenshots"));
const STEP_MS = 30000;

let passed = 0;
let failed = 0;
const children = [];

function log(msg) { console.log(`browser: ${msg}`); }

function stopAll() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  }
}
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { stopAll(); process.exit(130); });
// The whole run is bounded: a hang fails instead of blocking CI.
const watchdog = setTimeout(() => { console.error("browser: the run took over 6 minutes; giving up"); stopAll(); process.exit(1); }, 360000);
watchdog.unref();

/** Starts a program and resolves with the address it logs ("listening on http://…"). */
function startProcess(name, bin, args, extraEnv) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      // A cleared environment: nothing of the developer's shell (keys, proxies) leaks in.
      env: { PATH: process.env.PATH, NO_COLOR: "1", RUST_LOG: "info", ...extraEnv },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(child);
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start in time:\n${seen}`)), STEP_MS);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      if (seen.length < 20000) seen += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen.replace(/\x1b\[[0-9;]*m/g, ""));
      if (m) { clearTimeout(timer); resolve({ child, url: m[1] }); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}):\n${seen}`)); });
  });
}

function backendEnv(llmUrl, extra) {
  const e = { DATABASE_URL, ...extra };
  // The model writes every reply here (no composed confirmations), so the page shows the
  // model's text streaming in; composed confirmations are covered by the API tests.
  if (llmUrl) Object.assign(e, { OPENAI_BASE_URL: llmUrl + "/v1", OPENAI_API_KEY: "sk-browser-test", LLM_MODEL: "mock",
    AGENT_COMPOSE_CONFIRMATIONS: "false" });
  return e;
}

function assert(cond, what) { if (!cond) throw new Error(what); }

async function step(name, fn) {
  try {
    await fn();
    passed++;
    log(`ok   ${name}`);
  } catch (e) {
    failed++;
    log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

function hs256(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** A browser context that refuses (and records) every request leaving this machine. */
async function newContext(browser, viewport, external) {
  const ctx = await browser.newContext({ viewport, timezoneId: "UTC", locale: "en-GB", serviceWorkers: "block" });
  await ctx.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === "data:" || u.hostname === "127.0.0.1") return route.continue();
    external.push(u.href);
    return route.abort();
  });
  return ctx;
}

function watchErrors(page, errors) {
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console error: ${m.text()}`); });
}

const tomorrow = () => new Date(Date.now() + 86400000).toISOString().slice(0, 10);

async function sendMessage(page, text) {
  // The previous turn may still be streaming its last words: sending waits for it, as a person would.
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}

/** A chat request refused at the network, then a stream cut before `done`; Retry after each. */
async function cutConnections(page) {
  // The next chat request never reaches the server.
  let calls = 0;
  await page.route("**/api/*/chat", (route) => (++calls === 1 ? route.abort("connectionrefused") : route.fallback()));
  await sendMessage(page, "add Water plants");
  await page.locator("#error", { hasText: "Could not reach the server" }).waitFor();
  await page.getByRole("button", { name: "Retry" }).click();
  await page.locator(".confirmation", { hasText: "Added \u2018Water plants\u2019" }).waitFor();
  await page.unroute("**/api/*/chat");
  // The next stream is cut after its first pieces, without `done`.
  const conv = await page.evaluate(() => localStorage.getItem("todo.conversation"));
  let streams = 0;
  await page.route("**/api/*/chat", (route) => (++streams === 1
    ? route.fulfill({
      status: 200, headers: { "content-type": "text/event-stream" },
      body: `event: started\ndata: {"conversation_id":"${conv}"}\n\nevent: delta\ndata: {"text":"Half a rep"}\n\n`,
    })
    : route.fallback()));
  await sendMessage(page, "add Feed cat");
  await page.locator("#error", { hasText: "connection dropped" }).waitFor();
  assert(await page.locator("#messages .bubble", { hasText: "Half a rep" }).count() === 0, "the cut reply stays shown");
  await page.getByRole("button", { name: "Retry" }).click();
  await page.locator(".confirmation", { hasText: "Added \u2018Feed cat\u2019" }).waitFor();
  await page.unroute("**/api/*/chat");
  await page.locator("#task-list .task", { hasText: "Feed cat" }).waitFor();
  for (const t of ["Water plants", "Feed cat"]) {
    const n = await page.locator("#task-list .task", { hasText: t }).count();
    assert(n === 1, `${t} is listed ${n} times`);
  }
}

/** The main journey at one viewport. */
async function journey(browser, base, mockUrl, label, viewport) {
  const external = [];
  const errors = [];
  const user = `${label}-${randomUUID().slice(0, 8)}`;
  const ctx = await newContext(browser, viewport, external);
  await ctx.addInitScript((u) => { if (!localStorage.getItem("todo.user")) localStorage.setItem("todo.user", u); }, user);
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  watchErrors(page, errors);
  const shot = async (n) => {
    const file = path.join(SHOTS, `${label}-${n}.png`);
    await page.screenshot({ path: file, fullPage: true });
  };

  await step(`${label}: the page loads with its landmarks and labelled message box`, async () => {
    await page.goto(base + "/");
    for (const role of ["banner", "main", "navigation", "complementary"]) {
      assert(await page.getByRole(role).count() >= 1, `no ${role} landmark`);
    }
    assert(await page.getByLabel("Message", { exact: true }).isVisible(), "no labelled message box");
    assert(await page.getByRole("button", { name: "Send" }).isEnabled(), "send is disabled at rest");
  });

  await step(`${label}: Shift+Enter adds a line, Enter sends`, async () => {
    const box = page.getByLabel("Message", { exact: true });
    await box.fill("first line");
    await box.press("Shift+Enter");
    await box.type("second");
    assert((await box.inputValue()) === "first line\nsecond", "Shift+Enter did not add a new line");
    assert(await page.locator("#messages .msg").count() === 0, "Shift+Enter sent the message");
    await box.fill("");
  });

  await step(`${label}: adding a task streams the reply, confirms it and lists the task`, async () => {
    // Records what the person would have seen: partial replies and the disabled button.
    await page.evaluate(() => {
      window.__seen = { partial: false, disabled: false };
      const send = document.getElementById("send");
      new MutationObserver(() => { if (send.disabled) window.__seen.disabled = true; })
        .observe(send, { attributes: true });
      new MutationObserver(() => {
        const b = document.querySelector("#messages .msg.assistant .bubble.streaming");
        if (b && b.textContent.length > 0) window.__seen.partial = true;
      }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
    });
    await sendMessage(page, `add Buy milk due ${tomorrow()}`);
    const confirmation = page.locator(".confirmation", { hasText: "Added \u2018Buy milk\u2019 \u00b7 due tomorrow" });
    await confirmation.waitFor();
    await page.locator("#messages .msg.assistant .bubble:not(.streaming)", { hasText: "Done." }).waitFor();
    const seen = await page.evaluate(() => window.__seen);
    assert(seen.disabled, "the send button was not disabled while the turn ran");
    assert(seen.partial, "the reply did not appear before the turn ended");
    assert(await page.getByRole("button", { name: "Send" }).isEnabled(), "send stays disabled after the turn");
    const task = page.locator("#task-list .task", { hasText: "Buy milk" });
    await task.waitFor();
    assert((await task.textContent()).includes("due tomorrow"), "the task panel does not show the due date");
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
    assert(focused === "message", `focus is on ${focused}, not the message box`);
    const live = await page.locator("#messages .msg.assistant .bubble").last().getAttribute("aria-live");
    assert(live === "polite", "the streamed reply is not a polite live region");
    await shot("1-added");
  });

  await step(`${label}: a failing tool call is shown as an error`, async () => {
    await sendMessage(page, "done 99");
    await page.locator(".confirmation.failed", { hasText: "Completing #99 failed" }).waitFor();
  });

  await step(`${label}: after a reload the conversation is restored and listed`, async () => {
    await page.reload();
    await page.locator("#messages .msg.user", { hasText: "add Buy milk" }).waitFor();
    await page.locator(".confirmation", { hasText: "Added \u2018Buy milk\u2019" }).waitFor();
    await page.locator("#messages .msg.assistant .bubble", { hasText: "Done." }).first().waitFor();
    await page.locator('#conversation-list [aria-current="true"]').waitFor();
    await page.locator("#task-list .task", { hasText: "Buy milk" }).waitFor();
  });

  await step(`${label}: a model failure is explained, and Retry succeeds without doing anything twice`, async () => {
    // In a new conversation: the retry must resend the first request exactly.
    await page.getByRole("button", { name: "New conversation" }).click();
    const r = await fetch(mockUrl + "/faults", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ count: 1, status: 400 }),
    });
    assert(r.ok, "the mock refused the fault plan");
    await sendMessage(page, "add Call mom");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    const text = await alert.textContent();
    assert(/language model/i.test(text), `the error is not in words: ${text}`);
    await shot("2-error");
    await page.getByRole("button", { name: "Retry" }).click();
    await page.locator(".confirmation", { hasText: "Added \u2018Call mom\u2019" }).waitFor();
    assert(await alert.isHidden(), "the error stays after a successful retry");
    await page.locator("#task-list .task", { hasText: "Call mom" }).waitFor();
    assert(await page.locator("#task-list .task", { hasText: "Call mom" }).count() === 1, "the task was added twice");
    // Reloaded from the server: the message was stored once.
    await page.reload();
    await page.locator(".confirmation", { hasText: "Added \u2018Call mom\u2019" }).waitFor();
    const sent = await page.locator("#messages .msg.user", { hasText: "add Call mom" }).count();
    assert(sent === 1, `the retried message is stored ${sent} times`);
    await page.locator("#conversation-list button").nth(1).waitFor(); // listed after the history loads
    assert(await page.locator("#conversation-list button").count() === 2, "the conversations are not both listed");
    await shot("3-retried");
  });

  await step(`${label}: a network failure and a dropped stream are explained, and Retry recovers`, async () => {
    const before = errors.length;
    try {
      await cutConnections(page);
    } finally {
      await page.unroute("**/api/*/chat");
      // The refused connection is logged by the browser itself; that one is expected.
      const mine = errors.splice(before).filter((e) => !/Failed to load resource: net::ERR_/.test(e));
      errors.push(...mine);
    }
  });

  await step(`${label}: a new conversation starts empty and the earlier one can be reopened`, async () => {
    await page.getByRole("button", { name: "New conversation" }).click();
    assert(await page.locator("#messages .msg").count() === 0, "the new conversation is not empty");
    await page.locator("#conversation-list button", { hasText: "add Buy milk" }).click();
    await page.locator("#messages .msg.user", { hasText: "add Buy milk" }).waitFor();
    assert(await page.locator("#messages .msg.user", { hasText: "add Call mom" }).count() === 0, "the conversations are mixed");
  });

  await step(`${label}: no script error and no request leaving the machine`, async () => {
    assert(errors.length === 0, errors.join("\n"));
    assert(external.length === 0, `requests left the machine: ${external.join(", ")}`);
  });
  await ctx.close();
}

async function main() {
  for (const [k, v] of Object.entries({ TODO_BACKEND_BIN: BACKEND, MOCK_LLM_BIN: MOCK, DATABASE_URL })) {
    if (!v) throw new Error(`${k} is not set`);
  }
  mkdirSync(SHOTS, { recursive: true });
  log(`screenshots go to ${SHOTS}`);

  const mock = await startProcess("mock-llm", MOCK, ["--bind", "127.0.0.1:0", "--chunk-delay-ms", "40"], {});
  const backend = await startProcess("todo-backend", BACKEND, ["serve", "--bind", "127.0.0.1:0"], backendEnv(mock.url));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    await journey(browser, backend.url, mock.url, "phone", { width: 390, height: 844 });
    await journey(browser, backend.url, mock.url, "desktop", { width: 1280, height: 900 });

    const noModel = await startProcess("todo-backend (no model)", BACKEND, ["serve", "--bind", "127.0.0.1:0"], backendEnv(null));
    await step("without a model the page explains the settings and commands still work", async () => {
      const external = [], errors = [];
      const ctx = await newContext(browser, { width: 1280, height: 900 }, external);
      const page = await ctx.newPage();
      page.setDefaultTimeout(STEP_MS);
      watchErrors(page, errors);
      await page.goto(noModel.url + "/");
      await sendMessage(page, "add Buy bread");
      const reply = page.locator("#messages .msg.assistant .bubble", { hasText: "OPENAI_API_KEY" });
      await reply.waitFor();
      const text = await reply.textContent();
      assert(text.includes("LLM_MODEL") && text.includes("/add"), `unhelpful: ${text}`);
      await sendMessage(page, "/add Buy bread");
      await page.locator(".confirmation", { hasText: "Added \u2018Buy bread\u2019" }).waitFor();
      await page.locator("#task-list .task", { hasText: "Buy bread" }).waitFor();
      await page.screenshot({ path: path.join(SHOTS, "no-model.png"), fullPage: true });
      assert(errors.length === 0 && external.length === 0, [...errors, ...external].join("\n"));
      await ctx.close();
    });

    const secret = "browser-test-secret-" + randomUUID();
    const authed = await startProcess("todo-backend (auth)", BACKEND, ["serve", "--bind", "127.0.0.1:0"],
      backendEnv(mock.url, { AUTH_JWT_SECRET: secret }));
    await step("with authentication: no token is explained, a given token works", async () => {
      const external = [], errors = [];
      const ctx = await newContext(browser, { width: 1280, height: 900 }, external);
      const page = await ctx.newPage();
      page.setDefaultTimeout(STEP_MS);
      watchErrors(page, errors);
      await page.goto(authed.url + "/");
      await sendMessage(page, "add Pay rent");
      await page.locator("#error", { hasText: "bearer token" }).waitFor();
      const token = hs256(secret, { sub: "carol", exp: Math.floor(Date.now() / 1000) + 600 });
      // A new document (the query), handed the token in the fragment.
      await page.goto(`${authed.url}/?signed-in#token=${token}`);
      assert(!page.url().includes("token="), "the token stays in the address bar");
      await sendMessage(page, "add Pay rent");
      await page.locator(".confirmation", { hasText: "Added \u2018Pay rent\u2019" }).waitFor();
      await page.locator("#task-list .task", { hasText: "Pay rent" }).waitFor();
      const unexpected = errors.filter((e) => !/status of 401/.test(e));
      assert(unexpected.length === 0 && external.length === 0, [...unexpected, ...external].join("\n"));
      await ctx.close();
    });
  } finally {
    await browser.close();
    stopAll();
  }
  log(`screenshots are in ${SHOTS}`);
  console.log(`browser test: ${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0;
}

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (e) => { console.error(`browser: ${e && e.stack ? e.stack : e}`); stopAll(); process.exit(1); },
);
