//! Publishing and subscribing from other tasks: a bounded [`Mailbox`] the
//! client drains while one task runs it.
//!
//! The client is `&mut` while it runs (`run`, `run_for`, `poll`), so other
//! tasks cannot call it. They queue requests in a `Mailbox` instead, shared
//! by reference (usually a `static`); the client, once attached to it with
//! [`Client::attach`](crate::Client::attach), wakes when a request arrives
//! and sends it as if a callback had queued it. Nothing is allocated: the
//! requests are copied into the mailbox's `N` bytes (8 bytes each plus the
//! topic and payload), behind a blocking mutex of the caller's choice
//! (embassy-sync's `RawMutex`: `CriticalSectionRawMutex` between interrupt
//! priorities or cores, `ThreadModeRawMutex` or `NoopRawMutex` on one
//! executor).
//!
//! ```
//! use embassy_sync::blocking_mutex::raw::NoopRawMutex;
//! use minimqtt::QoS;
//! use minimqtt::mailbox::{Mailbox, MailboxFull};
//!
//! // 256 bytes of requests, shared between the tasks of one executor.
//! let mailbox: Mailbox<NoopRawMutex, 256> = Mailbox::new();
//! mailbox.try_publish("sensors/0001/temp", b"21.5", QoS::AtMostOnce, false).unwrap();
//! mailbox.try_subscribe("commands/#", QoS::AtLeastOnce).unwrap();
//! assert_eq!(mailbox.len(), 2);
//! // Full: a clear error, and nothing queued.
//! assert_eq!(mailbox.try_publish("big", &[0; 300], QoS::AtMostOnce, false), Err(MailboxFull));
//! ```
//!
//! # Cancel safety
//!
//! The `try_*` methods do not wait, so there is nothing to cancel: a request
//! is either queued whole or refused with [`MailboxFull`], and a queued
//! request is sent once. Requests wait in the mailbox while the client is
//! offline (bounded by its size), and go out in order once it is connected;
//! their results reach the client's callbacks (`on_publish`,
//! `on_subscribe`, ...), as for requests from callbacks.

use core::cell::RefCell;
use core::task::{Context, Poll};

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;

use crate::callbacks::{Outbox, Request, outbox};
use crate::codec::QoS;
use crate::session::AckToken;

/// The mailbox has no room for the request, or the request is larger
/// than the attached client's outbox could ever take (see
/// [`Client::attach`](crate::Client::attach)); nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MailboxFull;

impl core::fmt::Display for MailboxFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MQTT mailbox is full")
    }
}

impl core::error::Error for MailboxFull {}

struct State<const N: usize> {
    buf: [u8; N],
    /// Bytes queued, in the outbox's format.
    len: usize,
    /// The largest request the attached client's outbox can take.
    limit: usize,
    /// The client waiting for requests.
    waker: WakerRegistration,
}

/// Requests from other tasks, `N` bytes of them, behind the mutex `M`. See
/// the [module docs](self).
pub struct Mailbox<M: RawMutex, const N: usize> {
    state: Mutex<M, RefCell<State<N>>>,
}

impl<M: RawMutex, const N: usize> Default for Mailbox<M, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex, const N: usize> core::fmt::Debug for Mailbox<M, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mailbox")
            .field("capacity", &N)
            .field("queued", &self.len())
            .finish()
    }
}

impl<M: RawMutex, const N: usize> Mailbox<M, N> {
    /// An empty mailbox; `const`, so it can be a `static`.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(RefCell::new(State {
                buf: [0; N],
                len: 0,
                limit: N,
                waker: WakerRegistration::new(),
            })),
        }
    }

    /// Queues a publish, or returns [`MailboxFull`] and queues nothing. The
    /// topic is checked when the client sends it; an invalid one is
    /// reported by the client call that does.
    pub fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<(), MailboxFull> {
        self.push(Request::Publish {
            topic,
            payload,
            qos,
            retain,
            #[cfg(feature = "v5")]
            properties: crate::codec::v5::Properties::EMPTY,
        })
    }

    /// Queues a subscription, or returns [`MailboxFull`]. Its SUBACK
    /// reaches `on_subscribe`, and the filter is re-subscribed after
    /// reconnects like any other.
    pub fn try_subscribe(&self, filter: &str, qos: QoS) -> Result<(), MailboxFull> {
        self.push(Request::Subscribe { filter, qos })
    }

    /// Queues an unsubscription, or returns [`MailboxFull`]. Its UNSUBACK
    /// reaches `on_unsubscribe`.
    pub fn try_unsubscribe(&self, filter: &str) -> Result<(), MailboxFull> {
        self.push(Request::Unsubscribe { filter })
    }

    /// Queues the redemption of a deferred acknowledgement's token (see
    /// [`Context::defer_ack`](crate::callbacks::Context::defer_ack)), or
    /// hands the token back when the mailbox is full, or when the attached
    /// client's outbox is smaller than an acknowledgement (8 bytes) and
    /// could never take it (redeem it with `Client::ack` then).
    pub fn try_ack(&self, token: AckToken) -> Result<(), (MailboxFull, AckToken)> {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            let State {
                buf,
                len,
                limit,
                waker,
            } = &mut *s;
            // Checked first: a refused token goes back to the caller. As
            // in `push`, one the attached client's outbox could never take
            // is refused too: taken, it would be dropped, and its
            // acknowledgement (and every later one) never sent.
            if buf.len().saturating_sub(*len) < outbox::ACK_SIZE || outbox::ACK_SIZE > *limit {
                return Err((MailboxFull, token));
            }
            let _ = outbox::push(buf, len, Request::Ack(token));
            waker.wake();
            Ok(())
        })
    }

    /// Requests queued and not yet taken by the client.
    pub fn len(&self) -> usize {
        self.state.lock(|s| {
            let s = s.borrow();
            count(s.buf.get(..s.len).unwrap_or(&[]))
        })
    }

    /// Whether no request is queued.
    pub fn is_empty(&self) -> bool {
        self.state.lock(|s| s.borrow().len == 0)
    }

    fn push(&self, request: Request<'_>) -> Result<(), MailboxFull> {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            let State {
                buf,
                len,
                limit,
                waker,
            } = &mut *s;
            let before = *len;
            outbox::push(buf, len, request).map_err(|_| MailboxFull)?;
            // One the client could never take would hold up every request
            // behind it.
            if *len - before > *limit {
                *len = before;
                return Err(MailboxFull);
            }
            waker.wake();
            Ok(())
        })
    }
}

/// What the client needs of a mailbox, without its mutex and size in the
/// client's type.
pub trait Inbox {
    /// Moves queued requests, oldest first, into `outbox` as far as they
    /// fit; `true` if any moved.
    fn take_into(&self, outbox: &mut Outbox<'_>) -> bool;

    /// `Ready` when requests are queued; otherwise wakes `cx` when one is.
    fn poll_requests(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// Whether requests are queued.
    fn has_requests(&self) -> bool;

    /// Sets the size of the largest request the client's outbox can take
    /// (its whole size): larger ones are refused when queued. Does
    /// nothing by default.
    fn set_limit(&self, limit: usize) {
        let _ = limit;
    }
}

impl<M: RawMutex, const N: usize> Inbox for Mailbox<M, N> {
    fn take_into(&self, outbox: &mut Outbox<'_>) -> bool {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            let mut moved = 0;
            let mut any = false;
            {
                let State { buf, len, .. } = &mut *s;
                let queued = buf.get(..*len).unwrap_or(&[]);
                while let Some((request, size)) = outbox::front(queued.get(moved..).unwrap_or(&[]))
                {
                    if outbox.push(request).is_err() {
                        if !outbox.is_empty() {
                            break;
                        }
                        // Never fits (queued before the client was
                        // attached): dropped, or it would hold up the rest.
                        crate::fmt::warning!(
                            "a mailbox request larger than the outbox was dropped"
                        );
                    }
                    moved += size;
                    any = true;
                }
            }
            let State { buf, len, .. } = &mut *s;
            buf.copy_within(moved..*len, 0);
            *len -= moved;
            any
        })
    }

    fn has_requests(&self) -> bool {
        !self.is_empty()
    }

    fn set_limit(&self, limit: usize) {
        self.state.lock(|s| s.borrow_mut().limit = limit.min(N));
    }

    fn poll_requests(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            if s.len > 0 {
                Poll::Ready(())
            } else {
                s.waker.register(cx.waker());
                Poll::Pending
            }
        })
    }
}

/// The number of requests in queued bytes.
fn count(mut queued: &[u8]) -> usize {
    let mut n = 0;
    while let Some((_, size)) = outbox::front(queued) {
        queued = queued.get(size..).unwrap_or(&[]);
        n += 1;
    }
    n
}
