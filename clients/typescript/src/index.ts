// @tenantry/client: Tenantry's contracts as Connect-ES clients, with sign-in and refresh,
// API keys and service accounts, session consistency, pagination, retries and typed errors.
// Browsers reach the gateway with gRPC-Web (webTransport) or the Connect protocol
// (connectTransport); Node reaches the gRPC port with gRPC (`@tenantry/client/node`). The generated messages and services are under
// `@tenantry/client/gen/tenantry/<service>/v1/<file>_pb.js`.
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import type { TransportFactory } from "./client.js";

export { TenantryClient, createTenantryClient } from "./client.js";
export type { ClientOptions, TransportFactory } from "./client.js";
export { AccessToken, ApiKey, ServiceAccount, Session } from "./auth.js";
export type { Credentials, Header, TokenServices } from "./auth.js";
export { CONSISTENCY_HEADER, ConsistencyTracker, mergeTokens } from "./consistency.js";
export { TenantryError, toTenantryError } from "./errors.js";
export type { FieldViolation } from "./errors.js";
export { pages, paginate } from "./pagination.js";
export type { ItemOf } from "./pagination.js";
export { DEFAULT_RETRY, NO_RETRY } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { Code } from "@connectrpc/connect";

/** gRPC-Web through the gateway's HTTP port, e.g. `webTransport("https://tenantry.example.com")`. */
export function webTransport(baseUrl: string): TransportFactory {
  return (interceptors) => createGrpcWebTransport({ baseUrl, interceptors });
}

/**
 * The Connect protocol through the gateway's HTTP port: JSON by default (readable in a
 * browser's network tab), protobuf with `{ binary: true }`. Reads the contracts mark free of
 * side effects (gets, lists, checks, lookups) go as GET unless `{ httpGet: false }`.
 */
export function connectTransport(
  baseUrl: string,
  options: { binary?: boolean; httpGet?: boolean } = {},
): TransportFactory {
  return (interceptors) =>
    createConnectTransport({
      baseUrl,
      interceptors,
      useBinaryFormat: options.binary ?? false,
      useHttpGet: options.httpGet ?? true,
    });
}
