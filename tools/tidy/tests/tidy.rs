//! The tidy test: every module opens with `//!`, no file under `origin/src` or `shared/src`
//! is over 500 lines, no crate's modules import each other in a circle, the core depends on
//! none of `worker`, `axum`, `tokio`, `tokio-postgres`, `redis`, and no comment uses the
//! editorial words the style guide forbids.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Every `.rs` file below `dir`, skipping build output and fuzz corpora.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | "node_modules" | "corpus" | "artifacts"
            ) && !name.starts_with('.')
            {
                files.extend(rust_files(&path));
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The crates' folders: those with a `Cargo.toml` at the root's first two levels.
fn crate_dirs() -> Vec<PathBuf> {
    let root = root();
    let mut dirs = Vec::new();
    for level in [root.clone(), root.join("tools"), root.join("origin")] {
        let Ok(entries) = fs::read_dir(&level) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("Cargo.toml").is_file() && !dirs.contains(&path) {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    dirs
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for dir in crate_dirs() {
        for file in rust_files(&dir) {
            seen += 1;
            let text = fs::read_to_string(&file).expect("read");
            if !text.starts_with("//!") {
                missing.push(relative(&file));
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} files found under {:?}",
        crate_dirs()
    );
    assert!(missing.is_empty(), "no `//!` first line: {missing:#?}");
}

#[test]
fn no_file_of_the_core_or_the_origin_is_over_500_lines() {
    let mut long = Vec::new();
    for dir in ["origin/src", "shared/src"] {
        let files = rust_files(&root().join(dir));
        assert!(!files.is_empty(), "{dir} is empty");
        for file in files {
            let lines = fs::read_to_string(&file).expect("read").lines().count();
            if lines > 500 {
                long.push(format!("{} ({lines} lines)", relative(&file)));
            }
        }
    }
    assert!(long.is_empty(), "over 500 lines: {long:#?}");
}

/// The top-level module a file of `src` belongs to (`config` for `src/config/vars.rs`), or
/// none for the crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_string_lossy();
    let name = name.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The top-level modules that code of `text` names as `crate::<module>`, comments aside.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` names several.
            if name.is_empty() && after.starts_with('{') {
                let inner = after[1..].split('}').next().unwrap_or_default();
                for part in inner.split(',') {
                    let part: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !part.is_empty() {
                        found.insert(part);
                    }
                }
            } else if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// A cycle among the top-level modules of the crate whose sources are `src`, if any.
fn module_cycle(src: &Path) -> Option<Vec<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let Some(module) = top_module(src, &file) else {
            continue;
        };
        let text = fs::read_to_string(&file).expect("read");
        let targets = edges.entry(module.clone()).or_default();
        for target in crate_references(&text) {
            if target != module {
                targets.insert(target);
            }
        }
    }
    let modules: BTreeSet<String> = edges.keys().cloned().collect();
    for targets in edges.values_mut() {
        targets.retain(|target| modules.contains(target));
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on| on == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut cycles = Vec::new();
    for dir in crate_dirs() {
        let src = dir.join("src");
        if let Some(cycle) = module_cycle(&src) {
            cycles.push(format!("{}: {}", relative(&src), cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let dir = std::env::temp_dir().join(format!("authz-tidy-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("b")).expect("mkdir");
    fs::write(src.join("a.rs"), "//! a\nuse crate::b::thing;\n").expect("write");
    fs::write(src.join("b/mod.rs"), "//! b\n").expect("write");
    fs::write(src.join("b/inner.rs"), "//! b\nuse crate::{a, c};\n").expect("write");
    fs::write(
        src.join("c.rs"),
        "//! c\n// crate::a in a comment is no edge\n",
    )
    .expect("write");
    let cycle = module_cycle(&src);
    fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(
        cycle,
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
}

#[test]
fn the_core_depends_on_no_runtime_or_service_crate() {
    // The host and the worker's target (`--target all` would need every platform's crates,
    // which an offline machine does not hold).
    for target in [None, Some("wasm32-unknown-unknown")] {
        let names = core_dependencies(target);
        assert!(
            names.contains("authz-core") && names.contains("serde"),
            "{names:?}"
        );
        let forbidden = ["worker", "axum", "tokio", "tokio-postgres", "redis"];
        let found: Vec<&&str> = forbidden
            .iter()
            .filter(|name| names.contains(**name))
            .collect();
        assert!(
            found.is_empty(),
            "the core depends on {found:?} ({target:?})"
        );
    }
}

/// The names of the packages the core depends on (normal and build edges, every feature).
fn core_dependencies(target: Option<&str>) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(root()).args([
        "tree",
        "-p",
        "authz-core",
        "--edges",
        "normal,build",
        "--all-features",
        "--prefix",
        "none",
        "--format",
        "{p}",
        "--offline",
    ]);
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    let output = command.output().expect("cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_comment_is_editorial() {
    const WORDS: [&str; 3] = ["made honest", "honestly", "to be honest"];
    let mut found = Vec::new();
    for dir in crate_dirs() {
        for file in rust_files(&dir) {
            let text = fs::read_to_string(&file).expect("read");
            for (number, line) in text.lines().enumerate() {
                let Some(comment) = line.split_once("//").map(|(_, comment)| comment) else {
                    continue;
                };
                let comment = comment.to_lowercase();
                if WORDS.iter().any(|word| comment.contains(word)) {
                    found.push(format!("{}:{}", relative(&file), number + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "editorial words in comments: {found:#?}");
}
