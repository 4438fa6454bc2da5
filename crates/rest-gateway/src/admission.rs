//! Back-pressure: at most `max_in_flight` requests talk to Redis at once,
//! at most `max_queue` more wait for a turn, and none waits longer than
//! `max_wait`. Anything beyond is refused at once (a 503 with
//! `Retry-After`), so an overloaded or stalled Redis shows up as fast
//! refusals, never as a pile of requests that wait without bound.
//!
//! The bound on requests in flight is also the bound on commands pipelined
//! onto each Redis connection (one multiplexed connection per server).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

pub(crate) struct Admission {
    permits: Semaphore,
    max_in_flight: usize,
    waiting: AtomicUsize,
    max_queue: usize,
    max_wait: Duration,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    QueueFull,
    WaitedTooLong,
}

impl Admission {
    pub(crate) fn new(max_in_flight: usize, max_queue: usize, max_wait: Duration) -> Self {
        Admission {
            permits: Semaphore::new(max_in_flight),
            max_in_flight,
            waiting: AtomicUsize::new(0),
            max_queue,
            max_wait,
        }
    }

    /// A turn to talk to Redis; held until the returned permit is dropped.
    pub(crate) async fn admit(&self) -> Result<SemaphorePermit<'_>, Rejected> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::QueueFull);
        }
        let waited = tokio::time::timeout(self.max_wait, self.permits.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            // The semaphore is never closed.
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Rejected::WaitedTooLong),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub(crate) fn max_queue(&self) -> usize {
        self.max_queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_flight_queue_and_wait() {
        let admission = Admission::new(2, 1, Duration::from_millis(50));
        let a = admission.admit().await.unwrap();
        let _b = admission.admit().await.unwrap();
        assert_eq!(admission.in_flight(), 2);
        // The third waits (the queue holds one) and times out; while it
        // waits, a fourth finds the queue full and is refused at once.
        let third = admission.admit();
        tokio::pin!(third);
        assert!(futures_poll_once(&mut third).await.is_none());
        assert_eq!(admission.waiting(), 1);
        assert_eq!(admission.admit().await.unwrap_err(), Rejected::QueueFull);
        assert_eq!(third.await.unwrap_err(), Rejected::WaitedTooLong);
        assert_eq!(admission.waiting(), 0);
        // A waiter gets the turn a finished request gives back.
        let waiter = admission.admit();
        tokio::pin!(waiter);
        assert!(futures_poll_once(&mut waiter).await.is_none());
        drop(a);
        assert!(waiter.await.is_ok());
    }

    /// Polls a future once; `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        use std::task::Poll;
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }
}
