//! Lookups: from a subject down to the objects it reaches, and from an
//! object to the users who reach it.

use super::*;

impl Index {
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
        let owner = self.subject_names.get(key.owner);
        Ok(self
            .lookup(owner, object_type, permission)?
            .into_iter()
            .filter(|id| self.node(kind, id).is_some_and(|n| self.in_scope(key, n)))
            .collect())
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
        let holdings = &self.holdings[u as usize];
        let mut starts: Vec<NodeId> = holdings
            .iter()
            .filter(|at| self.perms_of(u, at) & bit != 0)
            .map(|at| at.node)
            .collect();
        if kind != ORGANIZATION && kind != TEAM {
            // Projects (and what lies below them) reached through teams and
            // roles.
            for team in self.teams_of(u).filter(|t| self.nodes[*t as usize].live) {
                for &p in self.team_projects.get(&team).into_iter().flatten() {
                    if self
                        .team_grants
                        .get(&(team, p))
                        .is_some_and(|l| self.schema.access_level(*l) & bit != 0)
                    {
                        starts.push(p);
                    }
                }
            }
            for membership in holdings.iter().filter(|h| h.held.kind() == ORGANIZATION) {
                for role in self.roles_held(u, membership) {
                    for &p in self.role_projects.get(role).into_iter().flatten() {
                        if self.nodes[p as usize].parent == membership.node
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
                stack.extend(
                    self.children(n)
                        .filter(|child| self.nodes[*child as usize].inherit),
                );
            }
        }
        let mut ids: Vec<&str> = found.into_iter().map(|n| self.keys.get(n)).collect();
        ids.sort_unstable();
        Ok(ids)
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
            candidates.extend(self.holders[at as usize].iter());
            for team in self.project_teams.get(&at).into_iter().flatten() {
                candidates.extend(self.holders[*team as usize].iter());
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
            .map(|u| self.subject_names.get(u))
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
        self.holding(u, n, ORGANIZATION)
            .map_or(&[][..], |membership| self.roles_held(u, membership))
            .iter()
            .filter_map(|r| names.get(r).map(|n| n.to_string()))
            .collect()
    }
}
