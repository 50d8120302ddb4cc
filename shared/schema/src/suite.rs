//! The test file: a schema file to load, the relationships of a small
//! world, and what must hold in it.
//!
//! ```yaml
//! schema: schema.yaml            # relative to this file
//! relationships:                 # resource#relation@subject, as Watch shows them
//!   - project:rocket#parent@organization:acme
//!   - organization:acme#member@user:alice
//!   - project:rocket#contributor@user:bob
//!   - deployment:web#parent@project:rocket
//! checks:                        # SUBJECT may [not] PERMISSION OBJECT
//!   - user:bob may deploy deployment:web
//!   - user:alice may not deploy deployment:web
//! lookups:                       # `*` on the side that is looked up
//!   - query: user:bob may read deployment:*
//!     expect: [deployment:web]
//!   - query: user:* may deploy deployment:web
//!     expect: [user:bob]
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostics, Pos, Report, parse_yaml};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    schema: Spanned<String>,
    #[serde(default)]
    relationships: Vec<Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<String>>,
    #[serde(default)]
    lookups: Vec<LookupFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupFile {
    query: Spanned<String>,
    expect: Vec<Spanned<String>>,
}

/// A parsed test file.
#[derive(Debug, Clone)]
pub struct Suite {
    pub file: PathBuf,
    /// The schema file, resolved against the test file's folder.
    pub schema: PathBuf,
    pub schema_pos: Pos,
    pub relationships: Vec<Relationship>,
    pub checks: Vec<Check>,
    pub lookups: Vec<Lookup>,
}

/// An object: `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub object_type: String,
    pub id: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.id)
    }
}

/// `resource#relation@subject[#subject_relation]`.
#[derive(Debug, Clone)]
pub struct Relationship {
    pub pos: Pos,
    pub text: String,
    pub resource: ObjectRef,
    pub relation: String,
    pub subject: ObjectRef,
    pub subject_relation: Option<String>,
}

/// `SUBJECT may [not] PERMISSION OBJECT`.
#[derive(Debug, Clone)]
pub struct Check {
    pub pos: Pos,
    pub text: String,
    pub subject: ObjectRef,
    /// As written: `deploy` or `deployment.deploy`.
    pub permission: String,
    pub object: ObjectRef,
    pub expected: bool,
}

/// A lookup and the exact answer it must give.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub pos: Pos,
    pub text: String,
    pub kind: LookupKind,
    pub permission: String,
    /// Sorted.
    pub expected: Vec<ObjectRef>,
}

/// Which side is looked up.
#[derive(Debug, Clone)]
pub enum LookupKind {
    /// `user:alice may read deployment:*`: the deployments alice may read.
    Resources {
        subject: ObjectRef,
        resource_type: String,
    },
    /// `user:* may deploy deployment:web`: who may deploy web.
    Subjects {
        subject_type: String,
        resource: ObjectRef,
    },
}

impl Suite {
    /// Reads a test file's text; `file` names it in diagnostics and
    /// anchors the schema path.
    pub fn parse(file: &Path, text: &str) -> Result<Suite, Diagnostics> {
        let raw: SuiteFile = parse_yaml(file, text)?;
        let mut report = Report::new(file);
        let relationships = raw
            .relationships
            .iter()
            .filter_map(|r| {
                let parsed = parse_relationship(&r.value).map(|mut parsed| {
                    parsed.pos = Pos::of_spanned(r);
                    parsed
                });
                report_err(&mut report, r, parsed)
            })
            .collect();
        let checks = raw
            .checks
            .iter()
            .filter_map(|c| {
                let parsed = parse_check(&c.value).map(|mut parsed| {
                    parsed.pos = Pos::of_spanned(c);
                    parsed
                });
                report_err(&mut report, c, parsed)
            })
            .collect();
        let mut lookups = Vec::new();
        for l in &raw.lookups {
            let Some((kind, permission)) =
                report_err(&mut report, &l.query, parse_lookup(&l.query.value))
            else {
                continue;
            };
            let mut expected: Vec<ObjectRef> = l
                .expect
                .iter()
                .filter_map(|e| report_err(&mut report, e, object(&e.value, false)))
                .collect();
            expected.sort();
            lookups.push(Lookup {
                pos: Pos::of_spanned(&l.query),
                text: l.query.value.clone(),
                kind,
                permission,
                expected,
            });
        }
        let folder = file.parent().unwrap_or(Path::new("."));
        report.finish(Suite {
            file: file.to_path_buf(),
            schema: folder.join(&raw.schema.value),
            schema_pos: Pos::of_spanned(&raw.schema),
            relationships,
            checks,
            lookups,
        })
    }
}

fn report_err<T>(
    report: &mut Report,
    at: &Spanned<String>,
    parsed: Result<T, String>,
) -> Option<T> {
    parsed
        .map_err(|message| report.error(Pos::of_spanned(at), format!("`{}`: {message}", at.value)))
        .ok()
}

fn parse_relationship(text: &str) -> Result<Relationship, String> {
    let shape = "expected `type:id#relation@type:id` or `…@type:id#relation`";
    let (resource, subject) = text.trim().split_once('@').ok_or(shape)?;
    let (resource, relation) = resource.split_once('#').ok_or(shape)?;
    let (subject, subject_relation) = match subject.split_once('#') {
        Some((s, r)) => (s, Some(r.to_string())),
        None => (subject, None),
    };
    for r in std::iter::once(relation).chain(subject_relation.as_deref()) {
        if !valid_relation(r) {
            return Err(format!("`{r}` is not a relation name"));
        }
    }
    Ok(Relationship {
        pos: Pos::default(),
        text: text.trim().to_string(),
        resource: object(resource, false)?,
        relation: relation.to_string(),
        subject: object(subject, false)?,
        subject_relation,
    })
}

/// `SUBJECT may [not] PERMISSION OBJECT` as (subject, permission, object,
/// allowed).
fn sentence(text: &str) -> Result<(&str, &str, &str, bool), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [subject, "may", permission, object] => Ok((subject, permission, object, true)),
        [subject, "may", "not", permission, object] => Ok((subject, permission, object, false)),
        _ => Err(
            "expected `SUBJECT may PERMISSION OBJECT` or `SUBJECT may not PERMISSION OBJECT`"
                .into(),
        ),
    }
}

fn parse_check(text: &str) -> Result<Check, String> {
    let (subject, permission, target, expected) = sentence(text)?;
    Ok(Check {
        pos: Pos::default(),
        text: text.trim().to_string(),
        subject: object(subject, false)?,
        permission: permission.to_string(),
        object: object(target, false)?,
        expected,
    })
}

fn parse_lookup(text: &str) -> Result<(LookupKind, String), String> {
    let (subject, permission, target, allowed) = sentence(text)?;
    if !allowed {
        return Err("a lookup lists who may, not who may not".into());
    }
    let (subject, target) = (object(subject, true)?, object(target, true)?);
    let kind = match (subject.id == "*", target.id == "*") {
        (false, true) => LookupKind::Resources {
            subject,
            resource_type: target.object_type,
        },
        (true, false) => LookupKind::Subjects {
            subject_type: subject.object_type,
            resource: target,
        },
        _ => return Err("put `*` as the id of exactly one side: `user:alice may read deployment:*` or `user:* may read deployment:web`".into()),
    };
    Ok((kind, permission.to_string()))
}

fn object(text: &str, wildcard: bool) -> Result<ObjectRef, String> {
    let (object_type, id) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not an object: expected `type:id`"))?;
    if !valid_relation(object_type) {
        return Err(format!("`{object_type}` is not a type name"));
    }
    if !(valid_id(id) || wildcard && id == "*") {
        return Err(format!(
            "`{id}` is not an object id: 1 to 128 of letters, digits and `_.=+|/-`, not starting with a symbol other than `_`"
        ));
    }
    Ok(ObjectRef {
        object_type: object_type.to_string(),
        id: id.to_string(),
    })
}

/// `^[a-z][a-z0-9_]{0,62}$`.
fn valid_relation(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `^[A-Za-z0-9_][A-Za-z0-9_.=+|/-]{0,127}$`, which UUIDs match too.
fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.=+|/-".contains(c))
}
