//! Waiting on WASI pollables inside spin-sdk's executor, so the other futures
//! of a request (an SSE body, concurrent webhook POSTs) keep running.

use std::task::Poll;
use wasi::clocks::monotonic_clock;
use wasi::io::poll::Pollable;

/// A deadline on WASI's monotonic clock, in nanoseconds.
pub(crate) fn deadline_after_ms(ms: u64) -> u64 {
    monotonic_clock::now().saturating_add(ms.saturating_mul(1_000_000))
}

/// Waits until `pollable` (made fresh by `subscribe` on each poll) is ready,
/// or `deadline` (if any) passes. `true` when it became ready in time.
pub(crate) async fn ready_before(subscribe: impl Fn() -> Pollable, deadline: Option<u64>) -> bool {
    let mut tokens: Vec<spin_executor::CancelOnDropToken> = Vec::new();
    std::future::poll_fn(|cx| {
        tokens.clear();
        let pollable = subscribe();
        if pollable.ready() {
            return Poll::Ready(true);
        }
        if deadline.is_some_and(|d| monotonic_clock::now() >= d) {
            return Poll::Ready(false);
        }
        tokens.push(spin_executor::push_waker_and_get_token(pollable, cx.waker().clone()).into());
        if let Some(d) = deadline {
            let timer = monotonic_clock::subscribe_instant(d);
            tokens.push(spin_executor::push_waker_and_get_token(timer, cx.waker().clone()).into());
        }
        Poll::Pending
    })
    .await
}

/// Sleeps `ms` milliseconds without blocking the instance.
///
/// The end is read off the clock, not off a fresh pollable's `ready()`:
/// wasmtime-wasi 48 (the runner's) makes a deadline already in the past a
/// pollable that is *not* ready at its first check (it yields to tokio once),
/// so waiting for a fresh one to say ready would spin forever.
pub async fn sleep_ms(ms: u64) {
    let deadline = deadline_after_ms(ms);
    let mut token: Option<spin_executor::CancelOnDropToken> = None;
    std::future::poll_fn(|cx| {
        token = None;
        if monotonic_clock::now() >= deadline {
            return Poll::Ready(());
        }
        let timer = monotonic_clock::subscribe_instant(deadline);
        token = Some(spin_executor::push_waker_and_get_token(timer, cx.waker().clone()).into());
        Poll::Pending
    })
    .await
}

/// [`sleep_ms`] as the library's [`crate::env::Sleep`].
#[derive(Clone, Copy, Debug, Default)]
pub struct WasiSleep;

impl crate::env::Sleep for WasiSleep {
    async fn sleep_ms(&self, ms: u64) {
        sleep_ms(ms).await
    }

    fn monotonic_ms(&self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }
}
