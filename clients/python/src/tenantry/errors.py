"""Typed errors: every failed call raises a `TenantryError` (a `grpc.RpcError`, so code
that already catches those keeps working) carrying the server's `google.rpc` details.

Tenantry answers every refusal with a `google.rpc.Status` in the `grpc-status-details-bin`
trailer: an `ErrorInfo` whose `reason` is stable (branch on it, never on the message), a
`BadRequest` naming the bad fields, `RetryInfo` on rate limits. This module decodes them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

Metadata = Sequence[Tuple[str, "str | bytes"]]

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, from `google.rpc.BadRequest`."""

    field: str
    description: str
    reason: str


class TenantryError(grpc.RpcError):
    """A call that failed, with the status code and the decoded `google.rpc` details.

    `reason`, `domain` and `metadata` come from `ErrorInfo` (`reason` is one of the stable
    UPPER_SNAKE reasons of docs/errors.md, such as `SLUG_TAKEN`; `domain` names the service
    that refused); `field_violations` from `BadRequest`; `retry_delay` from `RetryInfo`.
    `details` holds every detail message decoded, including kinds not named here.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message_text: str,
        details: Sequence[message.Message] = (),
        trailing_metadata: Optional[Metadata] = None,
        initial_metadata: Optional[Metadata] = None,
    ) -> None:
        super().__init__(f"{code.name}: {message_text}")
        self._code = code
        self._message = message_text
        self._trailing = tuple(trailing_metadata or ())
        self._initial = tuple(initial_metadata or ())
        self.details_messages: Tuple[message.Message, ...] = tuple(details)
        info = next((d for d in details if isinstance(d, error_details_pb2.ErrorInfo)), None)
        self.reason: str = info.reason if info else ""
        self.domain: str = info.domain if info else ""
        self.metadata: Dict[str, str] = dict(info.metadata) if info else {}
        self.field_violations: List[FieldViolation] = [
            FieldViolation(v.field, v.description, v.reason)
            for d in details
            if isinstance(d, error_details_pb2.BadRequest)
            for v in d.field_violations
        ]
        retry = next((d for d in details if isinstance(d, error_details_pb2.RetryInfo)), None)
        self.retry_delay: Optional[datetime.timedelta] = (
            retry.retry_delay.ToTimedelta() if retry and retry.HasField("retry_delay") else None
        )

    # The grpc.Call surface, so handlers written for grpc.RpcError keep working.
    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> Any:
        return self._trailing

    def initial_metadata(self) -> Any:
        return self._initial

    @property
    def message(self) -> str:
        """The server's message: for people, not for branching (use `reason`)."""
        return self._message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self._code.name}, reason={self.reason!r}, message={self._message!r})"


class InvalidArgument(TenantryError):
    """INVALID_ARGUMENT: see `field_violations`."""


class NotFound(TenantryError):
    """NOT_FOUND: the object does not exist, or the caller may not learn that it does."""


class AlreadyExists(TenantryError):
    """ALREADY_EXISTS: a duplicate (`reason` says which: `SLUG_TAKEN`, `EMAIL_TAKEN`, …)."""


class PermissionDenied(TenantryError):
    """PERMISSION_DENIED: the caller lacks the permission (named in `metadata`)."""


class Unauthenticated(TenantryError):
    """UNAUTHENTICATED: no credential, or one that is wrong, expired or revoked."""


class FailedPrecondition(TenantryError):
    """FAILED_PRECONDITION: the system is not in a state that allows the call."""


class Aborted(TenantryError):
    """ABORTED: a concurrent change (`ETAG_MISMATCH`, `CONCURRENT_UPDATE`); read again."""


class ResourceExhausted(TenantryError):
    """RESOURCE_EXHAUSTED: `QUOTA_EXCEEDED` (a plan limit) or `RATE_LIMITED` (see `retry_delay`)."""


class Unavailable(TenantryError):
    """UNAVAILABLE: the server or a service it needs did not answer; retry later."""


class DeadlineExceeded(TenantryError):
    """DEADLINE_EXCEEDED: the call's timeout passed."""


class Internal(TenantryError):
    """INTERNAL: an unexpected failure on the server (its log has the cause)."""


_BY_CODE: Mapping[grpc.StatusCode, Type[TenantryError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: Internal,
}

# The detail kinds Tenantry sends (and the other standard ones), by type URL.
_DETAIL_TYPES: Mapping[str, Type[message.Message]] = {
    f"type.googleapis.com/{cls.DESCRIPTOR.full_name}": cls
    for cls in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.DebugInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ResourceInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
        error_details_pb2.RequestInfo,
    )
}


def decode_details(trailing_metadata: Optional[Sequence[Any]]) -> List[message.Message]:
    """The detail messages of a `grpc-status-details-bin` trailer (unknown kinds stay `Any`)."""
    for key, value in trailing_metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            return [_unpack(detail) for detail in status.details]
    return []


def _unpack(detail: any_pb2.Any) -> message.Message:
    cls = _DETAIL_TYPES.get(detail.type_url)
    if cls is None:
        return detail
    decoded = cls()
    detail.Unpack(decoded)
    return decoded


def error_class(code: grpc.StatusCode) -> Type[TenantryError]:
    """The `TenantryError` subclass raised for a status code."""
    return _BY_CODE.get(code, TenantryError)


def from_rpc_error(error: grpc.RpcError) -> TenantryError:
    """Converts what grpc raised (sync `grpc.Call` or `grpc.aio.AioRpcError`) into a typed error."""
    if isinstance(error, TenantryError):
        return error
    call: Any = error  # a grpc.Call as well, though RpcError's type does not say so
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    text = call.details() if hasattr(call, "details") else str(error)
    trailing = tuple(call.trailing_metadata() or ()) if hasattr(call, "trailing_metadata") else ()
    initial = tuple(call.initial_metadata() or ()) if hasattr(call, "initial_metadata") else ()
    return error_class(code)(code, text or "", decode_details(trailing), trailing, initial)
