//! Bearer tokens: which are accepted, and what each may do.
//!
//! Tokens come from `--token` (one read-write token, as before) and from a
//! token file, which holds only SHA-256 hashes, one token per line:
//!
//! ```text
//! # scope     sha256 of the token (hex)                                         name
//! read-write  5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8  app
//! read-only   a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3  dashboard
//! metrics     6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b  prometheus
//! ```
//!
//! The name is optional and is what logs show. The file is read again on
//! SIGHUP and whenever its modification time, size or inode changes, so a
//! token is rotated by rewriting the file, without a restart. A file that
//! fails to parse on reload is ignored (the previous set stays, and the
//! failure is logged and counted): a typo must not lock every client out.
//!
//! Checking hashes the presented token and compares the digest with every
//! entry in constant time, so timing reveals neither which entry matched
//! nor how much of a token was right.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};

use crate::log::{self, Level};
use crate::metrics::{Event, Metrics};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Any command the gateway serves, and /metrics.
    ReadWrite,
    /// Read commands only (`command::is_read_only`), and /metrics.
    ReadOnly,
    /// /metrics only.
    Metrics,
}

impl Scope {
    fn parse(word: &str) -> Option<Scope> {
        match word {
            "read-write" => Some(Scope::ReadWrite),
            "read-only" => Some(Scope::ReadOnly),
            "metrics" => Some(Scope::Metrics),
            _ => None,
        }
    }
}

/// Who presented a valid token.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub scope: Scope,
    pub name: Arc<str>,
}

#[derive(Clone)]
struct Entry {
    hash: [u8; 32],
    identity: Identity,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Parses a token file. Errors name the line, never its content.
fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (scope, hex, name) = match fields[..] {
            [scope, hex] => (scope, hex, format!("line-{n}")),
            [scope, hex, name] => (scope, hex, name.to_owned()),
            _ => return Err(format!("line {n}: expected `<scope> <sha256-hex> [name]`")),
        };
        let scope = Scope::parse(scope).ok_or_else(|| {
            format!("line {n}: the scope must be read-write, read-only or metrics")
        })?;
        let hash = decode_hex(hex)
            .ok_or_else(|| format!("line {n}: expected 64 hex digits (a SHA-256 of the token)"))?;
        if entries.iter().any(|e| e.hash == hash) {
            return Err(format!("line {n}: the same token hash appears twice"));
        }
        entries.push(Entry {
            hash,
            identity: Identity {
                scope,
                name: name.into(),
            },
        });
    }
    Ok(entries)
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// What identifies a version of the token file on disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    // Follows symlinks, so a Kubernetes Secret volume's atomic swap of its
    // `..data` link shows up as a change.
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

pub(crate) struct Tokens {
    /// `--token`, as an entry.
    cli: Option<Entry>,
    file: Option<PathBuf>,
    current: RwLock<Arc<Vec<Entry>>>,
    stamp: Mutex<Option<Stamp>>,
    metrics: Arc<Metrics>,
}

impl Tokens {
    /// Loads the token file, if any. Fails if it cannot be read or parsed,
    /// or if there is no token at all.
    pub(crate) fn new(
        cli: Option<&str>,
        file: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let cli = match cli {
            Some("") => anyhow::bail!("the token must not be empty"),
            Some(token) => Some(Entry {
                hash: sha256(token.as_bytes()),
                identity: Identity {
                    scope: Scope::ReadWrite,
                    name: "cli".into(),
                },
            }),
            None => None,
        };
        let tokens = Tokens {
            cli,
            file,
            current: RwLock::new(Arc::new(Vec::new())),
            stamp: Mutex::new(None),
            metrics,
        };
        tokens.load().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            !tokens.entries().is_empty(),
            "no tokens: pass --token (or SPINDLE_REST_TOKEN) or a --token-file with at least one entry"
        );
        Ok(tokens)
    }

    fn entries(&self) -> Arc<Vec<Entry>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the file and installs its tokens; on error keeps the old set.
    fn load(&self) -> Result<usize, String> {
        let mut entries: Vec<Entry> = self.cli.iter().cloned().collect();
        if let Some(path) = &self.file {
            let before = stamp(path).map_err(|e| format!("cannot read the token file: {e}"))?;
            // Remembered even if this version is bad, so that it is not
            // retried (and reported) at every poll, only once it changes.
            *self
                .stamp
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(before);
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file: {e}"))?;
            let from_file = parse(&text).map_err(|e| format!("bad token file: {e}"))?;
            if let Some(cli) = &self.cli {
                if from_file.iter().any(|e| e.hash == cli.hash) {
                    return Err("bad token file: it repeats the --token token".into());
                }
            }
            entries.extend(from_file);
        }
        let n = entries.len();
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(entries);
        Ok(n)
    }

    /// Reloads the token file now (SIGHUP), logging and counting the result.
    pub(crate) fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.file else {
            return Ok(self.entries().len());
        };
        let result = self.load();
        match &result {
            Ok(n) => {
                self.metrics.event(Event::TokenReloadOk);
                let level = if *n == 0 { Level::Warn } else { Level::Info };
                log::event(level, "tokens reloaded", json!({"file": path, "tokens": n}));
            }
            Err(err) => {
                self.metrics.event(Event::TokenReloadFailed);
                log::event(
                    Level::Error,
                    "token reload failed; keeping the previous tokens",
                    json!({"file": path, "error": err}),
                );
            }
        }
        result
    }

    /// Reloads if the file changed on disk since the last load.
    pub(crate) fn reload_if_changed(&self) {
        let Some(path) = &self.file else { return };
        let now = stamp(path).ok();
        let last = *self
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A file that vanished (mid-rotation) is not a change: keep the
        // current tokens until a readable file appears.
        if now.is_some() && now != last {
            let _ = self.reload();
        }
    }

    /// The identity behind a presented token, if it is valid.
    pub(crate) fn check(&self, presented: &[u8]) -> Option<Identity> {
        let digest = sha256(presented);
        let entries = self.entries();
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in entries.iter().enumerate() {
            let equal = entry.hash.ct_eq(&digest);
            index.conditional_assign(&(i as u64), equal);
            found |= equal;
        }
        bool::from(found).then(|| entries[index as usize].identity.clone())
    }

    /// Tokens by scope: read-write, read-only, metrics.
    pub(crate) fn counts(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for e in self.entries().iter() {
            counts[match e.identity.scope {
                Scope::ReadWrite => 0,
                Scope::ReadOnly => 1,
                Scope::Metrics => 2,
            }] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(token: &str) -> String {
        sha256(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn sha256_is_the_standard_one() {
        // `printf %s password | sha256sum`
        assert_eq!(
            hex("password"),
            "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
        );
    }

    #[test]
    fn parses_the_file_format() {
        let text = format!(
            "# comment\n\n  read-write {} app\nread-only {}\nmetrics {} prom\n",
            hex("a"),
            hex("b").to_uppercase(),
            hex("c")
        );
        let entries = parse(&text).unwrap();
        let seen: Vec<(Scope, &str)> = entries
            .iter()
            .map(|e| (e.identity.scope, &*e.identity.name))
            .collect();
        assert_eq!(
            seen,
            [
                (Scope::ReadWrite, "app"),
                (Scope::ReadOnly, "line-4"),
                (Scope::Metrics, "prom")
            ]
        );
        for bad in [
            format!("admin {}", hex("a")),
            "read-write abc".to_owned(),
            format!("read-write {}x", hex("a")),
            format!("read-write {} name extra", hex("a")),
            format!("read-write {0}\nread-only {0}", hex("a")),
        ] {
            let Err(err) = parse(&bad) else {
                panic!("accepted a bad line")
            };
            assert!(err.starts_with("line "), "{err}");
            assert!(!err.contains(&hex("a")), "errors never echo a hash: {err}");
        }
    }

    #[test]
    fn checks_tokens_and_scopes() {
        let dir = std::env::temp_dir().join(format!("gw-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, format!("read-only {} ro\n", hex("ro-token"))).unwrap();
        let tokens =
            Tokens::new(Some("cli-token"), Some(file.clone()), Default::default()).unwrap();
        assert_eq!(tokens.check(b"cli-token").unwrap().scope, Scope::ReadWrite);
        let ro = tokens.check(b"ro-token").unwrap();
        assert_eq!((ro.scope, &*ro.name), (Scope::ReadOnly, "ro"));
        assert!(tokens.check(b"ro-tokeN").is_none());
        assert!(tokens.check(b"").is_none());
        assert_eq!(tokens.counts(), [1, 1, 0]);

        // A broken file keeps the previous set; a good one replaces it.
        std::fs::write(&file, "read-only nothex\n").unwrap();
        assert!(tokens.reload().is_err());
        assert!(tokens.check(b"ro-token").is_some());
        std::fs::write(&file, format!("metrics {} m\n", hex("new-token"))).unwrap();
        assert_eq!(tokens.reload(), Ok(2));
        assert!(tokens.check(b"ro-token").is_none());
        assert_eq!(tokens.check(b"new-token").unwrap().scope, Scope::Metrics);
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(Tokens::new(None, None, Default::default()).is_err());
        assert!(Tokens::new(Some(""), None, Default::default()).is_err());
    }
}
