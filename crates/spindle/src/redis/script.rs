use super::{Arg, Cmd};

/// A Lua script with its SHA-1 computed once, for EVALSHA.
///
/// Scripts must return flat arrays: Spin's outbound Redis flattens nested
/// arrays and rejects RESP3 maps.
#[derive(Clone, Debug)]
pub struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    pub fn new(source: &'static str) -> Self {
        Script { source, sha: sha1_smol::Sha1::from(source).digest().to_string() }
    }

    pub fn sha(&self) -> &str {
        &self.sha
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub(crate) fn evalsha(&self, keys: &[Arg], args: &[Arg]) -> Cmd {
        with_keys_and_args(Cmd::new("EVALSHA").arg(self.sha.as_str()), keys, args)
    }

    pub(crate) fn eval(&self, keys: &[Arg], args: &[Arg]) -> Cmd {
        with_keys_and_args(Cmd::new("EVAL").arg(self.source), keys, args)
    }
}

fn with_keys_and_args(cmd: Cmd, keys: &[Arg], args: &[Arg]) -> Cmd {
    cmd.arg(keys.len()).args_from(keys.iter().cloned()).args_from(args.iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_matches_redis_script_load() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        assert_eq!(Script::new("return 1").sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
