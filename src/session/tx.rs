//! The transmit queue: encoded packets waiting to be written, in the
//! session's arena.

use crate::codec::EncodeError;
#[cfg(feature = "v5")]
use crate::codec::v5;
#[cfg(feature = "v3")]
use crate::codec::{Connect, Publish, Subscribe, Unsubscribe};

/// The packets the session encodes with the codec. Not [`Packet`]
/// (crate::codec::Packet): matching on it would link the encoders of every
/// packet type, server-side ones included, into firmware. The two-byte
/// packets and the acknowledgements are copied in as the codec's bytes
/// ([`TxQueue::push_bytes`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Encode<'a> {
    #[cfg(feature = "v3")]
    Connect(&'a Connect<'a>),
    #[cfg(feature = "v3")]
    Publish(&'a Publish<'a>),
    /// A PUBLISH without its payload, which is this long and written
    /// straight to the transport after it.
    #[cfg(all(feature = "v3", feature = "streaming"))]
    PublishHead(&'a Publish<'a>, usize),
    #[cfg(feature = "v3")]
    Subscribe(&'a Subscribe<'a>),
    #[cfg(feature = "v3")]
    Unsubscribe(&'a Unsubscribe<'a>),
    #[cfg(feature = "v5")]
    Connect5(&'a v5::Connect<'a>),
    #[cfg(feature = "v5")]
    Publish5(&'a v5::Publish<'a>),
    /// With this Topic Alias, and without its topic when the flag is set.
    #[cfg(feature = "v5")]
    Publish5Aliased(&'a v5::Publish<'a>, u16, bool),
    #[cfg(all(feature = "v5", feature = "streaming"))]
    PublishHead5(&'a v5::Publish<'a>, usize),
    #[cfg(feature = "v5")]
    Subscribe5(&'a v5::Subscribe<'a>),
    #[cfg(feature = "v5")]
    Unsubscribe5(&'a v5::Unsubscribe<'a>),
    #[cfg(feature = "v5")]
    Auth5(&'a v5::Auth<'a>),
    #[cfg(feature = "v5")]
    Disconnect5(&'a v5::Disconnect<'a>),
}

impl Encode<'_> {
    pub(crate) fn encoded_len(self) -> usize {
        match self {
            #[cfg(feature = "v3")]
            Self::Connect(p) => p.encoded_len(),
            #[cfg(feature = "v3")]
            Self::Publish(p) => p.encoded_len(),
            #[cfg(all(feature = "v3", feature = "streaming"))]
            Self::PublishHead(p, len) => p.head_len(len),
            #[cfg(feature = "v3")]
            Self::Subscribe(p) => p.encoded_len(),
            #[cfg(feature = "v3")]
            Self::Unsubscribe(p) => p.encoded_len(),
            #[cfg(feature = "v5")]
            Self::Connect5(p) => p.encoded_len(),
            #[cfg(feature = "v5")]
            Self::Publish5(p) => p.encoded_len(),
            #[cfg(feature = "v5")]
            Self::Publish5Aliased(p, _, elide) => p.aliased_len(elide),
            #[cfg(all(feature = "v5", feature = "streaming"))]
            Self::PublishHead5(p, len) => p.head_len(len),
            #[cfg(feature = "v5")]
            Self::Subscribe5(p) => p.encoded_len(),
            #[cfg(feature = "v5")]
            Self::Unsubscribe5(p) => p.encoded_len(),
            #[cfg(feature = "v5")]
            Self::Auth5(p) => p.encoded_len(),
            #[cfg(feature = "v5")]
            Self::Disconnect5(p) => p.encoded_len(),
        }
    }

    pub(crate) fn encode(self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            #[cfg(feature = "v3")]
            Self::Connect(p) => p.encode(buf),
            #[cfg(feature = "v3")]
            Self::Publish(p) => p.encode(buf),
            #[cfg(all(feature = "v3", feature = "streaming"))]
            Self::PublishHead(p, len) => p.encode_head(len, buf),
            #[cfg(feature = "v3")]
            Self::Subscribe(p) => p.encode(buf),
            #[cfg(feature = "v3")]
            Self::Unsubscribe(p) => p.encode(buf),
            #[cfg(feature = "v5")]
            Self::Connect5(p) => p.encode(buf),
            #[cfg(feature = "v5")]
            Self::Publish5(p) => p.encode(buf),
            #[cfg(feature = "v5")]
            Self::Publish5Aliased(p, alias, elide) => p.encode_aliased(alias, elide, buf),
            #[cfg(all(feature = "v5", feature = "streaming"))]
            Self::PublishHead5(p, len) => p.encode_head(len, buf),
            #[cfg(feature = "v5")]
            Self::Subscribe5(p) => p.encode(buf),
            #[cfg(feature = "v5")]
            Self::Unsubscribe5(p) => p.encode(buf),
            #[cfg(feature = "v5")]
            Self::Auth5(p) => p.encode(buf),
            #[cfg(feature = "v5")]
            Self::Disconnect5(p) => p.encode(buf),
        }
    }
}

/// Where the transmit queue's bytes are in the session's arena (the
/// [`Store`](super::store::Store) owns the bytes and moves them): bytes
/// `start..end` are encoded packets not yet written. Written bytes are
/// dropped from the front.
///
/// Bytes `held..start` are written but kept: a QoS 0 PUBLISH among them has
/// not been reported yet, and its event borrows its topic from here (the
/// session's own event queue, with no room of its own). They are released
/// as the events are polled.
///
/// An empty queue (`held == end`) has no place: the next packet goes where
/// the store puts it.
#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    pub(crate) held: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Bytes ever queued and ever written: positions in the stream that
    /// survive moves, so the session can tell when a given packet has
    /// gone out.
    queued: u64,
    written: u64,
    /// Where the last packet pushed starts, as a stream position.
    last: u64,
    /// Where the pending bytes began, as a stream position: the first
    /// packet pushed into an empty queue. (MQTT 5's goodbye asks.)
    #[cfg(feature = "v5")]
    run: u64,
}

impl TxQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Nothing pending and nothing held: the queue needs no place.
    pub(crate) fn is_vacant(&self) -> bool {
        self.held == self.end
    }

    /// Bytes held or pending: what must stay in the arena.
    pub(crate) fn kept(&self) -> usize {
        self.end - self.held
    }

    /// Drops the pending bytes (they will never be written) and the held
    /// ones.
    pub(crate) fn clear(&mut self) {
        self.held = 0;
        self.start = 0;
        self.end = 0;
        self.written = self.queued;
    }

    /// The stream position just after the last queued byte.
    pub(crate) fn queued(&self) -> u64 {
        self.queued
    }

    /// The stream position where the last packet pushed starts.
    pub(crate) fn last_pushed(&self) -> u64 {
        self.last
    }

    /// The stream position just after the last written byte.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Nothing of the pending bytes is written: they are whole packets,
    /// which may be dropped without leaving part of one on the wire.
    #[cfg(feature = "v5")]
    pub(crate) fn untouched(&self) -> bool {
        self.is_empty() || self.written == self.run
    }

    /// Marks `n` pending bytes as written, and keeps them (`hold`) or
    /// drops them with the held ones. More than pending is clamped: a
    /// transport that claims to have written more than it was given cannot
    /// make the queue point outside its bytes.
    pub(crate) fn consume(&mut self, n: usize, hold: bool) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.written += n as u64;
        if !hold {
            self.held = self.start;
        }
        self.reset_if_vacant();
    }

    /// Drops the first `n` held bytes.
    pub(crate) fn release(&mut self, n: usize) {
        self.held += n.min(self.start - self.held);
        self.reset_if_vacant();
    }

    fn reset_if_vacant(&mut self) {
        if self.is_vacant() {
            self.held = 0;
            self.start = 0;
            self.end = 0;
        }
    }

    /// The bytes kept now start at `held`.
    pub(crate) fn moved_to(&mut self, held: usize) {
        let (start, end) = (self.start - self.held, self.end - self.held);
        self.held = held;
        self.start = held + start;
        self.end = held + end;
    }

    /// A packet of `n` bytes was written at `end`.
    pub(crate) fn pushed(&mut self, n: usize) {
        #[cfg(feature = "v5")]
        if self.is_empty() {
            self.run = self.queued;
        }
        self.end += n;
        self.last = self.queued;
        self.queued += n as u64;
    }
}
