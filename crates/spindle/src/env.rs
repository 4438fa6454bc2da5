//! Time, sleeping and randomness as inputs, so algorithms can be tested
//! with a fixed clock.

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// The host's wall clock (WASI `wall-clock` in the guest).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that says what it is told, for tests.
#[derive(Clone, Debug, Default)]
pub struct FixedClock(pub std::cell::Cell<u64>);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// Randomness. Session ids, lease tokens and jitter come from here.
pub trait Rng {
    fn fill(&self, buf: &mut [u8]);

    fn u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The host's CSPRNG (`wasi:random/random` in the guest, the OS elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&self, buf: &mut [u8]) {
        // A host without randomness cannot serve securely at all.
        getrandom::fill(buf).expect("the host provides no randomness");
    }
}

/// Deterministic bytes for tests (not random at all).
#[derive(Clone, Debug, Default)]
pub struct SeqRng(pub std::cell::Cell<u8>);

impl Rng for SeqRng {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf {
            let n = self.0.get();
            *b = n;
            self.0.set(n.wrapping_add(1));
        }
    }
}

/// Waiting, as an input: in the guest, a WASI timer registered with
/// spin-sdk's executor (`spin::WasiSleep`), so the request's other futures
/// (an SSE body, concurrent POSTs) run meanwhile; a timer in tests.
///
/// The waits the library bounds (a long poll, an SSE stream's life, a lease
/// wait, a write's bound) and how long a value read from the source is
/// trusted are measured on [`Sleep::monotonic_ms`], never on [`Clock`]: a
/// step of the wall clock (NTP on a busy VM) must neither cut a bounded wait
/// short nor stretch a trust window. The wall clock is for what other hosts
/// read: timestamps stored in Redis.
#[allow(async_fn_in_trait)]
pub trait Sleep {
    async fn sleep_ms(&self, ms: u64);
    /// Milliseconds on a monotonic clock, from any origin.
    fn monotonic_ms(&self) -> u64;
}
