//! The house's rules, checked by the build's own tests rather than by review:
//! - no file of any crate is part of an import cycle (the architecture doc says how files
//!   are read);
//! - the sans-IO core depends on no runtime, media framework, database or web framework;
//! - the server's command has no test or load command (they are `fieldcast-probe`'s);
//! - no handler or domain file names the application's wiring (`crate::app`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The source folders of the workspace's crates.
const CRATES: [&str; 4] = [
    "src",
    "crates/core/src",
    "crates/engine/src",
    "crates/probe/src",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file of a crate by its module path (`control/orders`; `mod.rs` is its folder's
/// module, `lib.rs` and `main.rs` the root, the empty path).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("under the folder")
                .with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The text with comments and string literals blanked (so a doc link is no import).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            i += 2;
            while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\''
            && i + 2 < bytes.len()
            && (bytes[i + 2] == b'\'' || bytes[i + 1] == b'\\')
        {
            // A char literal ('"', '\n'); a lifetime has no closing quote nearby.
            let end = bytes[i + 1..]
                .iter()
                .position(|&b| b == b'\'')
                .map_or(i + 1, |p| i + 2 + p);
            i = end;
        } else {
            let c = text[i..].chars().next().expect("inside the text");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every path in `code` that starts with one of `heads` (`crate`, `super`, `self`, or a child
/// module's name), as its segments; `use a::{b, c::{d}}` groups are expanded.
fn paths(code: &str, heads: &BTreeSet<String>) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if !heads.contains(&code[start..i]) || !code[i..].starts_with("::") {
            continue;
        }
        expand(code, start, &mut Vec::new(), &mut out);
    }
    out
}

/// Reads the path at `at` (segments, then maybe a `{…}` group) and pushes every full path.
fn expand(
    code: &str,
    mut at: usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let bytes = code.as_bytes();
    let depth = prefix.len();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                    at += 1;
                }
                if at >= bytes.len() || bytes[at] == b'}' {
                    break;
                }
                at = expand(code, at, prefix, out);
                // Skip `as alias` and the like up to the next separator.
                while at < bytes.len() && bytes[at] != b',' && bytes[at] != b'}' {
                    at += 1;
                }
            }
            prefix.truncate(depth);
            return at + 1;
        }
        let start = at;
        while at < bytes.len() && is_ident(bytes[at]) {
            at += 1;
        }
        if start == at {
            break;
        }
        prefix.push(code[start..at].to_string());
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            break;
        }
    }
    out.push(prefix.clone());
    prefix.truncate(depth);
    at
}

/// Which files each file's code names, inside one crate.
fn imports(files: &BTreeMap<Vec<String>, PathBuf>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut graph = BTreeMap::new();
    for (module, path) in files {
        let text = code_only(&std::fs::read_to_string(path).expect("read a source file"));
        // The module a file is (`self`), and its children (`mod x;`).
        let here: Vec<String> = module.clone();
        let children: BTreeSet<String> = text
            .lines()
            .filter_map(|l| {
                let l = l
                    .trim_start()
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ");
                l.strip_prefix("mod ")?
                    .strip_suffix(';')
                    .map(str::to_string)
            })
            .collect();
        let mut heads: BTreeSet<String> = ["crate", "super", "self"].map(String::from).into();
        heads.extend(children.iter().cloned());
        // Inside an inline `#[cfg(test)] mod tests { … }`, `super` is the file itself.
        let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
        let mut targets = BTreeSet::new();
        for (part, in_tests) in [(&text[..cut], false), (&text[cut..], true)] {
            for p in paths(part, &heads) {
                let mut target: Vec<String> = match p[0].as_str() {
                    "crate" => p[1..].to_vec(),
                    "self" => [&here[..], &p[1..]].concat(),
                    "super" => {
                        // Each `super` is one module up; in the tests, the first is the file.
                        let mut base = here.clone();
                        let mut rest = &p[..];
                        if in_tests {
                            rest = &rest[1..];
                        }
                        while rest.first().is_some_and(|s| s == "super") {
                            base.pop();
                            rest = &rest[1..];
                        }
                        [&base[..], rest].concat()
                    }
                    // A child module by its bare name.
                    _ => [&here[..], &p[..]].concat(),
                };
                while !target.is_empty() && !files.contains_key(&target) {
                    target.pop();
                }
                if !target.is_empty() && &target != module {
                    targets.insert(target);
                }
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Files that reach themselves again through others' imports, grouped (Tarjan's SCCs).
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a Vec<String>) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for t in &w.graph[v] {
            if !w.index.contains_key(t) {
                visit(w, t);
                let low = w.low[t].min(w.low[v]);
                w.low.insert(v, low);
            } else if w.stack.contains(&t) {
                let low = w.index[t].min(w.low[v]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(t) = w.stack.pop() {
                group.push(t.join("/"));
                if t == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                w.found.push(group);
            }
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn no_file_of_any_crate_is_part_of_an_import_cycle() {
    let mut found = Vec::new();
    for src in CRATES {
        let files = modules(&root().join(src));
        assert!(files.len() > 3, "{src}: no sources found");
        for group in cycles(&imports(&files)) {
            found.push(format!("{src}: {}", group.join(", ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle_through_a_parent_and_a_bare_child_path() {
    // The check itself: a folder module naming its child by its bare name, and the child
    // naming the parent through `super`, is a cycle; the same child naming a sibling is not.
    let dir = std::env::temp_dir().join(format!("fieldcast-house-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\n").unwrap();
    std::fs::write(
        dir.join("a/mod.rs"),
        "mod b;\nmod c;\npub use b::B;\n// super::nothing in a comment\npub struct A;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a/b.rs"),
        "use super::{A, c::C};\npub struct B(A, C);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a/c.rs"),
        "pub struct C;\n#[cfg(test)]\nmod tests {\n    use super::C;\n}\n",
    )
    .unwrap();
    let found = cycles(&imports(&modules(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found, vec![vec!["a".to_string(), "a/b".to_string()]]);
}

#[test]
fn the_core_depends_on_no_runtime_media_framework_database_or_web_framework() {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "fieldcast-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.starts_with("fieldcast-core "), "{tree}");
    for banned in ["tokio", "gstreamer", "rusqlite", "axum", "hyper", "str0m"] {
        assert!(
            !tree
                .lines()
                .any(|l| l.starts_with(&format!("{banned} "))
                    || l.starts_with(&format!("{banned}-"))),
            "fieldcast-core depends on {banned}:\n{tree}"
        );
    }
}

#[test]
fn the_server_command_has_no_test_or_load_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .arg("--help")
        .output()
        .expect("run fieldcast --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .split("Options:")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // `audit` verifies a session's on-screen record: an operator's tool, like `check`.
    assert_eq!(
        commands,
        ["serve", "check", "healthcheck", "audit", "help"],
        "{help}"
    );
}

#[test]
fn no_handler_or_domain_file_names_the_applications_wiring() {
    // Only the start-up (server.rs, with the demo it starts) holds the App; every other file
    // gets the handles it uses.
    let files = modules(&root().join("src"));
    let naming: Vec<String> = files
        .iter()
        .filter(|(m, _)| !matches!(m.as_slice(), [one] if one == "app" || one == "server" || one == "lib"))
        .filter(|(_, path)| {
            let code = code_only(&std::fs::read_to_string(path).unwrap());
            code.contains("crate::app") || code.contains("AppState")
        })
        .map(|(m, _)| m.join("/"))
        .collect();
    assert!(naming.is_empty(), "these files name the app: {naming:?}");
}
