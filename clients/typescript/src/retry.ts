// Retries on UNAVAILABLE with exponential back-off and full jitter.
//
// UNAVAILABLE means no answer arrived: whether the server acted is unknown, so only calls
// that are safe to repeat are retried: reads (methods named Get…, List…, Check…, Lookup…,
// Read…, and Me, VerifyChain, PreviewInvoice), and writes whose request has a `request_id`
// (AIP-155), which the client fills with a new UUID when empty and keeps across attempts,
// so a replay answers the original response instead of writing twice. Everything else
// (Login, Refresh — a rotated refresh token presented twice ends the session —, Update,
// Delete, …) fails at once; streams are never retried.
import type { DescMethod } from "@bufbuild/protobuf";

export interface RetryPolicy {
  /** Attempts in all, the first included; 1 turns retries off. Default 5. */
  maxAttempts: number;
  /** The first back-off ceiling, in ms. Default 100. */
  initialBackoffMs: number;
  /** The largest back-off ceiling, in ms. Default 5000. */
  maxBackoffMs: number;
  /** Growth of the ceiling per attempt. Default 2. */
  multiplier: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5000,
  multiplier: 2,
};

export const NO_RETRY: RetryPolicy = { ...DEFAULT_RETRY, maxAttempts: 1 };

const READ_PREFIXES = ["Get", "List", "Check", "Lookup", "Read"];
const SAFE_METHODS = new Set(["Me", "VerifyChain", "PreviewInvoice"]);

/** A random wait in [0, min(max, initial * multiplier^attempt)] ("full jitter"). */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(
    policy.maxBackoffMs,
    policy.initialBackoffMs * policy.multiplier ** attempt,
  );
  return Math.random() * ceiling;
}

/** Whether a unary call may be repeated after UNAVAILABLE. */
export function isSafe(method: DescMethod): boolean {
  const name = method.name;
  if (SAFE_METHODS.has(name) || READ_PREFIXES.some((p) => name.startsWith(p))) return true;
  return requestIdField(method) !== undefined;
}

/** The `request_id` field of a method's request, if it has one. */
export function requestIdField(method: DescMethod): string | undefined {
  const field = method.input.fields.find((f) => f.name === "request_id");
  return field?.localName;
}
