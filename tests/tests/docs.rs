//! The documentation against the code, so it cannot rot:
//!
//! - `docs/variables.md` lists exactly the `[variables]` of `spin.toml` and
//!   `spin-worker.toml`, with their defaults and secret flags;
//! - `docs/routes.md` lists exactly the routes of the components' `routes!`
//!   tables (method set and path);
//! - every relative link in `README.md` and `docs/*.md` names a file that
//!   exists (`docs/benchmarks.md` may be absent: another branch writes it),
//!   and every fragment into these pages names a heading or anchor there;
//! - the README's tour runs: each line of its `sh` block, pasted as a
//!   newcomer would, against the app on the host `SPINDLE_HOST` selects
//!   (TCP), exits 0 and prints the status its comment promises.

use spindle_e2e::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cells of a markdown table row, trimmed; `None` for a line that is
/// not a row. `\|` inside a cell is not a separator.
fn cells(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    if !line.starts_with('|') || !line.ends_with('|') || line.len() < 2 {
        return None;
    }
    let inner = &line[1..line.len() - 1];
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => out.last_mut().unwrap().push(chars.next().unwrap()),
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    Some(out.into_iter().map(|c| c.trim().to_owned()).collect())
}

/// A cell that is one code span, `x`: its text.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`').filter(|s| !s.contains('`'))
}

/// The markdown between `## <title>` and the next `## ` heading.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc.find(&format!("\n## {title}\n")).unwrap_or_else(|| panic!("no section {title:?}"));
    let rest = &doc[start + 1..];
    let body = rest.split_once('\n').map(|(_, b)| b).unwrap_or("");
    match body.find("\n## ") {
        Some(end) => &body[..end],
        None => body,
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Var {
    default: String,
    secret: bool,
}

fn manifest_variables(manifest: &str) -> BTreeMap<String, Var> {
    let doc: toml::Table = read(&root().join(manifest)).parse().unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let vars = doc["variables"].as_table().unwrap_or_else(|| panic!("{manifest}: no [variables]"));
    vars.iter()
        .map(|(name, v)| {
            let t = v.as_table().unwrap_or_else(|| panic!("{manifest}: {name} is not a table"));
            let default = t.get("default").and_then(|d| d.as_str()).unwrap_or_else(|| panic!("{manifest}: {name} has no default"));
            let secret = t.get("secret").map(|s| s.as_bool().expect("secret is a boolean")).unwrap_or(false);
            (name.clone(), Var { default: default.to_owned(), secret })
        })
        .collect()
}

/// variables.md's table under `## <manifest>`: name → default and secret.
fn documented_variables(doc: &str, manifest: &str) -> BTreeMap<String, Var> {
    let mut out = BTreeMap::new();
    for row in section(doc, manifest).lines().filter_map(cells) {
        let Some(name) = row.first().and_then(|c| code(c)) else { continue };
        assert!(row.len() >= 4, "variables.md, {manifest}: the row of {name} needs variable | default | secret | meaning");
        let default = match row[1].as_str() {
            "empty" => String::new(),
            d => code(d).unwrap_or_else(|| panic!("variables.md, {manifest}: {name}'s default {d:?} is neither `value` nor empty")).to_owned(),
        };
        let secret = match row[2].as_str() {
            "yes" => true,
            "no" => false,
            s => panic!("variables.md, {manifest}: {name}'s secret column is {s:?}, not yes or no"),
        };
        assert!(!row[3].is_empty(), "variables.md, {manifest}: {name} has no meaning");
        let previous = out.insert(name.to_owned(), Var { default, secret });
        assert!(previous.is_none(), "variables.md, {manifest}: {name} is listed twice");
    }
    out
}

#[test]
fn variables_md_matches_both_manifests() {
    let doc = read(&root().join("docs/variables.md"));
    for manifest in ["spin.toml", "spin-worker.toml"] {
        let declared = manifest_variables(manifest);
        let documented = documented_variables(&doc, manifest);
        assert!(declared.len() > 5, "{manifest}: only {} variables parsed", declared.len());
        for (name, var) in &declared {
            match documented.get(name) {
                None => panic!("docs/variables.md, {manifest}: {name} is declared but not documented"),
                Some(d) => assert_eq!(d, var, "docs/variables.md, {manifest}: {name} (documented vs declared)"),
            }
        }
        for name in documented.keys() {
            assert!(declared.contains_key(name), "docs/variables.md, {manifest}: {name} is documented but not declared");
        }
    }
}

/// A route: its methods, sorted, and its path.
type RouteKey = (Vec<String>, String);

/// The `routes![…]` tables of every component, as their source declares
/// them: `METHOD[|METHOD…] "path" [(limit)] => [stream] handler`, comma-separated.
fn route_tables() -> BTreeMap<RouteKey, String> {
    let mut out = BTreeMap::new();
    let mut tables = 0;
    for entry in std::fs::read_dir(root().join("components")).unwrap() {
        let lib = entry.unwrap().path().join("src/lib.rs");
        if !lib.exists() {
            continue;
        }
        let src = read(&lib);
        let Some(start) = src.find("routes![") else { continue };
        tables += 1;
        let body = &src[start + "routes![".len()..];
        let body = &body[..body.find(']').expect("the route table ends")];
        for item in body.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (methods, rest) = item.split_once('"').unwrap_or_else(|| panic!("{}: cannot read route {item:?}", lib.display()));
            let path = rest.split_once('"').expect("a closing quote").0;
            let mut methods: Vec<String> = methods.trim().split('|').map(|m| m.trim().to_owned()).collect();
            assert!(methods.iter().all(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase())), "{}: methods of {item:?}", lib.display());
            methods.sort();
            out.insert((methods, path.to_owned()), lib.display().to_string());
        }
    }
    assert!(tables >= 6, "found {tables} route tables");
    out
}

/// routes.md's route rows: a method cell of upper-case names (`GET, HEAD`)
/// and a path cell that is one code span. `any` rows (the 404 catch-alls)
/// are not routes of a table.
fn documented_routes() -> BTreeSet<RouteKey> {
    let doc = read(&root().join("docs/routes.md"));
    let mut out = BTreeSet::new();
    for row in doc.lines().filter_map(cells) {
        if row.len() < 3 {
            continue;
        }
        let methods: Vec<&str> = row[0].split(',').map(str::trim).collect();
        if !methods.iter().all(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase())) {
            continue;
        }
        let Some(path) = code(&row[1]) else { continue };
        let mut methods: Vec<String> = methods.into_iter().map(str::to_owned).collect();
        methods.sort();
        assert!(out.insert((methods, path.to_owned())), "docs/routes.md lists {} twice", row[1]);
    }
    out
}

#[test]
fn routes_md_lists_exactly_the_route_tables() {
    let tables = route_tables();
    let documented = documented_routes();
    for ((methods, path), file) in &tables {
        assert!(documented.contains(&(methods.clone(), path.clone())), "docs/routes.md lacks {} {path} (from {file})", methods.join(", "));
    }
    for (methods, path) in &documented {
        assert!(tables.contains_key(&(methods.clone(), path.clone())), "docs/routes.md lists {} {path}, which no route table declares", methods.join(", "));
    }
}

/// Every `](target)` of a markdown file.
fn links(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// The anchors of a page: GitHub's slug of every heading (lower case,
/// punctuation but `-` and `_` dropped, spaces as `-`) and every `<a id="…">`.
fn anchors(doc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(title) = line.strip_prefix('#').map(|t| t.trim_start_matches('#')).filter(|t| t.starts_with(' ')) {
            let slug: String = title
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            out.insert(slug);
        }
        let mut rest = line;
        while let Some(i) = rest.find("<a id=\"") {
            rest = &rest[i + 7..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut files: Vec<PathBuf> = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    assert!(files.len() > 10, "{} files", files.len());
    let canonical_files: Vec<PathBuf> = files.iter().map(|f| f.canonicalize().unwrap()).collect();
    let mut checked = 0;
    for file in &files {
        for link in links(&read(file)) {
            let target = link.split_whitespace().next().unwrap_or("");
            if target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let resolved = file.parent().unwrap().join(path);
            let benchmarks = resolved.ends_with("docs/benchmarks.md") || resolved == root().join("docs").join("benchmarks.md");
            checked += 1;
            assert!(resolved.exists() || benchmarks, "{}: the link {link:?} names no file ({})", file.display(), resolved.display());
            // A fragment into one of these pages names a heading or an anchor there.
            let canonical = resolved.canonicalize().ok();
            if !fragment.is_empty() && canonical.as_ref().is_some_and(|c| canonical_files.contains(c)) {
                assert!(anchors(&read(&resolved)).contains(fragment), "{}: the link {link:?} names no anchor in {}", file.display(), resolved.display());
            }
        }
        // Links within the page.
        let doc = read(file);
        let own = anchors(&doc);
        for link in links(&doc) {
            if let Some(fragment) = link.strip_prefix('#') {
                assert!(own.contains(fragment), "{}: the link {link:?} names no anchor in it", file.display());
            }
        }
    }
    assert!(checked > 30, "only {checked} relative links");
}

/// The README's tour: the first `sh` block after `## A short tour`.
fn tour() -> Vec<String> {
    let readme = read(&root().join("README.md"));
    let body = section(&readme, "A short tour");
    let block = body.split_once("```sh\n").expect("the tour has an sh block").1;
    let block = block.split_once("```").expect("the block ends").0;
    block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// The status a tour line's comment promises: `# → 201`.
fn expected_status(line: &str) -> Option<String> {
    let after = line.split_once("# → ")?.1;
    let code: String = after.chars().take_while(char::is_ascii_digit).collect();
    (code.len() == 3).then_some(code)
}

/// Whether the output shows `code`: as its last line (`-w '%{http_code}'`)
/// or on a status line (`HTTP/1.1 201 Created`).
fn shows_status(out: &str, code: &str) -> bool {
    let last = out.lines().map(str::trim).filter(|l| !l.is_empty()).last();
    last == Some(code) || out.lines().any(|l| l.starts_with("HTTP/") && l.split_whitespace().nth(1) == Some(code))
}

#[tokio::test]
async fn the_readme_tour_runs_line_by_line() {
    let lines = tour();
    assert!(lines.len() >= 8, "the tour has {} lines", lines.len());
    assert!(lines.iter().all(|l| l.contains("${BASE:-http://127.0.0.1:3000}")), "every tour line takes its base URL from $BASE");
    let b = Backend::start(Transport::Tcp);
    let db = TempDir::new();
    let mut variables = b.variables();
    variables.push(("session_secrets", "docs-tour-secret-0123456789abcdef".into()));
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
    let base = rt.url("");
    let jar = db.0.join("cookies");
    for line in &lines {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .env("BASE", &base)
            .env("JAR", &jar)
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("$ {line}\n{stdout}");
        assert!(out.status.success(), "the tour line\n  {line}\nexited {:?}\nstdout: {stdout}\nstderr: {}\nhost log:\n{}", out.status, String::from_utf8_lossy(&out.stderr), rt.log());
        if let Some(code) = expected_status(line) {
            assert!(shows_status(&stdout, &code), "the tour line\n  {line}\npromises {code}, printed:\n{stdout}");
        }
    }
    assert_declared(&rt.log());
}
