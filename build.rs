//! Records the resolved dependency versions (from Cargo.lock) so servers and schedulers can store
//! exactly what they were built from in their `dependencies` column, and the commit and build
//! time `parsec --version` prints.

use std::process::Command;

fn main() {
    built::write_built_file().expect("writing build information");
    // An image builds without `.git` (it is not copied in): the commit comes as a build argument.
    let commit = std::env::var("PARSEC_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PARSEC_GIT_COMMIT={commit}");
    // Naming what to watch replaces cargo's default (any file of the package): the lock file for
    // the dependency list, and the branch a commit moves, so a commit after a build is seen.
    println!("cargo:rerun-if-env-changed=PARSEC_GIT_COMMIT");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");
    // The embedded migrations: a new migration folder must rebuild the crate that embeds them.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/packed-refs");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        if let Some(branch) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{branch}");
        }
    }
}

/// The commit checked out, abbreviated as git does (12 digits), if this is a git checkout.
fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}
