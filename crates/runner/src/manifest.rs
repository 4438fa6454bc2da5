//! The Spin application manifest (v2): the subset this runner supports.
//!
//! Every table is parsed with `deny_unknown_fields`, so a field the runner
//! does not implement is an error that names it, never silently ignored.
//! Some fields are accepted (so real manifests load) but not acted on:
//! descriptions, ids, authors and `build`, which is `spin build`'s business.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub trigger: AppTriggerConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTriggerConfig {
    pub redis: Option<AppRedisConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRedisConfig {
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(default)]
    pub redis: Vec<RedisTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    pub id: Option<String>,
    pub route: Route,
    pub component: String,
    pub executor: Option<Executor>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Route {
    Path(String),
    Private(PrivateRoute),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateRoute {
    pub private: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executor {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTrigger {
    pub id: Option<String>,
    pub address: Option<String>,
    pub channel: String,
    pub component: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub source: String,
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub build: Option<Build>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub command: String,
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// A variable name: lowercase letters, digits and `_`, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("invalid variable name {name:?}: use lowercase letters, digits and _ , starting with a letter");
    }
    Ok(())
}

/// A loaded manifest and the directory its relative paths start from.
pub struct App {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

impl App {
    pub fn load(path: &Path) -> Result<App> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest =
            toml::from_str(&text).with_context(|| format!("{}: unsupported or invalid manifest", path.display()))?;
        if manifest.spin_manifest_version != 2 {
            bail!("spin_manifest_version must be 2");
        }
        for (name, v) in &manifest.variables {
            check_variable_name(name)?;
            if v.default.is_some() && v.required {
                bail!("variable {name}: `default` and `required` are mutually exclusive");
            }
            if v.default.is_none() && !v.required {
                bail!("variable {name}: needs a `default` or `required = true`");
            }
        }
        let known = |c: &str| manifest.component.contains_key(c);
        for t in &manifest.trigger.http {
            if !known(&t.component) {
                bail!("trigger.http route {:?}: unknown component {:?}", t.route, t.component);
            }
            if let Some(e) = &t.executor {
                if e.kind != "spin" {
                    bail!("trigger.http executor type {:?} is not supported (only \"spin\")", e.kind);
                }
            }
        }
        for t in &manifest.trigger.redis {
            if !known(&t.component) {
                bail!("trigger.redis channel {:?}: unknown component {:?}", t.channel, t.component);
            }
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Ok(App { manifest, dir })
    }

    pub fn source_path(&self, component: &Component) -> PathBuf {
        self.dir.join(&component.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Manifest, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn rejects_unknown_fields_by_name() {
        let err = parse(
            r#"spin_manifest_version = 2
            [application]
            name = "x"
            [component.a]
            source = "a.wasm"
            key_value_stores = ["default"]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key_value_stores"), "{err}");
    }

    #[test]
    fn variable_names_are_checked() {
        assert!(check_variable_name("redis_url").is_ok());
        assert!(check_variable_name("Redis").is_err());
        assert!(check_variable_name("1a").is_err());
    }

    #[test]
    fn parses_routes_and_private_routes() {
        let m = parse(
            r#"spin_manifest_version = 2
            [application]
            name = "x"
            [[trigger.http]]
            route = "/a/..."
            component = "a"
            [[trigger.http]]
            route = { private = true }
            component = "a"
            [component.a]
            source = "a.wasm""#,
        )
        .unwrap();
        assert!(matches!(&m.trigger.http[0].route, Route::Path(p) if p == "/a/..."));
        assert!(matches!(&m.trigger.http[1].route, Route::Private(_)));
    }
}
