//! The ids of the index's objects and subjects, end to end in one buffer.
//! A `Box<str>` per id costs its 16-byte pointer and a 48-byte allocation
//! for a 36-character UUID; here an id costs its bytes and an 8-byte span,
//! and building the index allocates no string per object. An id replaced
//! (a freed node reused) leaves its bytes behind until they are half the
//! buffer, when the buffer is rewritten without them.

/// Ids by handle (`u32`), kept as text.
#[derive(Debug, Default, Clone)]
pub(super) struct Names {
    text: String,
    /// Per handle: start (high 40 bits) and length (low 24 bits) in `text`.
    spans: Vec<u64>,
    /// Bytes of `text` no span covers any more.
    garbage: usize,
}

const LENGTH_BITS: u32 = 24;

impl Names {
    /// The id of handle `at`.
    #[inline]
    pub(super) fn get(&self, at: u32) -> &str {
        let span = self.spans[at as usize];
        let start = (span >> LENGTH_BITS) as usize;
        let length = (span & ((1 << LENGTH_BITS) - 1)) as usize;
        &self.text[start..start + length]
    }

    /// How many handles there are.
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Appends `id`, under the next handle.
    pub(super) fn push(&mut self, id: &str) {
        let span = self.append(id);
        self.spans.push(span);
    }

    /// Makes `id` the id of handle `at` (a freed handle reused).
    pub(super) fn set(&mut self, at: u32, id: &str) {
        self.garbage += self.get(at).len();
        let span = self.append(id);
        self.spans[at as usize] = span;
        if self.garbage > self.text.len() / 2 {
            self.compact();
        }
    }

    /// Appends `id` to the text, and its span. Ids are short (the API
    /// caps them far below 16 MiB), and the text stays below 1 TiB.
    fn append(&mut self, id: &str) -> u64 {
        assert!(id.len() < 1 << LENGTH_BITS, "an id of {} bytes", id.len());
        let start = self.text.len() as u64;
        self.text.push_str(id);
        (start << LENGTH_BITS) | id.len() as u64
    }

    /// Rewrites the text with only the ids of live spans.
    fn compact(&mut self) {
        let mut compacted = Names {
            text: String::with_capacity(self.text.len() - self.garbage),
            spans: Vec::with_capacity(self.spans.len()),
            garbage: 0,
        };
        for at in 0..self.spans.len() {
            compacted.push(self.get(at as u32));
        }
        *self = compacted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_back_as_given_and_replaced_ones_are_dropped_in_time() {
        let mut names = Names::default();
        for i in 0..100 {
            names.push(&format!("id-{i}"));
        }
        names.push("");
        assert_eq!(
            (names.get(7), names.get(100), names.len()),
            ("id-7", "", 101)
        );
        let before = names.text.len();
        for round in 0..10 {
            for i in 0..50 {
                names.set(i, &format!("new-{round}-{i}"));
            }
        }
        assert_eq!(names.get(3), "new-9-3");
        assert_eq!(names.get(99), "id-99");
        assert!(
            names.text.len() <= 2 * before + 2 * 50 * "new-9-49".len(),
            "replaced ids are compacted away: {} bytes",
            names.text.len()
        );
    }
}
