//! Questions about the tree itself: roots, parents, and whether an object
//! lies within an organization.

use super::*;

impl Index {
    /// The id of the root of an organization's tree, if the organization
    /// is known.
    pub fn root_of(&self, organization: &str) -> Option<&str> {
        let mut n = self.node(ORGANIZATION, organization)?;
        while self.nodes[n as usize].parent != NONE {
            n = self.nodes[n as usize].parent;
        }
        Some(self.keys.get(n))
    }

    /// The nearest organization at or above an object, and the object's
    /// parent (type, id), if the object is known.
    pub fn organization_of(&self, object_type: &str, id: &str) -> Option<&str> {
        let mut n = self.node(self.schema.type_id(object_type)?, id)?;
        loop {
            let here = &self.nodes[n as usize];
            if here.kind == ORGANIZATION {
                return Some(self.keys.get(n));
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
        let kind = self.nodes[parent as usize].kind;
        let key = self.keys.get(parent);
        Some((self.schema.resource_type(kind).name.as_str(), key))
    }

    /// Whether an object is an organization's own or lies below it, live or
    /// not (for reading relationships, which deleted objects still have).
    pub fn under(&self, object_type: &str, id: &str, organization: &str) -> bool {
        self.lies_under(object_type, id, organization, false)
    }

    /// Whether an object is a live organization's own or lies below it.
    pub fn within(&self, object_type: &str, id: &str, organization: &str) -> bool {
        self.lies_under(object_type, id, organization, true)
    }

    /// Walks up from an object to `organization`; with `live`, every node
    /// on the way, the organization and its ancestors must be live.
    fn lies_under(&self, object_type: &str, id: &str, organization: &str, live: bool) -> bool {
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
            if live && !here.live {
                return false;
            }
            if n == org {
                return !live || self.path_live(n);
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
            out.push(self.keys.get(n));
            stack.extend(
                self.children(n)
                    .filter(|c| self.nodes[*c as usize].kind == ORGANIZATION),
            );
        }
        out
    }

    /// A node's children, newest first.
    pub(super) fn children(&self, n: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let first = self.nodes[n as usize].first_child;
        std::iter::successors((first != NONE).then_some(first), |&c| {
            let next = self.nodes[c as usize].next_sibling;
            (next != NONE).then_some(next)
        })
    }

    /// Whether a node and all its ancestors are live.
    pub(super) fn path_live(&self, mut n: NodeId) -> bool {
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
}
