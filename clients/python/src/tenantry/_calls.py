"""What the sync and the asyncio client share: the state of a client session (credentials,
consistency token, retry policy) and the decisions of one call across its attempts. The two
clients only differ in how they wait (time.sleep or asyncio.sleep) and call."""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence, Tuple

import grpc

from tenantry.auth import Credentials, Metadata
from tenantry.consistency import ConsistencyTracker
from tenantry.retry import NO_RETRY, RetryPolicy, is_safe, retryable, with_request_id

_CREDENTIAL_KEYS = ("authorization", "x-api-key")


class Core:
    """One client session's state, shared by every call the client makes."""

    def __init__(
        self,
        credentials: Optional[Credentials],
        retry: RetryPolicy,
        timeout: Optional[float],
        consistency_token: Optional[str],
    ) -> None:
        self.credentials = credentials
        self.retry = retry
        self.timeout = timeout
        self.tracker = ConsistencyTracker(consistency_token)


class Attempts:
    """One logical unary call: the request it sends on every attempt (with its `request_id`
    filled in once), what metadata each attempt carries, and whether a failure is retried."""

    def __init__(
        self,
        core: Core,
        path: str,
        request: Any,
        timeout: Optional[float],
        metadata: Optional[Sequence[Tuple[str, Any]]],
        authenticated: bool,
        stream: bool = False,
    ) -> None:
        self.core = core
        self.request = with_request_id(request)
        self.policy = NO_RETRY if stream or not is_safe(path, self.request) else core.retry
        # The client's default timeout is for unary calls; a stream (Watch) lasts as long as
        # the caller wants unless given a timeout of its own.
        if timeout is None and not stream:
            timeout = core.timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.extra = tuple(metadata or ())
        caller_sent_credential = any(key in _CREDENTIAL_KEYS for key, _ in self.extra)
        self.credentials = None if caller_sent_credential or not authenticated else core.credentials
        self.attempt = 0
        self.refreshed = False
        self.sent: Metadata = ()

    def metadata(self, credential: Metadata) -> Tuple[Tuple[str, Any], ...]:
        """The metadata of the next attempt."""
        self.sent = credential
        return (*credential, *self.core.tracker.metadata(), *self.extra)

    def timeout(self) -> Optional[float]:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def after_failure(self, code: grpc.StatusCode) -> Optional[float]:
        """Seconds to wait before the next attempt, or None when the failure is final.

        UNAUTHENTICATED gets one more attempt with a new token when the credential can get
        one (an access token that expired early, or was revoked while cached); UNAVAILABLE
        is retried for safe calls (see `tenantry.retry`) within the call's deadline."""
        if (
            code == grpc.StatusCode.UNAUTHENTICATED
            and self.credentials is not None
            and not self.refreshed
            and self.credentials.invalidate(self.sent)
        ):
            self.refreshed = True
            return 0.0
        self.attempt += 1
        if not retryable(code) or self.attempt >= self.policy.max_attempts:
            return None
        pause = self.policy.backoff(self.attempt - 1)
        if self.deadline is not None and time.monotonic() + pause >= self.deadline:
            return None
        return pause
