// Node transports: gRPC over HTTP/2 to the gRPC port (or the gateway's port, which passes
// gRPC through). Kept apart from the main entry so browser bundles never import node:http2.
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { TransportFactory } from "./client.js";

/** gRPC over HTTP/2, e.g. `grpcTransport("http://127.0.0.1:50051")`. */
export function grpcTransport(baseUrl: string): TransportFactory {
  return (interceptors) => createGrpcTransport({ baseUrl, interceptors });
}
