//! Whether a schema file would register: the contract's rules for type and
//! permission names and lengths, then the engine's own `Schema::register`
//! (the code the server runs) on the built-in schema, parents first.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tenantry_rbac::engine::{self, AccessLevel, Grantor, SchemaError, TypeDefinition};

use crate::diagnostic::{Diagnostics, Pos, Report};
use crate::file::{GrantSpec, Level, SchemaFile, TeamRoleSpec, TypeSpec};

/// The built-in types a registered type may hang under.
const BUILT_IN: &[&str] = &["organization", "team", "project"];

/// The most permissions one type may define (the contract's limit).
const MAX_TYPE_PERMISSIONS: usize = 64;

/// A validated schema: the type definitions, parents first, and the
/// engine's schema with them registered.
#[derive(Debug, Clone)]
pub struct Schema {
    pub definitions: Vec<TypeDefinition>,
    pub engine: engine::Schema,
}

impl Schema {
    /// Reads and validates a schema file.
    pub fn load(file: &Path, text: &str) -> Result<Schema, Diagnostics> {
        let parsed = SchemaFile::parse(file, text)?;
        validate(file, &parsed)
    }

    /// The definition of `name`, if the schema has it.
    pub fn definition(&self, name: &str) -> Option<&TypeDefinition> {
        self.definitions.iter().find(|d| d.name == name)
    }
}

/// Checks every rule and reports every problem found, in file order.
pub fn validate(file: &Path, parsed: &SchemaFile) -> Result<Schema, Diagnostics> {
    let mut report = Report::new(file);
    check_shapes(&mut report, parsed);
    if !report.is_empty() {
        return report.finish(unreachable_schema());
    }
    let order = match parents_first(&mut report, parsed) {
        Some(order) => order,
        None => return report.finish(unreachable_schema()),
    };
    let mut engine = engine::Schema::built_in();
    let mut definitions = Vec::new();
    let mut refused: Vec<&str> = Vec::new();
    for spec in order {
        // A type under a refused one would only repeat its refusal.
        if refused.contains(&spec.parent.value.as_str()) {
            refused.push(&spec.name.value);
            continue;
        }
        let definition = definition_of(spec);
        let registered = engine
            .check_contract(&definition)
            .and_then(|()| engine.register(&definition));
        if let Err(error) = registered {
            report.error(position_of(spec, &error), error.to_string());
            refused.push(&spec.name.value);
            continue;
        }
        definitions.push(definition);
    }
    report.finish(Schema {
        definitions,
        engine,
    })
}

fn unreachable_schema() -> Schema {
    Schema {
        definitions: Vec::new(),
        engine: engine::Schema::built_in(),
    }
}

/// The contract's rules the engine does not check itself.
fn check_shapes(report: &mut Report, parsed: &SchemaFile) {
    let mut types: HashMap<&str, Pos> = HashMap::new();
    let mut permissions: HashMap<&str, Pos> = HashMap::new();
    if parsed.types.is_empty() {
        report.error(Pos::default(), "`types` lists no type");
    }
    for spec in &parsed.types {
        let name = spec.name.value.as_str();
        let at = Pos::of_spanned(&spec.name);
        if BUILT_IN.contains(&name) {
            report.error(at, format!("`{name}` is a built-in type"));
        }
        if let Some(first) = types.insert(name, at) {
            report.error(
                at,
                format!(
                    "type `{name}` is defined twice (first at line {})",
                    first.line
                ),
            );
        }
        if let Some(relation) = &spec.parent_relation
            && relation.value != "parent"
        {
            report.error(
                Pos::of_spanned(relation),
                "`parent_relation` must be `parent`, the only relation objects have",
            );
        }
        check_length(report, spec.display_name.as_ref(), "display_name", 200);
        check_length(report, spec.description.as_ref(), "description", 1000);
        if spec.permissions.is_empty() {
            report.error(at, format!("type `{name}` defines no permission"));
        }
        if spec.permissions.len() > MAX_TYPE_PERMISSIONS {
            report.error(
                at,
                format!("type `{name}` defines more than {MAX_TYPE_PERMISSIONS} permissions"),
            );
        }
        for permission in &spec.permissions {
            let p = permission.name.value.as_str();
            let p_at = Pos::of_spanned(&permission.name);
            if let Some(first) = permissions.insert(p, p_at) {
                report.error(
                    p_at,
                    format!(
                        "permission `{p}` is defined twice (first at line {})",
                        first.line
                    ),
                );
            }
            check_length(report, permission.description.as_ref(), "description", 1000);
        }
    }
}

fn check_length(
    report: &mut Report,
    value: Option<&serde_saphyr::Spanned<String>>,
    key: &str,
    most: usize,
) {
    if let Some(v) = value
        && v.value.chars().count() > most
    {
        report.error(
            Pos::of_spanned(v),
            format!("`{key}` must be at most {most} characters"),
        );
    }
}

/// The file's types, each after its parent; a cycle is reported at every
/// type on it.
fn parents_first<'a>(report: &mut Report, parsed: &'a SchemaFile) -> Option<Vec<&'a TypeSpec>> {
    let by_name: BTreeMap<&str, &TypeSpec> = parsed
        .types
        .iter()
        .map(|t| (t.name.value.as_str(), t))
        .collect();
    let mut order: Vec<&TypeSpec> = Vec::new();
    let mut cyclic = false;
    for spec in &parsed.types {
        // Walk up to a type already placed or outside the file.
        let mut chain: Vec<&TypeSpec> = Vec::new();
        let mut at = spec;
        loop {
            if order.iter().any(|t| std::ptr::eq(*t, at)) {
                break;
            }
            if chain.iter().any(|t| std::ptr::eq(*t, at)) {
                report.error(
                    Pos::of_spanned(&at.parent),
                    format!(
                        "the parent chain of `{}` comes back to it: types form a tree under `organization`",
                        at.name.value
                    ),
                );
                cyclic = true;
                break;
            }
            chain.push(at);
            match by_name.get(at.parent.value.as_str()) {
                Some(parent) => at = parent,
                None => break,
            }
        }
        if cyclic {
            return None;
        }
        order.extend(chain.into_iter().rev());
    }
    Some(order)
}

/// A type as the engine (and `RegisterResourceType`) takes it.
pub(crate) fn definition_of(spec: &TypeSpec) -> TypeDefinition {
    TypeDefinition {
        name: spec.name.value.clone(),
        parent_type: spec.parent.value.clone(),
        permissions: spec
            .permissions
            .iter()
            .map(|p| engine::PermissionDefinition {
                name: p.name.value.clone(),
                description: p
                    .description
                    .as_ref()
                    .map(|d| d.value.trim().to_string())
                    .unwrap_or_default(),
                granted_by: p.granted_by.iter().map(|g| grantor(&g.value)).collect(),
            })
            .collect(),
        display_name: spec
            .display_name
            .as_ref()
            .map(|d| d.value.trim().to_string())
            .unwrap_or_default(),
        description: spec
            .description
            .as_ref()
            .map(|d| d.value.trim().to_string())
            .unwrap_or_default(),
    }
}

fn grantor(grant: &GrantSpec) -> Grantor {
    match grant {
        GrantSpec::Role(role) => Grantor::Role(role_name(role)),
        GrantSpec::AccessLevel(level) => Grantor::AccessLevel(match level {
            Level::Viewer => AccessLevel::Viewer,
            Level::Contributor => AccessLevel::Contributor,
            Level::Admin => AccessLevel::Admin,
        }),
        GrantSpec::TeamRole(role) => Grantor::TeamRole(*role == TeamRoleSpec::Lead),
        GrantSpec::ParentPermission(p) => Grantor::ParentPermission(p.clone()),
    }
}

/// `admin` and `roles/admin` name the same built-in role.
pub(crate) fn role_name(role: &str) -> String {
    match role.strip_prefix("roles/") {
        Some(_) => role.to_string(),
        None => format!("roles/{role}"),
    }
}

/// Where in the file the engine's refusal points.
fn position_of(spec: &TypeSpec, error: &SchemaError) -> Pos {
    let grant_named = |wanted: &dyn Fn(&GrantSpec) -> bool| {
        spec.permissions
            .iter()
            .flat_map(|p| &p.granted_by)
            .find(|g| wanted(&g.value))
            .map(Pos::of_spanned)
    };
    let found = match error {
        SchemaError::UnknownParent(_) | SchemaError::ParentChanged(_) => {
            Some(Pos::of_spanned(&spec.parent))
        }
        SchemaError::BadPermission(name) => spec
            .permissions
            .iter()
            .find(|p| &p.name.value == name)
            .map(|p| Pos::of_spanned(&p.name)),
        SchemaError::UnknownRole(role) => {
            grant_named(&|g| matches!(g, GrantSpec::Role(r) if role_name(r) == *role))
        }
        SchemaError::UnknownParentPermission(q) => {
            grant_named(&|g| matches!(g, GrantSpec::ParentPermission(p) if p == q))
        }
        SchemaError::NoDescription(name) => spec
            .permissions
            .iter()
            .find(|p| &p.name.value == name)
            .map(|p| Pos::of_spanned(&p.name)),
        SchemaError::GrantOutOfScope {
            permission, needs, ..
        } => spec
            .permissions
            .iter()
            .filter(|p| &p.name.value == permission)
            .flat_map(|p| &p.granted_by)
            .find(|g| match g.value {
                GrantSpec::AccessLevel(_) => *needs == "project",
                GrantSpec::TeamRole(_) => *needs == "team",
                _ => false,
            })
            .map(Pos::of_spanned),
        SchemaError::BadName(_)
        | SchemaError::NameOutsideContract(_)
        | SchemaError::BuiltIn(_)
        | SchemaError::Full => None,
    };
    found.unwrap_or_else(|| Pos::of_spanned(&spec.name))
}

#[cfg(test)]
mod tests;
