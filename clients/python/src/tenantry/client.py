"""The synchronous client: `Client(target, credentials=…)` holds one gRPC channel and a
typed stub per public service, and does on every call what callers otherwise write by hand
(see the package README): credentials and their refresh, the consistency token, retries of
safe calls on UNAVAILABLE, and typed errors."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Type

import grpc
from google.protobuf import message

from tenantry import errors
from tenantry._calls import Attempts, Core
from tenantry._stubs import Stubs
from tenantry.auth import Credentials, Metadata, Session
from tenantry.consistency import HEADER as CONSISTENCY_HEADER
from tenantry.identity.v1 import identity_service_pb2, token_pb2
from tenantry.retry import RetryPolicy

_IDENTITY = "/tenantry.identity.v1.IdentityService/"


class _UnaryUnary(grpc.UnaryUnaryMultiCallable):  # type: ignore[type-arg,unused-ignore]
    """A unary method of the client's channel: credentials, consistency, retries, errors."""

    def __init__(self, inner: Any, path: str, client: "Client", authenticated: bool) -> None:
        self._inner = inner
        self._path = path
        self._client = client
        self._authenticated = authenticated

    def __call__(
        self,
        request: Any,
        timeout: Optional[float] = None,
        metadata: Optional[Sequence[Tuple[str, Any]]] = None,
        credentials: Optional[grpc.CallCredentials] = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> Any:
        response, _ = self.with_call(
            request, timeout, metadata, credentials, wait_for_ready, compression
        )
        return response

    def with_call(
        self,
        request: Any,
        timeout: Optional[float] = None,
        metadata: Optional[Sequence[Tuple[str, Any]]] = None,
        credentials: Optional[grpc.CallCredentials] = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[grpc.Compression] = None,
    ) -> Tuple[Any, grpc.Call]:
        core = self._client._core
        attempts = Attempts(core, self._path, request, timeout, metadata, self._authenticated)
        while True:
            credential = self._client._credential_metadata(attempts.credentials)
            try:
                response, call = self._inner.with_call(
                    attempts.request,
                    timeout=attempts.timeout(),
                    metadata=attempts.metadata(credential),
                    credentials=credentials,
                    wait_for_ready=wait_for_ready,
                    compression=compression,
                )
            except grpc.RpcError as error:
                _observe(core, error)
                pause = attempts.after_failure(error.code())
                if pause is None:
                    raise errors.from_rpc_error(error) from None
                time.sleep(pause)
                continue
            _observe(core, call)
            return response, call

    def future(  # type: ignore[override]
        self,
        request: Any,
        timeout: Optional[float] = None,
        metadata: Optional[Sequence[Tuple[str, Any]]] = None,
        **kwargs: Any,
    ) -> "futures.Future[Any]":
        """Runs the call (with everything `__call__` does) on the client's worker threads.
        For many concurrent calls, the asyncio client (tenantry.aio) is the better tool."""
        return self._client._workers().submit(self, request, timeout, metadata, **kwargs)


def _observe(core: Core, call: Any) -> None:
    """Keeps the consistency token of an answer (headers, or trailers of a failure)."""
    for getter in ("initial_metadata", "trailing_metadata"):
        read = getattr(call, getter, None)
        if read is not None:
            core.tracker.observe(read())


class _UnaryStream(grpc.UnaryStreamMultiCallable):  # type: ignore[type-arg,unused-ignore]
    """A server-streaming method (Watch, ExportAuditEvents): credentials and consistency are
    sent; a stream is not retried, and its errors are raised as `TenantryError`."""

    def __init__(self, inner: Any, client: "Client", authenticated: bool) -> None:
        self._inner = inner
        self._client = client
        self._authenticated = authenticated

    def __call__(  # type: ignore[override]
        self,
        request: Any,
        timeout: Optional[float] = None,
        metadata: Optional[Sequence[Tuple[str, Any]]] = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        core = self._client._core
        attempts = Attempts(core, "", request, timeout, metadata, self._authenticated, stream=True)
        credential = self._client._credential_metadata(attempts.credentials)
        stream = self._inner(
            attempts.request,
            timeout=attempts.timeout(),
            metadata=attempts.metadata(credential),
            **kwargs,
        )
        return _Stream(stream)


class _Stream:
    """The responses of a stream, raising `TenantryError`s; `cancel()`, `initial_metadata()`
    and the rest of the call's methods pass through."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Channel(grpc.Channel):
    """The channel the stubs are built on: every method goes through the client."""

    def __init__(self, inner: grpc.Channel, client: "Client", authenticated: bool) -> None:
        self._inner = inner
        self._client = client
        self._authenticated = authenticated

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._inner.unary_unary(method, *args, **kwargs)
        return _UnaryUnary(inner, method, self._client, self._authenticated)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._inner.unary_stream(method, *args, **kwargs)
        return _UnaryStream(inner, self._client, self._authenticated)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._inner.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._inner.stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._inner.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._inner.unsubscribe(callback)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> "_Channel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Client(Stubs):
    """A Tenantry client over one gRPC channel.

    `target` is the gRPC port (`127.0.0.1:50051`) or the gateway's HTTP port, which passes
    gRPC through. Every public service is an attribute holding its typed stub
    (`client.organizations.CreateOrganization(...)`); `client.channel` builds any other
    stub the same way. `credentials` may be set or replaced at any time; the sign-in methods
    below set a `Session`.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: Optional[Credentials] = None,
        secure: bool = False,
        root_certificates: Optional[bytes] = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: Optional[float] = 30.0,
        consistency_token: Optional[str] = None,
        options: Sequence[Tuple[str, Any]] = (),
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        if channel is None:
            if secure:
                tls = grpc.ssl_channel_credentials(root_certificates)
                channel = grpc.secure_channel(target, tls, options=list(options))
            else:
                channel = grpc.insecure_channel(target, options=list(options))
        self._raw = channel
        self._core = Core(credentials, retry, timeout, consistency_token)
        self._pool: Optional[futures.ThreadPoolExecutor] = None
        self._pool_lock = threading.Lock()
        self._anonymous = _Channel(channel, self, authenticated=False)
        self.channel: grpc.Channel = _Channel(channel, self, authenticated=True)
        self._build_stubs(self.channel)
        self._sign_in = self._anonymous_identity()

    def _anonymous_identity(self) -> Any:
        from tenantry.identity.v1 import identity_service_pb2_grpc

        return identity_service_pb2_grpc.IdentityServiceStub(self._anonymous)

    # Session state.

    @property
    def credentials(self) -> Optional[Credentials]:
        return self._core.credentials

    @credentials.setter
    def credentials(self, credentials: Optional[Credentials]) -> None:
        self._core.credentials = credentials

    @property
    def consistency_token(self) -> Optional[str]:
        """The newest consistency token this client has seen (None before its first write)."""
        return self._core.tracker.token

    def add_consistency_token(self, token: str) -> None:
        """Makes this client's later calls reflect at least `token` (another client's or
        process's write), as if this client had made that write."""
        self._core.tracker.observe(((CONSISTENCY_HEADER, token),))

    def _credential_metadata(self, credentials: Optional[Credentials]) -> Metadata:
        return credentials.metadata(self._exchange) if credentials is not None else ()

    def _exchange(self, path: str, request: message.Message, response: Type[Any]) -> Any:
        call = self._anonymous.unary_unary(
            path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request)

    # Sign-in: each method that answers tokens makes them the client's `Session`.

    def sign_up(
        self,
        email: str,
        password: str,
        display_name: str,
        *,
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
        **fields: Any,
    ) -> identity_service_pb2.SignUpResponse:
        """Signs up. Where the deployment verifies addresses first (the default), the answer
        has `verification_required` and no tokens: call `verify_email` with the mailed token."""
        request = identity_service_pb2.SignUpRequest(
            email=email, password=password, display_name=display_name, **fields
        )
        response: identity_service_pb2.SignUpResponse = self._sign_in.SignUp(request)
        if response.HasField("tokens"):
            self.use_tokens(response.tokens, on_refresh=on_refresh)
        return response

    def verify_email(
        self, token: str, *, on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None
    ) -> identity_service_pb2.VerifyEmailResponse:
        """Verifies an address with the mailed token; a sign-up's verification signs in."""
        response: identity_service_pb2.VerifyEmailResponse = self._sign_in.VerifyEmail(
            identity_service_pb2.VerifyEmailRequest(token=token)
        )
        if response.HasField("tokens"):
            self.use_tokens(response.tokens, on_refresh=on_refresh)
        return response

    def login(
        self,
        email: str,
        password: str,
        *,
        organization: str = "",
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
    ) -> identity_service_pb2.LoginResponse:
        """Signs in. When the user has MFA, the answer holds `mfa_challenge` instead of tokens:
        finish with `complete_mfa_login`."""
        response: identity_service_pb2.LoginResponse = self._sign_in.Login(
            identity_service_pb2.LoginRequest(
                email=email, password=password, organization=organization
            )
        )
        if response.HasField("tokens"):
            self.use_tokens(response.tokens, on_refresh=on_refresh)
        return response

    def complete_mfa_login(
        self, mfa_token: str, *, totp_code: str = "", recovery_code: str = ""
    ) -> identity_service_pb2.CompleteMfaLoginResponse:
        """Finishes a sign-in that answered an MFA challenge, with a TOTP or recovery code."""
        request = identity_service_pb2.CompleteMfaLoginRequest(mfa_token=mfa_token)
        if totp_code:
            request.totp_code = totp_code
        else:
            request.recovery_code = recovery_code
        response: identity_service_pb2.CompleteMfaLoginResponse = self._sign_in.CompleteMfaLogin(
            request
        )
        self.use_tokens(response.tokens)
        return response

    def use_tokens(
        self,
        tokens: token_pb2.AuthTokens,
        *,
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
    ) -> Session:
        """Makes `tokens` (from any call that answers them) the client's session."""
        session = Session(tokens, on_refresh=on_refresh)
        self._core.credentials = session
        return session

    def refresh(self) -> token_pb2.AuthTokens:
        """Refreshes the session's tokens now (they are refreshed before expiry anyway)."""
        session = self._core.credentials
        if not isinstance(session, Session):
            raise TypeError("refresh needs a Session (sign in first)")
        return session.refresh(self._exchange)

    def switch_organization(self, organization: str) -> token_pb2.AuthTokens:
        """Makes another organization the session's active one, and uses its tokens."""
        session = self._core.credentials
        if not isinstance(session, Session):
            raise TypeError("switch_organization needs a Session (sign in first)")
        response = self.identity.SwitchOrganization(
            identity_service_pb2.SwitchOrganizationRequest(organization=organization)
        )
        session._set(response.tokens)  # keeps the refresh token when none is answered
        return session.tokens

    def logout(self) -> None:
        """Ends the session (its refresh token stops working) and forgets its credentials."""
        session = self._core.credentials
        if isinstance(session, Session) and session.tokens.refresh_token:
            self._sign_in.Logout(
                identity_service_pb2.LogoutRequest(refresh_token=session.tokens.refresh_token)
            )
        self._core.credentials = None

    # Lifetime.

    def _workers(self) -> futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = futures.ThreadPoolExecutor(thread_name_prefix="tenantry")
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._raw.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

