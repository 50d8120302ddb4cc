// An organization run in the console by the people in it, each in their
// own browser context: Ada signs up and builds it (a sub-organization, a
// team, projects), pays for custom roles, invites Bob, who accepts from the
// mail's link by signing up; Bob is given a custom role and one project and
// sees that project only; 2FA is enforced and Bob is asked to enrol; an API
// key is made and revoked; Fin, from finance, sees billing and no
// projects; the audit log lists all of it. Every page is saved as a
// screenshot. No sleeps: each step waits for the page or element it needs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { base, launch, link, mail, open, person, shot, submit } from "./lib.mjs";

const password = "correct horse battery staple";
const stamp = Date.now();
const ada = `ada+${stamp}@example.com`;
const bob = `bob+${stamp}@example.com`;
const fin = `fin+${stamp}@example.com`;

let browser;
let admin; // Ada's page
let member; // Bob's page

before(async () => {
  browser = await launch();
  admin = await person(browser);
});

after(async () => {
  await browser?.close();
});

const cell = (page, name) => page.getByRole("cell", { name, exact: true });

test("Ada signs up and lands in her new organization", async () => {
  await admin.goto(`${base}/console/sign-up`);
  await admin.getByLabel("Your name").fill("Ada Lovelace");
  await admin.getByLabel("Email").fill(ada);
  await admin.getByLabel("Password").fill(password);
  await admin.getByLabel("Organization name (optional)").fill("Analytical Engines");
  await submit(admin, admin.getByRole("button", { name: "Create account" }));
  await admin.getByRole("heading", { name: "Overview" }).waitFor();
  await shot(admin, "org-01-overview");
});

test("she builds the tree: a sub-organization and a team", async () => {
  await open(admin, "Organization");
  await admin.getByLabel("Sub-organization name").fill("Research");
  await submit(admin, admin.getByRole("button", { name: "Create sub-organization" }));
  await admin.getByRole("main").getByText("Research").first().waitFor();
  await admin.getByLabel("Team name").fill("Platform");
  await submit(admin, admin.getByRole("button", { name: "Create team" }));
  await admin.getByRole("link", { name: "Platform" }).waitFor();
  await shot(admin, "org-02-tree");
});

test("she creates two projects and shows members only what they are granted", async () => {
  await open(admin, "Projects");
  for (const name of ["Alpha", "Beta"]) {
    await admin.getByLabel("Project name").fill(name);
    await submit(admin, admin.getByRole("button", { name: "Create project" }));
    await cell(admin, name).waitFor();
  }
  await shot(admin, "org-03-projects");
  await open(admin, "Overview");
  await admin.getByLabel("Only projects granted to them").check();
  await submit(admin, admin.getByRole("button", { name: "Save settings" }));
  assert.ok(await admin.getByLabel("Only projects granted to them").isChecked());
  await shot(admin, "org-04-settings");
});

test("she moves to the Starter plan, which has custom roles, and makes one", async () => {
  await open(admin, "Billing");
  await admin.getByLabel("Billing email for Starter").fill(ada);
  await submit(admin, admin.getByRole("button", { name: "Switch to Starter" }));
  await admin.getByText("Starter").first().waitFor();
  await shot(admin, "org-05-billing");
  await open(admin, "Roles");
  await admin.getByLabel("Role name").fill("Deployer");
  await admin.getByLabel("resources.use").check();
  await submit(admin, admin.getByRole("button", { name: "Create role" }));
  await admin.getByRole("columnheader", { name: "Deployer" }).waitFor();
  await shot(admin, "org-06-roles");
});

test("she invites Bob, who accepts from the mail by signing up", async () => {
  await open(admin, "Invitations");
  await admin.getByLabel("Email").fill(bob);
  await admin.getByLabel("Platform").check();
  await submit(admin, admin.getByRole("button", { name: "Send invitation" }));
  await cell(admin, bob).waitFor();
  await shot(admin, "org-07-invitations");

  member = await person(browser);
  await member.goto(consoleLink(link(await mail(bob, "invitation"))));
  await shot(member, "org-08-invitation-signed-out");
  await member.getByLabel("Your name").fill("Bob Babbage");
  await member.getByLabel("Password").fill(password);
  await submit(member, member.getByRole("button", { name: "Create account and accept" }));
  await member.getByRole("heading", { name: "Overview" }).waitFor();
  const active = member.getByLabel("Organization").locator("option:checked");
  assert.equal((await active.textContent()).trim(), "Analytical Engines");
  await shot(member, "org-09-bob-joined");
});

test("Bob gets the custom role and Alpha only, and sees Alpha and not Beta", async () => {
  const bobsNav = member.getByRole("navigation", { name: "Main" });
  assert.equal(await bobsNav.getByRole("link", { name: "Projects" }).count(), 0, "no project of his yet");

  await open(admin, "Members");
  await admin.getByText(`Change roles of ${bob}`).click();
  await admin.getByRole("group", { name: `Roles of ${bob}` }).getByLabel("Deployer").check();
  await submit(admin, admin.getByRole("button", { name: `Save roles of ${bob}` }));
  await admin.getByRole("row", { name: new RegExp(escape(bob)) }).getByText("Deployer").first().waitFor();
  await shot(admin, "org-10-members");

  await open(admin, "Projects");
  await submit(admin, admin.getByRole("link", { name: "Alpha", exact: true }));
  await admin.getByLabel("Who").selectOption({ label: bob });
  await submit(admin, admin.getByRole("button", { name: "Grant access" }));
  await admin.getByRole("button", { name: new RegExp(`Revoke access of .*${escape(bob)}`) }).waitFor();
  await shot(admin, "org-11-project-access");

  await member.reload();
  await open(member, "Projects");
  await cell(member, "Alpha").or(member.getByRole("link", { name: "Alpha" })).first().waitFor();
  assert.equal(await member.getByText("Beta", { exact: true }).count(), 0);
  await shot(member, "org-12-bob-projects");
});

test("2FA enforced: Bob is asked to enrol", async () => {
  await open(admin, "Overview");
  await admin.getByLabel("Require two-factor authentication for every member").check();
  await submit(admin, admin.getByRole("button", { name: "Save settings" }));
  // It holds from the next sign-in: Bob signs out and in again.
  await submit(member, member.getByRole("button", { name: "Sign out", exact: true }));
  await member.getByLabel("Email").fill(bob);
  await member.getByLabel("Password").fill(password);
  await submit(member, member.getByRole("button", { name: "Sign in" }));
  await member.getByText(/requires two-factor authentication/).first().waitFor();
  await member.getByRole("button", { name: "Set up two-factor authentication" }).waitFor();
  await shot(member, "org-13-bob-asked-to-enrol");
  // Ada turns it off again: the rest of the journey is not about 2FA.
  await open(admin, "Overview");
  await admin.getByLabel("Require two-factor authentication for every member").uncheck();
  await submit(admin, admin.getByRole("button", { name: "Save settings" }));
});

test("an API key is made, shown once, and revoked", async () => {
  await open(admin, "API keys");
  await admin.getByLabel("Key name").fill("ci deploys");
  await admin.getByLabel("project.create").check();
  await submit(admin, admin.getByRole("button", { name: "Create API key" }));
  const secret = await admin.getByRole("textbox", { name: /secret/i }).inputValue();
  assert.ok(secret.length > 20, "the secret is shown once");
  await shot(admin, "org-14-api-key-created");
  await open(admin, "API keys");
  assert.equal(await admin.getByText(secret).count(), 0, "and never again");
  await submit(admin, admin.getByRole("button", { name: "Revoke ci deploys" }));
  await admin.getByText("No API keys here yet").waitFor();
  await shot(admin, "org-15-api-key-revoked");
});

test("Fin, from finance, sees billing and no projects", async () => {
  await open(admin, "Invitations");
  await admin.getByLabel("Email").fill(fin);
  await admin.getByRole("group", { name: "Roles" }).getByLabel("Finance").check();
  await submit(admin, admin.getByRole("button", { name: "Send invitation" }));
  const finance = await person(browser);
  await finance.goto(consoleLink(link(await mail(fin, "invitation"))));
  await finance.getByLabel("Your name").fill("Fin Ance");
  await finance.getByLabel("Password").fill(password);
  await submit(finance, finance.getByRole("button", { name: "Create account and accept" }));
  await shot(finance, "org-16-finance-overview");
  const nav = finance.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Billing" }).waitFor();
  for (const hidden of ["Projects", "Members", "Invitations", "API keys"]) {
    assert.equal(await nav.getByRole("link", { name: hidden, exact: true }).count(), 0, hidden);
  }
  await open(finance, "Billing");
  await finance.getByText("Starter").first().waitFor();
  await shot(finance, "org-17-finance-billing");
});

test("the audit log lists all of it, and its chain verifies", async () => {
  await open(admin, "Audit log");
  for (const action of ["project", "invitation", "role", "api_key"]) {
    await admin.getByRole("cell", { name: new RegExp(action) }).first().waitFor();
  }
  await shot(admin, "org-18-audit");
  await submit(admin, admin.getByRole("link", { name: "Verify the chain" }));
  await admin.getByRole("status").getByText(/Chain verified up to event/).waitFor();
  await shot(admin, "org-19-audit-verified");
  await open(member, "Account");
  await shot(member, "org-20-account");
});

test("the pages work by keyboard and at phone width", async () => {
  await open(admin, "Members");
  await admin.keyboard.press("Tab");
  const focused = await admin.evaluate(() => document.activeElement?.textContent?.trim());
  assert.equal(focused, "Skip to content", "the first Tab reaches the skip link");
  await admin.keyboard.press("Enter");
  assert.equal(await admin.evaluate(() => document.activeElement?.id), "content");
  await admin.setViewportSize({ width: 390, height: 760 });
  for (const section of ["Members", "Projects", "Billing", "Audit log"]) {
    await open(admin, section);
    const wide = await admin.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390 + 1, `${section} fits a phone's width (${wide}px)`);
    await shot(admin, `org-phone-${section.toLowerCase().replace(" ", "-")}`);
  }
  await admin.setViewportSize({ width: 1100, height: 760 });
});

/** `text` matched literally in a regular expression. */
function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A mail's link, on the server the test started (mail names the configured base). */
function consoleLink(url) {
  const parsed = new URL(url);
  return `${base}${parsed.pathname}${parsed.search}`;
}
