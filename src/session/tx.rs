//! The transmit queue: encoded packets waiting to be written, in a
//! caller-supplied slice.

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
        }
    }
}

/// Bytes `start..end` of `buf` are encoded packets not yet written.
/// Written bytes are dropped from the front; the pending bytes move to the
/// front only when a new packet would not fit behind them.
///
/// Bytes `held..start` are written but kept: a QoS 0 PUBLISH among them has
/// not been reported yet, and its event borrows its topic from here (the
/// session's own event queue, with no room of its own). They are released
/// as the events are polled.
pub(crate) struct TxQueue<'b> {
    buf: &'b mut [u8],
    held: usize,
    start: usize,
    end: usize,
    /// Bytes ever queued and ever written: positions in the stream that
    /// survive compaction, so the session can tell when a given packet has
    /// gone out.
    queued: u64,
    written: u64,
    /// Where the last packet pushed starts, as a stream position.
    last: u64,
}

impl core::fmt::Debug for TxQueue<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TxQueue")
            .field("capacity", &self.buf.len())
            .field("pending", &(self.end - self.start))
            .finish()
    }
}

impl<'b> TxQueue<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            held: 0,
            start: 0,
            end: 0,
            queued: 0,
            written: 0,
            last: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
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

    /// Marks `n` pending bytes as written, and keeps them (`hold`) or
    /// drops them with the held ones. More than pending is clamped: a
    /// transport that claims to have written more than it was given cannot
    /// make the queue point outside its buffer.
    pub(crate) fn consume(&mut self, n: usize, hold: bool) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.written += n as u64;
        if !hold {
            self.held = self.start;
        }
        self.reset_if_empty();
    }

    /// The written bytes kept (see [`TxQueue`]).
    pub(crate) fn held(&self) -> &[u8] {
        self.buf.get(self.held..self.start).unwrap_or(&[])
    }

    /// Drops the first `n` held bytes.
    pub(crate) fn release(&mut self, n: usize) {
        self.held += n.min(self.start - self.held);
        self.reset_if_empty();
    }

    fn reset_if_empty(&mut self) {
        if self.held == self.end {
            self.held = 0;
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for `len` more bytes, compacting if that makes the difference.
    fn make_room(&mut self, len: usize) -> Result<(), EncodeError> {
        let kept = self.end - self.held;
        let needed = kept.saturating_add(len);
        if needed > self.buf.len() {
            return Err(EncodeError::BufferTooSmall { needed });
        }
        if self.buf.len() - self.end < len {
            self.compact();
        }
        Ok(())
    }

    /// Moves the held and pending bytes to the front.
    fn compact(&mut self) {
        if self.held > 0 {
            self.buf.copy_within(self.held..self.end, 0);
            self.start -= self.held;
            self.end -= self.held;
            self.held = 0;
        }
    }

    /// Appends `packet`, or nothing at all if it does not fit.
    pub(crate) fn push(&mut self, packet: Encode<'_>) -> Result<&[u8], EncodeError> {
        self.make_room(packet.encoded_len())?;
        let at = self.end;
        let n = packet.encode(self.buf.get_mut(at..).unwrap_or(&mut []))?;
        self.end = at + n;
        self.last = self.queued;
        self.queued += n as u64;
        Ok(self.buf.get(at..at + n).unwrap_or(&[]))
    }

    /// Appends raw, already encoded bytes (a stored packet being resent).
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.make_room(bytes.len())?;
        let at = self.end;
        let Some(dst) = self.buf.get_mut(at..at + bytes.len()) else {
            return Err(EncodeError::BufferTooSmall {
                needed: bytes.len(),
            });
        };
        dst.copy_from_slice(bytes);
        self.end = at + bytes.len();
        self.last = self.queued;
        self.queued += bytes.len() as u64;
        Ok(())
    }

    /// The free space behind the pending bytes, moved to the front
    /// first: where a streamed payload's pieces are put together.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        self.compact();
        self.buf.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// Whether `len` more bytes would fit (after compacting).
    pub(crate) fn has_room(&self, len: usize) -> bool {
        (self.end - self.held).saturating_add(len) <= self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_bytes_move_to_the_front_only_when_a_push_needs_it() {
        let mut buf = [0u8; 8];
        let mut tx = TxQueue::new(&mut buf);
        tx.push_bytes(&[1, 2, 3, 4, 5]).unwrap();
        tx.consume(3, false);
        assert_eq!(tx.pending(), [4, 5]);
        // 2 pending + 5 fit in 8 only after compacting.
        tx.push_bytes(&[6, 7, 8, 9, 10]).unwrap();
        assert_eq!(tx.pending(), [4, 5, 6, 7, 8, 9, 10]);
        assert_eq!((tx.queued(), tx.written()), (10, 3));
        // Too much: refused whole, nothing changed.
        assert_eq!(
            tx.push_bytes(&[0, 0]),
            Err(EncodeError::BufferTooSmall { needed: 9 })
        );
        assert!(!tx.has_room(2));
        assert_eq!(tx.pending(), [4, 5, 6, 7, 8, 9, 10]);
        // A transport claiming more than it was given is clamped.
        tx.consume(100, false);
        assert!(tx.is_empty());
        assert_eq!(tx.written(), 10);
        // Dropped bytes count as gone: positions stay consistent.
        tx.push_bytes(&[1]).unwrap();
        tx.clear();
        assert_eq!((tx.queued(), tx.written(), tx.capacity()), (11, 11, 8));
    }
}
