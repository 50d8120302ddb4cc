"""Credentials: what a client sends to prove who it is, and how it keeps that fresh.

- `AccessToken`: a bearer token you manage yourself.
- `Session`: a signed-in user's tokens (from `Client.login`, `verify_email`, …). The access
  token is refreshed with the refresh token shortly before it expires, and once more if the
  server answers UNAUTHENTICATED; `on_refresh` lets you store the rotated tokens.
- `ApiKey`: an API key secret. By default it is exchanged for a short-lived access token
  (`ApiKeyService.AuthenticateApiKey`), which works against the gRPC port and the gateway
  alike; `exchange=False` sends it as `x-api-key` metadata instead, which only the gateway
  (the HTTP port) reads.
- `ServiceAccount`: client credentials (`client_id`, `client_secret`) exchanged for an
  access token with `ServiceAccountService.IssueServiceAccountToken`, renewed before expiry.

Every kind works with the sync and the asyncio client; a refresh happens once however many
calls are waiting for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, Callable, Optional, Tuple, Type

from google.protobuf import message, timestamp_pb2

from tenantry.identity.v1 import api_key_pb2, identity_service_pb2, service_account_pb2, token_pb2

Metadata = Tuple[Tuple[str, str], ...]
# Calls an identity RPC without credentials: (full method, request, response class) → response.
SyncCall = Callable[[str, message.Message, Type[Any]], Any]
AsyncCall = Callable[[str, message.Message, Type[Any]], Awaitable[Any]]

_IDENTITY = "/tenantry.identity.v1.IdentityService/"


def _bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def _seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


class Credentials:
    """The base of every credential kind. Subclasses say what they hold (`_current`), how to
    get a new one (`_exchange`, `_accept`) and whether an UNAUTHENTICATED answer to what was
    sent is worth one more try (`invalidate`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._async_lock: Optional[asyncio.Lock] = None

    def _current(self) -> Optional[Metadata]:
        """The metadata to send now, or None when a new token is needed first."""
        raise NotImplementedError

    def _exchange(self) -> Tuple[str, message.Message, Type[Any]]:
        """The identity call that gets a new token: (full method, request, response class)."""
        raise NotImplementedError

    def _accept(self, response: Any) -> None:
        raise NotImplementedError

    def invalidate(self, sent: Metadata) -> bool:
        """Called when the server refused `sent` as UNAUTHENTICATED: forgets it if it is still
        the current credential, and says whether getting a new one may help."""
        return False

    def metadata(self, call: SyncCall) -> Metadata:
        """The credential metadata, getting a new token first if needed (sync clients)."""
        current = self._current()
        if current is not None:
            return current
        with self._lock:
            current = self._current()
            if current is None:
                self._accept(call(*self._exchange()))
                current = self._current() or ()
            return current

    async def metadata_async(self, call: AsyncCall) -> Metadata:
        """The credential metadata, getting a new token first if needed (asyncio clients)."""
        current = self._current()
        if current is not None:
            return current
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            current = self._current()
            if current is None:
                self._accept(await call(*self._exchange()))
                current = self._current() or ()
            return current


class AccessToken(Credentials):
    """A bearer access token that the caller obtained and renews itself."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def _current(self) -> Optional[Metadata]:
        return _bearer(self.token)


class _ExpiringToken(Credentials):
    """A token obtained by an exchange and kept until `margin` seconds before it expires."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.margin = margin
        self._token: Optional[str] = None
        self._expires_at = 0.0

    def _current(self) -> Optional[Metadata]:
        token = self._token
        if token and time.time() < self._expires_at - self.margin:
            return _bearer(token)
        return None

    def _store(self, token: str, expire_time: timestamp_pb2.Timestamp) -> None:
        self._token = token
        # No expiry in the answer: keep it until the server refuses it.
        self._expires_at = _seconds(expire_time) if expire_time.seconds else float("inf")

    def invalidate(self, sent: Metadata) -> bool:
        with self._lock:
            if self._token and sent == _bearer(self._token):
                self._token = None
        return True


class Session(_ExpiringToken):
    """A signed-in user's tokens, refreshed with `IdentityService.Refresh`.

    Refresh tokens rotate: each refresh returns a new one and the old one stops working (a
    rotated token presented again ends the whole session), so the new tokens replace the old
    ones here, and `on_refresh(tokens)` is called with them, e.g. to store them.
    """

    def __init__(
        self,
        tokens: token_pb2.AuthTokens,
        *,
        on_refresh: Optional[Callable[[token_pb2.AuthTokens], None]] = None,
        margin: float = 30.0,
    ) -> None:
        super().__init__(margin)
        self.tokens = token_pb2.AuthTokens()
        self.on_refresh = on_refresh
        self._set(tokens)

    def _set(self, tokens: token_pb2.AuthTokens) -> None:
        refresh_token = tokens.refresh_token or self.tokens.refresh_token
        self.tokens = token_pb2.AuthTokens()
        self.tokens.CopyFrom(tokens)
        self.tokens.refresh_token = refresh_token
        self._store(tokens.access_token, tokens.expire_time)

    def _current(self) -> Optional[Metadata]:
        current = super()._current()
        if current is None and not self.tokens.refresh_token and self._token:
            return _bearer(self._token)  # nothing to refresh with: let the server decide
        return current

    def _exchange(self) -> Tuple[str, message.Message, Type[Any]]:
        request = identity_service_pb2.RefreshRequest(refresh_token=self.tokens.refresh_token)
        return _IDENTITY + "Refresh", request, identity_service_pb2.RefreshResponse

    def _accept(self, response: identity_service_pb2.RefreshResponse) -> None:
        self._set(response.tokens)
        if self.on_refresh is not None:
            self.on_refresh(self.tokens)

    def invalidate(self, sent: Metadata) -> bool:
        return bool(self.tokens.refresh_token) and super().invalidate(sent)

    def refresh(self, call: SyncCall) -> token_pb2.AuthTokens:
        """Refreshes now, whatever the access token's expiry."""
        with self._lock:
            self._accept(call(*self._exchange()))
            return self.tokens

    async def refresh_async(self, call: AsyncCall) -> token_pb2.AuthTokens:
        """`refresh` for the asyncio client."""
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            self._accept(await call(*self._exchange()))
            return self.tokens


class ApiKey(_ExpiringToken):
    """An API key secret (`tnt_…`). See the module doc for `exchange`."""

    def __init__(self, secret: str, *, exchange: bool = True, margin: float = 30.0) -> None:
        super().__init__(margin)
        self.secret = secret
        self.exchange = exchange

    def _current(self) -> Optional[Metadata]:
        if not self.exchange:
            return (("x-api-key", self.secret),)
        return super()._current()

    def _exchange(self) -> Tuple[str, message.Message, Type[Any]]:
        request = api_key_pb2.AuthenticateApiKeyRequest(secret=self.secret)
        return (
            "/tenantry.identity.v1.ApiKeyService/AuthenticateApiKey",
            request,
            api_key_pb2.AuthenticateApiKeyResponse,
        )

    def _accept(self, response: api_key_pb2.AuthenticateApiKeyResponse) -> None:
        self._store(response.access_token, response.expire_time)

    def invalidate(self, sent: Metadata) -> bool:
        return self.exchange and super().invalidate(sent)


class ServiceAccount(_ExpiringToken):
    """A service account's client credentials, exchanged for access tokens."""

    def __init__(
        self, client_id: str, client_secret: str, *, organization: str = "", margin: float = 30.0
    ) -> None:
        super().__init__(margin)
        self.client_id = client_id
        self.client_secret = client_secret
        self.organization = organization

    def _exchange(self) -> Tuple[str, message.Message, Type[Any]]:
        request = service_account_pb2.IssueServiceAccountTokenRequest(
            client_id=self.client_id,
            client_secret=self.client_secret,
            organization=self.organization,
        )
        return (
            "/tenantry.identity.v1.ServiceAccountService/IssueServiceAccountToken",
            request,
            service_account_pb2.IssueServiceAccountTokenResponse,
        )

    def _accept(self, response: service_account_pb2.IssueServiceAccountTokenResponse) -> None:
        self._store(response.access_token, response.expire_time)
