//! Shared by the fuzz targets: the oracles (one file with the property
//! tests in crates/spindle/tests, so both layers check against one reading
//! of each grammar) and a cursor over the fuzzer's bytes.

#[path = "../../crates/spindle/tests/oracles/mod.rs"]
mod oracles;
pub use oracles::*;

/// A cursor over the fuzzer's bytes, for structure-aware targets.
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    pub fn str(&mut self, max: usize) -> String {
        let n = self.byte() as usize % (max + 1);
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}
