// What every console journey shares: the browser, its pages, screenshots,
// and the mailbox of the server run.sh started.
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, watch } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const base = process.env.CONSOLE_URL;
const shots = process.env.SCREENSHOT_DIR;
const mailDir = process.env.MAIL_DIR;

/** Chromium as Debian ships it, with the flags this machine needs. */
export async function launch() {
  assert.ok(base, "CONSOLE_URL names the server (run.sh sets it)");
  mkdirSync(shots, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
}

/** A new browser context (its own cookies: another person) and its page. */
export async function person(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  // Every page of the console answers in well under a second here.
  page.setDefaultTimeout(10_000);
  return page;
}

export const shot = (page, name) =>
  page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

/** Clicks a control that posts a form or follows a link, and waits for the next page. */
export async function submit(page, control) {
  await Promise.all([page.waitForNavigation(), control.click()]);
}

/** Goes to a section through the navigation bar, as a person would. */
export async function open(page, section) {
  await submit(page, page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: section, exact: true }));
}

/**
 * The body of the newest mail to `to` whose file name has `kind`, waiting
 * for it to be written: mail leaves through the outbox, after the request
 * that caused it has answered, as real mail does.
 */
export async function mail(to, kind) {
  assert.ok(mailDir, "MAIL_DIR names the server's mail directory (run.sh sets it)");
  mkdirSync(mailDir, { recursive: true });
  const find = () =>
    readdirSync(mailDir)
      .filter((file) => file.includes(kind))
      .sort()
      .reverse()
      .map((file) => readFileSync(join(mailDir, file), "utf8"))
      .find((text) => text.includes(`To: ${to}\n`));
  const found = find();
  if (found) return found;
  return new Promise((resolve, reject) => {
    const watcher = watch(mailDir, () => {
      const text = find();
      if (text) { watcher.close(); clearTimeout(timer); resolve(text); }
    });
    const timer = setTimeout(() => { watcher.close(); reject(new Error(`no ${kind} mail to ${to}`)); }, 30_000);
  });
}

/** The first console link in a mail's body. */
export function link(text) {
  const match = text.match(/https?:\/\/\S+/);
  assert.ok(match, `a link in:\n${text}`);
  return match[0];
}
