"""What the client does around a call, against a scripted in-process gRPC server: retries
(which calls, how often, with the same request id), the consistency token sent back, the
refresh after UNAUTHENTICATED, and error details decoded. No Tenantry server needed."""

from __future__ import annotations

from concurrent import futures
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

import tenantry
from tenantry.aio import AsyncClient
from tenantry.identity.v1 import identity_service_pb2, identity_service_pb2_grpc, token_pb2
from tenantry.organization.v1 import (
    organization_pb2,
    organization_service_pb2 as org_pb2,
    organization_service_pb2_grpc as org_grpc,
)

FAST = tenantry.RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002)
HEADER = tenantry.CONSISTENCY_HEADER


class Script(org_grpc.OrganizationServiceServicer, identity_service_pb2_grpc.IdentityServiceServicer):
    """Fails the first `failures` calls of each method with UNAVAILABLE, records what came in."""

    def __init__(self) -> None:
        self.failures = 0
        self.calls: dict[str, list[tuple[Any, dict[str, str]]]] = {}
        self.valid_token = "good"
        self.revision = 0

    def _seen(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        calls = self.calls.setdefault(method, [])
        calls.append((request, dict(context.invocation_metadata())))
        if len(calls) <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

    def _write(self, context: grpc.ServicerContext) -> None:
        self.revision += 1
        context.send_initial_metadata(((HEADER, f"r{self.revision}"),))

    def GetOrganization(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen("GetOrganization", request, context)
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {self.valid_token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")
        return org_pb2.GetOrganizationResponse(organization=organization_pb2.Organization(name=request.name))

    def CreateOrganization(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen("CreateOrganization", request, context)
        self._write(context)
        return org_pb2.CreateOrganizationResponse(organization=request.organization)

    def UpdateOrganization(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._seen("UpdateOrganization", request, context)
        return org_pb2.UpdateOrganizationResponse(organization=request.organization)

    def DeleteOrganization(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.calls.setdefault("DeleteOrganization", []).append((request, {}))
        status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="it has children")
        info = error_details_pb2.ErrorInfo(reason="HAS_CHILDREN", domain="organization", metadata={"children": "2"})
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3))
        status.details.add().Pack(info)
        status.details.add().Pack(retry)
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "it has children")

    def Refresh(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.calls.setdefault("Refresh", []).append((request, dict(context.invocation_metadata())))
        self.valid_token = f"good-{len(self.calls['Refresh'])}"
        return identity_service_pb2.RefreshResponse(
            tokens=token_pb2.AuthTokens(access_token=self.valid_token, refresh_token=f"{request.refresh_token}+")
        )


@pytest.fixture
def script() -> Iterator[tuple[Script, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s = Script()
    org_grpc.add_OrganizationServiceServicer_to_server(s, server)
    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(s, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield s, f"127.0.0.1:{port}"
    server.stop(None)


def session(access: str = "good") -> tenantry.Session:
    return tenantry.Session(token_pb2.AuthTokens(access_token=access, refresh_token="refresh-1"))


def test_reads_are_retried_on_unavailable(script: tuple[Script, str]) -> None:
    s, addr = script
    s.failures = 2
    with tenantry.Client(addr, credentials=session(), retry=FAST) as client:
        answer = client.organizations.GetOrganization(org_pb2.GetOrganizationRequest(name="organizations/a"))
    assert answer.organization.name == "organizations/a"
    assert len(s.calls["GetOrganization"]) == 3


def test_creates_are_retried_with_one_request_id(script: tuple[Script, str]) -> None:
    s, addr = script
    s.failures = 1
    with tenantry.Client(addr, retry=FAST) as client:
        client.organizations.CreateOrganization(org_pb2.CreateOrganizationRequest())
    ids = [request.request_id for request, _ in s.calls["CreateOrganization"]]
    assert len(ids) == 2 and ids[0] and ids[0] == ids[1]


def test_other_writes_are_not_retried(script: tuple[Script, str]) -> None:
    s, addr = script
    s.failures = 1
    with tenantry.Client(addr, retry=FAST) as client:
        with pytest.raises(tenantry.Unavailable):
            client.organizations.UpdateOrganization(org_pb2.UpdateOrganizationRequest())
    assert len(s.calls["UpdateOrganization"]) == 1


def test_retries_stop_after_max_attempts(script: tuple[Script, str]) -> None:
    s, addr = script
    s.failures = 10
    with tenantry.Client(addr, credentials=session(), retry=FAST) as client:
        with pytest.raises(tenantry.Unavailable):
            client.organizations.GetOrganization(org_pb2.GetOrganizationRequest(name="organizations/a"))
    assert len(s.calls["GetOrganization"]) == FAST.max_attempts


def test_the_newest_consistency_token_is_sent_back(script: tuple[Script, str]) -> None:
    s, addr = script
    with tenantry.Client(addr, credentials=session()) as client:
        client.organizations.GetOrganization(org_pb2.GetOrganizationRequest(name="organizations/a"))
        client.organizations.CreateOrganization(org_pb2.CreateOrganizationRequest())
        client.organizations.CreateOrganization(org_pb2.CreateOrganizationRequest())
        client.organizations.GetOrganization(org_pb2.GetOrganizationRequest(name="organizations/a"))
        assert client.consistency_token == "r2"
    sent = [metadata.get(HEADER) for _, metadata in s.calls["GetOrganization"]]
    assert sent == [None, "r2"]
    assert s.calls["CreateOrganization"][1][1][HEADER] == "r1"


def test_unauthenticated_refreshes_once_and_retries(script: tuple[Script, str]) -> None:
    s, addr = script
    stored: list[token_pb2.AuthTokens] = []
    credentials = tenantry.Session(
        token_pb2.AuthTokens(access_token="expired", refresh_token="refresh-1"), on_refresh=stored.append
    )
    with tenantry.Client(addr, credentials=credentials) as client:
        client.organizations.GetOrganization(org_pb2.GetOrganizationRequest(name="organizations/a"))
    assert [r.refresh_token for r, _ in s.calls["Refresh"]] == ["refresh-1"]
    assert "authorization" not in s.calls["Refresh"][0][1]
    assert [t.refresh_token for t in stored] == ["refresh-1+"]
    assert [m["authorization"] for _, m in s.calls["GetOrganization"]] == ["Bearer expired", "Bearer good-1"]


def test_error_details_are_decoded(script: tuple[Script, str]) -> None:
    _, addr = script
    with tenantry.Client(addr) as client:
        with pytest.raises(tenantry.FailedPrecondition) as caught:
            client.organizations.DeleteOrganization(org_pb2.DeleteOrganizationRequest(name="organizations/a"))
    error = caught.value
    assert (error.reason, error.domain, error.metadata) == ("HAS_CHILDREN", "organization", {"children": "2"})
    assert error.retry_delay is not None and error.retry_delay.total_seconds() == 3
    assert error.message == "it has children"


async def test_async_client_retries_and_carries_tokens(script: tuple[Script, str]) -> None:
    s, addr = script
    s.failures = 1
    async with AsyncClient(addr, credentials=session("expired"), retry=FAST) as client:
        await client.organizations.CreateOrganization(org_pb2.CreateOrganizationRequest())
        answer = await client.organizations.GetOrganization(org_pb2.GetOrganizationRequest(name="organizations/b"))
        assert answer.organization.name == "organizations/b"
        with pytest.raises(tenantry.FailedPrecondition) as caught:
            await client.organizations.DeleteOrganization(org_pb2.DeleteOrganizationRequest(name="organizations/b"))
        assert caught.value.reason == "HAS_CHILDREN"
    ids = {request.request_id for request, _ in s.calls["CreateOrganization"]}
    assert len(s.calls["CreateOrganization"]) == 2 and len(ids) == 1
    # The read: UNAVAILABLE (retried), then UNAUTHENTICATED (refreshed), then answered.
    assert [m.get("authorization") for _, m in s.calls["GetOrganization"]] == [
        "Bearer expired",
        "Bearer expired",
        "Bearer good-1",
    ]
    assert s.calls["GetOrganization"][-1][1][HEADER] == "r1"


def test_future_runs_the_same_call_on_worker_threads(script: tuple[Script, str]) -> None:
    s, addr = script
    s.failures = 1
    with tenantry.Client(addr, credentials=session(), retry=FAST) as client:
        pending = client.organizations.GetOrganization.future(org_pb2.GetOrganizationRequest(name="organizations/f"))
        assert pending.result(timeout=10).organization.name == "organizations/f"
        failing = client.organizations.DeleteOrganization.future(org_pb2.DeleteOrganizationRequest(name="x"))
        assert isinstance(failing.exception(timeout=10), tenantry.FailedPrecondition)
    assert len(s.calls["GetOrganization"]) == 2
