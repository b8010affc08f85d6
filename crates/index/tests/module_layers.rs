//! The crate's module layering (the diagram in the crate documentation, `src/lib.rs`) is
//! what the code does: every `crate::`, `super::`, `self::` and child-module path in the
//! non-test code of each source file refers only to modules of a lower layer, so the
//! module dependency graph has no cycle. The layers are read from the diagram itself, so
//! the documentation cannot go stale without this test failing.
//!
//! Test code (`#[cfg(test)]` items) is not checked: tests may use the whole crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Source text without comments, string and char literals (replaced by a space).
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let at = |j: usize| c.get(j).copied().unwrap_or('\0');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= c.len() {
                    break;
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c[i] == 'r'
            && (i == 0 || !ident(c[i - 1]))
            && (at(i + 1) == '"'
                || (at(i + 1) == '#' && {
                    let mut j = i + 1;
                    while at(j) == '#' {
                        j += 1;
                    }
                    at(j) == '"'
                }))
        {
            // Raw string r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|h| at(j + 1 + h) == '#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push(' ');
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c[i] == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[s..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if !c[i].is_whitespace() {
            out.push(c[i].to_string());
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The tokens without `#[cfg(test)]` items (up to their `;` or their closing brace).
fn without_test_items(t: Vec<String>) -> Vec<String> {
    let cfg_test = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t.len() - i >= cfg_test.len() && t[i..i + cfg_test.len()] == cfg_test {
            i += cfg_test.len();
            while i < t.len() && t[i] != "{" && t[i] != ";" {
                i += 1;
            }
            if i < t.len() && t[i] == "{" {
                let mut depth = 0;
                while i < t.len() {
                    depth += match t[i].as_str() {
                        "{" => 1,
                        "}" => -1,
                        _ => 0,
                    };
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
            } else {
                i += 1;
            }
        } else {
            out.push(t[i].clone());
            i += 1;
        }
    }
    out
}

/// Parses the path tree starting at `t[*i]` (an identifier): `a::b::{c, d::e}` gives
/// `[a, b, c]` and `[a, b, d, e]`.
fn path_tree(t: &[String], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        if *i < t.len() && t[*i] == "{" {
            *i += 1;
            while *i < t.len() && t[*i] != "}" {
                if t[*i] == "," {
                    *i += 1;
                    continue;
                }
                path_tree(t, i, path.clone(), out);
            }
            *i += 1;
            return;
        }
        match t.get(*i) {
            Some(s) if s.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                path.push(s.clone());
                *i += 1;
            }
            _ => break,
        }
        if t.get(*i).map(String::as_str) == Some("::") {
            *i += 1;
        } else {
            break;
        }
    }
    // Skip `as name`.
    if t.get(*i).map(String::as_str) == Some("as") {
        *i += 2;
    }
    out.push(path);
}

/// Every path in `t` that starts at `crate`, `super`, `self` or one of `children` (the
/// file's own `mod x;` declarations), made absolute from the file's module path `module`.
fn crate_paths(t: &[String], module: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let starts =
            (t[i] == "crate" || t[i] == "super" || t[i] == "self" || children.contains(&t[i]))
                && t.get(i + 1).map(String::as_str) == Some("::")
                && (i == 0 || t[i - 1] != "::");
        if !starts {
            i += 1;
            continue;
        }
        let mut raw = Vec::new();
        path_tree(t, &mut i, Vec::new(), &mut raw);
        for p in raw {
            let mut abs: Vec<String> = Vec::new();
            let mut rest = p.as_slice();
            match rest.first().map(String::as_str) {
                Some("crate") => rest = &rest[1..],
                Some("self") => {
                    abs = module.to_vec();
                    rest = &rest[1..];
                }
                Some("super") => {
                    abs = module.to_vec();
                    while rest.first().map(String::as_str) == Some("super") {
                        abs.pop();
                        rest = &rest[1..];
                    }
                }
                _ => abs = module.to_vec(), // a child module
            }
            abs.extend(rest.iter().cloned());
            out.push(abs);
        }
    }
    out
}

/// The layers of the diagram in the crate documentation: lines `//! N  module module ...`
/// inside the fenced block after the line containing "Module layers".
fn layers_from_docs(lib: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    let mut in_section = false;
    let mut in_block = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        if doc.contains("Module layers") {
            in_section = true;
            continue;
        }
        if in_section && doc.trim_start().starts_with("```") {
            if in_block {
                break;
            }
            in_block = true;
            continue;
        }
        if !in_block {
            continue;
        }
        let mut words = doc.split_whitespace();
        let Some(Ok(n)) = words.next().map(str::parse::<usize>) else {
            continue;
        };
        for w in words {
            if !w
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':')
            {
                break;
            }
            assert!(
                layers.insert(w.to_string(), n).is_none(),
                "{w} listed twice"
            );
        }
    }
    assert!(!layers.is_empty(), "no layer diagram found in src/lib.rs");
    layers
}

/// The node of a module path: its longest prefix listed in the layers.
fn node_of(path: &[String], layers: &BTreeMap<String, usize>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|p| layers.contains_key(p))
}

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

/// Module path of a source file: `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") || parts == ["lib"] {
        parts.pop();
    }
    parts
}

/// The edges (from node, to node, file) of the crate in `src`, and the layers; panics on a
/// file whose module is not in the diagram or on a path that resolves to no module.
type Edges = BTreeSet<(String, String, String)>;
fn edges(src: &Path) -> (Edges, BTreeMap<String, usize>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layers = layers_from_docs(&lib);
    // Names the crate root re-exports: `crate::Index` is `crate::index::Index`.
    let lib_tokens = without_test_items(tokens(&strip(&lib)));
    let mut reexports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut i = 0;
    while i < lib_tokens.len() {
        if lib_tokens[i] == "use" {
            i += 1;
            let mut paths = Vec::new();
            path_tree(&lib_tokens, &mut i, Vec::new(), &mut paths);
            for p in paths {
                if let Some(name) = p.last() {
                    reexports.insert(name.clone(), p[..p.len() - 1].to_vec());
                }
            }
        } else {
            i += 1;
        }
    }
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = BTreeSet::new();
    for file in files {
        let module = module_path(src, &file);
        if module.is_empty() {
            continue; // lib.rs: module declarations and re-exports only
        }
        let name = file.strip_prefix(src).unwrap().display().to_string();
        let from = node_of(&module, &layers).unwrap_or_else(|| {
            panic!(
                "{name}: module {} is not in the layer diagram of src/lib.rs",
                module.join("::")
            )
        });
        let t = without_test_items(tokens(&strip(&std::fs::read_to_string(&file).unwrap())));
        let children: BTreeSet<String> = t
            .windows(3)
            .filter(|w| w[0] == "mod" && w[2] == ";")
            .map(|w| w[1].clone())
            .collect();
        for path in crate_paths(&t, &module, &children) {
            let resolved = match node_of(&path, &layers) {
                Some(n) => n,
                None => {
                    let target = path
                        .first()
                        .and_then(|first| reexports.get(first))
                        .and_then(|m| node_of(m, &layers));
                    match target {
                        Some(n) => n,
                        // `use crate::{self}`-like paths and macros at the root: nothing.
                        None if path.is_empty() => continue,
                        None => panic!("{name}: cannot resolve `{}`", path.join("::")),
                    }
                }
            };
            if resolved != from {
                edges.insert((from.clone(), resolved, name.clone()));
            }
        }
    }
    (edges, layers)
}

#[test]
fn modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (edges, layers) = edges(&src);
    let mut bad = Vec::new();
    for (from, to, file) in &edges {
        if layers[to] >= layers[from] {
            bad.push(format!(
                "{file}: {from} (layer {}) uses {to} (layer {})",
                layers[from], layers[to]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "module layering broken (see the diagram in src/lib.rs):\n{}",
        bad.join("\n")
    );
    // Every layer of the diagram names a module that exists and that the test saw.
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_path(&src, f).join("::"))
        .collect();
    for m in layers.keys() {
        assert!(
            modules.contains(m),
            "the layer diagram lists {m}, which has no source file"
        );
    }
    // The edges the refactoring of issue #12 was about are seen (the parser works).
    let has = |a: &str, b: &str| edges.iter().any(|(f, t, _)| f == a && t == b);
    assert!(has("search", "index") && has("search", "segment::postings"));
    assert!(has("index", "segment") && has("segment", "validate") && has("writer", "builder"));
}

/// The checker itself: a cycle through a braced `use`, a `super::` path and a re-exported
/// name is reported; test items are ignored.
#[test]
fn checker_reports_upward_uses() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("seg")).unwrap();
    let write = |p: &str, s: &str| std::fs::write(src.join(p), s).unwrap();
    write(
        "lib.rs",
        "//! Module layers\n//! ```text\n//! 2  top\n//! 1  seg\n//! 0  seg::low\n//! ```\nmod seg;\nmod top;\npub use top::Top;\n",
    );
    write("top.rs", "use crate::seg::Seg;\npub struct Top;\n");
    write("seg/mod.rs", "mod low;\nuse low::Low;\npub struct Seg;\n#[cfg(test)]\nmod tests { use crate::top::Top; }\n");
    write(
        "seg/low.rs",
        "// use crate::top::Top;\nlet s = \"crate::top::Top\";\n",
    );
    let (e, _) = edges(src);
    let names: Vec<(String, String)> = e.iter().map(|(a, b, _)| (a.clone(), b.clone())).collect();
    assert_eq!(
        names,
        [
            ("seg".to_string(), "seg::low".to_string()),
            ("top".into(), "seg".into())
        ]
    );
    for upward in [
        "use crate::{top::Top};",
        "use super::super::top::Top;",
        "fn f(t: crate::Top) -> crate::Top { t }",
    ] {
        write("seg/low.rs", upward);
        let (e, layers) = edges(src);
        assert!(
            e.iter()
                .any(|(a, b, _)| a == "seg::low" && b == "top" && layers[b] > layers[a]),
            "{upward}: {e:?}"
        );
    }
}
