//! Compact ids found by their text: a hash table of `u32` handles whose
//! strings the index keeps once, in its own list, instead of a map that
//! would hold every id twice (as its key and in the list that turns a
//! handle back into its id). At a million users and a million projects
//! that is a third of the index's memory.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Handles found by the id they stand for; `name` gives a handle's id.
#[derive(Debug, Default, Clone)]
pub(super) struct Handles(HashTable<u32>);

fn hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

impl Handles {
    /// The handle of `id`, if it has one.
    #[inline]
    pub(super) fn find<'a>(&self, id: &str, name: impl Fn(u32) -> &'a str) -> Option<u32> {
        self.0.find(hash(id), |&h| name(h) == id).copied()
    }

    /// Gives `id` (which has none yet) the handle `handle`.
    pub(super) fn insert<'a>(&mut self, id: &str, handle: u32, name: impl Fn(u32) -> &'a str) {
        self.0.insert_unique(hash(id), handle, |&h| hash(name(h)));
    }

    /// Forgets the handle of `id`.
    pub(super) fn remove<'a>(&mut self, id: &str, name: impl Fn(u32) -> &'a str) {
        if let Ok(entry) = self.0.find_entry(hash(id), |&h| name(h) == id) {
            entry.remove();
        }
    }
}
