"""Tenantry's Python client.

`Client` (and `tenantry.aio.AsyncClient`) wrap the gRPC stubs generated from Tenantry's
contracts (the `tenantry.<service>.v1` modules of this package) with what callers would
otherwise write themselves: sign-in and token refresh, API-key and service-account
credentials, the consistency token carried from writes to later reads, pagination
iterators, retries of safe calls on UNAVAILABLE, and typed errors with the server's
`google.rpc` details. See the README.
"""

from tenantry.auth import AccessToken, ApiKey, Credentials, ServiceAccount, Session
from tenantry.client import Client
from tenantry.consistency import HEADER as CONSISTENCY_HEADER
from tenantry.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TenantryError,
    Unauthenticated,
    Unavailable,
)
from tenantry.pagination import pages, paginate
from tenantry.retry import NO_RETRY, RetryPolicy

__all__ = [
    "Aborted",
    "AccessToken",
    "AlreadyExists",
    "ApiKey",
    "CONSISTENCY_HEADER",
    "Client",
    "Credentials",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NO_RETRY",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "ServiceAccount",
    "Session",
    "TenantryError",
    "Unauthenticated",
    "Unavailable",
    "pages",
    "paginate",
]
