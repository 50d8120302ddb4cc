//! How the index changes: each [`Change`] applied in revision order, and
//! the derived maps (direct grants, role members) kept current with it.

use std::collections::hash_map::Entry;

use super::*;

impl Index {
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
}
