use super::{Arg, Cmd};

/// A Lua script, its SHA-1 computed at compile time, for EVALSHA.
///
/// Scripts must return flat arrays: Spin's outbound Redis flattens nested
/// arrays and rejects RESP3 maps. Each is declared once, with
/// [`crate::scripts!`], which also lists it for the golden tests
/// ([`crate::all_scripts`]).
#[derive(Clone, Copy, Debug)]
pub struct Script {
    name: &'static str,
    source: &'static str,
    sha: [u8; 40],
}

impl Script {
    pub const fn new(name: &'static str, source: &'static str) -> Self {
        Script { name, source, sha: sha1_hex(source.as_bytes()) }
    }

    /// `module/script`, for the golden tests and logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn sha(&self) -> &str {
        std::str::from_utf8(&self.sha).unwrap_or_default()
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub(crate) fn evalsha(&self, keys: &[Arg], args: &[Arg]) -> Cmd {
        with_keys_and_args(Cmd::new("EVALSHA").arg(self.sha()), keys, args)
    }

    pub(crate) fn eval(&self, keys: &[Arg], args: &[Arg]) -> Cmd {
        with_keys_and_args(Cmd::new("EVAL").arg(self.source), keys, args)
    }
}

fn with_keys_and_args(cmd: Cmd, keys: &[Arg], args: &[Arg]) -> Cmd {
    cmd.arg(keys.len()).args_from(keys.iter().cloned()).args_from(args.iter().cloned())
}

/// Declares a module's scripts once: each becomes a `const` [`Script`], and
/// `SCRIPTS` lists them all for the registry.
///
/// ```ignore
/// spindle::scripts! {
///     /// Creates a session and indexes it under its user.
///     pub CREATE = ("session/create", include_str!("create.lua"));
/// }
/// ```
#[macro_export]
macro_rules! scripts {
    ($($(#[$doc:meta])* $vis:vis $name:ident = ($id:literal, $src:expr);)+) => {
        $($(#[$doc])* $vis const $name: $crate::redis::Script = $crate::redis::Script::new($id, $src);)+
        /// Every script of this module, for the registry ([`crate::all_scripts`]).
        pub const SCRIPTS: &[$crate::redis::Script] = &[$($name),+];
    };
}

/// SHA-1 (FIPS 180-4) as lower-case hex, in a `const fn`, so a script's
/// digest costs nothing at run time (Spin instantiates a component per
/// request).
const fn sha1_hex(data: &[u8]) -> [u8; 40] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    // Message, 0x80, zeros, then the 64-bit length: a whole number of blocks.
    let blocks = (data.len() + 9).div_ceil(64);
    let mut block = 0;
    while block < blocks {
        let mut w = [0u32; 80];
        let mut i = 0;
        while i < 16 {
            let mut word = 0u32;
            let mut j = 0;
            while j < 4 {
                let at = block * 64 + i * 4 + j;
                let byte = if at < data.len() {
                    data[at]
                } else if at == data.len() {
                    0x80
                } else if at >= blocks * 64 - 8 {
                    (bit_len >> (8 * (blocks * 64 - 1 - at))) as u8
                } else {
                    0
                };
                word = (word << 8) | byte as u32;
                j += 1;
            }
            w[i] = word;
            i += 1;
        }
        while i < 80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            i += 1;
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        let mut t = 0;
        while t < 80 {
            let (f, k) = match t / 20 {
                0 => ((b & c) | (!b & d), 0x5A82_7999),
                1 => (b ^ c ^ d, 0x6ED9_EBA1),
                2 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let temp = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(w[t]);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
            t += 1;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
        block += 1;
    }
    let hex = b"0123456789abcdef";
    let mut out = [0u8; 40];
    let mut i = 0;
    while i < 20 {
        let byte = (h[i / 4] >> (24 - 8 * (i % 4))) as u8;
        out[2 * i] = hex[(byte >> 4) as usize];
        out[2 * i + 1] = hex[(byte & 15) as usize];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_matches_redis_script_load() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        assert_eq!(Script::new("t", "return 1").sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }

    #[test]
    fn the_const_sha1_agrees_with_sha1_smol_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(sha1_hex(&data[..n]).as_slice(), sha1_smol::Sha1::from(&data[..n]).digest().to_string().as_bytes(), "length {n}");
        }
    }
}
