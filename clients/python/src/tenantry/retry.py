"""Retries on UNAVAILABLE with exponential back-off and full jitter.

UNAVAILABLE means the call did not get an answer: the server was down or restarting, a
connection broke, or a service the call needs was unreachable (`DEPENDENCY_UNAVAILABLE`,
`INDEX_UNAVAILABLE`). Whether the server acted on the request is unknown, so only calls that
are safe to repeat are retried:

- reads: methods named `Get…`, `List…`, `Check…`, `Lookup…`, `Read…`, and the reads
  `SAFE_METHODS` names (`Me`, `VerifyChain`, `PreviewInvoice`);
- writes whose request has a `request_id` field (AIP-155): the client fills it with a new
  UUID when it is empty, and sends the same value on every attempt, so the server answers a
  replay with the original response instead of writing twice.

Everything else (Login, Refresh — a rotated refresh token presented twice ends the
session —, Update, Delete, …) fails at once with `Unavailable`; retry it yourself if
repeating it is right for you. Streaming calls are never retried.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any, FrozenSet

import grpc

_READ_PREFIXES = ("Get", "List", "Check", "Lookup", "Read")
SAFE_METHODS: FrozenSet[str] = frozenset({"Me", "VerifyChain", "PreviewInvoice"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a safe call gets on UNAVAILABLE, and how long to wait between them.

    The n-th wait is a random duration in [0, min(max_backoff, initial_backoff * multiplier**n)]
    ("full jitter"), so many clients retrying at once spread out. `max_attempts=1` turns
    retries off.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * (self.multiplier**attempt))
        return random.uniform(0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def method_name(full_method: str) -> str:
    """`/tenantry.x.v1.Service/Method` → `Method`."""
    return full_method.rsplit("/", 1)[-1]


def is_safe(full_method: str, request: Any) -> bool:
    """Whether a unary call may be repeated after UNAVAILABLE (see the module doc)."""
    name = method_name(full_method)
    if name in SAFE_METHODS or name.startswith(_READ_PREFIXES):
        return True
    return has_request_id(request)


def has_request_id(request: Any) -> bool:
    descriptor = getattr(request, "DESCRIPTOR", None)
    return descriptor is not None and "request_id" in descriptor.fields_by_name


def with_request_id(request: Any) -> Any:
    """The request with `request_id` filled in (a copy) when it has an empty one."""
    if has_request_id(request) and not request.request_id:
        filled = type(request)()
        filled.CopyFrom(request)
        filled.request_id = str(uuid.uuid4())
        return filled
    return request


def retryable(code: grpc.StatusCode) -> bool:
    return code == grpc.StatusCode.UNAVAILABLE
