//! Every component runs on Spin 3.x too, which is not installed here: each
//! built `.wasm` that `spin.toml` and `spin-worker.toml` name as a `source`
//! imports only interfaces that every Spin 3.x host provides, read with
//! `wasm-tools component wit` from the binary itself.
//!
//! The list below is the import side of Spin v3.0.0's WIT (the oldest 3.x:
//! what it has, every later 3.x has too), from github.com/spinframework/spin
//! at tag v3.0.0 (commit 737778e9d7dc1a7f590a398d2734ff0cc91002f0):
//! `wit/deps/{cli,clocks,filesystem,http,io,random,sockets}` (WASI 0.2.0),
//! `wit/deps/spin@2.0.0` (`fermyon:spin@2.0.0`) and
//! `wit/deps/spin-postgres@3.0.0` (`spin:postgres@3.0.0`), the packages that
//! `wit/world.wit`'s `fermyon:spin/platform@3.0.0` includes, plus the
//! unversioned `fermyon:spin/redis-types` of the Redis trigger (see `SPIN`).
//! WASI is taken at
//! any 0.2.x patch: wasmtime links a 0.2.x import to the host's 0.2 interface
//! by semver (the components built with spin-sdk 5.2 import 0.2.x patches
//! newer than 0.2.0; at the time of writing 0.2.12). The check is per
//! interface, not per function: a function added in a later 0.2.x patch
//! would pass here. Exports are not checked (the trigger decides them);
//! `wasi:http/incoming-handler` is an export of Spin's world, so not here.
//!
//! Needs `wasm-tools` (`cargo install --locked wasm-tools@1.263.0`;
//! scripts/lib.sh's ensure_test_tools installs it), on PATH or in
//! ~/.cargo/bin, and the components built
//! (`cargo build --target wasm32-wasip2 --release`).

use spindle_e2e::root;
use std::path::PathBuf;
use std::process::Command;

/// WASI 0.2 interfaces of Spin v3.0.0's WIT, as `package/interface`.
const WASI_0_2: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/run",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stderr",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:http/outgoing-handler",
    "wasi:http/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];

/// Spin's own interfaces of Spin v3.0.0's WIT, with their exact versions.
const SPIN: &[&str] = &[
    "fermyon:spin/key-value@2.0.0",
    "fermyon:spin/llm@2.0.0",
    "fermyon:spin/mqtt@2.0.0",
    "fermyon:spin/mysql@2.0.0",
    "fermyon:spin/postgres@2.0.0",
    "fermyon:spin/rdbms-types@2.0.0",
    "fermyon:spin/redis@2.0.0",
    "fermyon:spin/sqlite@2.0.0",
    "fermyon:spin/variables@2.0.0",
    "spin:postgres/postgres@3.0.0",
    // The one unversioned interface: the types of the Redis trigger's
    // unversioned `fermyon:spin/inbound-redis` export, which the worker
    // imports. Spin v3.0.0 has it in `wit/deps/spin@unversioned/redis-types.wit`
    // and links it (`crates/factor-outbound-redis/src/host.rs`:
    // `impl redis_types::Host`; `crates/trigger-redis` calls inbound-redis).
    "fermyon:spin/redis-types",
];

/// Whether Spin 3.x provides this import (`package/interface@version`).
fn provided(import: &str) -> bool {
    if SPIN.contains(&import) {
        return true;
    }
    let Some((name, version)) = import.split_once('@') else { return false };
    let patch = version.strip_prefix("0.2.");
    WASI_0_2.contains(&name) && patch.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// wasm-tools on PATH, else in ~/.cargo/bin; a clear failure without it.
fn wasm_tools() -> PathBuf {
    if Command::new("wasm-tools").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return PathBuf::from("wasm-tools");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cargo_bin = home.join(".cargo/bin/wasm-tools");
    if cargo_bin.is_file() {
        return cargo_bin;
    }
    panic!(
        "wasm-tools is not installed (neither on PATH nor at {}): \
         `cargo install --locked wasm-tools@1.263.0`, or run scripts/test.sh, whose set-up installs it",
        cargo_bin.display()
    );
}

/// The `source` of every component of a manifest.
fn sources(manifest: &str) -> Vec<(String, PathBuf)> {
    let path = root().join(manifest);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let components = doc["component"].as_table().expect("[component.*]");
    components
        .iter()
        .map(|(id, c)| {
            let source = c["source"].as_str().unwrap_or_else(|| panic!("{manifest}: {id}: source is not a path"));
            (format!("{manifest}: {id}"), root().join(source))
        })
        .collect()
}

/// The imports of the component's world, as printed by
/// `wasm-tools component wit`: `import <interface>;` lines of `world root`;
/// any other kind of import (a bare function, an inline interface) is
/// returned whole, so it fails the check.
fn imports(wasm_tools: &PathBuf, wasm: &PathBuf) -> Vec<String> {
    let out = Command::new(wasm_tools)
        .arg("component")
        .arg("wit")
        .arg(wasm)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", wasm_tools.display()));
    assert!(
        out.status.success(),
        "wasm-tools component wit {}: {}",
        wasm.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let wit = String::from_utf8(out.stdout).expect("WIT text");
    let mut in_world = false;
    let mut found_world = false;
    let mut imports = Vec::new();
    for line in wit.lines() {
        if !in_world {
            if line.starts_with("world ") && line.trim_end().ends_with('{') {
                in_world = true;
                found_world = true;
            }
            continue;
        }
        if line == "}" {
            in_world = false;
            continue;
        }
        if let Some(rest) = line.trim().strip_prefix("import ") {
            imports.push(rest.trim_end_matches(';').trim().to_owned());
        }
    }
    assert!(found_world, "{}: no world in wasm-tools' output:\n{wit}", wasm.display());
    imports
}

#[test]
fn every_component_imports_only_what_spin_3_provides() {
    let tool = wasm_tools();
    let mut components = sources("spin.toml");
    components.extend(sources("spin-worker.toml"));
    assert!(components.len() >= 7, "the manifests name {} components", components.len());
    let mut bad = Vec::new();
    for (name, wasm) in &components {
        assert!(
            wasm.is_file(),
            "{name}: {} is not built: `cargo build --target wasm32-wasip2 --release`",
            wasm.display()
        );
        let imports = imports(&tool, wasm);
        // Every component reaches at least WASI I/O; none at all means the
        // parse went wrong, not that the component is pure.
        assert!(!imports.is_empty(), "{name}: no imports read from {}", wasm.display());
        for import in imports {
            if !provided(&import) {
                bad.push(format!("{name} ({}): imports {import}", wasm.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that Spin 3.x (v3.0.0's WIT) does not provide:\n  {}\n\
         allowed: wasi:* 0.2.x {WASI_0_2:?} and {SPIN:?}",
        bad.join("\n  ")
    );
}

/// The check itself: what it lets through and what it refuses. Spin 3.0.0
/// also has the drafts `wasi:keyvalue@0.2.0-draft2` and
/// `wasi:config@0.2.0-draft-2024-09-27`; they are left out on purpose (not
/// WASI 0.2, and changed in later 3.x).
#[test]
fn the_allow_list_admits_only_the_listed_interfaces() {
    assert!(provided("wasi:io/poll@0.2.6"));
    assert!(provided("fermyon:spin/sqlite@2.0.0"));
    assert!(provided("spin:postgres/postgres@3.0.0"));
    assert!(!provided("wasi:io/poll@0.3.0"));
    assert!(!provided("wasi:io/poll@0.2.0-rc-2023-10-18"));
    assert!(!provided("wasi:keyvalue/store@0.2.0-draft2"));
    assert!(!provided("fermyon:spin/sqlite@3.0.0"));
    assert!(!provided("fermyon:spin/sqlite"));
    assert!(!provided("spin:sqlite/sqlite@3.0.0"));
    assert!(!provided("spin:postgres/postgres@4.0.0"));
    assert!(!provided("wasi:http/incoming-handler@0.2.6"));
    assert!(!provided("my-func: func()"));
}
