//! Pipes for the `splice(2)` data path: socket → pipe → socket moves page references instead of copying bytes
//! through user space. Each worker thread keeps a small pool of empty pipes; a connection holds one only while
//! bytes sit in it (the writer lagging), so idle connections hold no pipe and no extra descriptors.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{splice, OFlag, SpliceFFlags};

/// Empty pipes kept per worker thread; more are closed when given back.
const POOL: usize = 64;

thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// A non-blocking pipe (read end, write end).
#[derive(Debug)]
pub struct Pipe {
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Pipe {
    /// An empty pipe from this thread's pool, or a new one; `None` when none can be had (out of
    /// descriptors, …): the caller copies instead.
    pub fn take() -> Option<Pipe> {
        if let Some(p) = PIPES.with(|p| p.borrow_mut().pop()) {
            return Some(p);
        }
        let (rx, tx) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
        Some(Pipe { rx, tx })
    }

    /// Gives an empty pipe back to this thread's pool (or closes it when the pool is full). Only call it with
    /// no bytes left in the pipe.
    pub fn give(self) {
        PIPES.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL {
                p.push(self);
            }
        });
    }

    /// Moves up to `len` bytes from the socket `from` into the pipe; `Ok(0)` is end of stream, `WouldBlock`
    /// that the socket has nothing now (the pipe is empty when this is called, so never that it is full).
    pub fn fill_from(&self, from: impl AsFd, len: usize) -> io::Result<usize> {
        splice(
            from,
            None,
            &self.tx,
            None,
            len,
            SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
        )
        .map_err(io::Error::from)
    }

    /// Moves up to `len` bytes (no more than the pipe holds) from the pipe to the socket `to`; `WouldBlock`
    /// means the socket's send buffer is full.
    pub fn drain_to(&self, to: impl AsFd, len: usize) -> io::Result<usize> {
        splice(
            &self.rx,
            None,
            to,
            None,
            len,
            SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
        )
        .map_err(io::Error::from)
    }
}
