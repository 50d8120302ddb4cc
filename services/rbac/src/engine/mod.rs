//! The authorization index: everything a check needs, in memory, keyed by
//! compact ids, answering without touching the database.
//!
//! A check walks **up** from the object to its root (at most ten
//! organization levels plus a team or project), and at each node looks up
//! the subject's permission bits there in a hash map keyed by two `u32`s:
//! the roles of a membership (folded into one bitset), a team role, a
//! project grant to the user, and, at a project, the grants to the user's
//! teams and to the user's roles in the project's organization. An
//! organization with `inherit = false` stops the walk above it; a deleted
//! node denies everything at and below it. No allocation on that path.
//!
//! A lookup goes **down**: from each node where the subject holds anything,
//! through the subtree (children lists), skipping subtrees that do not
//! inherit, collecting objects of the wanted type where the bit is set.
//!
//! The index is changed only through [`Change`]s, in revision order: the
//! same changes rebuild it from the store at start and keep it current
//! afterwards.

pub mod schema;

#[cfg(test)]
mod reference;

use std::collections::hash_map::Entry;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

pub use schema::{
    AccessLevel, Grantor, ORGANIZATION, PROJECT, PermissionDefinition, Perms, Schema, SchemaError,
    TEAM, TypeDefinition, TypeId,
};

/// A node's compact id.
pub type NodeId = u32;
/// A user's (or other subject's) compact id.
pub type SubjectId = u32;
/// A role's compact id.
pub type RoleId = u32;

const NONE: NodeId = u32::MAX;

/// The built-in member role's id: built-in roles take the first ids, in
/// [`schema::BUILT_IN_ROLES`] order.
const MEMBER_ROLE: RoleId = 2;

/// A change to what the index knows. Ids are the resources' own ids
/// (UUIDs as text); roles are named as the API names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An object exists (or moved): an organization with its parent, a
    /// team or project in its organization.
    Node {
        object_type: String,
        id: String,
        parent: Option<String>,
        inherit: bool,
    },
    /// An object was soft-deleted (`live = false`) or restored.
    Live {
        object_type: String,
        id: String,
        live: bool,
    },
    /// An object is gone for good.
    RemoveNode { object_type: String, id: String },
    /// A role's permissions (custom roles; built-in ones are fixed).
    Role {
        name: String,
        permissions: Vec<String>,
    },
    /// A custom role is gone.
    RemoveRole { name: String },
    /// A user's roles in an organization; empty removes the membership.
    Membership {
        organization: String,
        user: String,
        roles: Vec<String>,
    },
    /// A user's role in a team; `None` removes them from it.
    TeamMember {
        team: String,
        user: String,
        lead: Option<bool>,
    },
    /// A resource type registered by an internal service.
    RegisterType { definition: TypeDefinition },
    /// A registered type that no object uses any more is gone.
    UnregisterType { name: String },
    /// A project grant; `None` removes it.
    ProjectGrant {
        project: String,
        subject: GrantSubject,
        level: Option<AccessLevel>,
    },
    /// Whether an organization's members see only the projects granted to
    /// them: the built-in member role then carries no project permissions
    /// there (other roles keep theirs; grants are unchanged).
    ProjectVisibility {
        organization: String,
        granted_only: bool,
    },
    /// A user was disabled or deleted (`active = false`), or restored:
    /// an inactive user holds nothing, whatever their grants say.
    UserActive { user: String, active: bool },
    /// An API key: it may use the `permissions` it carries inside its
    /// `scope`, and only while its `owner` holds them there.
    ApiKey {
        id: String,
        organization: String,
        owner: String,
        scope: KeyScope,
        permissions: Vec<String>,
    },
    /// An API key was revoked: it holds nothing from now on.
    RemoveApiKey { id: String },
    /// A sign-in session ended (logout, revocation, password change): the
    /// access tokens issued for it hold nothing from now on. `until_us` is
    /// when the last of them expires; `at_us` when the session ended (the
    /// index's clock for forgetting sessions whose tokens are all gone).
    SessionEnded {
        id: String,
        at_us: i64,
        until_us: i64,
    },
}

/// Where an API key may act: an organization and everything below it, a
/// team and the projects granted to it, or one project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum KeyScope {
    Organization(String),
    Team(String),
    Project(String),
}

/// An API key as the index holds it.
#[derive(Debug, Clone)]
struct ApiKeyEntry {
    owner: SubjectId,
    /// The key's organization: its scope must lie in it.
    organization: NodeId,
    scope: NodeId,
    /// The permissions the key carries, by name (kept to recompute `perms`
    /// when a registered type brings new permissions).
    names: Vec<Box<str>>,
    perms: Perms,
}

/// Who a project grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum GrantSubject {
    User(String),
    Team(String),
    /// Everyone holding this role in the project's organization.
    Role(String),
}

impl Serialize for AccessLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            AccessLevel::Viewer => "viewer",
            AccessLevel::Contributor => "contributor",
            AccessLevel::Admin => "admin",
        })
    }
}

impl<'de> Deserialize<'de> for AccessLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "viewer" => Ok(AccessLevel::Viewer),
            "contributor" => Ok(AccessLevel::Contributor),
            "admin" => Ok(AccessLevel::Admin),
            other => Err(serde::de::Error::custom(format!(
                "unknown access level {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: TypeId,
    parent: NodeId,
    inherit: bool,
    live: bool,
    /// On organizations: members see only the projects granted to them.
    granted_only: bool,
}

/// Why a check answered as it did, when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The nodes visited, object first: (type, id, what the subject held
    /// there, as permission names).
    pub steps: Vec<(String, String, Vec<String>)>,
    /// Where the walk stopped early and why, if it did.
    pub stopped: Option<String>,
}

/// The in-memory index. Readers share it behind a lock; one writer applies
/// changes.
#[derive(Debug, Default)]
pub struct Index {
    schema: Schema,
    nodes: Vec<Node>,
    ids: Vec<FxHashMap<Box<str>, NodeId>>,
    keys: Vec<(TypeId, Box<str>)>,
    children: Vec<Vec<NodeId>>,
    free: Vec<NodeId>,
    subjects: FxHashMap<Box<str>, SubjectId>,
    /// Users who are disabled or deleted.
    inactive: FxHashSet<SubjectId>,
    subject_names: Vec<Box<str>>,
    role_ids: FxHashMap<Box<str>, RoleId>,
    role_perms: Vec<Perms>,
    /// (user, organization) → roles held there.
    members: FxHashMap<(SubjectId, NodeId), Vec<RoleId>>,
    /// (user, node) → permission bits held directly there.
    direct: FxHashMap<(SubjectId, NodeId), Perms>,
    /// user → nodes with a `direct` entry.
    user_nodes: FxHashMap<SubjectId, Vec<NodeId>>,
    /// (user, team) → lead?
    team_roles: FxHashMap<(SubjectId, NodeId), bool>,
    /// user → teams.
    user_teams: FxHashMap<SubjectId, Vec<NodeId>>,
    /// (user, project) → level.
    user_grants: FxHashMap<(SubjectId, NodeId), AccessLevel>,
    /// (team, project) → level.
    team_grants: FxHashMap<(NodeId, NodeId), AccessLevel>,
    team_projects: FxHashMap<NodeId, Vec<NodeId>>,
    /// (role, project) → level.
    role_grants: FxHashMap<(RoleId, NodeId), AccessLevel>,
    role_projects: FxHashMap<RoleId, Vec<NodeId>>,
    /// Reverse indexes for `subjects_with`: node → users with a direct
    /// entry there; organization → members (whatever their roles grant);
    /// project → teams granted on it.
    node_subjects: FxHashMap<NodeId, Vec<SubjectId>>,
    org_members: FxHashMap<NodeId, Vec<SubjectId>>,
    project_teams: FxHashMap<NodeId, Vec<NodeId>>,
    /// API keys by id.
    api_keys: FxHashMap<Box<str>, ApiKeyEntry>,
    /// Ended sessions whose access tokens may still be presented, with when
    /// the last of them expires.
    ended_sessions: FxHashMap<Box<str>, i64>,
    /// The size of `ended_sessions` after its last sweep.
    ended_swept: usize,
    relationships: usize,
}

/// An index error: the change or question names something unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("unknown resource type `{0}`")]
    UnknownType(String),
    #[error("no registered type defines the permission `{0}`")]
    UnknownPermission(String),
    #[error("`{permission}` is not a permission of `{object_type}`")]
    WrongType {
        permission: String,
        object_type: String,
    },
    #[error("unknown role `{0}`")]
    UnknownRole(String),
    #[error("{0}")]
    Schema(#[from] SchemaError),
}

fn push_unique(list: &mut Vec<NodeId>, value: NodeId) {
    if !list.contains(&value) {
        list.push(value);
    }
}

fn remove_value(list: &mut Vec<NodeId>, value: NodeId) {
    list.retain(|v| *v != value);
}

impl Index {
    /// An empty index with the built-in schema.
    pub fn new() -> Index {
        let schema = Schema::built_in();
        let mut index = Index {
            ids: vec![FxHashMap::default(); 3],
            schema,
            ..Index::default()
        };
        debug_assert_eq!(schema::BUILT_IN_ROLES[MEMBER_ROLE as usize], "roles/member");
        for role in schema::BUILT_IN_ROLES {
            let perms = index.schema.built_in_role(role).expect("built in");
            index
                .role_ids
                .insert((*role).into(), index.role_perms.len() as RoleId);
            index.role_perms.push(perms);
        }
        index
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// How many relationships (memberships, team members, grants, parent
    /// links) the index holds.
    pub fn relationships(&self) -> usize {
        self.relationships
    }

    /// How many objects the index holds.
    pub fn objects(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    fn type_of(&self, name: &str) -> Result<TypeId, IndexError> {
        self.schema
            .type_id(name)
            .ok_or_else(|| IndexError::UnknownType(name.to_string()))
    }

    /// A node's compact id, if it exists.
    pub fn node(&self, object_type: TypeId, id: &str) -> Option<NodeId> {
        self.ids.get(object_type as usize)?.get(id).copied()
    }

    /// A subject's compact id, if it holds anything.
    pub fn subject(&self, id: &str) -> Option<SubjectId> {
        self.subjects.get(id).copied()
    }

    /// Whether a session may still act: its access tokens hold nothing once
    /// it ended. The set is usually small: one lookup.
    #[inline]
    pub fn session_live(&self, session: &str) -> bool {
        self.ended_sessions.is_empty() || !self.ended_sessions.contains_key(session)
    }

    /// Whether a user may hold anything (not disabled or deleted). The set
    /// is empty in most deployments most of the time: one lookup.
    #[inline]
    pub fn active(&self, user: SubjectId) -> bool {
        self.inactive.is_empty() || !self.inactive.contains(&user)
    }

    fn subject_or_insert(&mut self, id: &str) -> SubjectId {
        if let Some(&s) = self.subjects.get(id) {
            return s;
        }
        let s = self.subject_names.len() as SubjectId;
        self.subjects.insert(id.into(), s);
        self.subject_names.push(id.into());
        s
    }

    fn node_or_insert(&mut self, kind: TypeId, id: &str) -> NodeId {
        if let Some(n) = self.node(kind, id) {
            return n;
        }
        let node = Node {
            kind,
            parent: NONE,
            inherit: true,
            live: true,
            granted_only: false,
        };
        let n = match self.free.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                self.keys[n as usize] = (kind, id.into());
                self.children[n as usize].clear();
                n
            }
            None => {
                self.nodes.push(node);
                self.keys.push((kind, id.into()));
                self.children.push(Vec::new());
                (self.nodes.len() - 1) as NodeId
            }
        };
        self.ids[kind as usize].insert(id.into(), n);
        n
    }

    fn role_id(&self, name: &str) -> Result<RoleId, IndexError> {
        self.role_ids
            .get(name)
            .copied()
            .ok_or_else(|| IndexError::UnknownRole(name.to_string()))
    }

    /// Applies one change. Unknown roles in a membership are an error (the
    /// service checks them before writing); everything else is upserted.
    pub fn apply(&mut self, change: &Change) -> Result<(), IndexError> {
        match change {
            Change::UserActive { user, active } => {
                let u = self.subject_or_insert(user);
                if *active {
                    self.inactive.remove(&u);
                } else {
                    self.inactive.insert(u);
                }
            }
            Change::ApiKey {
                id,
                organization,
                owner,
                scope,
                permissions,
            } => {
                let organization = self.node_or_insert(ORGANIZATION, organization);
                let scope = match scope {
                    KeyScope::Organization(id) => self.node_or_insert(ORGANIZATION, id),
                    KeyScope::Team(id) => self.node_or_insert(TEAM, id),
                    KeyScope::Project(id) => self.node_or_insert(PROJECT, id),
                };
                let owner = self.subject_or_insert(owner);
                let names: Vec<Box<str>> = permissions.iter().map(|p| p.as_str().into()).collect();
                let perms = self.key_perms(&names);
                self.api_keys.insert(
                    id.as_str().into(),
                    ApiKeyEntry {
                        owner,
                        organization,
                        scope,
                        names,
                        perms,
                    },
                );
            }
            Change::RemoveApiKey { id } => {
                self.api_keys.remove(id.as_str());
            }
            Change::SessionEnded {
                id,
                at_us,
                until_us,
            } => {
                // Forget sessions whose tokens have all expired, once the
                // set has doubled since the last sweep (amortized O(1)).
                if self.ended_sessions.len() >= 2 * self.ended_swept.max(512) {
                    self.ended_sessions.retain(|_, until| *until > *at_us);
                    self.ended_swept = self.ended_sessions.len();
                }
                if *until_us > *at_us {
                    self.ended_sessions.insert(id.as_str().into(), *until_us);
                }
            }
            Change::Node {
                object_type,
                id,
                parent,
                inherit,
            } => {
                let kind = self.type_of(object_type)?;
                let n = self.node_or_insert(kind, id);
                let parent_kind = self.schema.resource_type(kind).parent;
                let new_parent = match (parent, parent_kind) {
                    (Some(p), Some(pk)) => self.node_or_insert(pk, p),
                    (Some(p), None) if kind == ORGANIZATION => self.node_or_insert(ORGANIZATION, p),
                    _ => NONE,
                };
                let old_parent = self.nodes[n as usize].parent;
                if old_parent != new_parent {
                    if old_parent != NONE {
                        remove_value(&mut self.children[old_parent as usize], n);
                    } else {
                        self.relationships += 1;
                    }
                    if new_parent != NONE {
                        push_unique(&mut self.children[new_parent as usize], n);
                    } else {
                        self.relationships -= 1;
                    }
                }
                let node = &mut self.nodes[n as usize];
                node.parent = new_parent;
                node.inherit = *inherit;
            }
            Change::ProjectVisibility {
                organization,
                granted_only,
            } => {
                let n = self.node_or_insert(ORGANIZATION, organization);
                self.nodes[n as usize].granted_only = *granted_only;
                let members = self.org_members.get(&n).cloned().unwrap_or_default();
                for u in members {
                    self.refresh_direct(u, n);
                }
            }
            Change::Live {
                object_type,
                id,
                live,
            } => {
                let kind = self.type_of(object_type)?;
                let n = self.node_or_insert(kind, id);
                self.nodes[n as usize].live = *live;
            }
            Change::RemoveNode { object_type, id } => {
                let kind = self.type_of(object_type)?;
                if let Some(n) = self.node(kind, id) {
                    self.remove_node(n);
                }
            }
            Change::RegisterType { definition } => {
                let kind = self.schema.register(definition)?;
                while self.ids.len() <= kind as usize {
                    self.ids.push(FxHashMap::default());
                }
                // Built-in roles, levels and team roles may carry new bits;
                // custom roles may imply some.
                for (i, role) in schema::BUILT_IN_ROLES.iter().enumerate() {
                    self.role_perms[i] = self.schema.built_in_role(role).expect("built in");
                }
                for i in schema::BUILT_IN_ROLES.len()..self.role_perms.len() {
                    self.role_perms[i] = self.schema.close(self.role_perms[i]);
                }
                let keys: Vec<(SubjectId, NodeId)> = self.direct.keys().copied().collect();
                for (u, n) in keys {
                    self.refresh_direct(u, n);
                }
                let api_keys: Vec<Box<str>> = self.api_keys.keys().cloned().collect();
                for id in api_keys {
                    let perms = self.key_perms(&self.api_keys[&id].names);
                    if let Some(key) = self.api_keys.get_mut(&id) {
                        key.perms = perms;
                    }
                }
            }
            Change::UnregisterType { name } => {
                self.schema.unregister(name);
            }
            Change::Role { name, permissions } => {
                let perms = self
                    .schema
                    .permissions(permissions.iter().map(String::as_str))
                    .map_err(|p| IndexError::UnknownPermission(p.to_string()))?;
                let perms = self.schema.close(perms);
                let role = match self.role_ids.get(name.as_str()) {
                    Some(&r) => {
                        self.role_perms[r as usize] = perms;
                        r
                    }
                    None => {
                        let r = self.role_perms.len() as RoleId;
                        self.role_ids.insert(name.as_str().into(), r);
                        self.role_perms.push(perms);
                        r
                    }
                };
                self.refresh_role(role);
            }
            Change::RemoveRole { name } => {
                if let Some(&role) = self.role_ids.get(name.as_str()) {
                    // The id stays reserved (no reuse while grants may name
                    // it); it grants nothing from now on.
                    self.role_perms[role as usize] = 0;
                    self.refresh_role(role);
                }
            }
            Change::Membership {
                organization,
                user,
                roles,
            } => {
                let roles: Vec<RoleId> = roles
                    .iter()
                    .map(|r| self.role_id(r))
                    .collect::<Result<_, _>>()?;
                let org = self.node_or_insert(ORGANIZATION, organization);
                let u = self.subject_or_insert(user);
                if roles.is_empty() {
                    if self.members.remove(&(u, org)).is_some() {
                        self.relationships -= 1;
                    }
                    if let Some(list) = self.org_members.get_mut(&org) {
                        list.retain(|m| *m != u);
                    }
                } else {
                    if self.members.insert((u, org), roles).is_none() {
                        self.relationships += 1;
                    }
                    let list = self.org_members.entry(org).or_default();
                    if !list.contains(&u) {
                        list.push(u);
                    }
                }
                self.refresh_direct(u, org);
            }
            Change::TeamMember { team, user, lead } => {
                let t = self.node_or_insert(TEAM, team);
                let u = self.subject_or_insert(user);
                match lead {
                    Some(lead) => {
                        if self.team_roles.insert((u, t), *lead).is_none() {
                            self.relationships += 1;
                        }
                        push_unique(self.user_teams.entry(u).or_default(), t);
                    }
                    None => {
                        if self.team_roles.remove(&(u, t)).is_some() {
                            self.relationships -= 1;
                        }
                        if let Some(teams) = self.user_teams.get_mut(&u) {
                            remove_value(teams, t);
                        }
                    }
                }
                self.refresh_direct(u, t);
            }
            Change::ProjectGrant {
                project,
                subject,
                level,
            } => {
                let p = self.node_or_insert(PROJECT, project);
                match subject {
                    GrantSubject::User(user) => {
                        let u = self.subject_or_insert(user);
                        let existed = match level {
                            Some(level) => self.user_grants.insert((u, p), *level).is_some(),
                            None => self.user_grants.remove(&(u, p)).is_some(),
                        };
                        self.count(existed, level.is_some());
                        self.refresh_direct(u, p);
                    }
                    GrantSubject::Team(team) => {
                        let t = self.node_or_insert(TEAM, team);
                        let existed = match level {
                            Some(level) => self.team_grants.insert((t, p), *level).is_some(),
                            None => self.team_grants.remove(&(t, p)).is_some(),
                        };
                        self.count(existed, level.is_some());
                        let list = self.team_projects.entry(t).or_default();
                        if level.is_some() {
                            push_unique(list, p);
                        } else {
                            remove_value(list, p);
                        }
                        let teams = self.project_teams.entry(p).or_default();
                        if level.is_some() {
                            push_unique(teams, t);
                        } else {
                            remove_value(teams, t);
                        }
                    }
                    GrantSubject::Role(role) => {
                        let r = self.role_id(role)?;
                        let existed = match level {
                            Some(level) => self.role_grants.insert((r, p), *level).is_some(),
                            None => self.role_grants.remove(&(r, p)).is_some(),
                        };
                        self.count(existed, level.is_some());
                        let list = self.role_projects.entry(r).or_default();
                        if level.is_some() {
                            push_unique(list, p);
                        } else {
                            remove_value(list, p);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn count(&mut self, existed: bool, exists: bool) {
        match (existed, exists) {
            (false, true) => self.relationships += 1,
            (true, false) => self.relationships -= 1,
            _ => {}
        }
    }

    /// Recomputes what a user holds directly at a node from its sources.
    fn refresh_direct(&mut self, u: SubjectId, n: NodeId) {
        let perms = match self.nodes[n as usize].kind {
            ORGANIZATION => {
                // Where members see only their granted projects, the member
                // role's project permissions come from grants alone.
                let hidden = match self.nodes[n as usize].granted_only {
                    true => self.schema.project_scoped(),
                    false => 0,
                };
                self.members
                    .get(&(u, n))
                    .map(|roles| {
                        roles.iter().fold(0, |a, r| {
                            let perms = self.role_perms[*r as usize];
                            a | if *r == MEMBER_ROLE {
                                perms & !hidden
                            } else {
                                perms
                            }
                        })
                    })
                    .unwrap_or(0)
            }
            TEAM => self
                .team_roles
                .get(&(u, n))
                .map(|lead| self.schema.team_role(*lead))
                .unwrap_or(0),
            PROJECT => self
                .user_grants
                .get(&(u, n))
                .map(|level| self.schema.access_level(*level))
                .unwrap_or(0),
            _ => 0,
        };
        match self.direct.entry((u, n)) {
            Entry::Occupied(mut e) if perms != 0 => {
                e.insert(perms);
            }
            Entry::Occupied(e) => {
                e.remove();
                if let Some(nodes) = self.user_nodes.get_mut(&u) {
                    remove_value(nodes, n);
                }
                if let Some(users) = self.node_subjects.get_mut(&n) {
                    users.retain(|x| *x != u);
                }
            }
            Entry::Vacant(e) if perms != 0 => {
                e.insert(perms);
                self.user_nodes.entry(u).or_default().push(n);
                self.node_subjects.entry(n).or_default().push(u);
            }
            Entry::Vacant(_) => {}
        }
    }

    /// Recomputes every membership holding `role`, and the bits of the
    /// project grants to it.
    fn refresh_role(&mut self, role: RoleId) {
        let holders: Vec<(SubjectId, NodeId)> = self
            .members
            .iter()
            .filter(|(_, roles)| roles.contains(&role))
            .map(|(k, _)| *k)
            .collect();
        for (u, n) in holders {
            self.refresh_direct(u, n);
        }
    }

    fn remove_node(&mut self, n: NodeId) {
        let node = self.nodes[n as usize];
        if node.parent != NONE {
            remove_value(&mut self.children[node.parent as usize], n);
            self.relationships -= 1;
        }
        // Orphan the children: they are removed by their own changes.
        for child in std::mem::take(&mut self.children[n as usize]) {
            self.nodes[child as usize].parent = NONE;
        }
        let subjects: Vec<(SubjectId, NodeId)> = self
            .direct
            .keys()
            .filter(|(_, node)| *node == n)
            .copied()
            .collect();
        self.members.retain(|(_, node), _| *node != n);
        self.team_roles.retain(|(_, node), _| *node != n);
        self.user_grants.retain(|(_, node), _| *node != n);
        for (u, node) in subjects {
            self.refresh_direct(u, node);
        }
        for teams in self.user_teams.values_mut() {
            remove_value(teams, n);
        }
        self.team_grants.retain(|(t, p), _| *t != n && *p != n);
        self.team_projects.remove(&n);
        for list in self.team_projects.values_mut() {
            remove_value(list, n);
        }
        self.role_grants.retain(|(_, p), _| *p != n);
        self.org_members.remove(&n);
        self.project_teams.remove(&n);
        for teams in self.project_teams.values_mut() {
            remove_value(teams, n);
        }
        for list in self.role_projects.values_mut() {
            remove_value(list, n);
        }
        // The node's id may be reused: a key scoped to it dies with it.
        self.api_keys
            .retain(|_, key| key.scope != n && key.organization != n);
        let (kind, id) = self.keys[n as usize].clone();
        self.ids[kind as usize].remove(&id);
        self.nodes[n as usize].live = false;
        self.free.push(n);
    }

    /// Resolves a (type, permission) pair to its bit, refusing unknown
    /// types, unknown permissions and permissions of another type.
    pub fn permission_bit(
        &self,
        object_type: &str,
        permission: &str,
    ) -> Result<(TypeId, Perms), IndexError> {
        let kind = self.type_of(object_type)?;
        let bit = self
            .schema
            .permission(permission)
            .ok_or_else(|| IndexError::UnknownPermission(permission.to_string()))?;
        if self.schema.resource_type(kind).permissions & bit == 0 {
            return Err(IndexError::WrongType {
                permission: permission.to_string(),
                object_type: object_type.to_string(),
            });
        }
        Ok((kind, bit))
    }

    /// Whether `user` holds `bit` on `node`: the hot path.
    #[inline]
    pub fn check(&self, user: SubjectId, node: NodeId, bit: Perms) -> bool {
        let mut n = node;
        loop {
            let here = &self.nodes[n as usize];
            if !here.live {
                return false;
            }
            let held = self.direct.get(&(user, n)).is_some_and(|p| p & bit != 0)
                || (here.kind == PROJECT && self.project_grants(user, n, here.parent) & bit != 0);
            if held {
                // A grant counts only while everything above is live: a
                // deleted ancestor ends access through it.
                return here.parent == NONE || self.path_live(here.parent);
            }
            if !here.inherit || here.parent == NONE {
                return false;
            }
            n = here.parent;
        }
    }

    /// The bits a user holds on a project through their teams and through
    /// their roles in the project's organization.
    #[inline]
    fn project_grants(&self, user: SubjectId, project: NodeId, organization: NodeId) -> Perms {
        let mut perms = 0;
        if let Some(teams) = self.user_teams.get(&user) {
            for team in teams {
                if let Some(level) = self.team_grants.get(&(*team, project))
                    && self.nodes[*team as usize].live
                {
                    perms |= self.schema.access_level(*level);
                }
            }
        }
        if organization != NONE
            && let Some(roles) = self.members.get(&(user, organization))
        {
            for role in roles {
                if let Some(level) = self.role_grants.get(&(*role, project)) {
                    perms |= self.schema.access_level(*level);
                }
            }
        }
        perms
    }

    /// A check by ids, as the API asks it: unknown objects and subjects are
    /// simply denied.
    pub fn check_by_id(
        &self,
        user: &str,
        object_type: &str,
        id: &str,
        permission: &str,
    ) -> Result<bool, IndexError> {
        let (kind, bit) = self.permission_bit(object_type, permission)?;
        Ok(match (self.subject(user), self.node(kind, id)) {
            (Some(u), Some(n)) => self.active(u) && self.check(u, n, bit),
            _ => false,
        })
    }

    /// The bits of the permissions a key carries; names the schema does not
    /// know (yet) grant nothing.
    fn key_perms(&self, names: &[Box<str>]) -> Perms {
        names
            .iter()
            .filter_map(|name| self.schema.permission(name))
            .fold(0, |perms, bit| perms | bit)
    }

    /// Whether an API key holds `permission` on an object: the key carries
    /// it, the object lies inside the key's scope, and the key's owner holds
    /// it there now (so a key never outlives its owner's access). Unknown
    /// or revoked keys are denied.
    pub fn check_key(
        &self,
        key: &str,
        object_type: &str,
        id: &str,
        permission: &str,
    ) -> Result<bool, IndexError> {
        let (kind, bit) = self.permission_bit(object_type, permission)?;
        let (Some(key), Some(n)) = (self.api_keys.get(key), self.node(kind, id)) else {
            return Ok(false);
        };
        Ok(key.perms & bit != 0
            && self.in_scope(key, n)
            && self.active(key.owner)
            && self.check(key.owner, n, bit))
    }

    /// Whether `node` lies inside a key's scope: the scope itself or below
    /// it, or, for a team, a project granted to the team (or below one);
    /// and the scope lies in the key's organization.
    fn in_scope(&self, key: &ApiKeyEntry, node: NodeId) -> bool {
        self.reaches(key.scope, node) && self.reaches(key.organization, key.scope)
    }

    /// Whether walking up from `node` meets `scope` (for a team scope: a
    /// project granted to the team).
    fn reaches(&self, scope: NodeId, node: NodeId) -> bool {
        let team = self.nodes[scope as usize].kind == TEAM;
        let mut n = node;
        loop {
            if n == scope
                || (team
                    && self.nodes[n as usize].kind == PROJECT
                    && self.team_grants.contains_key(&(scope, n)))
            {
                return true;
            }
            let parent = self.nodes[n as usize].parent;
            if parent == NONE {
                return false;
            }
            n = parent;
        }
    }

    /// The ids of objects of `object_type` on which an API key holds
    /// `permission` (see [`check_key`](Self::check_key)), sorted.
    pub fn lookup_key(
        &self,
        key: &str,
        object_type: &str,
        permission: &str,
    ) -> Result<Vec<&str>, IndexError> {
        let (kind, bit) = self.permission_bit(object_type, permission)?;
        let Some(key) = self.api_keys.get(key).filter(|k| k.perms & bit != 0) else {
            return Ok(Vec::new());
        };
        let owner = &self.subject_names[key.owner as usize];
        Ok(self
            .lookup(owner, object_type, permission)?
            .into_iter()
            .filter(|id| self.node(kind, id).is_some_and(|n| self.in_scope(key, n)))
            .collect())
    }

    /// The id of the root of an organization's tree, if the organization
    /// is known.
    pub fn root_of(&self, organization: &str) -> Option<&str> {
        let mut n = self.node(ORGANIZATION, organization)?;
        while self.nodes[n as usize].parent != NONE {
            n = self.nodes[n as usize].parent;
        }
        Some(self.keys[n as usize].1.as_ref())
    }

    /// The nearest organization at or above an object, and the object's
    /// parent (type, id), if the object is known.
    pub fn organization_of(&self, object_type: &str, id: &str) -> Option<&str> {
        let mut n = self.node(self.schema.type_id(object_type)?, id)?;
        loop {
            let here = &self.nodes[n as usize];
            if here.kind == ORGANIZATION {
                return Some(self.keys[n as usize].1.as_ref());
            }
            if here.parent == NONE {
                return None;
            }
            n = here.parent;
        }
    }

    /// The parent of an object, as (type name, id).
    pub fn parent_of(&self, object_type: &str, id: &str) -> Option<(&str, &str)> {
        let n = self.node(self.schema.type_id(object_type)?, id)?;
        let parent = self.nodes[n as usize].parent;
        if parent == NONE {
            return None;
        }
        let (kind, key) = &self.keys[parent as usize];
        Some((self.schema.resource_type(*kind).name.as_str(), key.as_ref()))
    }

    /// Whether an object is an organization's own or lies below it, live or
    /// not (for reading relationships, which deleted objects still have).
    pub fn under(&self, object_type: &str, id: &str, organization: &str) -> bool {
        let (Some(kind), Some(org)) = (
            self.schema.type_id(object_type),
            self.node(ORGANIZATION, organization),
        ) else {
            return false;
        };
        let Some(mut n) = self.node(kind, id) else {
            return false;
        };
        loop {
            if n == org {
                return true;
            }
            let parent = self.nodes[n as usize].parent;
            if parent == NONE {
                return false;
            }
            n = parent;
        }
    }

    /// Whether an object is a live organization's own or lies below it.
    pub fn within(&self, object_type: &str, id: &str, organization: &str) -> bool {
        let (Some(kind), Some(org)) = (
            self.schema.type_id(object_type),
            self.node(ORGANIZATION, organization),
        ) else {
            return false;
        };
        let Some(mut n) = self.node(kind, id) else {
            return false;
        };
        loop {
            let here = &self.nodes[n as usize];
            if !here.live {
                return false;
            }
            if n == org {
                return self.path_live(n);
            }
            if here.parent == NONE {
                return false;
            }
            n = here.parent;
        }
    }

    /// The ids of an organization and of every organization below it.
    pub fn organizations_under(&self, organization: &str) -> Vec<&str> {
        let Some(top) = self.node(ORGANIZATION, organization) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![top];
        while let Some(n) = stack.pop() {
            out.push(self.keys[n as usize].1.as_ref());
            stack.extend(
                self.children[n as usize]
                    .iter()
                    .filter(|c| self.nodes[**c as usize].kind == ORGANIZATION),
            );
        }
        out
    }

    /// The walk behind a check, for a debug trace.
    pub fn explain(
        &self,
        user: &str,
        object_type: &str,
        id: &str,
        permission: &str,
    ) -> Result<(bool, Trace), IndexError> {
        let (kind, bit) = self.permission_bit(object_type, permission)?;
        let mut trace = Trace {
            steps: Vec::new(),
            stopped: None,
        };
        let (Some(u), Some(mut n)) = (self.subject(user), self.node(kind, id)) else {
            trace.stopped = Some("the subject or the object is unknown".into());
            return Ok((false, trace));
        };
        // Why a member role held on the way did not grant it, should
        // nothing else: the organization shows members only their
        // granted projects.
        let mut hidden_from_members = None;
        loop {
            let here = &self.nodes[n as usize];
            let (kind, key) = &self.keys[n as usize];
            let mut held = self.direct.get(&(u, n)).copied().unwrap_or(0);
            if here.kind == PROJECT {
                held |= self.project_grants(u, n, here.parent);
            }
            trace.steps.push((
                self.schema.resource_type(*kind).name.clone(),
                key.to_string(),
                self.schema
                    .names(held)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            ));
            if !here.live {
                trace.stopped = Some("deleted".into());
                return Ok((false, trace));
            }
            if held & bit != 0 {
                let live_above = here.parent == NONE || self.path_live(here.parent);
                if !live_above {
                    trace.stopped = Some("an ancestor is deleted".into());
                }
                return Ok((live_above, trace));
            }
            if here.granted_only
                && bit & self.schema.project_scoped() != 0
                && hidden_from_members.is_none()
                && self.roles_of(user, key).iter().any(|r| r == "roles/member")
            {
                hidden_from_members = Some(format!(
                    "organization {key} shows members only the projects granted to them"
                ));
            }
            if !here.inherit {
                trace.stopped = Some("does not inherit access from above".into());
                return Ok((false, trace));
            }
            if here.parent == NONE {
                trace.stopped = hidden_from_members;
                return Ok((false, trace));
            }
            n = here.parent;
        }
    }

    /// The ids of objects of `object_type` on which `user` holds
    /// `permission`, sorted. Starts from the user's own grants and walks
    /// down, so its cost follows what the user can reach, not the index.
    pub fn lookup(
        &self,
        user: &str,
        object_type: &str,
        permission: &str,
    ) -> Result<Vec<&str>, IndexError> {
        let (kind, bit) = self.permission_bit(object_type, permission)?;
        let Some(u) = self.subject(user).filter(|u| self.active(*u)) else {
            return Ok(Vec::new());
        };
        let mut found: FxHashSet<NodeId> = FxHashSet::default();
        let mut starts: Vec<NodeId> = Vec::new();
        if let Some(nodes) = self.user_nodes.get(&u) {
            for &n in nodes {
                if self.direct.get(&(u, n)).is_some_and(|p| p & bit != 0) {
                    starts.push(n);
                }
            }
        }
        if kind != ORGANIZATION && kind != TEAM {
            // Projects (and what lies below them) reached through teams and
            // roles.
            if let Some(teams) = self.user_teams.get(&u) {
                for team in teams.iter().filter(|t| self.nodes[**t as usize].live) {
                    for &p in self.team_projects.get(team).into_iter().flatten() {
                        if self
                            .team_grants
                            .get(&(*team, p))
                            .is_some_and(|l| self.schema.access_level(*l) & bit != 0)
                        {
                            starts.push(p);
                        }
                    }
                }
            }
            for &n in self.user_nodes.get(&u).into_iter().flatten() {
                if self.nodes[n as usize].kind != ORGANIZATION {
                    continue;
                }
                for role in self.members.get(&(u, n)).into_iter().flatten() {
                    for &p in self.role_projects.get(role).into_iter().flatten() {
                        if self.nodes[p as usize].parent == n
                            && self
                                .role_grants
                                .get(&(*role, p))
                                .is_some_and(|l| self.schema.access_level(*l) & bit != 0)
                        {
                            starts.push(p);
                        }
                    }
                }
            }
        }
        let mut stack: Vec<NodeId> = Vec::new();
        for start in starts {
            if !self.path_live(start) {
                continue;
            }
            stack.push(start);
            while let Some(n) = stack.pop() {
                let here = &self.nodes[n as usize];
                if !here.live {
                    continue;
                }
                if here.kind == kind {
                    found.insert(n);
                }
                for &child in &self.children[n as usize] {
                    if self.nodes[child as usize].inherit {
                        stack.push(child);
                    }
                }
            }
        }
        let mut ids: Vec<&str> = found
            .into_iter()
            .map(|n| self.keys[n as usize].1.as_ref())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Whether a node and all its ancestors are live.
    fn path_live(&self, mut n: NodeId) -> bool {
        loop {
            let here = &self.nodes[n as usize];
            if !here.live {
                return false;
            }
            if here.parent == NONE {
                return true;
            }
            n = here.parent;
        }
    }

    /// The users holding `permission` on an object, sorted.
    pub fn subjects_with(
        &self,
        object_type: &str,
        id: &str,
        permission: &str,
    ) -> Result<Vec<&str>, IndexError> {
        let (kind, bit) = self.permission_bit(object_type, permission)?;
        let Some(n) = self.node(kind, id) else {
            return Ok(Vec::new());
        };
        // Candidates: whoever holds anything on the object or an ancestor,
        // the members of the organizations on the way (role grants), and
        // the members of teams granted on it. Each is then checked.
        let mut candidates: FxHashSet<SubjectId> = FxHashSet::default();
        let mut at = n;
        loop {
            for list in [self.node_subjects.get(&at), self.org_members.get(&at)] {
                candidates.extend(list.into_iter().flatten());
            }
            for team in self.project_teams.get(&at).into_iter().flatten() {
                candidates.extend(self.node_subjects.get(team).into_iter().flatten());
            }
            let parent = self.nodes[at as usize].parent;
            if parent == NONE {
                break;
            }
            at = parent;
        }
        let mut users: Vec<&str> = candidates
            .into_iter()
            .filter(|&u| self.active(u) && self.check(u, n, bit))
            .map(|u| self.subject_names[u as usize].as_ref())
            .collect();
        users.sort_unstable();
        Ok(users)
    }

    /// The roles a user holds in an organization, as the API names them.
    pub fn roles_of(&self, user: &str, organization: &str) -> Vec<String> {
        let (Some(u), Some(n)) = (self.subject(user), self.node(ORGANIZATION, organization)) else {
            return Vec::new();
        };
        let names: FxHashMap<RoleId, &str> = self
            .role_ids
            .iter()
            .map(|(name, id)| (*id, name.as_ref()))
            .collect();
        self.members
            .get(&(u, n))
            .into_iter()
            .flatten()
            .filter_map(|r| names.get(r).map(|n| n.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
