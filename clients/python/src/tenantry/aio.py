"""The asyncio client: the same conveniences as `tenantry.Client`, on `grpc.aio`.

    async with AsyncClient("127.0.0.1:50051") as client:
        await client.login(email, password)
        response = await client.organizations.CreateOrganization(request)
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Optional, Sequence, Tuple, Type

import grpc
from google.protobuf import message

from tenantry import errors
from tenantry._calls import Attempts, Core
from tenantry._stubs import AsyncStubs
from tenantry.auth import Credentials, Metadata, Session
from tenantry.consistency import HEADER as CONSISTENCY_HEADER
from tenantry.identity.v1 import identity_service_pb2, identity_service_pb2_grpc, token_pb2
from tenantry.pagination import pages_async, paginate_async
from tenantry.retry import RetryPolicy

__all__ = ["AsyncClient", "paginate_async", "pages_async"]


class _UnaryUnary:
    """A unary method of the client's channel; calling it returns an awaitable."""

    def __init__(self, inner: Any, path: str, client: "AsyncClient", authenticated: bool) -> None:
        self._inner = inner
        self._path = path
        self._client = client
        self._authenticated = authenticated

    def __call__(
        self,
        request: Any,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Sequence[Tuple[str, Any]]] = None,
        **kwargs: Any,
    ) -> Any:
        return self._call(request, timeout, metadata, kwargs)

    async def _call(
        self,
        request: Any,
        timeout: Optional[float],
        metadata: Optional[Sequence[Tuple[str, Any]]],
        kwargs: Any,
    ) -> Any:
        core = self._client._core
        attempts = Attempts(core, self._path, request, timeout, metadata, self._authenticated)
        while True:
            credential = await self._client._credential_metadata(attempts.credentials)
            call = self._inner(
                attempts.request,
                timeout=attempts.timeout(),
                metadata=attempts.metadata(credential),
                **kwargs,
            )
            try:
                response = await call
            except grpc.aio.AioRpcError as error:
                core.tracker.observe(error.initial_metadata())
                core.tracker.observe(error.trailing_metadata())
                pause = attempts.after_failure(error.code())
                if pause is None:
                    raise errors.from_rpc_error(error) from None
                await asyncio.sleep(pause)
                continue
            core.tracker.observe(await call.initial_metadata())
            core.tracker.observe(await call.trailing_metadata())
            return response


class _UnaryStream:
    """A server-streaming method: an async iterator; not retried; typed errors."""

    def __init__(self, inner: Any, client: "AsyncClient", authenticated: bool) -> None:
        self._inner = inner
        self._client = client
        self._authenticated = authenticated

    def __call__(
        self,
        request: Any,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Sequence[Tuple[str, Any]]] = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        return self._stream(request, timeout, metadata, kwargs)

    async def _stream(
        self,
        request: Any,
        timeout: Optional[float],
        metadata: Optional[Sequence[Tuple[str, Any]]],
        kwargs: Any,
    ) -> AsyncIterator[Any]:
        core = self._client._core
        attempts = Attempts(core, "", request, timeout, metadata, self._authenticated, stream=True)
        credential = await self._client._credential_metadata(attempts.credentials)
        call = self._inner(
            attempts.request,
            timeout=attempts.timeout(),
            metadata=attempts.metadata(credential),
            **kwargs,
        )
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as error:
            raise errors.from_rpc_error(error) from None


class _Channel:
    """What the generated stubs are built on: every method goes through the client."""

    def __init__(self, inner: grpc.aio.Channel, client: "AsyncClient", authenticated: bool) -> None:
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


class AsyncClient(AsyncStubs):
    """The asyncio twin of `tenantry.Client` (same arguments, same attributes; every call
    and sign-in method is awaited). Create it inside a running event loop."""

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
        channel: Optional[grpc.aio.Channel] = None,
    ) -> None:
        if channel is None:
            if secure:
                tls = grpc.ssl_channel_credentials(root_certificates)
                channel = grpc.aio.secure_channel(target, tls, options=list(options))
            else:
                channel = grpc.aio.insecure_channel(target, options=list(options))
        self._raw = channel
        self._core = Core(credentials, retry, timeout, consistency_token)
        self._anonymous = _Channel(channel, self, authenticated=False)
        self.channel: Any = _Channel(channel, self, authenticated=True)
        self._build_stubs(self.channel)
        self._sign_in: Any = identity_service_pb2_grpc.IdentityServiceStub(self._anonymous)  # type: ignore[call-overload]

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

    async def _credential_metadata(self, credentials: Optional[Credentials]) -> Metadata:
        if credentials is None:
            return ()
        return await credentials.metadata_async(self._exchange)

    async def _exchange(self, path: str, request: message.Message, response: Type[Any]) -> Any:
        call = self._anonymous.unary_unary(
            path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return await call(request)

    async def sign_up(
        self,
        email: str,
        password: str,
        display_name: str,
        *,
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
        **fields: Any,
    ) -> identity_service_pb2.SignUpResponse:
        """See `Client.sign_up`."""
        request = identity_service_pb2.SignUpRequest(
            email=email, password=password, display_name=display_name, **fields
        )
        response: identity_service_pb2.SignUpResponse = await self._sign_in.SignUp(request)
        if response.HasField("tokens"):
            self.use_tokens(response.tokens, on_refresh=on_refresh)
        return response

    async def verify_email(
        self, token: str, *, on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None
    ) -> identity_service_pb2.VerifyEmailResponse:
        """See `Client.verify_email`."""
        response: identity_service_pb2.VerifyEmailResponse = await self._sign_in.VerifyEmail(
            identity_service_pb2.VerifyEmailRequest(token=token)
        )
        if response.HasField("tokens"):
            self.use_tokens(response.tokens, on_refresh=on_refresh)
        return response

    async def login(
        self,
        email: str,
        password: str,
        *,
        organization: str = "",
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
    ) -> identity_service_pb2.LoginResponse:
        """See `Client.login`."""
        response: identity_service_pb2.LoginResponse = await self._sign_in.Login(
            identity_service_pb2.LoginRequest(
                email=email, password=password, organization=organization
            )
        )
        if response.HasField("tokens"):
            self.use_tokens(response.tokens, on_refresh=on_refresh)
        return response

    async def complete_mfa_login(
        self, mfa_token: str, *, totp_code: str = "", recovery_code: str = ""
    ) -> identity_service_pb2.CompleteMfaLoginResponse:
        """See `Client.complete_mfa_login`."""
        request = identity_service_pb2.CompleteMfaLoginRequest(mfa_token=mfa_token)
        if totp_code:
            request.totp_code = totp_code
        else:
            request.recovery_code = recovery_code
        response: identity_service_pb2.CompleteMfaLoginResponse = (
            await self._sign_in.CompleteMfaLogin(request)
        )
        self.use_tokens(response.tokens)
        return response

    def use_tokens(
        self,
        tokens: token_pb2.AuthTokens,
        *,
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
    ) -> Session:
        """See `Client.use_tokens`."""
        session = Session(tokens, on_refresh=on_refresh)
        self._core.credentials = session
        return session

    async def refresh(self) -> token_pb2.AuthTokens:
        """See `Client.refresh`."""
        session = self._core.credentials
        if not isinstance(session, Session):
            raise TypeError("refresh needs a Session (sign in first)")
        return await session.refresh_async(self._exchange)

    async def logout(self) -> None:
        """See `Client.logout`."""
        session = self._core.credentials
        if isinstance(session, Session) and session.tokens.refresh_token:
            await self._sign_in.Logout(
                identity_service_pb2.LogoutRequest(refresh_token=session.tokens.refresh_token)
            )
        self._core.credentials = None

    async def close(self) -> None:
        await self._raw.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
