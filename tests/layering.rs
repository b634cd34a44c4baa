//! The layering of `src/` (the map in `lib.rs`): every module imports only from its own layer or
//! the layers below it, and no two modules import each other, directly or through others. This
//! test reads the sources (every `crate::` and `super::` path outside comments and test code),
//! so an arrow that points up fails here before it lands.
//!
//! `KNOWN_WRONG` is where an import that points up, or closes a cycle, would be listed while it is
//! being moved; it is empty, and must stay as short as it can. It is a ratchet: an import not on
//! it fails the test, and so does a listed one that is gone (take it off, so it cannot come back).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and its layer, lowest first. A module not listed fails the test: a new module must
/// say where it stands.
const LAYERS: &[(&str, u8)] = &[
    // 1. leaves: import nothing of ours.
    ("packet", 1),
    ("balance", 1),
    ("quantity", 1),
    ("settlement_id", 1),
    ("backoff", 1),
    ("limits", 1),
    ("shutdown", 1),
    ("metrics", 1),
    ("log_limit", 1),
    ("http::origin", 1),
    ("mojaloop::party", 1),
    // 2. accounts, the one mapping to ILP codes, what the listeners share.
    ("account", 2),
    ("reject", 2),
    ("http::listener", 2),
    // 3. tables, stores, clients of the outside world, and the handles the node holds: the
    //    settlement seam (its trait, signals and the RFC 0038 client), owed writes.
    ("routing", 3),
    ("rules", 3),
    ("rates", 3),
    ("store", 3),
    ("http::client", 3),
    ("spsp", 3),
    ("http::tls", 3),
    ("http", 3),
    ("ildcp", 3),
    ("stream", 3),
    ("mojaloop", 3),
    ("rafiki", 3),
    ("owed", 3),
    ("pending", 3),
    ("settlement", 3),
    // 4. the node's shared state.
    ("node", 4),
    // 5. what runs on it: the packet path, settlement's worker and callbacks, the sweeper.
    ("forward", 5),
    ("payments", 5),
    ("settlement::outgoing", 5),
    ("settlement::incoming", 5),
    ("settlement::rails", 5),
    ("mojaloop::settlement", 5),
    ("mojaloop::payouts", 5),
    ("rafiki::liquidity", 5),
    ("rafiki::withdrawals", 5),
    ("sweeper", 5),
    ("reload", 5),
    // 6. the edges that receive traffic.
    ("http::server", 6),
    ("http::settlement_api", 6),
    ("http::spsp", 6),
    ("mojaloop::backend", 6),
    ("admin", 6),
    ("rafiki::webhooks", 6),
    // 7. configuration, reloads, wiring.
    ("config", 7),
    ("app", 7),
];

/// Imports still being moved, (importing module, imported module): upward, or closing a cycle.
/// None since the node's state, the limits, settlement's value types and the account rules moved
/// to modules of their own.
const KNOWN_WRONG: &[(&str, &str)] = &[];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// The module a path names, as the layer table knows it: its first two segments when the table
/// lists them (`http::client`), else the first.
fn module_of(path: &str) -> String {
    let mut segments = path.split("::");
    let first = segments.next().unwrap_or_default();
    match segments.next() {
        Some(sub) if layer_of(&format!("{first}::{sub}")).is_some() => format!("{first}::{sub}"),
        _ => first.to_string(),
    }
}

/// A source file's module path (`src/http/server.rs` → `http::server`, `src/store/mod.rs` →
/// `store`), or `None` for files that are not modules of the library (the binary, tests).
fn module_path(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.first().map(String::as_str) {
        Some("lib" | "main") | None => None,
        // Test code of a module kept in its own file (`mod tests;`), and the shared store suite.
        _ if parts.iter().any(|p| p == "tests" || p == "suite") => None,
        _ => Some(parts.join("::")),
    }
}

/// The source without comments and without its `#[cfg(test)]` items (test code may reach up to
/// build a node; the rule is for the code that ships).
fn shipped_code(text: &str) -> String {
    let mut out = String::new();
    let mut skipping: Option<i32> = None;
    let mut depth = 0i32;
    let mut after_cfg_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let trimmed = code.trim();
        if trimmed.starts_with("#[cfg(test)]") {
            after_cfg_test = true;
            continue;
        }
        let opens = code.matches('{').count() as i32;
        let closes = code.matches('}').count() as i32;
        if after_cfg_test && skipping.is_none() && !trimmed.is_empty() {
            after_cfg_test = false;
            if trimmed.ends_with(';') {
                continue; // `mod tests;` or a single `use`.
            }
            skipping = Some(depth);
        }
        depth += opens - closes;
        match skipping {
            Some(start) => {
                if depth <= start && (opens > 0 || closes > 0) {
                    skipping = None;
                }
            }
            None => {
                out.push_str(code);
                out.push('\n');
            }
        }
    }
    out
}

/// Every module a file's code imports or names (`crate::x::y`, `super::y` resolved).
fn imports(module: &str, is_mod_file: bool, code: &str) -> BTreeSet<String> {
    let parent: Vec<&str> = {
        let mut parts: Vec<&str> = module.split("::").collect();
        if !is_mod_file {
            parts.pop();
        }
        parts
    };
    let mut found = BTreeSet::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let paths: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                let inside = &group[..group.find('}').unwrap_or(group.len())];
                inside.split(',').map(|p| p.trim().to_string()).collect()
            } else {
                let end =
                    rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                vec![rest[..end].trim_end_matches(':').to_string()]
            };
            for path in paths.into_iter().filter(|p| !p.is_empty()) {
                let full = if base.is_empty() { path } else { format!("{}::{path}", base.join("::")) };
                found.insert(module_of(&full));
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// module → the modules it imports (other than itself), from the sources.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(path) = module_path(&src, &file) else { continue };
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs");
        let code = shipped_code(&std::fs::read_to_string(&file).unwrap());
        let from = module_of(&path);
        let entry = graph.entry(from.clone()).or_default();
        for to in imports(&path, is_mod_file, &code) {
            if to != from && to != "self" {
                entry.insert(to);
            }
        }
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let graph = import_graph();
    let unplaced: Vec<&String> = graph.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(unplaced.is_empty(), "modules missing from LAYERS (tests/layering.rs): {unplaced:?}");
    for (from, to) in graph.iter().flat_map(|(f, ts)| ts.iter().map(move |t| (f, t))) {
        assert!(layer_of(to).is_some(), "{from} imports {to}, which LAYERS does not know");
    }
}

#[test]
fn imports_point_down_the_layers() {
    let graph = import_graph();
    let mut upward = BTreeSet::new();
    for (from, targets) in &graph {
        for to in targets {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) {
                if b > a {
                    upward.insert((from.clone(), to.clone()));
                }
            }
        }
    }
    let known: BTreeSet<(String, String)> =
        KNOWN_WRONG.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let new: Vec<_> = upward.difference(&known).collect();
    assert!(new.is_empty(), "imports pointing up a layer (move the code, don't add the arrow): {new:?}");
}

#[test]
fn the_known_wrong_imports_only_shrink() {
    let graph = import_graph();
    let gone: Vec<_> = KNOWN_WRONG
        .iter()
        .filter(|(from, to)| !graph.get(*from).is_some_and(|ts| ts.contains(*to)))
        .collect();
    assert!(gone.is_empty(), "fixed: take these off KNOWN_WRONG in tests/layering.rs: {gone:?}");
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = import_graph();
    // The imports still being moved close their own cycles; every other cycle fails.
    let known: BTreeSet<(&str, &str)> = KNOWN_WRONG.iter().copied().collect();
    let edges = |from: &str| -> Vec<String> {
        graph
            .get(from)
            .map(|ts| ts.iter().filter(|t| !known.contains(&(from, t.as_str()))).cloned().collect())
            .unwrap_or_default()
    };
    for start in graph.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges(&at) {
                if next == *start {
                    panic!("import cycle: {} -> {start}", path.join(" -> "));
                }
                if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next, longer));
                }
            }
        }
    }
}

#[test]
fn the_reader_understands_the_shapes_it_must() {
    let code = shipped_code(
        "use crate::a::B;\n// use crate::comment;\nfn f() { crate::c::d(); }\n#[cfg(test)]\nmod tests {\n    use crate::app;\n}\nuse super::sibling;\n",
    );
    assert_eq!(
        imports("http::server", false, &code),
        ["a", "c", "http"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
    assert_eq!(module_of("http::client::HttpClient"), "http::client");
    assert_eq!(module_of("settlement::engine::EngineClient"), "settlement");
    assert_eq!(module_of("settlement::outgoing::run"), "settlement::outgoing");
}
