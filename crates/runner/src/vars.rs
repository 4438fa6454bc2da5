//! Application variables: declarations, providers and `{{ name }}` templates.
//!
//! Providers, highest priority first, as in Spin: `--variable k=v`, then the
//! environment (`SPIN_VARIABLE_K`), then the manifest default.

use crate::manifest::{check_variable_name, Manifest};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};

/// Resolved application variables.
/// Values are never logged: several are secrets.
pub struct Variables {
    values: HashMap<String, String>,
}

impl Variables {
    pub fn resolve(manifest: &Manifest, cli: &[(String, String)], env: &HashMap<String, String>) -> Result<Self> {
        let mut values = HashMap::new();
        for (name, decl) in &manifest.variables {
            let env_key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = cli
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| env.get(&env_key).cloned())
                .or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => bail!("required variable {name:?} has no value (set --variable {name}=… or {env_key})"),
            }
        }
        for (k, _) in cli {
            if !manifest.variables.contains_key(k) {
                bail!("--variable {k}: no such variable in the manifest");
            }
        }
        Ok(Variables { values })
    }

    /// Expands `{{ name }}` references to application variables.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").with_context(|| format!("unclosed {{{{ in {template:?}"))?;
            let name = rest[start + 2..start + end].trim();
            let v = self.values.get(name).with_context(|| format!("template {template:?} names unknown variable {name:?}"))?;
            out.push_str(v);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves a component's `[component.x.variables]` table.
    pub fn for_component(&self, table: &BTreeMap<String, String>) -> Result<HashMap<String, String>> {
        table
            .iter()
            .map(|(k, t)| {
                check_variable_name(k)?;
                Ok((k.clone(), self.expand(t).with_context(|| format!("component variable {k}"))?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        toml::from_str(
            r#"spin_manifest_version = 2
            [application]
            name = "x"
            [variables]
            a = { default = "1" }
            b = { required = true, secret = true }"#,
        )
        .unwrap()
    }

    #[test]
    fn precedence_cli_env_default() {
        let m = manifest();
        let env: HashMap<_, _> = [("SPIN_VARIABLE_B".to_string(), "env".to_string()), ("SPIN_VARIABLE_A".into(), "enva".into())].into();
        let v = Variables::resolve(&m, &[("a".into(), "cli".into())], &env).unwrap();
        assert_eq!(v.expand("{{ a }}-{{b}}").unwrap(), "cli-env");
        assert!(Variables::resolve(&m, &[], &HashMap::new()).is_err(), "b is required");
        assert!(Variables::resolve(&m, &[("zz".into(), "1".into())], &env).is_err());
        assert!(v.expand("{{ nope }}").is_err());
    }
}
