//! Problems with a file, each at a line and column.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A position in a file: 1-based line and column (0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub(crate) fn of(location: &serde_saphyr::Location) -> Pos {
        Pos {
            line: location.line(),
            column: location.column(),
        }
    }

    pub(crate) fn of_spanned<T>(spanned: &serde_saphyr::Spanned<T>) -> Pos {
        Pos::of(&spanned.referenced)
    }
}

/// One problem: where it is and what is wrong, printed as
/// `file:line:column: message`, as compilers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.pos.line > 0 {
            write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one pass, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects the problems of one file.
#[derive(Debug)]
pub(crate) struct Report {
    file: PathBuf,
    found: Vec<Diagnostic>,
}

impl Report {
    pub(crate) fn new(file: &Path) -> Report {
        Report {
            file: file.to_path_buf(),
            found: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// `Ok(value)` when nothing was found, else every problem in order.
    pub(crate) fn finish<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.found.is_empty() {
            return Ok(value);
        }
        self.found.sort_by_key(|d| d.pos);
        Err(Diagnostics(self.found))
    }
}

/// Reads YAML `text` (of `file`) into `T`; a syntax or shape error is one
/// diagnostic at the place the parser stopped.
pub(crate) fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Diagnostics> {
    serde_saphyr::from_str(text).map_err(|error| {
        let pos = error.location().map(|l| Pos::of(&l)).unwrap_or_default();
        let mut report = Report::new(file);
        report.error(pos, first_line(&error.without_snippet().to_string()));
        Diagnostics(report.found)
    })
}

/// The parser's message without its own location suffix (we print ours
/// in front).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    match line.rfind(" at line ") {
        Some(at) => line[..at].to_string(),
        None => line.to_string(),
    }
}
