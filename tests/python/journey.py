#!/usr/bin/env python3
"""The main Tenantry journey from a Python client generated from proto/ (the
polyglot proof), over plain gRPC against a running server:

  user A signs up (the mailed link creates the account) → creates an organization and a project in it → invites user B →
  B signs up, verifies the email and accepts → A gives B a role (CheckPermission: ALLOWED)
  → A takes it back (DENIED) → A's audit log shows the invitation and membership events.

    python journey.py [--addr HOST:PORT] [--data-dir DIR] [--gen DIR]

--addr (TENANTRY_GRPC_ADDR, default 127.0.0.1:50051) is the gRPC address; --data-dir
(TENANTRY_DATA_DIR, default .tenantry) is the server's data directory, whose mail/ holds
the mailed tokens (the default `log` mailer); --gen (TENANTRY_PY_GEN) is the directory
generate.sh wrote the client to, unless it is on PYTHONPATH already. Every step asserts
and prints a line; the exit status is 0 only when every step passed.
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default=os.environ.get("TENANTRY_GRPC_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--data-dir", default=os.environ.get("TENANTRY_DATA_DIR", ".tenantry"))
    parser.add_argument("--gen", default=os.environ.get("TENANTRY_PY_GEN"))
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("JOURNEY_TIMEOUT_SECS", "20")),
        help="seconds to wait for anything that travels asynchronously (default 20)",
    )
    return parser.parse_args()


ARGS = parse_args()
if ARGS.gen:
    sys.path.insert(0, ARGS.gen)

import grpc  # noqa: E402
from google.protobuf import field_mask_pb2  # noqa: E402

from tenantry.audit.v1 import audit_pb2, audit_pb2_grpc  # noqa: E402
from tenantry.authz.v1 import authorization_pb2, authorization_pb2_grpc  # noqa: E402
from tenantry.authz.v1 import consistency_pb2, relationship_pb2  # noqa: E402
from tenantry.identity.v1 import identity_service_pb2, identity_service_pb2_grpc  # noqa: E402
from tenantry.organization.v1 import organization_pb2  # noqa: E402
from tenantry.organization.v1 import organization_service_pb2, organization_service_pb2_grpc  # noqa: E402
from tenantry.organization.v1 import project_pb2, project_pb2_grpc  # noqa: E402
from tenantry.rbac.v1 import invitation_pb2, invitation_pb2_grpc  # noqa: E402
from tenantry.rbac.v1 import membership_pb2, membership_pb2_grpc  # noqa: E402

PASSWORD = "polyglot proof " + uuid.uuid4().hex[:12]
ALLOWED = authorization_pb2.PERMISSIONSHIP_ALLOWED
DENIED = authorization_pb2.PERMISSIONSHIP_DENIED


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def last_segment(name):
    return name.rsplit("/", 1)[-1]


def auth(token):
    return (("authorization", f"Bearer {token}"),)


def rpc_error(error):
    return f"{error.code().name}: {error.details()}"


def eventually(what, probe):
    """Calls probe until it returns something truthy (RPC errors count as not yet)."""
    deadline = time.monotonic() + ARGS.timeout
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except grpc.RpcError as error:
            last = rpc_error(error)
        if time.monotonic() > deadline:
            suffix = f" (last error: {last})" if last else ""
            raise Failure(f"{what}: not within {ARGS.timeout:g} s{suffix}")
        time.sleep(0.05)


def mail_token(to, kind):
    """The token of the newest mail of `kind` to `to` in <data_dir>/mail/ (as testkit)."""
    files = sorted(p for p in (Path(ARGS.data_dir) / "mail").glob("*") if kind in p.name)
    for path in reversed(files):
        lines = path.read_text().splitlines()
        if f"To: {to}" in lines:
            for line in lines:
                if line.startswith("token: "):
                    return line[len("token: "):]
    return None


class Journey:
    def __init__(self, channel):
        self.identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
        self.orgs = organization_service_pb2_grpc.OrganizationServiceStub(channel)
        self.projects = project_pb2_grpc.ProjectServiceStub(channel)
        self.invitations = invitation_pb2_grpc.InvitationServiceStub(channel)
        self.memberships = membership_pb2_grpc.MembershipServiceStub(channel)
        self.authz = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)
        run = uuid.uuid4().hex[:8]
        self.email_a = f"ada.{run}@example.com"
        self.email_b = f"bob.{run}@example.com"
        self.org_display = f"Acme {run}"

    def sign_up(self, email, display_name):
        """Signs up as the default deployment asks: SignUp only mails the address (and
        answers the same for a taken one); the mailed link creates the account."""
        response = self.identity.SignUp(
            identity_service_pb2.SignUpRequest(
                email=email, password=PASSWORD, display_name=display_name
            )
        )
        expect(response.verification_required, "sign-up did not ask to verify the address")
        expect(not response.HasField("tokens"), "sign-up returned tokens before verification")
        # The mail is written before SignUp answers: no waiting.
        token = mail_token(email, "verify_email")
        expect(token, f"no verification mail to {email} in {ARGS.data_dir}/mail")
        verified = self.identity.VerifyEmail(identity_service_pb2.VerifyEmailRequest(token=token))
        expect(verified.user.name.startswith("users/"), f"user name {verified.user.name!r}")
        expect(verified.user.email_verified, "the address is not verified")
        expect(verified.tokens.access_token, "verification returned no access token")
        expect(verified.tokens.token_type == "Bearer", f"token type {verified.tokens.token_type!r}")
        expect(verified.organization.startswith("organizations/"), "no first organization")
        return verified

    def check(self, user_id, token, object_type, object_id, permission, fresh=None):
        consistency = (
            consistency_pb2.Consistency(at_least_as_fresh=fresh) if fresh is not None else None
        )
        return self.authz.CheckPermission(
            authorization_pb2.CheckPermissionRequest(
                consistency=consistency,
                resource=relationship_pb2.ObjectReference(
                    object_type=object_type, object_id=object_id
                ),
                permission=permission,
                subject=relationship_pb2.SubjectReference(
                    object=relationship_pb2.ObjectReference(object_type="user", object_id=user_id)
                ),
            ),
            metadata=auth(token),
        ).permissionship

    def until_check(self, answer, user_id, token, object_type, object_id, permission, fresh=None):
        name = authorization_pb2.Permissionship.Name(answer).removeprefix("PERMISSIONSHIP_")
        eventually(
            f"{permission} on {object_type}:{object_id} for user {user_id} to be {name}",
            lambda: self.check(user_id, token, object_type, object_id, permission, fresh) == answer,
        )
        return name

    def set_roles(self, token, membership_name, roles):
        response = self.memberships.UpdateMembership(
            membership_pb2.UpdateMembershipRequest(
                membership=membership_pb2.Membership(name=membership_name, roles=roles),
                update_mask=field_mask_pb2.FieldMask(paths=["roles"]),
            ),
            metadata=auth(token),
        )
        expect(list(response.membership.roles) == roles, f"roles now {list(response.membership.roles)}")
        expect(response.written_at.token, "no written_at token")
        return response.written_at

    def audit_events(self, token, org):
        events, page_token = [], ""
        while True:
            page = self.audit.ListAuditEvents(
                audit_pb2.ListAuditEventsRequest(parent=org, page_size=200, page_token=page_token),
                metadata=auth(token),
            )
            events.extend(page.audit_events)
            page_token = page.next_page_token
            if not page_token:
                return events

    def steps(self):
        """Yields (description, callable) pairs; each callable returns a detail string."""
        s = {}

        def sign_up_a():
            r = self.sign_up(self.email_a, "Ada")
            s["a_id"] = last_segment(r.user.name)
            s["a_token"] = r.tokens.access_token
            return f"{r.user.name}, first organization {r.organization}"

        def create_org():
            r = self.orgs.CreateOrganization(
                organization_service_pb2.CreateOrganizationRequest(
                    organization=organization_pb2.Organization(display_name=self.org_display)
                ),
                metadata=auth(s["a_token"]),
            )
            org = r.organization
            expect(org.name.startswith("organizations/"), f"organization name {org.name!r}")
            expect(org.display_name == self.org_display, f"display name {org.display_name!r}")
            s["org"], s["org_id"] = org.name, last_segment(org.name)
            # The organization reaches the authorization index through its event.
            self.until_check(ALLOWED, s["a_id"], s["a_token"], "organization", s["org_id"], "project.create")
            return f"{org.name}; the owner may project.create there"

        def create_project():
            r = self.projects.CreateProject(
                project_pb2.CreateProjectRequest(
                    parent=s["org"], project=project_pb2.Project(display_name="Rocket")
                ),
                metadata=auth(s["a_token"]),
            )
            expect(r.project.name.startswith(s["org"] + "/projects/"), f"project {r.project.name!r}")
            slugs = sorted(e.slug for e in r.environments)
            expect(slugs == ["dev", "production", "staging"], f"environments {slugs}")
            s["project"] = r.project.name
            return f"{r.project.name} with environments {', '.join(slugs)}"

        def invite_b():
            r = self.invitations.CreateInvitation(
                invitation_pb2.CreateInvitationRequest(
                    parent=s["org"], invitation=invitation_pb2.Invitation(email=self.email_b)
                ),
                metadata=auth(s["a_token"]),
            )
            inv = r.invitation
            expect(inv.name.startswith(s["org"] + "/invitations/"), f"invitation {inv.name!r}")
            expect(inv.state == invitation_pb2.Invitation.STATE_PENDING, f"state {inv.state}")
            expect(list(inv.roles) == ["roles/member"], f"invited roles {list(inv.roles)}")
            s["invitation"] = inv.name
            s["invitation_token"] = eventually(
                f"the invitation mail to {self.email_b} in {ARGS.data_dir}/mail",
                lambda: mail_token(self.email_b, "invitation"),
            )
            return f"{inv.name} (pending, roles/member); token read from the mail file"

        def sign_up_b():
            r = self.sign_up(self.email_b, "Bob")
            s["b_id"] = last_segment(r.user.name)
            s["b_token"] = r.tokens.access_token
            return f"{r.user.name} signed up through the link mailed to the address"

        def accept():
            preview = self.invitations.LookupInvitation(
                invitation_pb2.LookupInvitationRequest(token=s["invitation_token"]),
                metadata=auth(s["b_token"]),
            ).preview
            expect(preview.organization == s["org"], f"preview organization {preview.organization!r}")
            expect(preview.email == self.email_b, f"preview email {preview.email!r}")
            r = self.invitations.AcceptInvitation(
                invitation_pb2.AcceptInvitationRequest(token=s["invitation_token"]),
                metadata=auth(s["b_token"]),
            )
            m = r.membership
            s["membership"] = f"{s['org']}/memberships/{s['b_id']}"
            expect(m.name == s["membership"], f"membership {m.name!r}")
            expect(list(m.roles) == ["roles/member"], f"roles {list(m.roles)}")
            expect(m.invitation.endswith(last_segment(s["invitation"])), f"from {m.invitation!r}")
            s["accepted_at"] = r.written_at
            return f"{m.name} with roles/member"

        def member_baseline():
            read = self.until_check(
                ALLOWED, s["b_id"], s["b_token"], "organization", s["org_id"], "organization.read",
                s["accepted_at"],
            )
            answer = self.check(
                s["b_id"], s["b_token"], "organization", s["org_id"], "project.create",
                s["accepted_at"],
            )
            expect(answer == DENIED, f"project.create for a plain member: {answer}")
            return f"B organization.read {read}, project.create DENIED"

        def grant():
            written = self.set_roles(s["a_token"], s["membership"], ["roles/member", "roles/admin"])
            answer = self.until_check(
                ALLOWED, s["b_id"], s["b_token"], "organization", s["org_id"], "project.create",
                written,
            )
            return f"UpdateMembership +roles/admin → CheckPermission project.create {answer}"

        def revoke():
            written = self.set_roles(s["a_token"], s["membership"], ["roles/member"])
            answer = self.until_check(
                DENIED, s["b_id"], s["b_token"], "organization", s["org_id"], "project.create",
                written,
            )
            return f"UpdateMembership -roles/admin → CheckPermission project.create {answer}"

        def audit_log():
            want = {
                "organization.created": 1,
                "project.created": 1,
                "organization.member.invited": 1,
                "organization.member.invitation_accepted": 1,
                "organization.member.added": 2,  # the owner A, then B
                "organization.member.updated": 2,  # +admin, -admin
            }

            def complete():
                events = self.audit_events(s["a_token"], s["org"])
                counts = {}
                for e in events:
                    counts[e.action] = counts.get(e.action, 0) + 1
                s["audit_counts"] = counts
                return events if all(counts.get(a, 0) >= n for a, n in want.items()) else None

            try:
                events = eventually(f"the audit log of {s['org']} to hold {want}", complete)
            except Failure as failure:
                raise Failure(f"{failure}; it holds {s.get('audit_counts')}") from None
            # The payload (its JSON form) is the event's metadata.
            added = {e.metadata["userId"] for e in events if e.action == "organization.member.added"}
            expect(added == {s["a_id"], s["b_id"]}, f"member.added for {added}")
            accepted = next(e for e in events if e.action == "organization.member.invitation_accepted")
            expect(accepted.actor.id == s["b_id"], f"accepted by actor {accepted.actor.id!r}")
            expect(
                accepted.metadata["invitationId"] == last_segment(s["invitation"]),
                f"accepted invitation {accepted.metadata['invitationId']!r}",
            )
            updated = [e for e in events if e.action == "organization.member.updated"]
            expect(all(e.actor.id == s["a_id"] for e in updated), "updates not by A")
            sequences = [e.sequence for e in events]
            expect(sequences == sorted(sequences, reverse=True), "not newest first")
            verify = self.audit.VerifyChain(
                audit_pb2.VerifyChainRequest(organization=s["org"]), metadata=auth(s["a_token"])
            )
            expect(verify.ok, f"VerifyChain: {verify}")
            actions = ", ".join(f"{a}×{s['audit_counts'][a]}" for a in want)
            return f"{len(events)} events ({actions}); VerifyChain ok over {verify.verified_count}"

        return [
            ("sign up user A", sign_up_a),
            ("A creates an organization", create_org),
            ("A creates a project", create_project),
            ("A invites B", invite_b),
            ("B signs up", sign_up_b),
            ("B accepts the invitation", accept),
            ("B is a plain member", member_baseline),
            ("A makes B an admin", grant),
            ("A takes the role back", revoke),
            ("A reads the audit log", audit_log),
        ]


def main():
    print(f"journey: {ARGS.addr}, data dir {ARGS.data_dir}")
    channel = grpc.insecure_channel(ARGS.addr)
    try:
        grpc.channel_ready_future(channel).result(timeout=max(ARGS.timeout, 10))
    except grpc.FutureTimeoutError:
        print(f"FAIL  cannot connect to {ARGS.addr}")
        print("journey: 0 passed, 1 failed")
        return 1
    journey = Journey(channel)
    passed = 0
    for description, step in journey.steps():
        try:
            detail = step()
        except grpc.RpcError as error:
            print(f"FAIL  {description}: {rpc_error(error)}")
        except Failure as failure:
            print(f"FAIL  {description}: {failure}")
        except Exception as error:  # an unexpected response shape, say
            print(f"FAIL  {description}: {type(error).__name__}: {error}")
        else:
            passed += 1
            print(f"ok    {description}: {detail}")
            continue
        print(f"journey: {passed} passed, 1 failed")
        return 1
    print(f"journey: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
