//! The authorization index: everything a check needs, in memory, keyed by
//! compact ids, answering without touching the database.
//!
//! A check walks **up** from the object to its root (at most ten
//! organization levels plus a team or project), and at each node finds
//! what the subject holds there by a binary search in the subject's sorted
//! holdings: a membership's roles (their bits folded at check time), a
//! team role, a project grant to the user; and, at a project, the grants
//! to the user's teams and to the user's roles in the project's
//! organization. An organization with `inherit = false` stops the walk
//! above it; a deleted node denies everything at and below it. No
//! allocation on that path.
//!
//! A lookup goes **down**: from each node where the subject holds anything,
//! through the subtree (children are linked through the nodes), skipping
//! subtrees that do not inherit, collecting objects of the wanted type
//! where the bit is set.
//!
//! The index is changed only through [`Change`]s, in revision order: the
//! same changes rebuild it from the store at start and keep it current
//! afterwards.
//!
//! This file holds the types and the index's bookkeeping; `apply` changes
//! the index, `check` and `tree` answer up the tree, `lookup` down it.

pub mod schema;

mod apply;
mod check;
mod handles;
mod lookup;
mod names;
mod tree;

#[cfg(test)]
mod reference;

use handles::Handles;
use names::Names;
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

/// What a subject holds directly at one node. Its variant follows the
/// node's type: roles in an organization, a role in a team, a grant on a
/// project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// One role in an organization: nearly every membership, held inline.
    Role(RoleId),
    /// Two roles or more, listed in `Index::many_roles`.
    ManyRoles,
    /// A team member; leads hold more.
    Team { lead: bool },
    /// A project grant to the user.
    Grant(AccessLevel),
}

/// One entry of a subject's holdings: most of the index's memory, so kept
/// at 12 bytes.
#[derive(Debug, Clone, Copy)]
struct Holding {
    node: NodeId,
    held: Held,
}

const _: () = assert!(std::mem::size_of::<Holding>() == 12);

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: TypeId,
    parent: NodeId,
    /// The children, as a list threaded through them (`NONE` ends it): no
    /// list of its own for each of the millions of leaves.
    first_child: NodeId,
    next_sibling: NodeId,
    previous_sibling: NodeId,
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
    /// Per type, the nodes by id; `keys` holds each node's id.
    ids: Vec<Handles>,
    keys: Names,
    free: Vec<NodeId>,
    /// The subjects by id; `subject_names` holds each subject's id.
    subjects: Handles,
    /// Users who are disabled or deleted.
    inactive: FxHashSet<SubjectId>,
    subject_names: Names,
    role_ids: FxHashMap<Box<str>, RoleId>,
    role_perms: Vec<Perms>,
    /// subject → what it holds directly, one entry per node, sorted by
    /// (node type, node): a membership's roles, a team role, a project
    /// grant. Derived permission bits are not stored: they are computed at
    /// check time from the roles (a few loads), so nothing needs
    /// refreshing when a role, the schema or a visibility setting changes.
    /// Lists are many and short, so each is kept at its exact length.
    holdings: Vec<Box<[Holding]>>,
    /// The roles of memberships that hold two or more.
    many_roles: FxHashMap<(SubjectId, NodeId), Box<[RoleId]>>,
    /// node → the subjects holding something there (`holdings` reversed).
    holders: Vec<Box<[SubjectId]>>,
    /// (team, project) → level.
    team_grants: FxHashMap<(NodeId, NodeId), AccessLevel>,
    team_projects: FxHashMap<NodeId, Vec<NodeId>>,
    /// (role, project) → level.
    role_grants: FxHashMap<(RoleId, NodeId), AccessLevel>,
    role_projects: FxHashMap<RoleId, Vec<NodeId>>,
    /// project → teams granted on it.
    project_teams: FxHashMap<NodeId, Vec<NodeId>>,
    /// The permissions of projects and of the types below them: what the
    /// member role does not carry where members see only granted projects.
    project_scoped: Perms,
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
            ids: vec![Handles::default(); 3],
            project_scoped: schema.project_scoped(),
            schema,
            ..Index::default()
        };
        debug_assert_eq!(
            schema::BUILT_IN_ROLES[MEMBER_ROLE as usize],
            tenantry_kit::names::BuiltInRole::Member.name()
        );
        for role in schema::BUILT_IN_ROLES {
            let perms = index.schema.built_in_role(role).expect("built in");
            index
                .role_ids
                .insert((*role).into(), index.role_perms.len() as RoleId);
            index.role_perms.push(perms);
        }
        index
    }

    /// An index built from a snapshot's changes. A change that does not
    /// apply is skipped and handed to `skipped` with why.
    pub fn from_changes<'a>(
        changes: impl IntoIterator<Item = &'a Change>,
        mut skipped: impl FnMut(&'a Change, IndexError),
    ) -> Index {
        let mut index = Index::new();
        for change in changes {
            if let Err(error) = index.apply(change) {
                skipped(change, error);
            }
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
        let keys = &self.keys;
        self.ids
            .get(object_type as usize)?
            .find(id, |n| keys.get(n))
    }

    /// A subject's compact id, if it holds anything.
    pub fn subject(&self, id: &str) -> Option<SubjectId> {
        let names = &self.subject_names;
        self.subjects.find(id, |s| names.get(s))
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
        if let Some(s) = self.subject(id) {
            return s;
        }
        let s = self.subject_names.len() as SubjectId;
        self.subject_names.push(id);
        let names = &self.subject_names;
        self.subjects.insert(id, s, |s| names.get(s));
        self.holdings.push(Box::default());
        s
    }

    fn node_or_insert(&mut self, kind: TypeId, id: &str) -> NodeId {
        if let Some(n) = self.node(kind, id) {
            return n;
        }
        let node = Node {
            kind,
            parent: NONE,
            first_child: NONE,
            next_sibling: NONE,
            previous_sibling: NONE,
            inherit: true,
            live: true,
            granted_only: false,
        };
        let n = match self.free.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                self.keys.set(n, id);
                self.holders[n as usize] = Box::default();
                n
            }
            None => {
                self.nodes.push(node);
                self.keys.push(id);
                self.holders.push(Box::default());
                (self.nodes.len() - 1) as NodeId
            }
        };
        let keys = &self.keys;
        self.ids[kind as usize].insert(id, n, |n| keys.get(n));
        n
    }

    fn role_id(&self, name: &str) -> Result<RoleId, IndexError> {
        self.role_ids
            .get(name)
            .copied()
            .ok_or_else(|| IndexError::UnknownRole(name.to_string()))
    }

    /// What `user` holds directly at `node` (of type `kind`), if anything.
    #[inline]
    fn holding(&self, user: SubjectId, node: NodeId, kind: TypeId) -> Option<&Holding> {
        let list = self.holdings.get(user as usize)?;
        position(list, kind, node).ok().map(|i| &list[i])
    }

    /// The roles a membership holds.
    fn roles_held<'a>(&'a self, user: SubjectId, at: &'a Holding) -> &'a [RoleId] {
        match &at.held {
            Held::Role(role) => std::slice::from_ref(role),
            Held::ManyRoles => self.many_roles.get(&(user, at.node)).map_or(&[], |r| r),
            Held::Team { .. } | Held::Grant(_) => &[],
        }
    }

    /// The permission bits a holding gives its subject at its node. Where
    /// an organization shows members only their granted projects, the
    /// member role carries no project permissions there.
    #[inline]
    fn perms_of(&self, user: SubjectId, at: &Holding) -> Perms {
        match at.held {
            Held::Team { lead } => self.schema.team_role(lead),
            Held::Grant(level) => self.schema.access_level(level),
            Held::Role(_) | Held::ManyRoles => {
                let hidden = match self.nodes[at.node as usize].granted_only {
                    true => self.project_scoped,
                    false => 0,
                };
                self.roles_held(user, at).iter().fold(0, |perms, &role| {
                    let held = self.role_perms[role as usize];
                    perms
                        | match role {
                            MEMBER_ROLE => held & !hidden,
                            _ => held,
                        }
                })
            }
        }
    }

    /// The bits `user` holds directly at `node` (of type `kind`).
    #[inline]
    fn direct(&self, user: SubjectId, node: NodeId, kind: TypeId) -> Perms {
        self.holding(user, node, kind)
            .map_or(0, |at| self.perms_of(user, at))
    }
}

/// Where (`Ok`) or where to insert (`Err`) a node's entry in a holdings
/// list, sorted by (node type, node): a subject's teams are one run.
#[inline]
fn position(list: &[Holding], kind: TypeId, node: NodeId) -> Result<usize, usize> {
    list.binary_search_by(|h| (h.held.kind(), h.node).cmp(&(kind, node)))
}

impl Held {
    /// The type of the nodes this holding can be at.
    #[inline]
    fn kind(self) -> TypeId {
        match self {
            Held::Role(_) | Held::ManyRoles => ORGANIZATION,
            Held::Team { .. } => TEAM,
            Held::Grant(_) => PROJECT,
        }
    }
}

#[cfg(test)]
mod tests;
