//! The session store: the bytes the session must keep between packets, in
//! one caller-supplied slice.
//!
//! Three kinds of entry share the slice: in-flight outgoing PUBLISH packets
//! (kept encoded, so a resend is a copy), SUBSCRIBE / UNSUBSCRIBE packets
//! waiting for their acknowledgement (kept encoded, so the acknowledgement
//! can be reported filter by filter), and the subscription list (filters,
//! for re-subscribing after the broker lost the session). Entries are laid
//! out back to back in the order they were added; removing one moves the
//! ones after it down, so the slice never fragments.

use crate::codec::QoS;
use crate::time::Instant;

/// Where an outgoing QoS 1/2 message is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stage {
    /// QoS 1, PUBLISH sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2, PUBLISH sent, waiting for PUBREC.
    AwaitPubRec,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    AwaitPubComp,
}

/// What a request entry waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Subscribe,
    Unsubscribe,
}

/// A byte range of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) off: usize,
    pub(crate) len: usize,
}

/// Where an outgoing message's life is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// In flight: its handshake goes on.
    Live,
    /// Discarded by a clean-session connect; not yet reported.
    Discarded,
    /// Completed or reported discarded; removed at the next mutation of the
    /// session, so an event can still borrow its bytes.
    Done,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing {
    pub(crate) packet_id: u16,
    pub(crate) stage: Stage,
    pub(crate) deadline: Instant,
    pub(crate) span: Span,
    pub(crate) status: Status,
    /// Its packet for the stage (the PUBLISH with DUP, or the PUBREL) must
    /// be (re)sent, in store order, before new traffic: after a reconnect,
    /// or a PUBREL that waits behind such resends (MQTT-4.6.0-2).
    pub(crate) send: bool,
    /// A streamed PUBLISH: `span` holds its head only, and its payload
    /// of this many bytes is asked of the application again to resend it.
    pub(crate) payload: usize,
}

impl Outgoing {
    pub(crate) fn is_live(&self) -> bool {
        self.status == Status::Live
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub(crate) packet_id: u16,
    pub(crate) kind: RequestKind,
    pub(crate) deadline: Instant,
    pub(crate) span: Span,
    pub(crate) done: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscribed {
    pub(crate) qos: QoS,
    pub(crate) span: Span,
    /// A SUBACK granted it on this broker session. An unconfirmed filter
    /// is re-sent even when the broker kept the session: its SUBSCRIBE may
    /// have been lost with the connection.
    pub(crate) confirmed: bool,
}

/// Not enough bytes left in the store; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreFull;

pub(crate) struct Store<'b, const INFLIGHT: usize, const SUBS: usize> {
    buf: &'b mut [u8],
    used: usize,
    /// An entry was marked done since the last [`collect`](Self::collect):
    /// without one, `collect` (called before most operations) scans nothing.
    pub(crate) finished: bool,
    pub(crate) outgoing: heapless::Vec<Outgoing, INFLIGHT>,
    pub(crate) requests: heapless::Vec<Request, INFLIGHT>,
    pub(crate) subscriptions: heapless::Vec<Subscribed, SUBS>,
}

impl<const INFLIGHT: usize, const SUBS: usize> core::fmt::Debug for Store<'_, INFLIGHT, SUBS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("capacity", &self.buf.len())
            .field("used", &self.used)
            .field("outgoing", &self.outgoing.len())
            .field("requests", &self.requests.len())
            .field("subscriptions", &self.subscriptions.len())
            .finish()
    }
}

impl<'b, const INFLIGHT: usize, const SUBS: usize> Store<'b, INFLIGHT, SUBS> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            used: 0,
            finished: false,
            outgoing: heapless::Vec::new(),
            requests: heapless::Vec::new(),
            subscriptions: heapless::Vec::new(),
        }
    }

    pub(crate) fn bytes(&self, span: Span) -> &[u8] {
        self.buf.get(span.off..span.off + span.len).unwrap_or(&[])
    }

    pub(crate) fn bytes_mut(&mut self, span: Span) -> &mut [u8] {
        self.buf
            .get_mut(span.off..span.off + span.len)
            .unwrap_or(&mut [])
    }

    pub(crate) fn free_bytes(&self) -> usize {
        self.buf.len() - self.used
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Copies `bytes` behind the last entry.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<Span, StoreFull> {
        let off = self.used;
        let dst = self.buf.get_mut(off..off + bytes.len()).ok_or(StoreFull)?;
        dst.copy_from_slice(bytes);
        self.used += bytes.len();
        Ok(Span {
            off,
            len: bytes.len(),
        })
    }

    /// Frees `span`, moving every later entry down.
    fn release(&mut self, span: Span) {
        let end = span.off + span.len;
        if end > self.used {
            return;
        }
        self.buf.copy_within(end..self.used, span.off);
        self.used -= span.len;
        let shift = |s: &mut Span| {
            if s.off >= end {
                s.off -= span.len;
            }
        };
        self.outgoing.iter_mut().for_each(|e| shift(&mut e.span));
        self.requests.iter_mut().for_each(|e| shift(&mut e.span));
        self.subscriptions
            .iter_mut()
            .for_each(|e| shift(&mut e.span));
    }

    /// Removes the entries marked done.
    pub(crate) fn collect(&mut self) {
        if !self.finished {
            return;
        }
        self.finished = false;
        while let Some(i) = self.outgoing.iter().position(|e| e.status == Status::Done) {
            let e = self.outgoing.remove(i);
            self.release(e.span);
        }
        while let Some(i) = self.requests.iter().position(|e| e.done) {
            let e = self.requests.remove(i);
            self.release(e.span);
        }
    }

    pub(crate) fn remove_subscription(&mut self, i: usize) {
        if i < self.subscriptions.len() {
            let e = self.subscriptions.remove(i);
            self.release(e.span);
        }
    }

    pub(crate) fn find_subscription(&self, filter: &str) -> Option<usize> {
        self.subscriptions
            .iter()
            .position(|s| self.bytes(s.span) == filter.as_bytes())
    }

    /// Marks every live outgoing message discarded (it is reported, then
    /// removed) and drops the pending requests.
    pub(crate) fn discard_inflight(&mut self) {
        for e in self.outgoing.iter_mut().filter(|e| e.is_live()) {
            e.status = Status::Discarded;
            e.send = false;
        }
        self.clear_requests();
    }

    pub(crate) fn clear_requests(&mut self) {
        while let Some(e) = self.requests.pop() {
            self.release(e.span);
        }
    }

    /// Whether `packet_id` is taken by an entry still waiting for its ack.
    pub(crate) fn id_in_use(&self, packet_id: u16) -> bool {
        self.outgoing.iter().any(|e| e.packet_id == packet_id)
            || self.requests.iter().any(|e| e.packet_id == packet_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_moves_later_entries_down() {
        let mut buf = [0u8; 16];
        let mut store = Store::<'_, 4, 4>::new(&mut buf);
        let a = store.append(b"aaa").unwrap();
        let b = store.append(b"bb").unwrap();
        store
            .subscriptions
            .push(Subscribed {
                qos: QoS::AtMostOnce,
                span: a,
                confirmed: false,
            })
            .unwrap();
        store
            .subscriptions
            .push(Subscribed {
                qos: QoS::AtLeastOnce,
                span: b,
                confirmed: false,
            })
            .unwrap();
        store.remove_subscription(0);
        assert_eq!(store.bytes(store.subscriptions[0].span), b"bb");
        assert_eq!(store.free_bytes(), 14);
        assert_eq!(store.append(&[0; 15]), Err(StoreFull));
        assert_eq!(store.find_subscription("bb"), Some(0));
    }
}
