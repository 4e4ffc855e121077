//! The bytes of deliveries handed to where records go (the output stage,
//! or JetStream with `--publish`) and not yet done with: one byte budget
//! that bounds them, counts who waits for it, and notes when the stage
//! behind it last made progress, for `/ready` and `/health`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, TryAcquireError};

/// A byte budget of pending deliveries. Listeners [`take`](Pending::take)
/// a delivery's weight before handing it over, and wait while the budget is
/// used up; the stage gives it back once the delivery is written (or
/// published) and acknowledged.
#[derive(Debug)]
pub struct Pending {
    budget: Semaphore,
    /// Its size, and the most one delivery takes.
    limit: u32,
    /// Listeners waiting for room now: one that needs more than is left
    /// waits without the budget being used up.
    waiters: AtomicU64,
    /// Nanoseconds listeners spent waiting for room.
    wait_ns: AtomicU64,
    /// When the stage last made progress (something written or published,
    /// or work handed to it while idle), in nanoseconds after `start`.
    progress_ns: AtomicU64,
    start: Instant,
}

/// Counts one waiter for as long as it lives, so a wait that is cancelled
/// is not counted forever.
struct Waiter<'a>(&'a AtomicU64);

impl<'a> Waiter<'a> {
    fn new(count: &'a AtomicU64) -> Waiter<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiter(count)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Pending {
    /// A budget of `limit` bytes (at least 1, at most `u32::MAX`).
    pub fn new(limit: usize) -> Pending {
        let limit = limit.clamp(1, u32::MAX as usize) as u32;
        Pending {
            budget: Semaphore::new(limit as usize),
            limit,
            waiters: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            progress_ns: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// Takes room for a delivery of `weight` bytes, waiting while there is
    /// not enough: what it took (to [`give_back`](Pending::give_back)), or
    /// `None` once the budget is closed. A delivery heavier than the whole
    /// budget takes all of it (and waits until everything else is done),
    /// so it cannot wait forever.
    pub async fn take(&self, weight: usize) -> Option<u32> {
        let n = (weight.min(self.limit as usize) as u32).max(1);
        if self.budget.available_permits() >= self.limit as usize {
            // An idle stage is handed work: the time it has to make
            // progress runs from now (see `Pending::stuck_for`).
            self.stamp();
        }
        let permit = match self.budget.try_acquire_many(n) {
            Ok(p) => Ok(p),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {
                let waited = Instant::now();
                let waiting = Waiter::new(&self.waiters);
                let p = self.budget.acquire_many(n).await;
                drop(waiting);
                self.wait_ns
                    .fetch_add(nanos(waited.elapsed()), Ordering::Relaxed);
                p
            }
        };
        // Given back by the stage once the delivery is done with.
        permit.ok()?.forget();
        Some(n)
    }

    /// Gives back what [`take`](Pending::take) took.
    pub fn give_back(&self, n: usize) {
        self.budget.add_permits(n);
    }

    /// Closes the budget: listeners waiting for room, and any later
    /// [`take`](Pending::take), get `None`.
    pub fn close(&self) {
        self.budget.close();
    }

    /// Notes that the stage made progress now.
    pub fn stamp(&self) {
        self.progress_ns
            .fetch_max(nanos(self.start.elapsed()), Ordering::Relaxed);
    }

    /// Bytes pending now.
    pub fn bytes(&self) -> usize {
        (self.limit as usize).saturating_sub(self.budget.available_permits())
    }

    /// The size of the budget.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Whether the budget is full: all of it is pending, or a listener
    /// waits for room (and reads nothing meanwhile).
    pub fn full(&self) -> bool {
        self.bytes() >= self.limit() || self.waiters.load(Ordering::Relaxed) > 0
    }

    /// Time listeners spent waiting for room.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.wait_ns.load(Ordering::Relaxed))
    }

    /// How long deliveries have been pending with no progress, beyond
    /// `window` (the time they wait by design); `None` while nothing is
    /// pending (an idle stage is not a stuck one).
    pub fn stuck_for(&self, window: Duration) -> Option<Duration> {
        // What is pending is read before the time of the last progress: a
        // sender to an idle stage stamps that time before it takes room.
        if self.bytes() == 0 {
            return None;
        }
        let since = Duration::from_nanos(self.progress_ns.load(Ordering::Relaxed));
        Some(
            self.start
                .elapsed()
                .saturating_sub(since)
                .saturating_sub(window),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_full_budget_makes_listeners_wait_and_counts_them() {
        let p = Arc::new(Pending::new(100));
        assert_eq!((p.bytes(), p.full()), (0, false));
        assert_eq!(p.stuck_for(Duration::ZERO), None);
        let before = Instant::now();
        assert_eq!(p.take(60).await, Some(60));
        assert_eq!((p.bytes(), p.full()), (60, false));
        // More than the whole budget takes all of it, once it is free.
        let waiting = {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.take(1_000).await })
        };
        while p.waiters.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(p.full(), "a waiter makes the budget full");
        // Pending since the first take (stamped then: the stage was idle),
        // with no progress since.
        std::thread::sleep(Duration::from_millis(5));
        let stuck = p.stuck_for(Duration::ZERO).unwrap();
        assert!(stuck >= Duration::from_millis(5), "{stuck:?}");
        assert!(stuck <= before.elapsed(), "{stuck:?}");
        assert!(p.stuck_for(Duration::from_secs(3600)).unwrap().is_zero());
        let stamped = Instant::now();
        p.stamp();
        assert!(p.stuck_for(Duration::ZERO).unwrap() <= stamped.elapsed());
        p.give_back(60);
        assert_eq!(waiting.await.unwrap(), Some(100));
        assert!(p.full());
        assert!(!p.waited().is_zero());
        p.give_back(100);
        assert_eq!((p.bytes(), p.full()), (0, false));
        p.close();
        assert_eq!(p.take(1).await, None);
    }
}
