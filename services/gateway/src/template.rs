//! Path templates of `google.api.http` rules (`/v1/{name=organizations/*}:revoke`)
//! and matching request paths against them.
//!
//! The grammar (google/api/http.proto):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Matching decodes each segment once. A captured segment that decodes to
//! something a resource id can never be — empty, `.`, `..`, containing `/`
//! (sent as `%2F`) or control characters — is refused rather than passed
//! on: the backends parse names by splitting on `/`, so an encoded slash
//! must not smuggle extra segments in.

use std::fmt;

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: the rest of the path (only last).
    Rest,
}

/// A variable: the request field it sets and the segments it captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The field path, such as `["name"]` or `["project", "name"]`.
    pub field_path: Vec<String>,
    start: usize,
    end: usize,
}

/// Why a request path was refused although a template matched its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The variable whose value is bad.
    pub field: String,
    /// What is wrong, for the client.
    pub description: &'static str,
}

impl Template {
    /// Parses a template; the error says what is wrong with it.
    pub fn parse(source: &str) -> Result<Template, String> {
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| format!("`{source}` does not start with `/`"))?;
        let (body, verb) = split_verb(rest);
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        for raw in split_top_level(body) {
            if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                let (path, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
                let start = segments.len();
                for part in pattern.split('/') {
                    segments.push(parse_segment(part, source)?);
                }
                variables.push(Variable {
                    field_path: path.split('.').map(str::to_string).collect(),
                    start,
                    end: segments.len(),
                });
            } else {
                segments.push(parse_segment(raw, source)?);
            }
        }
        if let Some(position) = segments.iter().position(|s| *s == Segment::Rest)
            && position + 1 != segments.len()
        {
            return Err(format!("`{source}`: `**` must be the last segment"));
        }
        Ok(Template {
            segments,
            variables,
            verb: verb.map(str::to_string),
            source: source.to_string(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables, in order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// How specific the template is: literal segments, then a verb. Among
    /// templates matching the same path the most specific wins.
    pub fn specificity(&self) -> (usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (literals, self.verb.is_some())
    }

    /// The OpenAPI form of the path, with every wildcard of a variable its
    /// own parameter: `/v1/{name=organizations/*/apiKeys/*}:revoke` becomes
    /// `/v1/organizations/{organizationId}/apiKeys/{apiKeyId}:revoke`
    /// (OpenAPI parameters cannot hold slashes). A request built from it is
    /// the same request. Returns the path and, per parameter, its name and
    /// the variable it is part of.
    pub fn openapi_path(&self) -> (String, Vec<(String, String)>) {
        let mut out = String::new();
        let mut parameters = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            out.push('/');
            let variable = self
                .variables
                .iter()
                .find(|v| (v.start..v.end).contains(&i));
            match (segment, variable) {
                (Segment::Literal(literal), _) => out.push_str(literal),
                (_, Some(var)) => {
                    let field = var.field_path.join(".");
                    // Named after the collection it indexes, when the
                    // variable's own pattern names one.
                    let previous = match self.segments.get(i.wrapping_sub(1)) {
                        Some(Segment::Literal(literal)) if i > var.start => singular(literal),
                        _ => var.field_path.last().cloned().unwrap_or_default(),
                    };
                    let mut name = format!("{previous}Id");
                    if parameters
                        .iter()
                        .any(|(n, _): &(String, String)| *n == name)
                    {
                        name = format!("{name}{i}");
                    }
                    out.push('{');
                    out.push_str(&name);
                    out.push('}');
                    parameters.push((name, field));
                }
                (Segment::One, None) => out.push('*'),
                (Segment::Rest, None) => out.push_str("**"),
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        (out, parameters)
    }

    /// The pattern a variable's value must follow, such as
    /// `organizations/*/apiKeys/*`.
    pub fn pattern_of(&self, variable: &Variable) -> String {
        self.segments[variable.start..variable.end]
            .iter()
            .map(|s| match s {
                Segment::Literal(literal) => literal.as_str(),
                Segment::One => "*",
                Segment::Rest => "**",
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Matches a raw (still percent-encoded) request path. `Ok(None)`: not
    /// this template; `Ok(Some(bindings))`: the field paths and decoded
    /// values of the variables.
    #[allow(clippy::type_complexity)]
    pub fn matches(&self, path: &str) -> Result<Option<Vec<(&[String], String)>>, PathError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Ok(None);
        };
        let rest = match &self.verb {
            Some(verb) => match rest
                .strip_suffix(verb.as_str())
                .and_then(|r| r.strip_suffix(':'))
            {
                Some(rest) => rest,
                None => return Ok(None),
            },
            None => rest,
        };
        // Every request is tried against many templates: the shape and the
        // literals are checked without allocating.
        let count = rest.bytes().filter(|b| *b == b'/').count() + 1;
        let has_rest = self.segments.last() == Some(&Segment::Rest);
        if count < self.segments.len() - usize::from(has_rest)
            || (!has_rest && count != self.segments.len())
        {
            return Ok(None);
        }
        // Literals first: a path of another shape is simply not a match,
        // whatever its captured parts hold.
        for (segment, part) in self.segments.iter().zip(rest.split('/')) {
            if let Segment::Literal(literal) = segment
                && !literal_matches(part, literal)
            {
                return Ok(None);
            }
        }
        let raw: Vec<&str> = rest.split('/').collect();
        let mut bindings = Vec::with_capacity(self.variables.len());
        for var in &self.variables {
            let field = var.field_path.join(".");
            let end = if self.segments[var.end - 1] == Segment::Rest {
                raw.len()
            } else {
                var.end
            };
            let mut parts = Vec::with_capacity(end - var.start);
            for part in &raw[var.start..end] {
                parts.push(decode_segment(part).map_err(|description| PathError {
                    field: field.clone(),
                    description,
                })?);
            }
            bindings.push((var.field_path.as_slice(), parts.join("/")));
        }
        // Wildcards outside variables still must be sound segments.
        for (i, segment) in self.segments.iter().enumerate() {
            if *segment == Segment::One
                && !self.variables.iter().any(|v| (v.start..v.end).contains(&i))
            {
                decode_segment(raw[i]).map_err(|description| PathError {
                    field: "path".into(),
                    description,
                })?;
            }
        }
        Ok(Some(bindings))
    }
}

/// Whether a raw segment is the literal, decoding only when it is encoded.
fn literal_matches(raw: &str, literal: &str) -> bool {
    if raw.contains('%') {
        decode(raw).as_deref() == Some(literal)
    } else {
        raw == literal
    }
}

/// `organizations` → `organization`, `apiKeys` → `apiKey`.
fn singular(literal: &str) -> String {
    literal.strip_suffix('s').unwrap_or(literal).to_string()
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_segment(raw: &str, source: &str) -> Result<Segment, String> {
    match raw {
        "*" => Ok(Segment::One),
        "**" => Ok(Segment::Rest),
        "" => Err(format!("`{source}` has an empty segment")),
        literal if literal.contains(['{', '}', '=', '*']) => {
            Err(format!("`{source}`: bad segment `{literal}`"))
        }
        literal => Ok(Segment::Literal(literal.to_string())),
    }
}

/// Splits the trailing `:verb` off, ignoring colons inside `{…}`.
fn split_verb(rest: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let mut last_slash = None;
    let mut colon = None;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => last_slash = Some(i),
            ':' if depth == 0 => colon = Some(i),
            _ => {}
        }
    }
    match colon {
        Some(i) if last_slash.is_none_or(|slash| i > slash) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    }
}

/// Splits on `/` outside `{…}`.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
}

/// Percent-decodes text to UTF-8; `None` when it is not valid.
pub(crate) fn decode(raw: &str) -> Option<String> {
    String::from_utf8(decode_bytes(raw)?).ok()
}

/// Decodes percent escapes into bytes, which need not be UTF-8 (a binary
/// message in a query); `None` for a malformed escape.
pub(crate) fn decode_bytes(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decodes a captured segment and refuses what no id can be.
fn decode_segment(raw: &str) -> Result<String, &'static str> {
    let decoded = decode(raw).ok_or("is not valid percent-encoded UTF-8")?;
    if decoded.is_empty() {
        return Err("has an empty segment");
    }
    if decoded == "." || decoded == ".." {
        return Err("must not contain `.` or `..` segments");
    }
    if decoded.contains('/') {
        return Err("must not contain an encoded `/`");
    }
    if decoded.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(template: &str, path: &str) -> Result<Option<Vec<(String, String)>>, PathError> {
        let template = Template::parse(template).unwrap();
        template.matches(path).map(|found| {
            found.map(|bindings| {
                bindings
                    .into_iter()
                    .map(|(field, value)| (field.join("."), value))
                    .collect()
            })
        })
    }

    #[test]
    fn variables_literals_and_verbs() {
        assert_eq!(
            bind(
                "/v1/{name=organizations/*/apiKeys/*}:revoke",
                "/v1/organizations/o1/apiKeys/k1:revoke"
            ),
            Ok(Some(vec![(
                "name".into(),
                "organizations/o1/apiKeys/k1".into()
            )]))
        );
        assert_eq!(
            bind(
                "/v1/{name=organizations/*/apiKeys/*}:revoke",
                "/v1/organizations/o1/apiKeys/k1"
            ),
            Ok(None)
        );
        assert_eq!(bind("/v1/users", "/v1/users"), Ok(Some(vec![])));
        assert_eq!(bind("/v1/users", "/v1/users/x"), Ok(None));
        assert_eq!(
            bind(
                "/v1/{parent=organizations/*}/projects",
                "/v1/organizations/a%20b/projects"
            ),
            Ok(Some(vec![("parent".into(), "organizations/a b".into())]))
        );
        assert_eq!(
            bind("/v1/{organization}/x", "/v1/abc/x"),
            Ok(Some(vec![("organization".into(), "abc".into())]))
        );
        assert_eq!(
            bind("/v1/{project.name=projects/*}", "/v1/projects/p"),
            Ok(Some(vec![("project.name".into(), "projects/p".into())]))
        );
        assert_eq!(
            bind("/v1/files/{path=**}", "/v1/files/a/b/c"),
            Ok(Some(vec![("path".into(), "a/b/c".into())]))
        );
        assert!(Template::parse("/v1/{a=**}/x").is_err());
        assert!(Template::parse("v1").is_err());
    }

    #[test]
    fn traversal_and_encoding_tricks_are_refused() {
        let t = "/v1/{name=organizations/*}";
        for path in [
            "/v1/organizations/..",
            "/v1/organizations/.",
            "/v1/organizations/%2e%2e",
            "/v1/organizations/a%2Fb",
            "/v1/organizations/a%00",
            "/v1/organizations/%zz",
            "/v1/organizations/%ff",
        ] {
            let error = bind(t, path).unwrap_err();
            assert_eq!(error.field, "name", "{path}");
        }
        // An empty id is a different shape.
        assert!(bind(t, "/v1/organizations/").is_err());
        // `%2F` in a literal's place is simply not that literal.
        assert_eq!(bind(t, "/v1/organizations%2Fx"), Ok(None));
    }

    #[test]
    fn openapi_paths_and_specificity() {
        let t = Template::parse("/v1/{name=organizations/*/apiKeys/*}:revoke").unwrap();
        assert_eq!(
            t.openapi_path(),
            (
                "/v1/organizations/{organizationId}/apiKeys/{apiKeyId}:revoke".to_string(),
                vec![
                    ("organizationId".to_string(), "name".to_string()),
                    ("apiKeyId".to_string(), "name".to_string())
                ]
            )
        );
        assert_eq!(t.pattern_of(&t.variables()[0]), "organizations/*/apiKeys/*");
        assert_eq!(t.specificity(), (3, true));
        let t = Template::parse("/v1/{organization}/x").unwrap();
        assert_eq!(t.openapi_path().0, "/v1/{organizationId}/x");
        let t = Template::parse("/v1/{name=organizations/*/subscription}").unwrap();
        assert_eq!(
            t.openapi_path().0,
            "/v1/organizations/{organizationId}/subscription"
        );
    }
}
