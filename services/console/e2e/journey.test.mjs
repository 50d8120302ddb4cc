// The console in a real Chromium, as a person uses it: sign up, land in
// the new organization, create a project, invite a teammate and revoke the
// invitation, sign out and sign in again. Every page is saved as a
// screenshot under target/console-screenshots/. No sleeps: each step waits
// for the navigation or the element it needs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { base, launch, person, shot as save, submit as go } from "./lib.mjs";

let browser;
let page;

before(async () => {
  browser = await launch();
  page = await person(browser);
});

after(async () => {
  await browser?.close();
});

const shot = (name) => save(page, name);
const submit = (control) => go(page, control);

const email = `ada+${Date.now()}@example.com`;
const password = "correct horse battery staple";

test("a new user signs up and lands in their organization", async () => {
  await page.goto(`${base}/console/`);
  assert.match(page.url(), /\/console\/sign-in\?next=%2Fconsole%2F$/);
  await shot("01-sign-in");
  await submit(page.getByRole("link", { name: "Sign up" }));
  await page.getByLabel("Your name").fill("Ada Lovelace");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Organization name (optional)").fill("Analytical Engines");
  await shot("02-sign-up");
  await submit(page.getByRole("button", { name: "Create account" }));
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  assert.equal(new URL(page.url()).pathname, "/console/");
  const active = page.getByLabel("Organization").locator("option:checked");
  assert.equal((await active.textContent()).trim(), "Analytical Engines");
  await shot("03-overview");
});

test("a project is created and listed", async () => {
  await submit(page.getByRole("link", { name: "Projects" }));
  // Sign-up makes the organization's first project.
  await page.getByRole("cell", { name: "main", exact: true }).first().waitFor();
  await page.getByLabel("Project name").fill("Difference Engine");
  await submit(page.getByRole("button", { name: "Create project" }));
  await page.getByRole("cell", { name: "Difference Engine", exact: true }).waitFor();
  await shot("05-projects");
  await page.setViewportSize({ width: 390, height: 760 });
  await shot("06-projects-phone");
  await page.setViewportSize({ width: 1100, height: 760 });
  await submit(page.getByRole("button", { name: "Delete main" }));
  assert.equal(await page.getByRole("cell", { name: "main", exact: true }).count(), 0);
  await page.getByRole("cell", { name: "Difference Engine", exact: true }).waitFor();
});

test("an invitation is sent, listed as pending, and revoked", async () => {
  await submit(page.getByRole("link", { name: "Invitations" }));
  await page.getByText("No pending invitations").waitFor();
  await page.getByLabel("Email").fill("bob@example.com");
  await page.getByRole("group", { name: "Roles" }).getByLabel("Admin", { exact: true }).check();
  await submit(page.getByRole("button", { name: "Send invitation" }));
  await page.getByRole("cell", { name: "bob@example.com", exact: true }).waitFor();
  await shot("07-invitations");
  await submit(page.getByRole("button", { name: "Revoke bob@example.com" }));
  await page.getByText("No pending invitations").waitFor();
  assert.equal(await page.getByRole("cell", { name: "bob@example.com", exact: true }).count(), 0);
});

test("the members page lists the owner", async () => {
  await submit(page.getByRole("link", { name: "Members" }));
  await page.getByRole("cell", { name: email, exact: true }).waitFor();
  await shot("08-members");
});

test("signing out ends the session and signing in comes back", async () => {
  await submit(page.getByRole("button", { name: "Sign out", exact: true }));
  assert.equal(new URL(page.url()).pathname, "/console/sign-in");
  await page.goto(`${base}/console/projects`);
  assert.match(page.url(), /sign-in\?next=%2Fconsole%2Fprojects$/);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("not the password");
  await submit(page.getByRole("button", { name: "Sign in" }));
  await page.getByRole("alert").waitFor();
  await shot("09-sign-in-refused");
  await page.getByLabel("Password").fill(password);
  await submit(page.getByRole("button", { name: "Sign in" }));
  assert.equal(new URL(page.url()).pathname, "/console/projects");
  await shot("10-signed-in-again");
  await page.getByRole("cell", { name: "Difference Engine", exact: true }).waitFor();
});
