// TenantryClient: one transport's worth of typed Connect clients, one per public service,
// with what callers otherwise write by hand on every call: credentials and their refresh,
// the consistency token, retries of safe calls on UNAVAILABLE, and typed errors.
import { clone, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { Session, type Credentials, type TokenServices } from "./auth.js";
import { CONSISTENCY_HEADER, ConsistencyTracker } from "./consistency.js";
import { toTenantryError } from "./errors.js";
import { DEFAULT_RETRY, backoffMs, isSafe, requestIdField, type RetryPolicy } from "./retry.js";
import { AuditService } from "./gen/tenantry/audit/v1/audit_pb.js";
import { AuthorizationService } from "./gen/tenantry/authz/v1/authorization_pb.js";
import { SchemaService } from "./gen/tenantry/authz/v1/schema_pb.js";
import { BillingAccountService } from "./gen/tenantry/billing/v1/billing_account_pb.js";
import { EntitlementService } from "./gen/tenantry/billing/v1/entitlement_pb.js";
import { InvoiceService } from "./gen/tenantry/billing/v1/invoice_pb.js";
import { PlanService } from "./gen/tenantry/billing/v1/plan_pb.js";
import { SubscriptionService } from "./gen/tenantry/billing/v1/subscription_pb.js";
import { UsageService } from "./gen/tenantry/billing/v1/usage_pb.js";
import { ApiKeyService } from "./gen/tenantry/identity/v1/api_key_pb.js";
import {
  IdentityService,
  type CompleteMfaLoginResponse,
  type LoginResponse,
  type SignUpRequestSchema,
  type SignUpResponse,
  type VerifyEmailResponse,
} from "./gen/tenantry/identity/v1/identity_service_pb.js";
import { ServiceAccountService } from "./gen/tenantry/identity/v1/service_account_pb.js";
import type { AuthTokens } from "./gen/tenantry/identity/v1/token_pb.js";
import { OrganizationService } from "./gen/tenantry/organization/v1/organization_service_pb.js";
import { ProjectService } from "./gen/tenantry/organization/v1/project_pb.js";
import { TeamService } from "./gen/tenantry/organization/v1/team_pb.js";
import { WorkspaceService } from "./gen/tenantry/organization/v1/workspace_pb.js";
import { InvitationService } from "./gen/tenantry/rbac/v1/invitation_pb.js";
import { MembershipService } from "./gen/tenantry/rbac/v1/membership_pb.js";
import { ProjectGrantService } from "./gen/tenantry/rbac/v1/project_grant_pb.js";
import { RoleService } from "./gen/tenantry/rbac/v1/role_pb.js";
import { TeamMemberService } from "./gen/tenantry/rbac/v1/team_member_pb.js";

/** Builds a transport with the client's interceptors (see webTransport and node's grpcTransport). */
export type TransportFactory = (interceptors: Interceptor[]) => Transport;

export interface ClientOptions {
  /** How to reach Tenantry: `webTransport(url)` (browsers, gateway) or `grpcTransport(url)` (Node). */
  transport: TransportFactory;
  credentials?: Credentials;
  retry?: RetryPolicy;
  /** A token (another client's `consistencyToken`) that this client's reads must reflect. */
  consistencyToken?: string;
  /** Interceptors of your own, run outermost (they see typed errors). */
  interceptors?: Interceptor[];
}

export class TenantryClient {
  credentials: Credentials | undefined;
  readonly retry: RetryPolicy;
  readonly #tracker: ConsistencyTracker;
  readonly #transport: Transport;
  readonly #tokens: TokenServices;

  readonly identity: Client<typeof IdentityService>;
  readonly apiKeys: Client<typeof ApiKeyService>;
  readonly serviceAccounts: Client<typeof ServiceAccountService>;
  readonly organizations: Client<typeof OrganizationService>;
  readonly workspaces: Client<typeof WorkspaceService>;
  readonly teams: Client<typeof TeamService>;
  readonly projects: Client<typeof ProjectService>;
  readonly memberships: Client<typeof MembershipService>;
  readonly roles: Client<typeof RoleService>;
  readonly teamMembers: Client<typeof TeamMemberService>;
  readonly invitations: Client<typeof InvitationService>;
  readonly projectGrants: Client<typeof ProjectGrantService>;
  readonly authorization: Client<typeof AuthorizationService>;
  readonly schema: Client<typeof SchemaService>;
  readonly plans: Client<typeof PlanService>;
  readonly subscriptions: Client<typeof SubscriptionService>;
  readonly billingAccounts: Client<typeof BillingAccountService>;
  readonly entitlements: Client<typeof EntitlementService>;
  readonly usage: Client<typeof UsageService>;
  readonly invoices: Client<typeof InvoiceService>;
  readonly audit: Client<typeof AuditService>;

  constructor(options: ClientOptions) {
    this.credentials = options.credentials;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.#tracker = new ConsistencyTracker(options.consistencyToken);
    const own = options.interceptors ?? [];
    // Outermost first: typed errors, then retries, then consistency, then credentials.
    const anonymous = options.transport([
      ...own,
      this.#errors,
      this.#retries,
      this.#consistency,
    ]);
    this.#tokens = {
      identity: createClient(IdentityService, anonymous),
      apiKeys: createClient(ApiKeyService, anonymous),
      serviceAccounts: createClient(ServiceAccountService, anonymous),
    };
    this.#transport = options.transport([
      ...own,
      this.#errors,
      this.#retries,
      this.#consistency,
      this.#credentials,
    ]);
    const t = this.#transport;
    this.identity = createClient(IdentityService, t);
    this.apiKeys = createClient(ApiKeyService, t);
    this.serviceAccounts = createClient(ServiceAccountService, t);
    this.organizations = createClient(OrganizationService, t);
    this.workspaces = createClient(WorkspaceService, t);
    this.teams = createClient(TeamService, t);
    this.projects = createClient(ProjectService, t);
    this.memberships = createClient(MembershipService, t);
    this.roles = createClient(RoleService, t);
    this.teamMembers = createClient(TeamMemberService, t);
    this.invitations = createClient(InvitationService, t);
    this.projectGrants = createClient(ProjectGrantService, t);
    this.authorization = createClient(AuthorizationService, t);
    this.schema = createClient(SchemaService, t);
    this.plans = createClient(PlanService, t);
    this.subscriptions = createClient(SubscriptionService, t);
    this.billingAccounts = createClient(BillingAccountService, t);
    this.entitlements = createClient(EntitlementService, t);
    this.usage = createClient(UsageService, t);
    this.invoices = createClient(InvoiceService, t);
    this.audit = createClient(AuditService, t);
  }

  /** A typed client of any other service (internal ones included) on this client's transport. */
  service<T extends DescService>(service: T): Client<T> {
    return createClient(service, this.#transport);
  }

  /** The newest consistency token this client has seen (undefined before its first write). */
  get consistencyToken(): string | undefined {
    return this.#tracker.token;
  }

  /** Makes later calls reflect at least `token` (another client's or process's write). */
  addConsistencyToken(token: string): void {
    this.#tracker.add(token);
  }

  // Sign-in: each method that answers tokens makes them this client's Session.

  /**
   * Signs up. Where the deployment verifies addresses first (the default), the answer has
   * `verificationRequired` and no tokens: call verifyEmail with the mailed token.
   */
  async signUp(request: MessageInitShape<typeof SignUpRequestSchema>): Promise<SignUpResponse> {
    const response = await this.#tokens.identity.signUp(request);
    if (response.tokens) this.useTokens(response.tokens);
    return response;
  }

  /** Verifies an address with the mailed token; a sign-up's verification signs in. */
  async verifyEmail(token: string): Promise<VerifyEmailResponse> {
    const response = await this.#tokens.identity.verifyEmail({ token });
    if (response.tokens) this.useTokens(response.tokens);
    return response;
  }

  /** Signs in; with MFA the answer holds `result.case === "mfaChallenge"`: completeMfaLogin. */
  async login(email: string, password: string, organization = ""): Promise<LoginResponse> {
    const response = await this.#tokens.identity.login({ email, password, organization });
    if (response.result.case === "tokens") this.useTokens(response.result.value);
    return response;
  }

  /** Finishes a sign-in that answered an MFA challenge. */
  async completeMfaLogin(
    mfaToken: string,
    factor: { totpCode: string } | { recoveryCode: string },
  ): Promise<CompleteMfaLoginResponse> {
    const response = await this.#tokens.identity.completeMfaLogin({
      mfaToken,
      factor:
        "totpCode" in factor
          ? { case: "totpCode", value: factor.totpCode }
          : { case: "recoveryCode", value: factor.recoveryCode },
    });
    if (response.tokens) this.useTokens(response.tokens);
    return response;
  }

  /** Makes `tokens` (from any call that answers them) this client's session. */
  useTokens(tokens: AuthTokens, onRefresh?: (tokens: AuthTokens) => void): Session {
    const session = new Session(tokens, { onRefresh });
    this.credentials = session;
    return session;
  }

  /** Refreshes the session's tokens now (they are refreshed before expiry anyway). */
  async refresh(): Promise<AuthTokens> {
    const session = this.credentials;
    if (!(session instanceof Session)) throw new TypeError("refresh needs a Session (sign in first)");
    return session.refresh(this.#tokens);
  }

  /** Ends the session (its refresh token stops working) and forgets the credentials. */
  async logout(): Promise<void> {
    const session = this.credentials;
    if (session instanceof Session && session.tokens.refreshToken) {
      await this.#tokens.identity.logout({ refreshToken: session.tokens.refreshToken });
    }
    this.credentials = undefined;
  }

  // The interceptors.

  /** Every failure becomes a TenantryError with its google.rpc details decoded. */
  readonly #errors: Interceptor = (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (error) {
      throw toTenantryError(error);
    }
    // A stream's failure arrives while it is read.
    return res.stream ? { ...res, message: typedErrors(res.message) } : res;
  };

  /** UNAVAILABLE: safe unary calls are tried again with back-off (see retry.ts). */
  readonly #retries: Interceptor = (next) => async (req) => {
    if (req.stream) return next(req);
    const idField = requestIdField(req.method);
    let message = req.message;
    if (idField && !(message as Record<string, unknown>)[idField]) {
      message = clone(req.method.input, message);
      (message as Record<string, unknown>)[idField] = crypto.randomUUID();
    }
    const policy = isSafe(req.method) ? this.retry : { ...this.retry, maxAttempts: 1 };
    for (let attempt = 1; ; attempt++) {
      try {
        return await next({ ...req, message, header: new Headers(req.header) });
      } catch (error) {
        const code = ConnectError.from(error).code;
        if (code !== Code.Unavailable || attempt >= policy.maxAttempts || req.signal.aborted) {
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, backoffMs(policy, attempt - 1)));
      }
    }
  };

  /** Sends the newest token, and keeps the one each answer (or failure) carries. */
  readonly #consistency: Interceptor = (next) => async (req) => {
    const token = this.#tracker.token;
    if (token && !req.header.has(CONSISTENCY_HEADER)) req.header.set(CONSISTENCY_HEADER, token);
    try {
      const res = await next(req);
      this.#tracker.observe(res.header);
      if (!res.stream) this.#tracker.observe(res.trailer);
      return res;
    } catch (error) {
      if (error instanceof ConnectError) this.#tracker.observe(error.metadata);
      throw error;
    }
  };

  /** Adds the credentials; UNAUTHENTICATED gets one more try with a new token. */
  readonly #credentials: Interceptor = (next) => async (req) => {
    const credentials = this.credentials;
    if (!credentials || req.header.has("authorization") || req.header.has("x-api-key")) {
      return next(req);
    }
    const original = new Headers(req.header);
    for (let refreshed = false; ; refreshed = true) {
      const sent = await credentials.headers(this.#tokens);
      const header = new Headers(original);
      for (const [name, value] of sent) header.set(name, value);
      try {
        return await next({ ...req, header });
      } catch (error) {
        const code = ConnectError.from(error).code;
        if (req.stream || refreshed || code !== Code.Unauthenticated || !credentials.invalidate(sent)) {
          throw error;
        }
      }
    }
  };
}

async function* typedErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toTenantryError(error);
  }
}

/** Creates a client; the same as `new TenantryClient(options)`. */
export function createTenantryClient(options: ClientOptions): TenantryClient {
  return new TenantryClient(options);
}
