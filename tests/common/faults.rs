//! `FaultyTransport`: an `embedded_io_async` `Read + Write` wrapper that
//! injects scripted transport failures around an inner transport.
//!
//! The script lives behind a [`FaultHandle`] the test keeps, so faults can
//! be armed at any moment (after CONNACK, say) and the byte counters read
//! back. Every fault that triggers "after N bytes" is exact: reads and
//! writes are clamped so the N-th byte is the last one that passes.
//!
//! The wrapper is itself cancel-safe: its progress (byte counters) lives in
//! the shared script, never in a future, so the client's cancel-safety
//! claims can be tested through it.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

/// What goes wrong, and when. All counts are bytes since the transport was
/// created. `None` means "never".
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// After this many bytes written, `write` returns `Ok(0)`.
    pub write_zero_after: Option<usize>,
    /// After this many bytes written, `write` returns this error.
    pub write_error_after: Option<(usize, ErrorKind)>,
    /// After this many bytes written, `write` never completes.
    pub write_stall_after: Option<usize>,
    /// After this many bytes read, `read` returns this error.
    pub read_error_after: Option<(usize, ErrorKind)>,
    /// After this many bytes read, `read` returns `Ok(0)` (end of stream),
    /// possibly in the middle of a packet.
    pub read_eof_after: Option<usize>,
    /// After this many bytes read, `read` never completes.
    pub read_stall_after: Option<usize>,
    /// `write` takes at most this many bytes per call (partial writes).
    pub max_write: Option<usize>,
    /// `read` returns at most this many bytes per call.
    pub max_read: Option<usize>,
    /// `flush` fails with this error.
    pub flush_error: Option<ErrorKind>,
    /// Every `read`, `write` and `flush` first returns `Pending` once (and
    /// wakes itself at once): more `.await` points to cancel at.
    pub yield_first: bool,
    /// Bytes read so far.
    pub read: usize,
    /// Bytes written so far.
    pub written: usize,
    /// Calls to `write` that returned `Ok(n > 0)`.
    pub writes: usize,
}

/// The test's side of a [`FaultyTransport`]: arm faults, read counters.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle(Arc<Mutex<Faults>>);

impl FaultHandle {
    /// The script, to change or inspect.
    pub fn lock(&self) -> MutexGuard<'_, Faults> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the script.
    pub fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.lock());
    }

    /// Bytes read so far.
    pub fn read(&self) -> usize {
        self.lock().read
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.lock().written
    }
}

/// Wraps `inner` and applies the [`Faults`] of its [`FaultHandle`].
#[derive(Debug)]
pub struct FaultyTransport<T> {
    inner: T,
    faults: FaultHandle,
}

impl<T> FaultyTransport<T> {
    /// A wrapper with no faults armed, and the handle to arm them.
    pub fn new(inner: T) -> (Self, FaultHandle) {
        let faults = FaultHandle::default();
        (
            Self {
                inner,
                faults: faults.clone(),
            },
            faults,
        )
    }

    /// A wrapper with `faults` armed from the start.
    pub fn with(inner: T, faults: Faults) -> (Self, FaultHandle) {
        let (t, h) = Self::new(inner);
        h.set(|f| *f = faults);
        (t, h)
    }

    /// The inner transport.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// Returns `Pending` once, waking itself, then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn kind_of<E: embedded_io_async::Error>(e: E) -> ErrorKind {
    e.kind()
}

/// How many bytes may pass before `limit` (None: any number).
fn room(done: usize, limit: Option<usize>) -> Option<usize> {
    limit.map(|l| l.saturating_sub(done))
}

impl<T: ErrorType> ErrorType for FaultyTransport<T> {
    type Error = ErrorKind;
}

/// What the script says to do with one `read` or `write`.
enum Step {
    /// Return this at once.
    Now(Result<usize, ErrorKind>),
    /// Never complete.
    Stall,
    /// Pass at most this many bytes to the inner transport.
    Pass(usize),
}

impl Faults {
    fn read_step(&self, len: usize) -> Step {
        let done = self.read;
        if let Some((at, kind)) = self.read_error_after {
            if done >= at {
                return Step::Now(Err(kind));
            }
        }
        if self.read_eof_after.is_some_and(|at| done >= at) {
            return Step::Now(Ok(0));
        }
        if self.read_stall_after.is_some_and(|at| done >= at) {
            return Step::Stall;
        }
        let max = [
            room(done, self.read_error_after.map(|(at, _)| at)),
            room(done, self.read_eof_after),
            room(done, self.read_stall_after),
            self.max_read,
        ]
        .into_iter()
        .flatten()
        .fold(len, usize::min);
        Step::Pass(max)
    }

    fn write_step(&self, len: usize) -> Step {
        let done = self.written;
        if self.write_zero_after.is_some_and(|at| done >= at) {
            return Step::Now(Ok(0));
        }
        if let Some((at, kind)) = self.write_error_after {
            if done >= at {
                return Step::Now(Err(kind));
            }
        }
        if self.write_stall_after.is_some_and(|at| done >= at) {
            return Step::Stall;
        }
        let max = [
            room(done, self.write_zero_after),
            room(done, self.write_error_after.map(|(at, _)| at)),
            room(done, self.write_stall_after),
            self.max_write,
        ]
        .into_iter()
        .flatten()
        .fold(len, usize::min);
        Step::Pass(max)
    }
}

impl<T: Read> Read for FaultyTransport<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if self.faults.lock().yield_first {
            YieldOnce(false).await;
        }
        let step = self.faults.lock().read_step(buf.len());
        let max = match step {
            Step::Now(result) => return result,
            Step::Stall => return std::future::pending().await,
            Step::Pass(max) => max,
        };
        let n = self.inner.read(&mut buf[..max]).await.map_err(kind_of)?;
        self.faults.lock().read += n;
        Ok(n)
    }
}

impl<T: Write> Write for FaultyTransport<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if self.faults.lock().yield_first {
            YieldOnce(false).await;
        }
        let step = self.faults.lock().write_step(buf.len());
        let max = match step {
            Step::Now(result) => return result,
            Step::Stall => return std::future::pending().await,
            Step::Pass(max) => max,
        };
        let n = self.inner.write(&buf[..max]).await.map_err(kind_of)?;
        let mut f = self.faults.lock();
        f.written += n;
        if n > 0 {
            f.writes += 1;
        }
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        if self.faults.lock().yield_first {
            YieldOnce(false).await;
        }
        if let Some(kind) = self.faults.lock().flush_error {
            return Err(kind);
        }
        self.inner.flush().await.map_err(kind_of)
    }
}
