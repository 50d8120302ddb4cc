// What the client does around a call, against a scripted in-memory service (Connect's
// router transport): retries (which calls, how often, with one request id), the consistency
// token sent back, the refresh after UNAUTHENTICATED, typed error details.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { Session, TenantryClient, TenantryError, type TransportFactory } from "@tenantry/client";
import { ErrorInfoSchema, RetryInfoSchema } from "@tenantry/client/gen/google/rpc/error_details_pb";
import { OrganizationService } from "@tenantry/client/gen/tenantry/organization/v1/organization_service_pb";
import { IdentityService } from "@tenantry/client/gen/tenantry/identity/v1/identity_service_pb";
import { AuthTokensSchema } from "@tenantry/client/gen/tenantry/identity/v1/token_pb";

const HEADER = "x-tenantry-consistency-token";
const FAST = { maxAttempts: 4, initialBackoffMs: 1, maxBackoffMs: 2, multiplier: 2 };

function script(failures: number) {
  const calls: Record<string, { requestId?: string; headers: Headers }[]> = {};
  let revision = 0;
  let valid = "good";
  const seen = (method: string, ctx: HandlerContext, requestId?: string) => {
    const list = (calls[method] ??= []);
    list.push({ requestId, headers: new Headers(ctx.requestHeader) });
    if (list.length <= failures) throw new ConnectError("restarting", Code.Unavailable);
  };
  const transport: TransportFactory = (interceptors) =>
    createRouterTransport(
      ({ service }) => {
        service(OrganizationService, {
          getOrganization(req, ctx) {
            seen("get", ctx);
            if (ctx.requestHeader.get("authorization") !== `Bearer ${valid}`) {
              throw new ConnectError("token expired", Code.Unauthenticated);
            }
            return { organization: { name: req.name } };
          },
          createOrganization(req, ctx) {
            seen("create", ctx, req.requestId);
            ctx.responseHeader.set(HEADER, `r${++revision}`);
            return { organization: req.organization };
          },
          updateOrganization(req, ctx) {
            seen("update", ctx);
            return { organization: req.organization };
          },
          deleteOrganization() {
            throw new ConnectError("it has children", Code.FailedPrecondition, undefined, [
              { desc: ErrorInfoSchema, value: { reason: "HAS_CHILDREN", domain: "organization", metadata: { children: "2" } } },
              { desc: RetryInfoSchema, value: { retryDelay: { seconds: 3n, nanos: 0 } } },
            ]);
          },
        });
        service(IdentityService, {
          refresh(req, ctx) {
            seen("refresh", ctx);
            valid = `good-${calls.refresh.length}`;
            return { tokens: { accessToken: valid, refreshToken: `${req.refreshToken}+` } };
          },
        });
      },
      { transport: { interceptors } },
    );
  return { calls, transport };
}

const session = (accessToken = "good", onRefresh?: (t: unknown) => void) =>
  new Session(create(AuthTokensSchema, { accessToken, refreshToken: "refresh-1" }), { onRefresh });

test("reads are retried on UNAVAILABLE, up to maxAttempts", async () => {
  const { calls, transport } = script(2);
  const client = new TenantryClient({ transport, credentials: session(), retry: FAST });
  const answer = await client.organizations.getOrganization({ name: "organizations/a" });
  assert.equal(answer.organization?.name, "organizations/a");
  assert.equal(calls.get.length, 3);

  const down = script(10);
  const failing = new TenantryClient({ transport: down.transport, credentials: session(), retry: FAST });
  await assert.rejects(failing.organizations.getOrganization({ name: "organizations/a" }), (e: unknown) => {
    return e instanceof TenantryError && e.code === Code.Unavailable;
  });
  assert.equal(down.calls.get.length, FAST.maxAttempts);
});

test("creates are retried with one request id; other writes are not retried", async () => {
  const { calls, transport } = script(1);
  const client = new TenantryClient({ transport, retry: FAST });
  await client.organizations.createOrganization({ organization: { displayName: "A" } });
  const ids = calls.create.map((c) => c.requestId);
  assert.equal(ids.length, 2);
  assert.ok(ids[0]);
  assert.equal(ids[0], ids[1]);
  await assert.rejects(client.organizations.updateOrganization({}), (e: unknown) => {
    return e instanceof TenantryError && e.code === Code.Unavailable;
  });
  assert.equal(calls.update.length, 1);
});

test("the newest consistency token is sent back", async () => {
  const { calls, transport } = script(0);
  const client = new TenantryClient({ transport, credentials: session() });
  await client.organizations.getOrganization({ name: "organizations/a" });
  await client.organizations.createOrganization({});
  await client.organizations.createOrganization({});
  await client.organizations.getOrganization({ name: "organizations/a" });
  assert.equal(client.consistencyToken, "r2");
  assert.deepEqual(calls.get.map((c) => c.headers.get(HEADER)), [null, "r2"]);
  assert.equal(calls.create[1].headers.get(HEADER), "r1");
});

test("UNAUTHENTICATED refreshes once and retries", async () => {
  const { calls, transport } = script(0);
  const stored: unknown[] = [];
  const client = new TenantryClient({ transport, credentials: session("expired", (t) => stored.push(t)) });
  await client.organizations.getOrganization({ name: "organizations/a" });
  assert.equal(calls.refresh.length, 1);
  assert.equal(calls.refresh[0].headers.get("authorization"), null);
  assert.equal(stored.length, 1);
  assert.deepEqual(calls.get.map((c) => c.headers.get("authorization")), ["Bearer expired", "Bearer good-1"]);
});

test("error details are decoded", async () => {
  const { transport } = script(0);
  const client = new TenantryClient({ transport });
  const request: MessageInitShape<typeof OrganizationService.method.deleteOrganization.input> = {
    name: "organizations/a",
  };
  await assert.rejects(client.organizations.deleteOrganization(request), (e: unknown) => {
    assert.ok(e instanceof TenantryError);
    assert.equal(e.code, Code.FailedPrecondition);
    assert.equal(e.reason, "HAS_CHILDREN");
    assert.equal(e.domain, "organization");
    assert.deepEqual(e.errorMetadata, { children: "2" });
    assert.equal(e.retryDelayMs, 3000);
    assert.equal(e.rawMessage, "it has children");
    return true;
  });
});
