"""The asyncio client against a live server: the same flow as the sync one."""

from __future__ import annotations

import uuid

import pytest
from conftest import PASSWORD, Server, new_email

import tenantry
from tenantry.aio import AsyncClient, paginate_async
from tenantry.authz.v1 import authorization_pb2, relationship_pb2
from tenantry.identity.v1 import identity_service_pb2
from tenantry.organization.v1 import organization_pb2, organization_service_pb2, project_pb2


async def test_async_sign_up_write_check_paginate_and_errors(server: Server) -> None:
    async with AsyncClient(server.grpc) as client:
        email = new_email("ana")
        answer = await client.sign_up(email, PASSWORD, "Ana")
        assert answer.verification_required
        await client.verify_email(server.mail_token(email, "verify_email") or "")
        user = (await client.identity.Me(identity_service_pb2.MeRequest())).user.name

        org = (
            await client.organizations.CreateOrganization(
                organization_service_pb2.CreateOrganizationRequest(
                    organization=organization_pb2.Organization(display_name=f"Async {uuid.uuid4().hex[:6]}")
                )
            )
        ).organization.name
        for slug in ("one", "two", "three"):
            await client.projects.CreateProject(
                project_pb2.CreateProjectRequest(parent=org, project=project_pb2.Project(slug=slug, display_name=slug))
            )
        assert client.consistency_token

        check = await client.authorization.CheckPermission(
            authorization_pb2.CheckPermissionRequest(
                resource=relationship_pb2.ObjectReference(object_type="organization", object_id=org.split("/")[1]),
                permission="project.create",
                subject=relationship_pb2.SubjectReference(
                    object=relationship_pb2.ObjectReference(object_type="user", object_id=user.split("/")[1])
                ),
            )
        )
        assert check.permissionship == authorization_pb2.PERMISSIONSHIP_ALLOWED

        request = project_pb2.ListProjectsRequest(parent=org)
        slugs = [p.slug async for p in paginate_async(client.projects.ListProjects, request, page_size=1)]
        assert sorted(slugs) == ["one", "three", "two"]

        # The FREE plan allows three projects: the fourth is refused, typed, with its reason.
        with pytest.raises(tenantry.ResourceExhausted) as refused:
            await client.projects.CreateProject(
                project_pb2.CreateProjectRequest(parent=org, project=project_pb2.Project(slug="four", display_name="4"))
            )
        assert refused.value.reason == "QUOTA_EXCEEDED"
        assert len([p async for p in paginate_async(client.projects.ListProjects, request)]) == 3

        refreshed = await client.refresh()
        assert refreshed.access_token
        assert (await client.identity.Me(identity_service_pb2.MeRequest())).user.name == user
        await client.logout()
        assert client.credentials is None
