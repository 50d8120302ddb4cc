"""The sync client against a live server: sign-up through the mailed link, an organization
and a project, a check right after the write, pagination, typed errors, API keys, refresh."""

from __future__ import annotations

import subprocess
import uuid

import grpc
import pytest
from conftest import PASSWORD, Server, sign_up

import tenantry
from tenantry.authz.v1 import authorization_pb2, relationship_pb2
from tenantry.billing.v1 import plan_pb2
from tenantry.identity.v1 import api_key_pb2, identity_service_pb2, service_account_pb2, token_pb2
from tenantry.organization.v1 import organization_pb2, organization_service_pb2, project_pb2

ALLOWED = authorization_pb2.PERMISSIONSHIP_ALLOWED


def create_org(client: tenantry.Client) -> str:
    response = client.organizations.CreateOrganization(
        organization_service_pb2.CreateOrganizationRequest(
            organization=organization_pb2.Organization(display_name=f"Acme {uuid.uuid4().hex[:6]}")
        )
    )
    return response.organization.name


def create_project(client: tenantry.Client, org: str, slug: str) -> project_pb2.Project:
    return client.projects.CreateProject(
        project_pb2.CreateProjectRequest(parent=org, project=project_pb2.Project(slug=slug, display_name=slug.title()))
    ).project


def check(client: tenantry.Client, user: str, kind: str, name: str, permission: str) -> int:
    return client.authorization.CheckPermission(
        authorization_pb2.CheckPermissionRequest(
            resource=relationship_pb2.ObjectReference(object_type=kind, object_id=name.rsplit("/", 1)[-1]),
            permission=permission,
            subject=relationship_pb2.SubjectReference(
                object=relationship_pb2.ObjectReference(object_type="user", object_id=user.rsplit("/", 1)[-1])
            ),
        )
    ).permissionship


def me(client: tenantry.Client) -> str:
    return client.identity.Me(identity_service_pb2.MeRequest()).user.name


def list_projects(client: tenantry.Client, org: str) -> list[str]:
    request = project_pb2.ListProjectsRequest(parent=org)
    return [p.name for p in tenantry.paginate(client.projects.ListProjects, request)]


def test_check_is_allowed_right_after_the_writes(client: tenantry.Client) -> None:
    user = me(client)
    org = create_org(client)
    after_org = client.consistency_token
    assert after_org and after_org.startswith("r")
    project = create_project(client, org, "rocket")
    assert project.name.startswith(org + "/projects/")
    # No waiting: the client sends the write's token, the check reflects the write.
    assert check(client, user, "organization", org, "project.create") == ALLOWED
    assert check(client, user, "project", project.name, "project.read") == ALLOWED
    assert client.consistency_token and client.consistency_token != after_org


def test_pagination_follows_page_tokens(client: tenantry.Client) -> None:
    org = create_org(client)
    made = [create_project(client, org, slug).name for slug in ("alpha", "beta", "gamma")]
    request = project_pb2.ListProjectsRequest(parent=org)
    pages = list(tenantry.pages(client.projects.ListProjects, request, page_size=1))
    assert [len(p.projects) for p in pages] == [1, 1, 1]
    assert not pages[-1].next_page_token
    listed = [p.name for p in tenantry.paginate(client.projects.ListProjects, request, page_size=2)]
    assert sorted(listed) == sorted(made)


def test_errors_are_typed_with_their_reason(client: tenantry.Client) -> None:
    org = create_org(client)
    create_project(client, org, "alpha")

    with pytest.raises(tenantry.AlreadyExists) as taken:
        create_project(client, org, "alpha")
    assert taken.value.reason == "SLUG_TAKEN"
    assert taken.value.domain
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert isinstance(taken.value, grpc.RpcError)

    with pytest.raises(tenantry.InvalidArgument) as bad:
        create_project(client, org, "Not A Slug!")
    assert bad.value.reason == "INVALID_ARGUMENT"
    assert any(v.field.endswith("slug") for v in bad.value.field_violations), bad.value.field_violations

    missing = f"organizations/{uuid.uuid4()}"
    with pytest.raises(tenantry.NotFound) as not_found:
        client.organizations.GetOrganization(organization_service_pb2.GetOrganizationRequest(name=missing))
    assert not_found.value.reason == "NOT_FOUND"

    # Nothing was written by the refused calls.
    assert len(list_projects(client, org)) == 1


def test_wrong_password_is_unauthenticated(server: Server) -> None:
    with tenantry.Client(server.grpc) as anonymous:
        email = sign_up(anonymous, server, "eve")
        with pytest.raises(tenantry.Unauthenticated):
            anonymous.login(email, "not the password at all")
        answer = anonymous.login(email, PASSWORD)
        assert answer.HasField("tokens")


def test_api_key_exchanged_on_grpc_and_sent_as_header_to_the_gateway(server: Server, client: tenantry.Client) -> None:
    org = create_org(client)
    project = create_project(client, org, "rocket")
    created = client.api_keys.CreateApiKey(
        api_key_pb2.CreateApiKeyRequest(
            parent=org, api_key=api_key_pb2.ApiKey(display_name="ci", permissions=["project.read"])
        )
    )
    secret = created.secret
    assert secret.startswith("tnt_")

    # A different principal, handed the writer's consistency token.
    token = client.consistency_token
    with tenantry.Client(server.grpc, credentials=tenantry.ApiKey(secret), consistency_token=token) as keyed:
        assert list_projects(keyed, org) == [project.name]
    with tenantry.Client(server.http, credentials=tenantry.ApiKey(secret, exchange=False)) as gateway:
        assert list_projects(gateway, org) == [project.name]

    with tenantry.Client(server.grpc, credentials=tenantry.ApiKey("tnt_" + "x" * 40)) as wrong:
        with pytest.raises(tenantry.Unauthenticated):
            list_projects(wrong, org)


def test_session_refreshes_before_expiry_and_on_unauthenticated(server: Server, client: tenantry.Client) -> None:
    session = client.credentials
    assert isinstance(session, tenantry.Session)
    user = me(client)
    refreshed: list[token_pb2.AuthTokens] = []

    # An access token about to expire is refreshed before the call.
    stale = token_pb2.AuthTokens()
    stale.CopyFrom(session.tokens)
    stale.expire_time.FromSeconds(1)  # long past
    client.use_tokens(stale, on_refresh=refreshed.append)
    assert me(client) == user
    assert len(refreshed) == 1
    assert refreshed[0].refresh_token != stale.refresh_token  # rotated

    # An access token the server refuses is refreshed once, and the call retried.
    rejected = token_pb2.AuthTokens()
    rejected.CopyFrom(refreshed[0])
    rejected.access_token = "not-a-token"
    client.use_tokens(rejected, on_refresh=refreshed.append)
    assert me(client) == user
    assert len(refreshed) == 2

    # The rotated-away refresh token no longer works.
    with tenantry.Client(server.grpc) as other:
        other.use_tokens(stale)
        with pytest.raises(tenantry.Unauthenticated):
            other.refresh()


def test_the_gateway_port_passes_grpc_through(server: Server) -> None:
    with tenantry.Client(server.http) as gateway:
        sign_up(gateway, server, "gus")
        org = create_org(gateway)
        assert check(gateway, me(gateway), "organization", org, "project.create") == ALLOWED


def test_service_account_client_credentials(server: Server) -> None:
    with tenantry.Client(server.grpc) as admin:
        email = sign_up(admin, server, "root")
        # The first platform administrator is made on the server's own database.
        subprocess.run(
            [str(server.binary), "admin", "bootstrap", "--data-dir", str(server.data_dir), "--email", email],
            check=True,
            capture_output=True,
            env=server.env,
        )
        admin.login(email, PASSWORD)  # a token that carries the new role
        account = admin.service_accounts.CreateServiceAccount(
            service_account_pb2.CreateServiceAccountRequest(
                service_account=service_account_pb2.ServiceAccount(display_name="billing-worker")
            )
        ).service_account
        credential = admin.service_accounts.CreateServiceAccountCredential(
            service_account_pb2.CreateServiceAccountCredentialRequest(
                parent=account.name, credential=service_account_pb2.ServiceAccountCredential(display_name="ci")
            )
        )
        client_id, secret = credential.credential.client_id, credential.client_secret

    machine = tenantry.ServiceAccount(client_id, secret)
    with tenantry.Client(server.grpc, credentials=machine) as worker:
        plans = list(tenantry.paginate(worker.plans.ListPlans, plan_pb2.ListPlansRequest()))
        assert {p.name for p in plans} >= {"plans/free"}
    with tenantry.Client(server.grpc, credentials=tenantry.ServiceAccount(client_id, "wrong secret")) as wrong:
        with pytest.raises(tenantry.Unauthenticated):
            list(tenantry.paginate(wrong.plans.ListPlans, plan_pb2.ListPlansRequest()))
