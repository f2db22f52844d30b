//! The host's module graph has no cycle, and the API knows nothing of the plugin runtime.
//!
//! Each file under `src/` is a module. A module uses another when it names it in a path
//! that starts with `crate::`, `super::` or `self::` (in a `use` or inline, macros
//! included: bindgen's `with:` names host types that way); the path counts for the
//! longest module it names. Uses of a module's own ancestors or descendants do not count:
//! a parent declares and re-exports its children, and a child sees its parent's items.
//! Everything else must form no cycle, so that every module can be read, tested and
//! changed after the ones it uses.
//!
//! Read from the source text with comments and literals left out, not from rustc: cheap,
//! and it sees inside macros.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Uses that close a cycle today, left for their owners: (from, to, why). The rest of the
/// graph is still checked. Empty: keep it so.
const EXPECTED: &[(&str, &str, &str)] = &[];

/// The domain's own types, which the store keeps in its rows: they use no other module of
/// the host but each other, so `db` may use them without closing a loop through the volume manager
/// (`volume` uses `db`).
const DOMAIN_TYPES: &[&str] = &["volume::status", "volume::job"];

/// What the API layer must never name: it speaks the host's own driver types
/// (`crate::driver`), never the runtime's, the bindings' or the server's.
const NOT_IN_API: &[&str] = &[
    "crate::server",
    "runtime::latest",
    "since_v0_",
    "wit::",
    "crate::runtime",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Where a use was seen, for the failure message.
#[derive(Debug, Clone)]
struct Seen {
    file: String,
    line: usize,
    path: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`, or one punctuation character.
    Punct(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

impl Token {
    fn is(&self, p: &str) -> bool {
        matches!(&self.tok, Tok::Punct(q) if q == p)
    }

    fn ident(&self) -> Option<&str> {
        match &self.tok {
            Tok::Ident(s) => Some(s),
            Tok::Punct(_) => None,
        }
    }
}

/// Identifiers and punctuation of Rust source; comments, strings and characters dropped.
fn tokens(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    // Skips a quoted literal starting at the opening quote `i`; returns the index after it.
    let skip_quoted = |mut i: usize, quote: char, line: &mut usize| {
        i += 1;
        while i < c.len() && c[i] != quote {
            if c[i] == '\\' {
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(i, '"', &mut line);
        } else if ch == '\'' {
            if at(i + 1) == '\\' || at(i + 2) == '\'' {
                i = skip_quoted(i, '\'', &mut line);
            } else {
                i += 1; // a lifetime or a label: its name follows as an identifier
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' {
            let start = i;
            while at(i).is_ascii_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            match (word.as_str(), at(i)) {
                ("r" | "br" | "cr", '"') | ("r" | "br" | "cr", '#')
                    if at(i) == '"' || matches!(at(i + 1), '"' | '#') =>
                {
                    // A raw string: r"…", r#"…"#, br##"…"##.
                    let mut hashes = 0;
                    while at(i) == '#' {
                        hashes += 1;
                        i += 1;
                    }
                    i += 1; // the opening quote
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                            i += 1 + hashes;
                            break;
                        }
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
                ("r", '#') => {} // a raw identifier: its name follows
                ("b" | "c", '"') => i = skip_quoted(i, '"', &mut line),
                ("b", '\'') => i = skip_quoted(i, '\'', &mut line),
                _ => out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                }),
            }
        } else if ch.is_ascii_digit() {
            while at(i).is_ascii_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::Punct("::".into()),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch.to_string()),
                line,
            });
            i += 1;
        }
    }
    out
}

/// Parses the path that starts at token `i` (`crate`, `super` or `self`), use groups
/// included; returns every full path it names and the index after it.
fn paths_at(t: &[Token], i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = vec![t[i].ident().expect("a path starts with a name").to_string()];
    let mut i = i + 1;
    while i + 1 < t.len() && t[i].is("::") {
        if let Some(seg) = t[i + 1].ident() {
            prefix.push(seg.to_string());
            i += 2;
        } else if t[i + 1].is("{") {
            let (suffixes, next) = group(t, i + 2);
            let paths = suffixes
                .into_iter()
                .map(|s| prefix.iter().cloned().chain(s).collect())
                .collect();
            return (paths, next);
        } else {
            break; // `*`, or a turbofish
        }
    }
    (vec![prefix], i)
}

/// The trees of a use group whose `{` is just before `i`; returns them and the index after
/// the closing `}`.
fn group(t: &[Token], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    while i < t.len() {
        if t[i].is("}") {
            if !current.is_empty() {
                out.push(current);
            }
            return (out, i + 1);
        } else if t[i].is(",") {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            i += 1;
        } else if t[i].is("{") {
            let (inner, next) = group(t, i + 1);
            out.extend(
                inner
                    .into_iter()
                    .map(|s| current.iter().cloned().chain(s).collect()),
            );
            current.clear();
            i = next;
        } else if t[i].ident() == Some("as") {
            i += 2; // the alias names nothing new
        } else if let Some(seg) = t[i].ident() {
            current.push(seg.to_string());
            i += 1;
        } else {
            i += 1; // `::`, `*`
        }
    }
    (out, i)
}

/// The module a path names: `current` is the module the path is written in.
fn resolve(current: &[String], path: &[String]) -> Vec<String> {
    let mut segs = path.iter();
    let mut base: Vec<String> = match segs.next().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => current.to_vec(),
        Some("super") => current[..current.len().saturating_sub(1)].to_vec(),
        _ => unreachable!("only crate, self and super paths are resolved"),
    };
    for seg in segs {
        match seg.as_str() {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => base.push(seg.clone()),
        }
    }
    base
}

/// The module a source file is, by its path under `src/`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("lib" | "mod")) {
        parts.pop();
    }
    parts
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Every module's uses of the others, with where each was first seen.
fn uses(files: &BTreeMap<Vec<String>, (String, String)>) -> BTreeMap<(String, String), Seen> {
    let mut out = BTreeMap::new();
    for (module, (file, src)) in files {
        let t = tokens(src);
        // Inline modules (`mod tests { … }`) are where `super` starts from.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < t.len() {
            if t[i].is("{") {
                if i >= 2
                    && t[i - 2].ident() == Some("mod")
                    && let Some(n) = t[i - 1].ident()
                {
                    inline.push((n.to_string(), depth));
                }
                depth += 1;
            } else if t[i].is("}") {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            let starts_path = matches!(t[i].ident(), Some("crate" | "super" | "self"))
                && !(i > 0 && (t[i - 1].is("::") || t[i - 1].is("$")));
            if !starts_path {
                i += 1;
                continue;
            }
            let here: Vec<String> = module
                .iter()
                .cloned()
                .chain(inline.iter().map(|(n, _)| n.clone()))
                .collect();
            let (paths, next) = paths_at(&t, i);
            for path in paths {
                let full = resolve(&here, &path);
                // The longest module the path names.
                let target = (0..=full.len())
                    .rev()
                    .map(|n| &full[..n])
                    .find(|p| files.contains_key(*p))
                    .unwrap_or(&[]);
                let related = target.starts_with(module) || module.starts_with(target);
                if !related {
                    out.entry((name(module), name(target))).or_insert(Seen {
                        file: file.clone(),
                        line: t[i].line,
                        path: path.join("::"),
                    });
                }
            }
            // Group braces were consumed by the path: depth is unchanged.
            i = next.max(i + 1);
        }
    }
    out
}

/// A cycle in `graph`, as the modules along it with the first repeated at the end.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack
                    .iter()
                    .position(|s| s == n)
                    .expect("open is on the stack");
                let mut cycle = stack[from..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.to_string(), Mark::Open);
        stack.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut marks, &mut Vec::new()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module of the library crate (not the `ashlar` binary's `main.rs`), with its file
/// and source.
fn library() -> BTreeMap<Vec<String>, (String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .filter(|p| p != &src.join("main.rs"))
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src");
            let text = std::fs::read_to_string(&p).expect("read source");
            (module_of(rel), (format!("src/{}", rel.display()), text))
        })
        .collect()
}

#[test]
fn no_two_modules_use_each_other_even_through_others() {
    let files = library();
    let mut uses = uses(&files);
    for (from, to, _why) in EXPECTED {
        assert!(
            uses.remove(&(from.to_string(), to.to_string())).is_some(),
            "{from} no longer uses {to}: take it out of EXPECTED"
        );
    }
    let mut graph = Graph::new();
    for (from, to) in uses.keys() {
        graph.entry(from.clone()).or_default().insert(to.clone());
    }
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let seen = &uses[&(w[0].clone(), w[1].clone())];
                format!(
                    "  {} uses {} ({}:{}: `{}`)",
                    w[0], w[1], seen.file, seen.line, seen.path
                )
            })
            .collect();
        panic!(
            "modules use each other in a cycle: {}\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        );
    }
}

/// The same rule one level up: top-level modules (`api`, `volume`, `db`, `runtime`, …) do
/// not use each other in a cycle either, counting a use of a child as a use of its
/// top-level module — except uses of the domain's own types, which use nothing.
#[test]
fn top_level_modules_form_layers() {
    let files = library();
    let uses = uses(&files);
    for leaf in DOMAIN_TYPES {
        // A job names the statuses it holds a volume in: the domain's types may use each
        // other, never anything else.
        let out: Vec<&(String, String)> = uses
            .keys()
            .filter(|(from, to)| from == leaf && !DOMAIN_TYPES.contains(&to.as_str()))
            .collect();
        assert!(
            out.is_empty(),
            "{leaf} must use no module but the domain's types, but uses {out:?}"
        );
    }
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
    let mut graph = Graph::new();
    let mut seen = BTreeMap::new();
    for ((from, to), where_) in &uses {
        if DOMAIN_TYPES.contains(&to.as_str()) || top(from) == top(to) {
            continue;
        }
        graph.entry(top(from)).or_default().insert(top(to));
        seen.entry((top(from), top(to))).or_insert(where_.clone());
    }
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let s = &seen[&(w[0].clone(), w[1].clone())];
                format!(
                    "  {} uses {} ({}:{}: `{}`)",
                    w[0], w[1], s.file, s.line, s.path
                )
            })
            .collect();
        panic!(
            "top-level modules use each other in a cycle: {}\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        );
    }
}

#[test]
fn the_api_never_names_the_runtime_the_bindings_or_the_server() {
    let files = library();
    let mut offences = Vec::new();
    for (module, (file, text)) in &files {
        if module.first().map(String::as_str) != Some("api") {
            continue;
        }
        for word in NOT_IN_API {
            for (n, line) in text.lines().enumerate() {
                if line.contains(word) {
                    offences.push(format!("{file}:{}: `{word}`", n + 1));
                }
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    let diamond = graph(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]);
    assert_eq!(find_cycle(&diamond), None);
    let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")]))
        .expect("b -> c -> d -> b");
    assert_eq!(cycle, ["b", "c", "d", "b"]);
    assert_eq!(
        find_cycle(&graph(&[("x", "x")])),
        Some(vec!["x".to_string(), "x".to_string()])
    );
}

#[test]
fn paths_are_read_as_rustc_resolves_them() {
    let files: BTreeMap<Vec<String>, (String, String)> = [
        (vec![], ""),
        (vec!["runtime"], ""),
        (vec!["runtime", "host_calls"], ""),
        (vec!["runtime", "host_calls", "block"], ""),
        (vec!["runtime", "resources"], ""),
        (vec!["runtime", "since_v0_2_0"], ""),
        (vec!["volume"], ""),
        (vec!["api"], ""),
        (
            vec!["runtime", "load"],
            r##"
            //! Mentions crate::api in a comment, which does not count.
            use super::{host_calls::{self, BackendContext}, resources::BlockHandle as H};
            use crate::runtime::since_v0_2_0::ashlar::driver::types;
            const S: &str = "crate::api in a string";
            const R: &str = r#"crate::api in a "raw" string"#;
            fn f<'a>(x: &'a str) -> char { '"' }
            #[cfg(test)]
            mod tests {
                use super::super::super::volume::Volume;
                use super::*;
            }
            "##,
        ),
    ]
    .into_iter()
    .map(|(m, src)| {
        let m: Vec<String> = m.into_iter().map(String::from).collect();
        (m.clone(), (name(&m), src.to_string()))
    })
    .collect();
    let found: BTreeSet<(String, String)> = uses(&files).into_keys().collect();
    let want: BTreeSet<(String, String)> = [
        ("runtime::load", "runtime::host_calls"),
        ("runtime::load", "runtime::resources"),
        ("runtime::load", "runtime::since_v0_2_0"),
        ("runtime::load", "volume"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, want);
}
