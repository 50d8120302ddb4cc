// Typed errors: every failed call rejects with a TenantryError (a ConnectError, so code
// that already handles those keeps working) carrying the server's google.rpc details:
// ErrorInfo's stable `reason` (branch on it, never on the message), its `domain` (the
// service that refused) and `metadata`; BadRequest's field violations; RetryInfo's delay.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** One bad field of a request, from google.rpc.BadRequest. */
export interface FieldViolation {
  field: string;
  description: string;
  reason: string;
}

export class TenantryError extends ConnectError {
  /** ErrorInfo.reason: a stable UPPER_SNAKE reason such as `SLUG_TAKEN` (docs/errors.md). */
  readonly reason: string;
  /** ErrorInfo.domain: the service that refused. */
  readonly domain: string;
  /** ErrorInfo.metadata: the values of the refusal (the permission missing, the limit…). */
  readonly errorMetadata: Readonly<Record<string, string>>;
  /** BadRequest.field_violations: which fields were bad, and why. */
  readonly fieldViolations: readonly FieldViolation[];
  /** RetryInfo.retry_delay in milliseconds, when the server said when to retry. */
  readonly retryDelayMs: number | undefined;

  constructor(cause: ConnectError) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    // Connect recognizes its errors by name (ConnectError's Symbol.hasInstance): keeping it
    // lets this error pass through Connect unchanged and `instanceof ConnectError` hold.
    this.name = "ConnectError";
    // Keep the incoming details, so findDetails() works on this error too.
    (this as { details: ConnectError["details"] }).details = cause.details;
    const info = cause.findDetails(ErrorInfoSchema)[0];
    this.reason = info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.errorMetadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = cause
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations)
      .map((v) => ({ field: v.field, description: v.description, reason: v.reason }));
    const retry = cause.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs =
      retry === undefined ? undefined : Number(retry.seconds) * 1000 + retry.nanos / 1e6;
  }

  // ConnectError's Symbol.hasInstance would call every ConnectError a TenantryError.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /** The status code's name, as gRPC spells it (`ALREADY_EXISTS`). */
  get codeName(): string {
    return Code[this.code]
      .replace(/([a-z])([A-Z])/g, "$1_$2")
      .toUpperCase();
  }
}

/** Converts anything a call threw into a TenantryError (non-Connect errors become UNKNOWN). */
export function toTenantryError(error: unknown): TenantryError {
  if (error instanceof TenantryError) return error;
  return new TenantryError(ConnectError.from(error));
}
