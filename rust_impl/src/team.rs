//! What the training threads share: a spinning barrier and the rule that splits work among them.
//!
//! A step of this job takes about 100 µs and the threads meet twice per step, so handing work
//! over must cost far less than waking a sleeping thread. These barriers spin (the threads stay
//! awake for one `train_steps` call), and fall back to yielding the CPU so that more threads than
//! cores still make progress. `cargo run --release --example kernels` times them against
//! `rayon::join` on the same two halves of the products.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The part of `0..len` that member `member` of a team of `size` takes: contiguous, and no part
/// more than one longer than another.
pub fn share(len: usize, size: usize, member: usize) -> Range<usize> {
    assert!(member < size, "member {member} of a team of {size}");
    let (base, extra) = (len / size, len % size);
    let start = member * base + member.min(extra);
    start..start + base + usize::from(member < extra)
}

/// A reusable barrier for a fixed number of threads that waits by spinning.
///
/// If a member panics while others wait, the waiters panic too instead of spinning forever (the
/// member holds a [`PanicGuard`] while it works).
pub struct SpinBarrier {
    size: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

/// Spins before each yield: a few µs, about the longest wait between two phases of a step.
const SPINS_BEFORE_YIELD: u32 = 1 << 12;

impl SpinBarrier {
    pub fn new(size: usize) -> Self {
        assert!(size >= 1, "a barrier needs at least one thread");
        SpinBarrier {
            size,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Returns once all `size` threads have called `wait` for this round.
    ///
    /// # Panics
    /// When another member panicked.
    pub fn wait(&self) {
        if self.size == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.size {
            self.arrived.store(0, Ordering::Relaxed);
            // Release: everything written before the barrier is visible to whoever sees the
            // new generation.
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Relaxed) {
                panic!("another training thread panicked");
            }
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Marks the barrier poisoned if the current thread unwinds while the guard lives.
    pub fn guard(&self) -> PanicGuard<'_> {
        PanicGuard(self)
    }
}

pub struct PanicGuard<'a>(&'a SpinBarrier);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn shares_cover_the_range_in_order_and_differ_by_at_most_one() {
        for len in [0, 1, 7, 50, 100, 784] {
            for size in 1..=5 {
                let parts: Vec<_> = (0..size).map(|m| share(len, size, m)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, len);
                assert!(parts.windows(2).all(|p| p[0].end == p[1].start));
                let lens: Vec<_> = parts.iter().map(|p| p.len()).collect();
                assert!(
                    lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1,
                    "{lens:?}"
                );
            }
        }
    }

    #[test]
    fn no_thread_passes_the_barrier_before_all_arrive() {
        // Each round every thread adds 1, waits, then checks that all adds of the round are in.
        for threads in [2, 3, 5] {
            let barrier = SpinBarrier::new(threads);
            let count = AtomicU64::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for round in 1..=200u64 {
                            count.fetch_add(1, Ordering::SeqCst);
                            barrier.wait();
                            assert!(count.load(Ordering::SeqCst) >= round * threads as u64);
                            barrier.wait();
                        }
                    });
                }
            });
            assert_eq!(count.into_inner(), 200 * threads as u64);
        }
    }

    #[test]
    fn a_panicking_member_releases_the_waiters() {
        let barrier = SpinBarrier::new(2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _guard = barrier.guard();
                    panic!("bug in a member");
                });
                let _guard = barrier.guard();
                barrier.wait(); // would spin forever without the poison flag
            });
        }));
        assert!(result.is_err());
    }
}
