"""The main journey, as the package's users walk it (it replaces the old generated-stubs
journey): A signs up, creates an organization and a project, invites B; B signs up and
accepts; A makes B an admin (B may create projects at once), then takes it back (B may not,
at once); A's audit log shows it all, and its chain verifies. Directly on the gRPC port and
through the gateway's port."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Dict

import pytest
from conftest import Server, sign_up
from google.protobuf import field_mask_pb2
from test_client import create_org, create_project, me

import tenantry
from tenantry.audit.v1 import audit_pb2
from tenantry.authz.v1 import authorization_pb2, relationship_pb2
from tenantry.rbac.v1 import invitation_pb2, membership_pb2

ALLOWED = authorization_pb2.PERMISSIONSHIP_ALLOWED
DENIED = authorization_pb2.PERMISSIONSHIP_DENIED


def own_check(client: tenantry.Client, org: str, permission: str) -> int:
    user = me(client).rsplit("/", 1)[-1]
    return client.authorization.CheckPermission(
        authorization_pb2.CheckPermissionRequest(
            resource=relationship_pb2.ObjectReference(object_type="organization", object_id=org.rsplit("/", 1)[-1]),
            permission=permission,
            subject=relationship_pb2.SubjectReference(object=relationship_pb2.ObjectReference(object_type="user", object_id=user)),
        )
    ).permissionship


def set_roles(client: tenantry.Client, membership: str, roles: list[str]) -> None:
    response = client.memberships.UpdateMembership(
        membership_pb2.UpdateMembershipRequest(
            membership=membership_pb2.Membership(name=membership, roles=roles),
            update_mask=field_mask_pb2.FieldMask(paths=["roles"]),
        )
    )
    assert list(response.membership.roles) == roles


def until(what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Bounded polling for what the event bus delivers late by design (the audit log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


@pytest.mark.parametrize("port", ["grpc", "http"])
def test_journey(server: Server, port: str) -> None:
    addr = getattr(server, port)
    with tenantry.Client(addr) as a, tenantry.Client(addr) as b:
        sign_up(a, server, "ada")
        org = create_org(a)
        create_project(a, org, "rocket")

        email_b = f"bob.{org.rsplit('/', 1)[-1][:8]}.{port}@example.com"
        invitation = a.invitations.CreateInvitation(
            invitation_pb2.CreateInvitationRequest(parent=org, invitation=invitation_pb2.Invitation(email=email_b))
        ).invitation
        assert invitation.state == invitation_pb2.Invitation.STATE_PENDING
        assert list(invitation.roles) == ["roles/member"]
        invite_token = until("the invitation mail", lambda: server.mail_token(email_b, "invitation"))

        b.sign_up(email_b, "polyglot " + org[-12:], "Bob")
        b.verify_email(server.mail_token(email_b, "verify_email") or "")
        accepted = b.invitations.AcceptInvitation(invitation_pb2.AcceptInvitationRequest(token=invite_token))
        membership = accepted.membership.name
        assert own_check(b, org, "organization.read") == ALLOWED
        assert own_check(b, org, "project.create") == DENIED

        # B reads after A's writes: A's token, handed over, is all it takes.
        set_roles(a, membership, ["roles/member", "roles/admin"])
        b.add_consistency_token(a.consistency_token or "")
        assert own_check(b, org, "project.create") == ALLOWED
        set_roles(a, membership, ["roles/member"])
        b.add_consistency_token(a.consistency_token or "")
        assert own_check(b, org, "project.create") == DENIED

        want = {
            "organization.created": 1,
            "project.created": 1,
            "organization.member.invited": 1,
            "organization.member.invitation_accepted": 1,
            "organization.member.added": 2,
            "organization.member.updated": 2,
        }

        def complete() -> Dict[str, int]:
            counts: Dict[str, int] = {}
            request = audit_pb2.ListAuditEventsRequest(parent=org)
            for event in tenantry.paginate(a.audit.ListAuditEvents, request, page_size=3):
                counts[event.action] = counts.get(event.action, 0) + 1
            return counts if all(counts.get(k, 0) >= n for k, n in want.items()) else {}

        listed = until(f"the audit log to hold {want}", complete)
        assert a.audit.VerifyChain(audit_pb2.VerifyChainRequest(organization=org)).ok

        # A server stream: the export, chunk by chunk, through the same credentials.
        chunks = list(a.audit.ExportAuditEvents(audit_pb2.ExportAuditEventsRequest(parent=org)))
        assert chunks and chunks[-1].last
        assert sum(c.event_count for c in chunks) >= sum(listed.values())
        with pytest.raises(tenantry.NotFound):
            list(b.audit.ExportAuditEvents(audit_pb2.ExportAuditEventsRequest(parent=f"organizations/{uuid.uuid4()}")))
