//! Names the source revision the binary is built from, for
//! `tenantry_build_info` and `--version`: `TENANTRY_COMMIT` when the build
//! sets it (an image built without `.git`), else git's `HEAD`, else
//! `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TENANTRY_COMMIT");
    let commit = std::env::var("TENANTRY_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_head)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TENANTRY_COMMIT={commit}");
}

/// The abbreviated `HEAD` commit; rebuilds when it moves.
fn git_head() -> Option<String> {
    let git = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    if !git.exists() {
        return None;
    }
    let head = git.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    // A branch's commits move its ref, not HEAD.
    if let Ok(text) = std::fs::read_to_string(&head)
        && let Some(reference) = text.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed={}", git.join(reference).display());
    }
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8(output.stdout).ok()?.trim().to_string())
}
