//! `docs/errors.md` lists every reason a client can see: the services'
//! sources are scanned for the reasons they answer with (`Error::new(code,
//! "REASON", …)`, the `(Code::…, "REASON")` pairs of the services' error
//! enums, and the services' `precondition`, `policy_error` and
//! `unauthenticated` helpers), and the document's tables must hold exactly
//! those.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The calls whose first string argument (after the code, for
/// `Error::new`) is a reason.
const CALLS: &[(&str, bool)] = &[
    ("Error::new(", true),
    ("(Code::", true),
    ("precondition(", false),
    ("policy_error(", false),
    ("unauthenticated(", false),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The reason a call starting at `rest` names, if it names one.
fn reason_after(rest: &str, code_first: bool) -> Option<String> {
    let rest = match code_first {
        true => &rest[rest.find(',')? + 1..],
        false => rest,
    };
    let literal = rest.trim_start().strip_prefix('"')?;
    let reason = &literal[..literal.find('"')?];
    let is_reason = reason.len() >= 3
        && reason
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_reason.then(|| reason.to_string())
}

/// `text` with the whitespace that follows each `(` removed.
fn without_space_after_parentheses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_parenthesis = false;
    for c in text.chars() {
        if after_parenthesis && c.is_whitespace() {
            continue;
        }
        after_parenthesis = c == '(';
        out.push(c);
    }
    out
}

fn reasons_in_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in ["services", "shared/kit/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut reasons = BTreeSet::new();
    let root = root();
    let in_tests = |file: &Path| {
        file.strip_prefix(&root)
            .unwrap_or(file)
            .components()
            .any(|c| c.as_os_str() == "tests")
    };
    for file in files.iter().filter(|f| !in_tests(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        // What unit tests construct is not an answer.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        // rustfmt breaks a long `(Code::X, "REASON")` after its parenthesis.
        let text = without_space_after_parentheses(text);
        let text = text.as_str();
        for (call, code_first) in CALLS {
            for (at, _) in text.match_indices(call) {
                if let Some(reason) = reason_after(&text[at + call.len()..], *code_first) {
                    reasons.insert(reason);
                }
            }
        }
    }
    reasons
}

fn reasons_in_doc() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/errors.md")).unwrap();
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_reason_a_client_can_see_is_in_docs_errors_md() {
    let code = reasons_in_code();
    let doc = reasons_in_doc();
    assert!(
        code.len() > 100,
        "the scan found only {} reasons",
        code.len()
    );
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/errors.md is missing {undocumented:?} and lists {stale:?}, which nothing answers"
    );
}
