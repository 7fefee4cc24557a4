//! Which serving thread this is. The gate runs one current-thread runtime per core (each with its own
//! `SO_REUSEPORT` listener, nginx's process-per-core model); per-thread state such as the upstream connection
//! pools and the session cache is indexed by the thread's number so requests never wake another thread.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as serving thread `i` (the main thread is 0).
pub fn set(i: usize) {
    INDEX.with(|c| c.set(i));
}

/// The current thread's number (0 outside serving threads), reduced modulo `n` (at least 1).
pub fn index(n: usize) -> usize {
    INDEX.with(Cell::get) % n.max(1)
}

/// Serving threads to run when the config does not say: one per available core.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
