// Credentials: what a client sends to prove who it is, and how it keeps that fresh.
//
// - AccessToken: a bearer token you manage yourself.
// - Session: a signed-in user's tokens (from signUp/verifyEmail/login). The access token is
//   refreshed with the refresh token shortly before it expires, and once more when the
//   server answers UNAUTHENTICATED; onRefresh lets you store the rotated tokens.
// - ApiKey: an API key secret. By default it is exchanged for a short-lived access token
//   (ApiKeyService.AuthenticateApiKey), which works on the gRPC port and the gateway alike;
//   `{ exchange: false }` sends it as the `x-api-key` header instead, which only the gateway
//   (the HTTP port: gRPC-Web, Connect, REST) reads.
// - ServiceAccount: client credentials exchanged for access tokens
//   (ServiceAccountService.IssueServiceAccountToken), renewed before expiry.
//
// A refresh happens once however many calls are waiting for it.
import type { Client } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { AuthTokens } from "./gen/tenantry/identity/v1/token_pb.js";
import type { IdentityService } from "./gen/tenantry/identity/v1/identity_service_pb.js";
import type { ApiKeyService } from "./gen/tenantry/identity/v1/api_key_pb.js";
import type { ServiceAccountService } from "./gen/tenantry/identity/v1/service_account_pb.js";

export type Header = readonly [name: string, value: string];

/** Clients without credentials, through which credentials get their tokens. */
export interface TokenServices {
  identity: Client<typeof IdentityService>;
  apiKeys: Client<typeof ApiKeyService>;
  serviceAccounts: Client<typeof ServiceAccountService>;
}

export interface Credentials {
  /** The headers to send, getting a new token first if needed. */
  headers(services: TokenServices): Promise<readonly Header[]>;
  /**
   * Called when the server refused `sent` as UNAUTHENTICATED: forgets it if it is still
   * current, and says whether getting a new one may help (then the call is tried once more).
   */
  invalidate(sent: readonly Header[]): boolean;
}

const bearer = (token: string): Header[] => [["authorization", `Bearer ${token}`]];

const millis = (ts: Timestamp | undefined): number =>
  ts && ts.seconds > 0n ? Number(ts.seconds) * 1000 + ts.nanos / 1e6 : Infinity;

/** A bearer access token obtained and renewed by the caller. */
export class AccessToken implements Credentials {
  constructor(public token: string) {}
  async headers(): Promise<readonly Header[]> {
    return bearer(this.token);
  }
  invalidate(): boolean {
    return false;
  }
}

/** A token obtained by an exchange and kept until `marginMs` before it expires. */
abstract class ExpiringToken implements Credentials {
  protected token: string | undefined;
  protected expiresAt = 0;
  #pending: Promise<void> | undefined;

  constructor(readonly marginMs: number) {}

  protected abstract exchange(services: TokenServices): Promise<void>;

  protected store(token: string, expireTime: Timestamp | undefined): void {
    this.token = token;
    this.expiresAt = millis(expireTime);
  }

  protected current(): readonly Header[] | undefined {
    if (this.token && Date.now() < this.expiresAt - this.marginMs) return bearer(this.token);
    return undefined;
  }

  async headers(services: TokenServices): Promise<readonly Header[]> {
    const current = this.current();
    if (current) return current;
    // One exchange at a time; every waiting call uses its result.
    this.#pending ??= this.exchange(services).finally(() => {
      this.#pending = undefined;
    });
    await this.#pending;
    return this.current() ?? (this.token ? bearer(this.token) : []);
  }

  invalidate(sent: readonly Header[]): boolean {
    if (this.token && sent.some(([k, v]) => k === "authorization" && v === `Bearer ${this.token}`)) {
      this.token = undefined;
    }
    return true;
  }
}

/**
 * A signed-in user's tokens, refreshed with IdentityService.Refresh. Refresh tokens rotate:
 * each refresh returns a new one and the old one stops working (presented again, it ends
 * the whole session), so the new tokens replace the old ones, and `onRefresh` gets them.
 */
export class Session extends ExpiringToken {
  tokens: AuthTokens;

  constructor(
    tokens: AuthTokens,
    readonly options: { onRefresh?: (tokens: AuthTokens) => void; marginMs?: number } = {},
  ) {
    super(options.marginMs ?? 30_000);
    this.tokens = tokens;
    this.set(tokens);
  }

  /** Takes new tokens, keeping the refresh token when they carry none. */
  set(tokens: AuthTokens): void {
    const refreshToken = tokens.refreshToken || this.tokens.refreshToken;
    this.tokens = { ...tokens, refreshToken };
    this.store(tokens.accessToken, tokens.expireTime);
  }

  protected override current(): readonly Header[] | undefined {
    const current = super.current();
    // Nothing to refresh with: send what we have and let the server decide.
    if (!current && !this.tokens.refreshToken && this.token) return bearer(this.token);
    return current;
  }

  protected async exchange(services: TokenServices): Promise<void> {
    const response = await services.identity.refresh({ refreshToken: this.tokens.refreshToken });
    if (!response.tokens) throw new Error("Refresh answered no tokens");
    this.set(response.tokens);
    this.options.onRefresh?.(this.tokens);
  }

  /** Refreshes now, whatever the access token's expiry. */
  async refresh(services: TokenServices): Promise<AuthTokens> {
    this.token = undefined;
    await this.headers(services);
    return this.tokens;
  }

  override invalidate(sent: readonly Header[]): boolean {
    return Boolean(this.tokens.refreshToken) && super.invalidate(sent);
  }
}

/** An API key secret (`tnt_…`); see the module comment for `exchange`. */
export class ApiKey extends ExpiringToken {
  readonly exchangeForToken: boolean;

  constructor(
    readonly secret: string,
    options: { exchange?: boolean; marginMs?: number } = {},
  ) {
    super(options.marginMs ?? 30_000);
    this.exchangeForToken = options.exchange ?? true;
  }

  protected override current(): readonly Header[] | undefined {
    return this.exchangeForToken ? super.current() : [["x-api-key", this.secret]];
  }

  protected async exchange(services: TokenServices): Promise<void> {
    const response = await services.apiKeys.authenticateApiKey({ secret: this.secret });
    this.store(response.accessToken, response.expireTime);
  }

  override invalidate(sent: readonly Header[]): boolean {
    return this.exchangeForToken && super.invalidate(sent);
  }
}

/** A service account's client credentials, exchanged for access tokens. */
export class ServiceAccount extends ExpiringToken {
  constructor(
    readonly clientId: string,
    readonly clientSecret: string,
    readonly options: { organization?: string; marginMs?: number } = {},
  ) {
    super(options.marginMs ?? 30_000);
  }

  protected async exchange(services: TokenServices): Promise<void> {
    const response = await services.serviceAccounts.issueServiceAccountToken({
      clientId: this.clientId,
      clientSecret: this.clientSecret,
      organization: this.options.organization ?? "",
    });
    this.store(response.accessToken, response.expireTime);
  }
}
