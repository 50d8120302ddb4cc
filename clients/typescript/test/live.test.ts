// The client against a live server: gRPC from Node to the gRPC port, and gRPC-Web and
// Connect (the browsers' transports, run here in Node) to the gateway's HTTP port.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { randomUUID } from "node:crypto";
import {
  ApiKey,
  ServiceAccount,
  Code,
  TenantryClient,
  TenantryError,
  pages,
  paginate,
  connectTransport,
  webTransport,
  type TransportFactory,
} from "@tenantry/client";
import { grpcTransport } from "@tenantry/client/node";
import { Permissionship } from "@tenantry/client/gen/tenantry/authz/v1/authorization_pb";
import type { AuthTokens } from "@tenantry/client/gen/tenantry/identity/v1/token_pb";
import { startServer, type Server } from "./server.js";

const PASSWORD = `ts client ${randomUUID().slice(0, 12)}`;
let server: Server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function signedIn(transport: TransportFactory, name: string): Promise<TenantryClient> {
  const client = new TenantryClient({ transport });
  const email = `${name}.${randomUUID().slice(0, 10)}@example.com`;
  const answer = await client.signUp({ email, password: PASSWORD, displayName: name });
  assert.ok(answer.verificationRequired && !answer.tokens);
  const token = server.mailToken(email, "verify_email"); // written before SignUp answers
  assert.ok(token, `no verification mail to ${email}`);
  const verified = await client.verifyEmail(token);
  assert.ok(verified.user?.emailVerified);
  return client;
}

async function createOrg(client: TenantryClient): Promise<string> {
  const displayName = `Acme ${randomUUID().slice(0, 6)}`;
  const { organization } = await client.organizations.createOrganization({ organization: { displayName } });
  return organization!.name;
}

async function createProject(client: TenantryClient, parent: string, slug: string): Promise<string> {
  const { project } = await client.projects.createProject({ parent, project: { slug, displayName: slug } });
  return project!.name;
}

async function check(client: TenantryClient, type: string, name: string, permission: string) {
  const me = await client.identity.me({});
  const id = (n: string) => n.split("/").pop()!;
  const answer = await client.authorization.checkPermission({
    resource: { objectType: type, objectId: id(name) },
    permission,
    subject: { object: { objectType: "user", objectId: id(me.user!.name) } },
  });
  return answer.permissionship;
}

async function rejection(promise: Promise<unknown>): Promise<TenantryError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TenantryError, `not a TenantryError: ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

const transports: [string, () => TransportFactory][] = [
  ["gRPC (Node) on the gRPC port", () => grpcTransport(`http://${server.grpc}`)],
  ["gRPC-Web on the gateway's port", () => webTransport(`http://${server.http}`)],
  ["Connect (JSON) on the gateway's port", () => connectTransport(`http://${server.http}`)],
  ["Connect (protobuf) on the gateway's port", () => connectTransport(`http://${server.http}`, { binary: true })],
];

for (const [label, transport] of transports) {
  describe(label, () => {
    test("a check is ALLOWED right after the writes, with no waiting", async () => {
      const client = await signedIn(transport(), "ada");
      const org = await createOrg(client);
      const afterOrg = client.consistencyToken;
      assert.match(afterOrg ?? "", /^r\d+/);
      const project = await createProject(client, org, "rocket");
      assert.equal(await check(client, "organization", org, "project.create"), Permissionship.ALLOWED);
      assert.equal(await check(client, "project", project, "project.read"), Permissionship.ALLOWED);
      assert.notEqual(client.consistencyToken, afterOrg);
    });

    test("pagination follows page tokens; errors are typed with their reason", async () => {
      const client = await signedIn(transport(), "pat");
      const org = await createOrg(client);
      const made = [await createProject(client, org, "alpha")];
      const taken = await rejection(createProject(client, org, "alpha"));
      assert.equal(taken.code, Code.AlreadyExists);
      assert.equal(taken.codeName, "ALREADY_EXISTS");
      assert.equal(taken.reason, "SLUG_TAKEN");
      assert.ok(taken.domain);
      for (const slug of ["beta", "gamma"]) made.push(await createProject(client, org, slug));
      const list = client.projects.listProjects;
      const seen = [];
      for await (const page of pages(list, { parent: org }, { pageSize: 1 })) seen.push(page.projects.length);
      assert.deepEqual(seen, [1, 1, 1]);
      const names = [];
      for await (const project of paginate(list, { parent: org }, { pageSize: 2 })) names.push(project.name);
      assert.deepEqual(names.sort(), made.sort());

      // The FREE plan allows three projects: the fourth is refused, typed, with its reason.
      const quota = await rejection(createProject(client, org, "delta"));
      assert.equal(quota.code, Code.ResourceExhausted);
      assert.equal(quota.reason, "QUOTA_EXCEEDED");
      const bad = await rejection(createProject(client, org, "Not A Slug!"));
      assert.equal(bad.reason, "INVALID_ARGUMENT");
      assert.ok(bad.fieldViolations.some((v) => v.field.endsWith("slug")), JSON.stringify(bad.fieldViolations));
      const missing = await rejection(
        client.organizations.getOrganization({ name: `organizations/${randomUUID()}` }),
      );
      assert.equal(missing.code, Code.NotFound);
      assert.equal(missing.reason, "NOT_FOUND");
      // The refusals wrote nothing.
      const after = [];
      for await (const project of paginate(list, { parent: org })) after.push(project.name);
      assert.equal(after.length, 3);
    });

    test("a server stream carries the credentials, and its refusal is typed", async () => {
      const client = await signedIn(transport(), "sam");
      const org = await createOrg(client);
      const chunks = [];
      for await (const chunk of client.audit.exportAuditEvents({ parent: org })) chunks.push(chunk);
      assert.ok(chunks.at(-1)?.last);
      const stream = client.audit.exportAuditEvents({ parent: `organizations/${randomUUID()}` });
      const refused = await rejection((async () => {
        for await (const _ of stream) void _;
      })());
      assert.equal(refused.code, Code.NotFound);
    });

    test("an API key works as the key's own principal", async () => {
      const client = await signedIn(transport(), "kay");
      const org = await createOrg(client);
      const project = await createProject(client, org, "rocket");
      const { secret } = await client.apiKeys.createApiKey({
        parent: org,
        apiKey: { displayName: "ci", permissions: ["project.read"] },
      });
      assert.match(secret, /^tnt_/);
      // Exchanged for a token (works on both ports), and handed the writer's token.
      const keyed = new TenantryClient({
        transport: transport(),
        credentials: new ApiKey(secret),
        consistencyToken: client.consistencyToken,
      });
      const listed = [];
      for await (const p of paginate(keyed.projects.listProjects, { parent: org })) listed.push(p.name);
      assert.deepEqual(listed, [project]);
      const wrong = new TenantryClient({ transport: transport(), credentials: new ApiKey(`tnt_${"x".repeat(40)}`) });
      const refused = await rejection(wrong.projects.listProjects({ parent: org }));
      assert.equal(refused.code, Code.Unauthenticated);
    });

    test("the session refreshes before expiry and after UNAUTHENTICATED", async () => {
      const client = await signedIn(transport(), "ray");
      const me = (await client.identity.me({})).user!.name;
      const session = client.credentials as unknown as { tokens: AuthTokens };
      const stored: AuthTokens[] = [];
      const stale = { ...session.tokens, expireTime: { $typeName: "google.protobuf.Timestamp", seconds: 1n, nanos: 0 } } as AuthTokens;
      client.useTokens(stale, (t) => stored.push(t));
      assert.equal((await client.identity.me({})).user!.name, me);
      assert.equal(stored.length, 1);
      assert.notEqual(stored[0].refreshToken, stale.refreshToken);

      client.useTokens({ ...stored[0], accessToken: "not-a-token" }, (t) => stored.push(t));
      assert.equal((await client.identity.me({})).user!.name, me);
      assert.equal(stored.length, 2);

      const other = new TenantryClient({ transport: transport() });
      other.useTokens(stale);
      const refused = await rejection(other.refresh());
      assert.equal(refused.code, Code.Unauthenticated);
    });
  });
}

test("an API key sent as x-api-key through the gateway (gRPC-Web)", async () => {
  const client = await signedIn(webTransport(`http://${server.http}`), "hal");
  const org = await createOrg(client);
  const project = await createProject(client, org, "rocket");
  const { secret } = await client.apiKeys.createApiKey({
    parent: org,
    apiKey: { displayName: "browser", permissions: ["project.read"] },
  });
  const keyed = new TenantryClient({
    transport: webTransport(`http://${server.http}`),
    credentials: new ApiKey(secret, { exchange: false }),
  });
  const { projects } = await keyed.projects.listProjects({ parent: org });
  assert.deepEqual(projects.map((p) => p.name), [project]);
});

test("a service account's client credentials get and renew its tokens", async () => {
  const transport = grpcTransport(`http://${server.grpc}`);
  const admin = new TenantryClient({ transport });
  const email = `root.${randomUUID().slice(0, 10)}@example.com`;
  await admin.signUp({ email, password: PASSWORD, displayName: "Root" });
  await admin.verifyEmail(server.mailToken(email, "verify_email")!);
  server.admin("bootstrap", "--email", email); // the first platform administrator
  await admin.login(email, PASSWORD); // a token that carries the new role
  const { serviceAccount } = await admin.serviceAccounts.createServiceAccount({
    serviceAccount: { displayName: "billing-worker" },
  });
  const { credential, clientSecret } = await admin.serviceAccounts.createServiceAccountCredential({
    parent: serviceAccount!.name,
    credential: { displayName: "ci" },
  });

  const worker = new TenantryClient({ transport, credentials: new ServiceAccount(credential!.clientId, clientSecret) });
  const plans = [];
  for await (const plan of paginate(worker.plans.listPlans, {})) plans.push(plan.name);
  assert.ok(plans.includes("plans/free"), plans.join());
  const wrong = new TenantryClient({ transport, credentials: new ServiceAccount(credential!.clientId, "wrong") });
  const refused = await rejection(wrong.plans.listPlans({}));
  assert.equal(refused.code, Code.Unauthenticated);
});

test("Connect sends the reads the contracts mark free of side effects as GET, writes as POST", async () => {
  const sent: string[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    sent.push(`${init?.method ?? "GET"} ${url.pathname.split(".").pop()}`);
    return realFetch(input, init);
  };
  try {
    const client = await signedIn(connectTransport(`http://${server.http}`), "gus");
    const org = await createOrg(client);
    assert.equal(await check(client, "organization", org, "project.create"), Permissionship.ALLOWED);
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.ok(sent.includes("POST OrganizationService/CreateOrganization"), sent.join());
  assert.ok(sent.includes("GET AuthorizationService/CheckPermission"), sent.join());
  assert.ok(sent.includes("POST IdentityService/Me"), "Me may create an organization: never GET");
});
