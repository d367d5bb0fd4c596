//! The shape the core promises (issue 8), measured on its source so it cannot quietly erode:
//! no file over [`FILE_LINES_MAX`] lines, and at least [`ASSERTIONS_PER_KLOC_MIN`] assertions
//! per 1,000 lines of code.
//!
//! How the density is counted: *code lines* are the lines of `core/src` that are neither blank
//! nor comments (`//`, `///`, `//!`), outside `#[cfg(test)]` modules and the `testkit` module
//! (test support, compiled only for tests). *Assertions* are `assert!`, `assert_eq!` and
//! `assert_ne!` in those lines (`debug_assert!` is not counted: the core's assertions stay on in
//! release builds). `cargo test -p gregor-core --test shape -- --nocapture` prints the figures.

mod common;
use common::rust_files;
use std::path::{Path, PathBuf};

/// No core source file is longer than this (a file that grows past it holds two concepts).
const FILE_LINES_MAX: usize = 800;
/// The floor for assertion density. It only ever goes up, toward the 40 the house style asks.
const ASSERTIONS_PER_KLOC_MIN: f64 = 40.0;

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

/// The module a `crate::…` path names, for every path in `text` outside comments: the first
/// segment, or for `crate::{a, b::c}` each item's first segment.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        let t = t.split("//").next().unwrap();
        for (i, _) in t.match_indices("crate::") {
            // `$crate::` in macros names the crate too; a path inside an identifier does not.
            if t[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &t[i + "crate::".len()..];
            let items: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap()
                    .split(',')
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for item in items {
                let segs: Vec<String> = item
                    .split("::")
                    .map(|s| {
                        s.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|s| !s.is_empty())
                    .collect();
                if !segs.is_empty() {
                    paths.push(segs);
                }
            }
        }
    }
    paths
}

/// The first cycle in a directed graph, as the path around it.
fn find_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        state: &mut std::collections::BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = std::collections::BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// No two core modules import each other, directly or around a longer circle: between the
/// top-level modules (`broker`, `group`, `coordinator`, `log`, …), and between the submodules
/// of `broker/`, `group/` and `coordinator/` (`crate::broker::x` or `super::x` naming a
/// sibling). A circle means neither module can be read, tested or replaced without the other
/// (the broker and the group coordinator were one such circle before the coordinator runtime).
#[test]
fn no_two_core_modules_import_each_other() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sub: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in core_sources() {
        let rel = f.strip_prefix(&src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let module = parts[0].clone();
        if module == "lib" {
            continue; // the crate root declares and re-exports every module
        }
        let text = std::fs::read_to_string(&f).unwrap();
        top.entry(module.clone()).or_default();
        let submodule = (parts.len() == 2 && parts[1] != "mod").then(|| parts[1].clone());
        if let Some(s) = &submodule {
            sub.entry(format!("{module}::{s}")).or_default();
        }
        for path in crate_paths(&text) {
            if path[0] != module {
                top.get_mut(&module).unwrap().insert(path[0].clone());
            } else if let (Some(s), Some(target)) = (&submodule, path.get(1)) {
                if target != s && src.join(&module).join(format!("{target}.rs")).exists() {
                    sub.get_mut(&format!("{module}::{s}"))
                        .unwrap()
                        .insert(format!("{module}::{target}"));
                }
            }
        }
        if let Some(s) = &submodule {
            for (i, _) in text.match_indices("super::") {
                let target: String = text[i + "super::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !target.is_empty()
                    && &target != s
                    && src.join(&module).join(format!("{target}.rs")).exists()
                {
                    sub.get_mut(&format!("{module}::{s}"))
                        .unwrap()
                        .insert(format!("{module}::{target}"));
                }
            }
        }
    }
    // Only modules that exist: `crate::Broker` (a re-export at the root) is not a module.
    let known: BTreeSet<String> = top.keys().cloned().collect();
    for targets in top.values_mut() {
        targets.retain(|t| known.contains(t));
    }
    for (name, targets) in &top {
        println!("{name} -> {targets:?}");
    }
    assert!(
        top.len() > 10 && top.contains_key("coordinator"),
        "found the modules"
    );
    assert_eq!(
        find_cycle(&top),
        None,
        "an import circle between core modules"
    );
    assert_eq!(
        find_cycle(&sub),
        None,
        "an import circle between submodules"
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        crate_paths("use crate::{log::X, io};\nlet y = crate::group::f(); // crate::no"),
        vec![
            vec!["log".to_string(), "X".into()],
            vec!["io".into()],
            vec!["group".into(), "f".into()]
        ]
    );
}
