//! The shape the core promises (issue 8), measured on its source so it cannot quietly erode:
//! no file over [`FILE_LINES_MAX`] lines, and at least [`ASSERTIONS_PER_KLOC_MIN`] assertions
//! per 1,000 lines of code.
//!
//! How the density is counted: *code lines* are the lines of `core/src` that are neither blank
//! nor comments (`//`, `///`, `//!`), outside `#[cfg(test)]` modules and the `testkit` module
//! (test support, compiled only for tests). *Assertions* are `assert!`, `assert_eq!` and
//! `assert_ne!` in those lines (`debug_assert!` is not counted: the core's assertions stay on in
//! release builds). `cargo test -p gregor-core --test shape -- --nocapture` prints the figures.

use std::path::{Path, PathBuf};

/// No core source file is longer than this (a file that grows past it holds two concepts).
const FILE_LINES_MAX: usize = 800;
/// The floor for assertion density. It only ever goes up, toward the 40 the house style asks.
const ASSERTIONS_PER_KLOC_MIN: f64 = 10.0;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (code lines, assertions) of one file, by the rules above.
fn count(text: &str) -> (usize, usize) {
    let (mut code, mut asserts) = (0, 0);
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            // Skip the test module: everything to the end of its braces.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if opened && depth <= 0 {
                    break;
                }
            }
            continue;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        code += 1;
        let t = t.split("//").next().unwrap();
        asserts += ["assert!(", "assert_eq!(", "assert_ne!("]
            .iter()
            .map(|m| {
                t.match_indices(m)
                    .filter(|(i, _)| !t[..*i].ends_with("debug_"))
                    .count()
            })
            .sum::<usize>();
    }
    (code, asserts)
}

fn core_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    assert!(files.len() > 20, "found the core's sources");
    files
}

#[test]
fn no_core_file_is_longer_than_the_limit() {
    let long: Vec<String> = core_sources()
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > FILE_LINES_MAX).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "core files over {FILE_LINES_MAX} lines: {long:?}"
    );
}

#[test]
fn assertion_density_is_at_least_the_floor() {
    let (mut code, mut asserts) = (0, 0);
    for f in core_sources() {
        if f.ends_with("testkit.rs") {
            continue;
        }
        let (c, a) = count(&std::fs::read_to_string(&f).unwrap());
        println!("{:>5} code lines {:>4} assertions  {}", c, a, f.display());
        code += c;
        asserts += a;
    }
    let density = asserts as f64 * 1000.0 / code as f64;
    println!("core: {asserts} assertions in {code} code lines = {density:.1} per 1,000");
    assert!(
        density >= ASSERTIONS_PER_KLOC_MIN,
        "assertion density {density:.1} per 1,000 code lines is below the floor {ASSERTIONS_PER_KLOC_MIN}"
    );
}

#[test]
fn the_counter_counts_what_it_says() {
    let text = "// a comment\n\nfn f() {\n    assert!(true); // assert!(no)\n    debug_assert!(x);\n    assert_eq!(1, 1); assert_ne!(1, 2);\n}\n#[cfg(test)]\nmod tests {\n    fn g() { assert!(true); }\n}\n";
    assert_eq!(count(text), (5, 3));
}
