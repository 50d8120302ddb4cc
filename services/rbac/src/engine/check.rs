//! Checks: from an object up to its root, whether a subject (a user, an
//! API key) holds a permission, and the walk behind it for a debug trace.

use super::*;
use tenantry_kit::names::BuiltInRole;

impl Index {
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
            let held = self.direct(user, n, here.kind) & bit != 0
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
        if !self.team_grants.is_empty() {
            for team in self.teams_of(user) {
                if let Some(level) = self.team_grants.get(&(team, project))
                    && self.nodes[team as usize].live
                {
                    perms |= self.schema.access_level(*level);
                }
            }
        }
        if !self.role_grants.is_empty()
            && organization != NONE
            && let Some(membership) = self.holding(user, organization, ORGANIZATION)
        {
            for role in self.roles_held(user, membership) {
                if let Some(level) = self.role_grants.get(&(*role, project)) {
                    perms |= self.schema.access_level(*level);
                }
            }
        }
        perms
    }

    /// The teams a user is a member of: one run of their holdings.
    pub(super) fn teams_of(&self, user: SubjectId) -> impl Iterator<Item = NodeId> + '_ {
        let list = &self.holdings[user as usize];
        let first = list.partition_point(|h| h.held.kind() < TEAM);
        list[first..]
            .iter()
            .take_while(|h| h.held.kind() == TEAM)
            .map(|h| h.node)
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
    pub(super) fn key_perms(&self, names: &[Box<str>]) -> Perms {
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
    pub(super) fn in_scope(&self, key: &ApiKeyEntry, node: NodeId) -> bool {
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
            let key = self.keys.get(n);
            let mut held = self.direct(u, n, here.kind);
            if here.kind == PROJECT {
                held |= self.project_grants(u, n, here.parent);
            }
            trace.steps.push((
                self.schema.resource_type(here.kind).name.clone(),
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
                && self
                    .roles_of(user, key)
                    .iter()
                    .any(|r| BuiltInRole::Member.is(r))
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
}
