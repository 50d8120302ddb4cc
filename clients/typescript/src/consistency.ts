// Session consistency: a client reads its own writes on any service or replica. Every
// write answers a token in the `x-tenantry-consistency-token` response header; the client
// keeps the newest and sends it on every later call, so reads and checks reflect at least
// that state whichever process answers. Hand `client.consistencyToken` to another client
// (`addConsistencyToken`) to make it see this client's writes too.

export const CONSISTENCY_HEADER = "x-tenantry-consistency-token";

// `r<revision>` and, when a write still waits for an event, `.e<event id>` (UUIDv7, ordered
// by time). A token of another shape replaces the current one.
const TOKEN = /^r(\d{1,18})(?:\.e([0-9a-fA-F-]{36}))?$/;

/** The later of two tokens, merged as the server merges them. */
export function mergeTokens(current: string | undefined, next: string): string {
  if (current === undefined) return next;
  const a = TOKEN.exec(current);
  const b = TOKEN.exec(next);
  if (!a || !b) return next;
  const revision = BigInt(a[1]) > BigInt(b[1]) ? a[1] : b[1];
  const ea = (a[2] ?? "").toLowerCase();
  const eb = (b[2] ?? "").toLowerCase();
  const event = ea > eb ? ea : eb;
  return event ? `r${revision}.e${event}` : `r${revision}`;
}

/** The newest consistency token of one client session. */
export class ConsistencyTracker {
  #token: string | undefined;

  constructor(token?: string) {
    this.#token = token || undefined;
  }

  get token(): string | undefined {
    return this.#token;
  }

  /** Records the token of a response's headers or trailers, if any. */
  observe(headers: Headers | undefined): void {
    const value = headers?.get(CONSISTENCY_HEADER);
    if (value) this.#token = mergeTokens(this.#token, value);
  }

  add(token: string): void {
    if (token) this.#token = mergeTokens(this.#token, token);
  }
}
