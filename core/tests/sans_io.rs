//! The core's first promise, enforced: no I/O, no clocks, no entropy, no threads.
//!
//! The simulator can only replay a run bit-for-bit if every fact the core acts on arrives as an
//! input. This test fails if the core's source (or the source of gregor's client, which lives
//! in `core/client` under the same rule) reaches for the outside world, or if the core's
//! dependencies include an async runtime.

mod common;
use common::rust_files;
use std::path::Path;

const FORBIDDEN_IN_SOURCE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::thread",
    "std::time",
    "std::env",
    "std::process",
    "tokio",
    "SystemTime",
    "Instant::now",
    "thread_rng",
    "rand::",
    "HashMap",
    "HashSet",
];

const FORBIDDEN_DEPENDENCIES: &[&str] = &[
    "tokio",
    "mio",
    "async-std",
    "rand",
    "getrandom",
    "socket2",
    "libc",
];

/// Every use of a forbidden name in the Rust files under `dir`, and how many files were read.
fn violations_under(dir: &Path) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut violations = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for bad in FORBIDDEN_IN_SOURCE {
                if code.contains(bad) {
                    violations.push(format!("{}:{}: uses {bad}", f.display(), n + 1));
                }
            }
        }
    }
    (files.len(), violations)
}

#[test]
fn core_source_does_no_io_and_reads_no_clock() {
    let (files, violations) = violations_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(files > 5, "found the core's sources");
    assert!(
        violations.is_empty(),
        "sans-IO violations:\n{}",
        violations.join("\n")
    );
}

/// gregor's own client (`core/client`, package gregor-client) makes the same promise, so the
/// simulator can drive it like the core.
#[test]
fn the_client_source_does_no_io_and_reads_no_clock() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("client/src");
    let (files, violations) = violations_under(&dir);
    assert!(files >= 9, "found the client's sources");
    assert!(
        violations.is_empty(),
        "sans-IO violations in gregor-client:\n{}",
        violations.join("\n")
    );
}

#[test]
fn core_depends_on_no_runtime_or_entropy_source() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for line in deps.lines() {
        let name = line.split(['=', '.']).next().unwrap().trim();
        assert!(
            !FORBIDDEN_DEPENDENCIES.contains(&name),
            "gregor-core must not depend on {name}"
        );
    }
    // Transitively too, when cargo is at hand (it is wherever `cargo test` runs).
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "gregor-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        assert!(
            !FORBIDDEN_DEPENDENCIES.contains(&name),
            "gregor-core depends on {name} transitively:\n{tree}"
        );
    }
}
