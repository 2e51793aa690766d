//! The layering the architecture promises, checked on the real dependency
//! graph: the kernel is pure (no I/O, async, storage, RPC or OpenPGP crates
//! anywhere below it) and capabilities never reach the node's storage or
//! consensus crates.

use std::collections::BTreeSet;
use std::process::Command;

/// Names of the crates `package` depends on, transitively (normal edges).
fn dependency_names(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let deps = dependency_names(package);
    assert!(
        deps.contains(package),
        "{package} is in its own tree: {deps:?}"
    );
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(found.is_empty(), "{package} depends on {found:?}");
}

#[test]
fn the_kernel_depends_on_no_io_async_storage_rpc_or_openpgp_crate() {
    assert_free_of(
        "ics-kernel",
        &[
            "tokio",
            "tonic",
            "prost",
            "hyper",
            "axum",
            "sled",
            "openraft",
            "sequoia-openpgp",
            "ics-proto",
        ],
    );
}

#[test]
fn icsctl_links_neither_storage_nor_consensus() {
    assert_free_of("ics-cli", &["sled", "openraft", "ics-node"]);
    assert_free_of("ics-client", &["sled", "openraft", "ics-node"]);
}

#[test]
fn capabilities_do_not_reach_storage_or_consensus() {
    assert_free_of("ics-identity", &["sled", "openraft", "ics-node"]);
    assert_free_of("ics-pki", &["sled", "openraft", "ics-node", "rustls"]);
    assert_free_of("ics-tlog", &["sled", "openraft", "ics-node", "rustls"]);
    assert_free_of("ics-policies", &["sled", "openraft", "ics-node", "rustls"]);
}

/// Top-level modules of a crate's `src/` and the sibling modules each one
/// names through `crate::` paths (files under `src/<module>/` count as that
/// module; the crate root and binaries are not modules).
fn module_graph(src: &std::path::Path) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    files(src, &mut all);
    let mut graph = std::collections::BTreeMap::new();
    for path in all {
        let rel = path.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" || module == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let uses: &mut BTreeSet<String> = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            for name in named_after(&text[i + "crate::".len()..]) {
                if name != module && name.chars().next().is_some_and(|c| c.is_lowercase()) {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// The top-level names a `crate::` path continues with: `x` in `crate::x::y`,
/// and `a`, `b` in `crate::{a, b::c}`.
fn named_after(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
    };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    names.into_iter().filter(|n| !n.is_empty()).collect()
}

/// A cycle among the modules, if there is one.
fn find_cycle(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == m) {
            let mut cycle = path[start..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(c) = visit(next, graph, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(c) = visit(m, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_host_the_kernel_and_capabilities_have_no_module_cycles() {
    let node = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = module_graph(&node.join("src"));
    assert!(
        host.contains_key("host") && host.contains_key("writer"),
        "{host:?}"
    );
    assert!(
        host["edge"].contains("host"),
        "the graph sees crate:: paths: {host:?}"
    );
    let kernel = module_graph(&node.join("kernel/src"));
    assert!(kernel["projection"].contains("rules"), "{kernel:?}");
    let identity = module_graph(&node.join("identity/src"));
    assert!(identity["device"].contains("openpgp"), "{identity:?}");
    let pki = module_graph(&node.join("pki/src"));
    assert!(pki["payload"].contains("cert"), "{pki:?}");
    let client = module_graph(&node.join("client/src"));
    assert!(client["author"].contains("codec"), "{client:?}");
    for (name, graph) in [
        ("host", host),
        ("kernel", kernel),
        ("identity", identity),
        ("pki", pki),
        ("client", client),
    ] {
        assert_eq!(find_cycle(&graph), None, "{name} module graph: {graph:?}");
    }
}
