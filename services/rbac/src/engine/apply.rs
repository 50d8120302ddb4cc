//! How the index changes: each [`Change`] applied in revision order, with
//! the reverse lists (a node's holders, a team's projects) kept current.

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
                        self.unlink(n);
                    } else {
                        self.relationships += 1;
                    }
                    if new_parent != NONE {
                        self.link(new_parent, n);
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
                    self.ids.push(Handles::default());
                }
                // Built-in roles, levels and team roles may carry new bits;
                // custom roles may imply some.
                for (i, role) in schema::BUILT_IN_ROLES.iter().enumerate() {
                    self.role_perms[i] = self.schema.built_in_role(role).expect("built in");
                }
                for i in schema::BUILT_IN_ROLES.len()..self.role_perms.len() {
                    self.role_perms[i] = self.schema.close(self.role_perms[i]);
                }
                self.project_scoped = self.schema.project_scoped();
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
                match self.role_ids.get(name.as_str()) {
                    Some(&r) => self.role_perms[r as usize] = perms,
                    None => {
                        let r = self.role_perms.len() as RoleId;
                        self.role_ids.insert(name.as_str().into(), r);
                        self.role_perms.push(perms);
                    }
                }
            }
            Change::RemoveRole { name } => {
                if let Some(&role) = self.role_ids.get(name.as_str()) {
                    // The id stays reserved (no reuse while grants may name
                    // it); it grants nothing from now on.
                    self.role_perms[role as usize] = 0;
                }
            }
            Change::Membership {
                organization,
                user,
                roles,
            } => {
                // Roles are resolved before anything changes: an unknown
                // one refuses the whole change.
                let (held, many) = match roles.as_slice() {
                    [] => (None, None),
                    [role] => (Some(Held::Role(self.role_id(role)?)), None),
                    many => {
                        let ids = many
                            .iter()
                            .map(|r| self.role_id(r))
                            .collect::<Result<Box<[RoleId]>, _>>()?;
                        (Some(Held::ManyRoles), Some(ids))
                    }
                };
                let org = self.node_or_insert(ORGANIZATION, organization);
                let u = self.subject_or_insert(user);
                match many {
                    Some(ids) => self.many_roles.insert((u, org), ids),
                    None => self.many_roles.remove(&(u, org)),
                };
                let existed = self.hold(u, org, held);
                self.count(existed, held.is_some());
            }
            Change::TeamMember { team, user, lead } => {
                let t = self.node_or_insert(TEAM, team);
                let u = self.subject_or_insert(user);
                let existed = self.hold(u, t, lead.map(|lead| Held::Team { lead }));
                self.count(existed, lead.is_some());
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
                        let existed = self.hold(u, p, level.map(Held::Grant));
                        self.count(existed, level.is_some());
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

    /// Sets what `u` holds at `n` (`None` removes it), keeping the node's
    /// holders in step; answers whether `u` held something there before.
    fn hold(&mut self, u: SubjectId, n: NodeId, held: Option<Held>) -> bool {
        let kind = self.nodes[n as usize].kind;
        let list = &mut self.holdings[u as usize];
        match (position(list, kind, n), held) {
            (Ok(i), Some(held)) => {
                list[i].held = held;
                true
            }
            (Ok(i), None) => {
                remove_at(list, i);
                let holders = &mut self.holders[n as usize];
                if let Some(at) = holders.iter().position(|x| *x == u) {
                    remove_at(holders, at);
                }
                true
            }
            (Err(i), Some(held)) => {
                insert_at(list, i, Holding { node: n, held });
                let holders = &mut self.holders[n as usize];
                insert_at(holders, holders.len(), u);
                false
            }
            (Err(_), None) => false,
        }
    }

    /// Makes `child` (which has no parent) the first child of `parent`.
    fn link(&mut self, parent: NodeId, child: NodeId) {
        let first = self.nodes[parent as usize].first_child;
        if first != NONE {
            self.nodes[first as usize].previous_sibling = child;
        }
        let node = &mut self.nodes[child as usize];
        node.next_sibling = first;
        node.previous_sibling = NONE;
        self.nodes[parent as usize].first_child = child;
    }

    /// Takes `n` out of its parent's children, in constant time.
    fn unlink(&mut self, n: NodeId) {
        let Node {
            parent,
            next_sibling: next,
            previous_sibling: previous,
            ..
        } = self.nodes[n as usize];
        match previous {
            NONE => self.nodes[parent as usize].first_child = next,
            previous => self.nodes[previous as usize].next_sibling = next,
        }
        if next != NONE {
            self.nodes[next as usize].previous_sibling = previous;
        }
        let node = &mut self.nodes[n as usize];
        node.next_sibling = NONE;
        node.previous_sibling = NONE;
    }

    fn remove_node(&mut self, n: NodeId) {
        let node = self.nodes[n as usize];
        if node.parent != NONE {
            self.unlink(n);
            self.relationships -= 1;
        }
        // Orphan the children: they are removed by their own changes.
        let children: Vec<NodeId> = self.children(n).collect();
        for child in children {
            let orphan = &mut self.nodes[child as usize];
            orphan.parent = NONE;
            orphan.next_sibling = NONE;
            orphan.previous_sibling = NONE;
        }
        self.nodes[n as usize].first_child = NONE;
        // What anyone held here goes with it.
        for u in std::mem::take(&mut self.holders[n as usize]) {
            let list = &mut self.holdings[u as usize];
            if let Ok(i) = position(list, node.kind, n) {
                remove_at(list, i);
                self.relationships -= 1;
            }
            self.many_roles.remove(&(u, n));
        }
        let grants = self.team_grants.len() + self.role_grants.len();
        self.team_grants.retain(|(t, p), _| *t != n && *p != n);
        self.role_grants.retain(|(_, p), _| *p != n);
        self.relationships -= grants - self.team_grants.len() - self.role_grants.len();
        self.team_projects.remove(&n);
        for list in self.team_projects.values_mut() {
            remove_value(list, n);
        }
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
        let keys = &self.keys;
        self.ids[node.kind as usize].remove(keys.get(n), |n| keys.get(n));
        self.nodes[n as usize].live = false;
        self.free.push(n);
    }
}

/// Inserts `value` at `i` of a list kept at its exact length. The index
/// holds millions of short lists (a subject's holdings, a node's holders):
/// a boxed slice costs 16 bytes and no spare capacity, where a vector
/// costs 24 and, grown by doubling, a third of its room on average; the
/// allocator's size classes let most reallocations happen in place.
fn insert_at<T>(list: &mut Box<[T]>, i: usize, value: T) {
    let mut grown = std::mem::take(list).into_vec();
    grown.reserve_exact(1);
    grown.insert(i, value);
    *list = grown.into_boxed_slice();
}

/// Removes the entry at `i` of a list kept at its exact length.
fn remove_at<T>(list: &mut Box<[T]>, i: usize) {
    let mut shrunk = std::mem::take(list).into_vec();
    shrunk.remove(i);
    *list = shrunk.into_boxed_slice();
}
