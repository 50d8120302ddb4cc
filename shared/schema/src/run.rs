//! Runs a test file against the authorization engine itself
//! (`tenantry_rbac::engine::Index`, what every rbac replica answers from),
//! in memory: the schema's types are registered, the relationships become
//! the index changes the services would log for them, and every check and
//! lookup is asked as `CheckPermission`, `LookupResources` and
//! `LookupSubjects` ask it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use tenantry_rbac::engine::{AccessLevel, Change, GrantSubject, Index};

use crate::diagnostic::{Diagnostics, Pos, Report};
use crate::suite::{LookupKind, ObjectRef, Relationship, Suite};
use crate::validate::{Schema, role_name};

/// The deepest organization tree (levels).
const MAX_DEPTH: usize = 10;

const ORGANIZATION_ROLES: &[&str] = &["owner", "admin", "member", "finance"];
const ACCESS_LEVELS: &[&str] = &["viewer", "contributor", "admin"];

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub passed: usize,
    pub failures: Vec<Failure>,
}

/// An assertion that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: PathBuf,
    pub pos: Pos,
    pub assertion: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: `{}`: expected {}, got {}",
            self.file.display(),
            self.pos.line,
            self.pos.column,
            self.assertion,
            self.expected,
            self.got
        )
    }
}

/// Builds the suite's world on `schema` and runs its assertions. A
/// relationship the services would refuse is a diagnostic; an assertion
/// that does not hold is a failure.
pub fn run(suite: &Suite, schema: &Schema) -> Result<Outcome, Diagnostics> {
    let index = world(suite, schema)?;
    let mut outcome = Outcome::default();
    let mut report = Report::new(&suite.file);
    for check in &suite.checks {
        if check.subject.object_type != "user" {
            report.error(check.pos, "only `user` subjects can be checked");
            continue;
        }
        let permission = full_permission(&check.object.object_type, &check.permission);
        let got = index.check_by_id(
            &check.subject.id,
            &check.object.object_type,
            &check.object.id,
            &permission,
        );
        let word = |allowed: bool| if allowed { "allowed" } else { "denied" };
        match got {
            Ok(allowed) if allowed == check.expected => outcome.passed += 1,
            Ok(allowed) => outcome.failures.push(Failure {
                file: suite.file.clone(),
                pos: check.pos,
                assertion: check.text.clone(),
                expected: word(check.expected).into(),
                got: word(allowed).into(),
            }),
            Err(error) => report.error(check.pos, format!("`{}`: {error}", check.text)),
        }
    }
    for lookup in &suite.lookups {
        let answer = match &lookup.kind {
            LookupKind::Resources {
                subject,
                resource_type,
            } if subject.object_type == "user" => index
                .lookup(
                    &subject.id,
                    resource_type,
                    &full_permission(resource_type, &lookup.permission),
                )
                .map(|ids| objects(resource_type, ids)),
            LookupKind::Subjects {
                subject_type,
                resource,
            } if subject_type == "user" => index
                .subjects_with(
                    &resource.object_type,
                    &resource.id,
                    &full_permission(&resource.object_type, &lookup.permission),
                )
                .map(|ids| objects("user", ids)),
            _ => {
                report.error(lookup.pos, "only `user` subjects can be looked up");
                continue;
            }
        };
        match answer {
            Ok(got) if got == lookup.expected => outcome.passed += 1,
            Ok(got) => outcome.failures.push(Failure {
                file: suite.file.clone(),
                pos: lookup.pos,
                assertion: lookup.text.clone(),
                expected: list(&lookup.expected),
                got: list(&got),
            }),
            Err(error) => report.error(lookup.pos, format!("`{}`: {error}", lookup.text)),
        }
    }
    report.finish(outcome)
}

/// `deploy` on a deployment is `deployment.deploy`; a full name stays.
fn full_permission(object_type: &str, permission: &str) -> String {
    match permission.strip_prefix(object_type) {
        Some(rest) if rest.starts_with('.') => permission.to_string(),
        _ => format!("{object_type}.{permission}"),
    }
}

fn objects(object_type: &str, ids: Vec<&str>) -> Vec<ObjectRef> {
    let mut found: Vec<ObjectRef> = ids
        .into_iter()
        .map(|id| ObjectRef {
            object_type: object_type.to_string(),
            id: id.to_string(),
        })
        .collect();
    found.sort();
    found
}

fn list(objects: &[ObjectRef]) -> String {
    let items: Vec<String> = objects.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// The relationships sorted by what they become.
#[derive(Debug, Default)]
struct World<'a> {
    parents: BTreeMap<ObjectRef, (&'a ObjectRef, &'a Relationship)>,
    organizations: BTreeSet<String>,
    roles: BTreeMap<(String, String), Vec<String>>,
    team_members: BTreeMap<(String, String), bool>,
    grants: Vec<(&'a Relationship, GrantSubject, AccessLevel)>,
    /// Objects that need a parent: where each was first mentioned.
    need_parent: BTreeMap<ObjectRef, Pos>,
}

/// The engine's index with the schema and the suite's relationships.
fn world(suite: &Suite, schema: &Schema) -> Result<Index, Diagnostics> {
    let mut report = Report::new(&suite.file);
    let mut world = World::default();
    for r in &suite.relationships {
        if let Err(message) = world.add(r, schema) {
            report.error(r.pos, format!("`{}`: {message}", r.text));
        }
    }
    // What the world lacks as a whole only makes sense once every
    // relationship in it is one the services would take.
    if report.is_empty() {
        world.check(&mut report);
    }
    if !report.is_empty() {
        return report.finish(Index::new());
    }
    let mut index = Index::new();
    let mut apply = |change: Change, pos: Pos, report: &mut Report| {
        if let Err(error) = index.apply(&change) {
            report.error(pos, error.to_string());
        }
    };
    for definition in &schema.definitions {
        apply(
            Change::RegisterType {
                definition: definition.clone(),
            },
            Pos::default(),
            &mut report,
        );
    }
    for organization in &world.organizations {
        let parent = world
            .parents
            .get(&org(organization))
            .map(|(p, _)| p.id.clone());
        let node = Change::Node {
            object_type: "organization".into(),
            id: organization.clone(),
            parent,
            inherit: true,
        };
        apply(node, Pos::default(), &mut report);
    }
    // Built-in children, then registered objects parents first.
    let depth = |t: &str| type_depth(schema, t);
    let mut placed: Vec<(&ObjectRef, &(&ObjectRef, &Relationship))> = world
        .parents
        .iter()
        .filter(|(o, _)| o.object_type != "organization")
        .collect();
    placed.sort_by_key(|(o, _)| depth(&o.object_type));
    for (object, (parent, r)) in placed {
        let node = Change::Node {
            object_type: object.object_type.clone(),
            id: object.id.clone(),
            parent: Some(parent.id.clone()),
            inherit: true,
        };
        apply(node, r.pos, &mut report);
    }
    for ((organization, user), roles) in &world.roles {
        let membership = Change::Membership {
            organization: organization.clone(),
            user: user.clone(),
            roles: roles.clone(),
        };
        apply(membership, Pos::default(), &mut report);
    }
    for ((team, user), lead) in &world.team_members {
        let member = Change::TeamMember {
            team: team.clone(),
            user: user.clone(),
            lead: Some(*lead),
        };
        apply(member, Pos::default(), &mut report);
    }
    for (r, subject, level) in &world.grants {
        let grant = Change::ProjectGrant {
            project: r.resource.id.clone(),
            subject: subject.clone(),
            level: Some(*level),
        };
        apply(grant, r.pos, &mut report);
    }
    report.finish(index)
}

fn org(id: &str) -> ObjectRef {
    ObjectRef {
        object_type: "organization".into(),
        id: id.into(),
    }
}

/// How far below `organization` a type sits.
fn type_depth(schema: &Schema, name: &str) -> usize {
    let engine = &schema.engine;
    let mut depth = 0;
    let mut at = engine.type_id(name);
    while let Some(t) = at {
        at = engine.resource_type(t).parent;
        depth += 1;
    }
    depth
}

impl<'a> World<'a> {
    fn add(&mut self, r: &'a Relationship, schema: &Schema) -> Result<(), String> {
        let (resource, subject) = (&r.resource, &r.subject);
        let user = |what: &str| match (subject.object_type.as_str(), &r.subject_relation) {
            ("user", None) => Ok(subject.id.clone()),
            _ => Err(format!("{what} is held by a `user:…`")),
        };
        match (resource.object_type.as_str(), r.relation.as_str()) {
            (_, "parent") => self.add_parent(r, schema),
            ("organization", role) if ORGANIZATION_ROLES.contains(&role) => {
                self.mention(resource, r.pos);
                let user = user("an organization role")?;
                let roles = self.roles.entry((resource.id.clone(), user)).or_default();
                roles.push(role_name(role));
                Ok(())
            }
            ("team", role @ ("lead" | "member")) => {
                self.mention(resource, r.pos);
                let user = user("a team role")?;
                let lead = self
                    .team_members
                    .entry((resource.id.clone(), user))
                    .or_default();
                *lead |= role == "lead";
                Ok(())
            }
            ("project", level) if ACCESS_LEVELS.contains(&level) => {
                self.mention(resource, r.pos);
                let subject = self.grant_subject(r)?;
                let level = match level {
                    "viewer" => AccessLevel::Viewer,
                    "contributor" => AccessLevel::Contributor,
                    _ => AccessLevel::Admin,
                };
                self.grants.push((r, subject, level));
                Ok(())
            }
            (t @ ("organization" | "team" | "project"), relation) => Err(format!(
                "`{t}` has no relation `{relation}`; it has {}",
                match t {
                    "organization" => "parent, owner, admin, member, finance",
                    "team" => "parent, lead, member",
                    _ => "parent, viewer, contributor, admin",
                }
            )),
            (t, _) if schema.engine.type_id(t).is_some() => {
                Err(format!("objects of `{t}` have one relation, `parent`"))
            }
            (t, _) => Err(format!("`{t}` is not a type of the schema")),
        }
    }

    fn add_parent(&mut self, r: &'a Relationship, schema: &Schema) -> Result<(), String> {
        let (resource, subject) = (&r.resource, &r.subject);
        let engine = &schema.engine;
        let kind = engine
            .type_id(&resource.object_type)
            .ok_or_else(|| format!("`{}` is not a type of the schema", resource.object_type))?;
        let expected = match engine.resource_type(kind).parent {
            Some(p) => engine.resource_type(p).name.clone(),
            // Organizations nest under organizations.
            None => "organization".to_string(),
        };
        if subject.object_type != expected || r.subject_relation.is_some() {
            return Err(format!(
                "the parent of a `{}` is an `{expected}:…`",
                resource.object_type
            ));
        }
        if let Some((other, first)) = self.parents.get(resource)
            && *other != subject
        {
            return Err(format!(
                "{resource} already has the parent {other} (line {}); an object has one parent",
                first.pos.line
            ));
        }
        self.mention(resource, r.pos);
        self.mention(subject, r.pos);
        self.parents.insert(resource.clone(), (subject, r));
        Ok(())
    }

    /// A subject of a project grant: a user, a team's members, or the
    /// holders of a role in the project's organization.
    fn grant_subject(&mut self, r: &'a Relationship) -> Result<GrantSubject, String> {
        let subject = &r.subject;
        match (subject.object_type.as_str(), r.subject_relation.as_deref()) {
            ("user", None) => Ok(GrantSubject::User(subject.id.clone())),
            ("team", Some("member")) => {
                self.mention(subject, r.pos);
                Ok(GrantSubject::Team(subject.id.clone()))
            }
            ("organization", Some(role)) if ORGANIZATION_ROLES.contains(&role) => {
                Ok(GrantSubject::Role(role_name(role)))
            }
            _ => Err("a project is granted to `user:…`, `team:…#member` or `organization:…#owner|admin|member|finance`".into()),
        }
    }

    fn mention(&mut self, object: &ObjectRef, pos: Pos) {
        if object.object_type == "organization" {
            self.organizations.insert(object.id.clone());
        } else {
            self.need_parent.entry(object.clone()).or_insert(pos);
        }
    }

    /// What the services would refuse about the world as a whole.
    fn check(&self, report: &mut Report) {
        for (object, pos) in &self.need_parent {
            if !self.parents.contains_key(object) {
                report.error(
                    *pos,
                    format!("{object} has no parent: add a `{object}#parent@…` relationship"),
                );
            }
        }
        for organization in &self.organizations {
            let mut at = org(organization);
            let mut depth = 1;
            while let Some((parent, r)) = self.parents.get(&at) {
                depth += 1;
                if parent.id == *organization || depth > MAX_DEPTH {
                    report.error(
                        r.pos,
                        format!("organization:{organization} is in a cycle or more than {MAX_DEPTH} levels deep"),
                    );
                    break;
                }
                at = (*parent).clone();
            }
        }
        for (r, subject, _) in &self.grants {
            if let GrantSubject::Role(_) = subject {
                let project_org = self.parents.get(&r.resource).map(|(p, _)| p.id.as_str());
                if project_org.is_some_and(|o| o != r.subject.id) {
                    report.error(
                        r.pos,
                        format!(
                            "`{}`: a role grant names the project's own organization",
                            r.text
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
