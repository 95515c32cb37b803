//! The session's arena: the bytes the session must keep between packets
//! and the transmit queue, in one caller-supplied slice.
//!
//! Three kinds of entry share the slice: in-flight outgoing PUBLISH packets
//! (kept encoded and written to the transport from here, the first time
//! and on a resend, so the message is held once), SUBSCRIBE / UNSUBSCRIBE packets
//! waiting for their acknowledgement (kept encoded, so the acknowledgement
//! can be reported filter by filter), and the subscription list (filters,
//! for re-subscribing after the broker lost the session). Entries are laid
//! out back to back in the order they were added; removing one moves the
//! ones after it down, so the slice never fragments.
//!
//! The transmit queue's bytes ([`TxQueue`]) sit above the entries, in one
//! run: at the top of the slice when the entries need the room between,
//! right behind the entries when the queue needs it at its end. Either move
//! copies only the queue's few pending bytes; entries never move for the
//! queue. The entries always leave [`Store::reserve`] bytes for the queue,
//! so an acknowledgement, a PINGREQ and the next CONNECT can always be
//! queued once the queue has been written.

use super::tx::{Encode, TxQueue};
use crate::codec::{EncodeError, QoS};
use crate::time::Instant;

/// What the entries always leave for the transmit queue, at the least: an
/// acknowledgement and a PINGREQ.
pub(crate) const TX_RESERVE: usize = super::ACK_LEN + 2;

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
    /// Past PUBREC: the arrival number of its PUBREC, so that PUBRELs
    /// resent after a reconnect keep the PUBRECs' order (MQTT-4.6.0-4),
    /// which store order is not when the broker answered out of order.
    pub(crate) rec: u16,
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
    /// MQTT 5's other subscription options (No Local, Retain As
    /// Published, Retain Handling), as bits of the options byte.
    pub(crate) flags: u8,
    /// MQTT 5: the Subscription Identifier it was subscribed with (0:
    /// none).
    pub(crate) id: u32,
    /// Re-sent (or subscribed) on this connection and waiting for its
    /// SUBACK: a re-subscribe round leaves it out.
    pub(crate) requested: bool,
    pub(crate) span: Span,
    /// A SUBACK granted it on this broker session. An unconfirmed filter
    /// is re-sent even when the broker kept the session: its SUBSCRIBE may
    /// have been lost with the connection.
    pub(crate) confirmed: bool,
}

impl Subscribed {
    /// Due in a re-subscribe round: neither confirmed on this broker
    /// session nor requested on this connection.
    pub(crate) fn due(&self) -> bool {
        !self.confirmed && !self.requested
    }
}

/// Not enough bytes left in the store; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreFull;

pub(crate) struct Store<'b, const INFLIGHT: usize, const SUBS: usize> {
    buf: &'b mut [u8],
    /// The end of the last entry's bytes.
    used: usize,
    /// Bytes of released entries below `used`, reclaimed by
    /// [`compact`](Self::compact) when an append needs them: releasing
    /// the oldest of a hundred in-flight messages then moves nothing,
    /// where moving every later entry down was a third of a QoS 1
    /// message's cost.
    garbage: usize,
    /// The transmit queue's place in `buf`.
    pub(crate) tx: TxQueue,
    /// Bytes the entries leave for the transmit queue: [`TX_RESERVE`], or
    /// the longest CONNECT or head of a streamed message in flight, so a
    /// reconnect can queue it (a streamed head is resent through the
    /// queue).
    reserve: usize,
    /// The part of `reserve` that stays when no streamed message is in
    /// flight: [`TX_RESERVE`] or the longest CONNECT.
    base_reserve: usize,
    /// An entry was marked done since the last [`collect`](Self::collect):
    /// without one, `collect` (called before most operations) scans nothing.
    pub(crate) finished: bool,
    pub(crate) outgoing: heapless::Vec<Outgoing, INFLIGHT>,
    pub(crate) requests: heapless::Vec<Request, INFLIGHT>,
    pub(crate) subscriptions: heapless::Vec<Subscribed, SUBS>,
    /// MQTT 5: the topics of the Topic Aliases we assigned on this
    /// connection; alias `n` is entry `n - 1`.
    #[cfg(feature = "v5")]
    pub(crate) aliases: heapless::Vec<Span, SUBS>,
    /// MQTT 5: the topics of the broker's Topic Aliases on this
    /// connection: alias and topic, or `None` when the store had no room
    /// for it (messages with that alias alone are then skipped, not
    /// blamed on the broker).
    #[cfg(feature = "v5")]
    pub(crate) in_aliases: heapless::Vec<(u16, Option<Span>), SUBS>,
}

impl<const INFLIGHT: usize, const SUBS: usize> core::fmt::Debug for Store<'_, INFLIGHT, SUBS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("capacity", &self.buf.len())
            .field("used", &self.used)
            .field("garbage", &self.garbage)
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
            garbage: 0,
            tx: TxQueue::default(),
            reserve: TX_RESERVE,
            base_reserve: TX_RESERVE,
            finished: false,
            outgoing: heapless::Vec::new(),
            requests: heapless::Vec::new(),
            subscriptions: heapless::Vec::new(),
            #[cfg(feature = "v5")]
            aliases: heapless::Vec::new(),
            #[cfg(feature = "v5")]
            in_aliases: heapless::Vec::new(),
        }
    }

    /// The entries' bytes: a span's are at its offset.
    pub(crate) fn entries(&self) -> &[u8] {
        self.buf.get(..self.used).unwrap_or(&[])
    }

    pub(crate) fn bytes(&self, span: Span) -> &[u8] {
        self.buf.get(span.off..span.off + span.len).unwrap_or(&[])
    }

    pub(crate) fn bytes_mut(&mut self, span: Span) -> &mut [u8] {
        self.buf
            .get_mut(span.off..span.off + span.len)
            .unwrap_or(&mut [])
    }

    /// Bytes of live entries.
    fn live(&self) -> usize {
        self.used - self.garbage
    }

    /// Bytes the entries could take once the transmit queue is written.
    pub(crate) fn free_bytes(&self) -> usize {
        self.buf.len().saturating_sub(self.live() + self.reserve)
    }

    /// The arena's size.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Makes the reserve for the transmit queue at least `len` (a streamed
    /// head's), if the entries leave that much.
    pub(crate) fn reserve_at_least(&mut self, len: usize) {
        if self.live() + len <= self.buf.len() {
            self.reserve = self.reserve.max(len);
        }
    }

    /// [`reserve_at_least`](Self::reserve_at_least) for a CONNECT: its
    /// room stays for good, since every reconnect queues one.
    pub(crate) fn reserve_for_connect(&mut self, len: usize) {
        self.reserve_at_least(len);
        if self.reserve >= len {
            self.base_reserve = self.base_reserve.max(len);
        }
    }

    /// Gives the entries back the room kept for streamed heads no longer
    /// in flight.
    fn shrink_reserve(&mut self) {
        let heads = self.outgoing.iter().filter(|e| e.payload > 0);
        let longest = heads.map(|e| e.span.len).max().unwrap_or(0);
        self.reserve = self.reserve.min(self.base_reserve.max(longest));
    }

    /// What the entries leave for the transmit queue.
    pub(crate) fn tx_reserve(&self) -> usize {
        self.reserve
    }

    /// Whether `len` more bytes of entries fit, with `tx_len` more bytes
    /// queued beside them, both now and once the queue is written.
    pub(crate) fn has_room_with_tx(&self, tx_len: usize, len: usize) -> bool {
        let tx = (self.tx.kept() + tx_len).max(self.reserve);
        self.live() + len + tx <= self.buf.len()
    }

    /// Room for `len` more bytes behind the last entry: compacts the
    /// entries, then moves the transmit queue to the top of the arena, as
    /// far as needed. Appends that follow, up to `len` bytes in all, move
    /// nothing: a span appended and not yet recorded in a list is not
    /// known to [`compact`](Self::compact), and would not move with it.
    fn make_room(&mut self, len: usize) -> Result<(), StoreFull> {
        if !self.has_room_with_tx(0, len) {
            return Err(StoreFull);
        }
        self.place(len);
        Ok(())
    }

    /// Room for `len` more bytes behind the last entry, as far as the
    /// arena has it (whatever the reserve).
    fn place(&mut self, len: usize) {
        if self.limit() - self.used < len && self.garbage > 0 {
            self.compact();
        }
        if self.limit() - self.used < len {
            let held = self.buf.len() - self.tx.kept();
            self.move_tx(held);
        }
    }

    /// The end of the room for entries: the transmit queue's bytes, if any.
    fn limit(&self) -> usize {
        if self.tx.is_vacant() {
            self.buf.len()
        } else {
            self.tx.held
        }
    }

    fn move_tx(&mut self, held: usize) {
        if self.tx.held != held {
            self.buf.copy_within(self.tx.held..self.tx.end, held);
            self.tx.moved_to(held);
        }
    }

    /// Copies `bytes` behind the last entry.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<Span, StoreFull> {
        self.make_room(bytes.len())?;
        let off = self.used;
        let dst = self.buf.get_mut(off..off + bytes.len()).ok_or(StoreFull)?;
        dst.copy_from_slice(bytes);
        self.used += bytes.len();
        Ok(Span {
            off,
            len: bytes.len(),
        })
    }

    /// Copies the last `len` bytes queued (a packet just pushed) behind
    /// the last entry.
    pub(crate) fn append_last_pushed(&mut self, len: usize) -> Result<Span, StoreFull> {
        if len > self.tx.kept() {
            return Err(StoreFull);
        }
        self.make_room(len)?;
        let off = self.used;
        let from = self.tx.end - len;
        self.buf.copy_within(from..self.tx.end, off);
        self.used += len;
        Ok(Span { off, len })
    }

    /// Makes room for `len` bytes of entries and queued bytes now, so
    /// that appends and pushes that follow, up to `len` bytes in all,
    /// compact nothing (see [`make_room`](Self::make_room)); the caller
    /// checked that they fit.
    #[cfg(feature = "v5")]
    pub(crate) fn reserve(&mut self, len: usize) {
        self.place(len);
    }

    /// Encodes `packet` behind the last entry.
    pub(crate) fn append_encoded(&mut self, packet: Encode<'_>) -> Result<Span, StoreFull> {
        let len = packet.encoded_len();
        self.make_room(len)?;
        let off = self.used;
        let dst = self.buf.get_mut(off..off + len).ok_or(StoreFull)?;
        let n = packet.encode(dst).map_err(|_| StoreFull)?;
        self.used += n;
        Ok(Span { off, len: n })
    }

    /// The transmit queue's pending bytes.
    pub(crate) fn tx_pending(&self) -> &[u8] {
        self.buf.get(self.tx.start..self.tx.end).unwrap_or(&[])
    }

    /// The transmit queue's written bytes still kept.
    pub(crate) fn tx_held(&self) -> &[u8] {
        self.buf.get(self.tx.held..self.tx.start).unwrap_or(&[])
    }

    /// The most the transmit queue could take with the entries there are
    /// now: a packet longer never fits until entries go.
    pub(crate) fn tx_capacity(&self) -> usize {
        self.buf.len() - self.live()
    }

    /// Whether `len` more bytes could be queued now.
    pub(crate) fn tx_has_room(&self, len: usize) -> bool {
        self.live() + self.tx.kept() + len <= self.buf.len()
    }

    /// Room for `len` more bytes behind the queue's: compacts the entries
    /// if that makes the difference, and moves the queue down behind them.
    fn tx_make_room(&mut self, len: usize) -> Result<usize, EncodeError> {
        if !self.tx_has_room(len) {
            return Err(EncodeError::BufferTooSmall {
                needed: self.tx.kept() + len,
            });
        }
        if self.tx.is_vacant() {
            if self.buf.len() - self.used < len {
                self.compact();
            }
            self.tx.moved_to(self.used);
        } else if self.buf.len() - self.tx.end < len {
            if self.tx.held - self.used + (self.buf.len() - self.tx.end) < len {
                self.compact();
            }
            self.move_tx(self.used);
        }
        Ok(self.tx.end)
    }

    /// Queues `packet`, or nothing at all if it does not fit. Its length.
    pub(crate) fn tx_push(&mut self, packet: Encode<'_>) -> Result<usize, EncodeError> {
        let len = packet.encoded_len();
        let at = self.tx_make_room(len)?;
        let dst = self.buf.get_mut(at..at + len).unwrap_or(&mut []);
        let n = packet.encode(dst)?;
        self.tx.pushed(n);
        Ok(n)
    }

    /// Queues `len` bytes that `encode` writes, given the entries' bytes
    /// and the subscription list (a re-SUBSCRIBE of stored filters).
    pub(crate) fn tx_push_with(
        &mut self,
        len: usize,
        encode: impl FnOnce(&[u8], &[Subscribed], &mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<usize, EncodeError> {
        let at = self.tx_make_room(len)?;
        let (entries, rest) = self.buf.split_at_mut(at);
        let dst = rest.get_mut(..len).unwrap_or(&mut []);
        let n = encode(entries, &self.subscriptions, dst)?;
        self.tx.pushed(n);
        Ok(n)
    }

    /// Queues raw, already encoded bytes.
    pub(crate) fn tx_push_bytes(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let at = self.tx_make_room(bytes.len())?;
        let dst = self.buf.get_mut(at..at + bytes.len()).unwrap_or(&mut []);
        dst.copy_from_slice(bytes);
        self.tx.pushed(bytes.len());
        Ok(())
    }

    /// Queues a copy of outgoing entry `i`'s bytes (a streamed head being
    /// resent).
    pub(crate) fn tx_push_outgoing(&mut self, i: usize) -> Result<(), EncodeError> {
        let len = self.outgoing.get(i).map_or(0, |e| e.span.len);
        let at = self.tx_make_room(len)?;
        let span = self
            .outgoing
            .get(i)
            .map_or(Span { off: 0, len: 0 }, |e| e.span);
        self.buf.copy_within(span.off..span.off + span.len, at);
        self.tx.pushed(span.len);
        Ok(())
    }

    /// The free bytes behind the transmit queue's, moved down behind the
    /// entries first (where a streamed payload's pieces are put together),
    /// and beside them the bytes of live outgoing entry `packet_id`.
    pub(crate) fn tx_spare(&mut self, packet_id: Option<u16>) -> (&mut [u8], Option<&[u8]>) {
        if self.garbage > 0 {
            self.compact();
        }
        if self.tx.is_vacant() {
            self.tx.moved_to(self.used);
        } else {
            self.move_tx(self.used);
        }
        let span = packet_id.and_then(|id| {
            let e = self
                .outgoing
                .iter()
                .find(|e| e.packet_id == id && e.is_live())?;
            Some(e.span)
        });
        let (entries, spare) = self.buf.split_at_mut(self.tx.end);
        (spare, span.and_then(|s| entries.get(s.off..s.off + s.len)))
    }

    /// Forgets the aliases (both ways) of the connection that ended.
    #[cfg(all(test, feature = "v5"))]
    pub(crate) fn clear_aliases(&mut self) {
        self.clear_out_aliases();
        self.clear_in_aliases();
    }

    /// Forgets the aliases we assigned.
    #[cfg(feature = "v5")]
    pub(crate) fn clear_out_aliases(&mut self) {
        while let Some(span) = self.aliases.pop() {
            self.release(span);
        }
    }

    /// Forgets the broker's aliases.
    #[cfg(feature = "v5")]
    pub(crate) fn clear_in_aliases(&mut self) {
        while let Some((_, span)) = self.in_aliases.pop() {
            if let Some(span) = span {
                self.release(span);
            }
        }
    }

    /// What the broker's alias `alias` stands for: `None` if it was never
    /// set, `Some(None)` if its topic could not be kept.
    #[cfg(feature = "v5")]
    pub(crate) fn in_alias(&self, alias: u16) -> Option<Option<Span>> {
        self.in_aliases
            .iter()
            .find(|(a, _)| *a == alias)
            .map(|&(_, span)| span)
    }

    /// Sets the broker's alias `alias` to `topic`, replacing what it stood
    /// for. Without room for the topic (or not to be kept) it stands for
    /// nothing known.
    #[cfg(feature = "v5")]
    pub(crate) fn set_in_alias(&mut self, alias: u16, topic: &[u8], keep: bool) {
        if let Some(i) = self.in_aliases.iter().position(|(a, _)| *a == alias) {
            let (_, old) = self.in_aliases.remove(i);
            if let Some(old) = old {
                self.release(old);
            }
        }
        let span = if keep { self.append(topic).ok() } else { None };
        // Aliases are at most the Topic Alias Maximum we advertised, which
        // `SUBS` bounds: there is room.
        let _ = self.in_aliases.push((alias, span));
    }

    /// The alias of `topic`, if one was assigned.
    #[cfg(feature = "v5")]
    pub(crate) fn alias_of(&self, topic: &str) -> Option<u16> {
        let i = self
            .aliases
            .iter()
            .position(|&span| self.bytes(span) == topic.as_bytes())?;
        u16::try_from(i + 1).ok()
    }

    /// Frees `span`. Its bytes become garbage, reclaimed by the next
    /// compaction; the last entry's just shorten the store.
    fn release(&mut self, span: Span) {
        let end = span.off + span.len;
        if end > self.used {
            return;
        }
        if end == self.used {
            self.used = span.off;
        } else {
            self.garbage += span.len;
        }
        #[cfg(feature = "v5")]
        let aliases = self.aliases.is_empty() && self.in_aliases.is_empty();
        #[cfg(not(feature = "v5"))]
        let aliases = true;
        if self.outgoing.is_empty()
            && self.requests.is_empty()
            && self.subscriptions.is_empty()
            && aliases
        {
            self.used = 0;
            self.garbage = 0;
        }
    }

    /// Moves every entry down over the released bytes, keeping their
    /// order: each list is in offset order (entries are appended and
    /// removed, never reordered), so one merge of the lists visits every
    /// span once.
    fn compact(&mut self) {
        let (mut i, mut j, mut k, mut l, mut m) = (0, 0, 0, 0, 0);
        let mut write = 0;
        loop {
            let a = self.outgoing.get(i).map(|e| e.span.off);
            let b = self.requests.get(j).map(|e| e.span.off);
            let c = self.subscriptions.get(k).map(|e| e.span.off);
            #[cfg(feature = "v5")]
            let d = self.aliases.get(l).map(|s| s.off);
            #[cfg(not(feature = "v5"))]
            let d = None;
            // Entries without a topic have no bytes: skipped.
            #[cfg(feature = "v5")]
            while self.in_aliases.get(m).is_some_and(|(_, s)| s.is_none()) {
                m += 1;
            }
            #[cfg(feature = "v5")]
            let e = self.in_aliases.get(m).and_then(|(_, s)| s.map(|s| s.off));
            #[cfg(not(feature = "v5"))]
            let e = None;
            let lowest = [a, b, c, d, e].into_iter().flatten().min();
            let Some(lowest) = lowest else { break };
            let span = if a == Some(lowest) {
                i += 1;
                self.outgoing.get_mut(i - 1).map(|e| &mut e.span)
            } else if b == Some(lowest) {
                j += 1;
                self.requests.get_mut(j - 1).map(|e| &mut e.span)
            } else if c == Some(lowest) {
                k += 1;
                self.subscriptions.get_mut(k - 1).map(|e| &mut e.span)
            } else if d == Some(lowest) {
                l += 1;
                #[cfg(feature = "v5")]
                let alias = self.aliases.get_mut(l - 1);
                #[cfg(not(feature = "v5"))]
                let alias = None;
                alias
            } else {
                m += 1;
                #[cfg(feature = "v5")]
                let alias = self.in_aliases.get_mut(m - 1).and_then(|(_, s)| s.as_mut());
                #[cfg(not(feature = "v5"))]
                let alias = None;
                alias
            };
            let Some(span) = span else { break };
            self.buf.copy_within(span.off..span.off + span.len, write);
            span.off = write;
            write += span.len;
        }
        // (Without MQTT 5 the alias lists are not there.)
        let _ = (l, m);
        self.used = write;
        self.garbage = 0;
    }

    /// Removes the entries marked done, but for outgoing `keep`'s: its
    /// PUBLISH is being written from here (it goes at a later call).
    pub(crate) fn collect(&mut self, keep: Option<u16>) {
        if !self.finished {
            return;
        }
        self.finished = false;
        // One walk: each search goes on from where the last one stopped.
        let mut from = 0;
        let mut streamed = false;
        while let Some(i) = self
            .outgoing
            .get(from..)
            .and_then(|rest| rest.iter().position(|e| e.status == Status::Done))
        {
            let i = from + i;
            if self.outgoing.get(i).map(|e| e.packet_id) == keep {
                // Collected at a later call.
                self.finished = true;
                from = i + 1;
                continue;
            }
            let e = self.outgoing.remove(i);
            self.release(e.span);
            streamed |= e.payload > 0;
            from = i;
        }
        if streamed {
            self.shrink_reserve();
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

    /// A store without a reserve for the transmit queue: the entries alone.
    fn entries_only(buf: &mut [u8]) -> Store<'_, 4, 4> {
        let mut store = Store::new(buf);
        store.reserve = 0;
        store
    }

    #[test]
    fn a_released_entry_frees_its_bytes() {
        let mut buf = [0u8; 16];
        let mut store = entries_only(&mut buf);
        let a = store.append(b"aaa").unwrap();
        let b = store.append(b"bb").unwrap();
        store
            .subscriptions
            .push(Subscribed {
                qos: QoS::AtMostOnce,
                flags: 0,
                id: 0,
                requested: false,
                span: a,
                confirmed: false,
            })
            .unwrap();
        store
            .subscriptions
            .push(Subscribed {
                qos: QoS::AtLeastOnce,
                flags: 0,
                id: 0,
                requested: false,
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

    #[test]
    fn released_bytes_are_reclaimed_in_one_pass_keeping_every_entry() {
        let mut buf = [0u8; 12];
        let mut store = entries_only(&mut buf);
        let sub = |span| Subscribed {
            qos: QoS::AtMostOnce,
            flags: 0,
            id: 0,
            requested: false,
            span,
            confirmed: false,
        };
        // Interleaved: a filter, two messages, another filter.
        let f1 = store.append(b"ff").unwrap();
        store.subscriptions.push(sub(f1)).unwrap();
        for (id, bytes) in [(1u16, &b"aaa"[..]), (2, &b"bbb"[..])] {
            let span = store.append(bytes).unwrap();
            store
                .outgoing
                .push(Outgoing {
                    packet_id: id,
                    stage: Stage::AwaitPubAck,
                    deadline: crate::time::Instant::from_millis(0),
                    span,
                    status: Status::Live,
                    send: false,
                    payload: 0,
                    rec: 0,
                })
                .unwrap();
        }
        let f2 = store.append(b"gg").unwrap();
        store.subscriptions.push(sub(f2)).unwrap();
        // The oldest message completes: nothing moves yet.
        store.outgoing[0].status = Status::Done;
        store.finished = true;
        store.collect(None);
        assert_eq!(store.free_bytes(), 5);
        assert_eq!(store.bytes(store.subscriptions[1].span), b"gg");
        // Five bytes fit only over the released ones: one compaction.
        let e = store.append(b"eeeee").unwrap();
        assert_eq!(store.bytes(e), b"eeeee");
        assert_eq!(store.bytes(store.subscriptions[0].span), b"ff");
        assert_eq!(store.bytes(store.outgoing[0].span), b"bbb");
        assert_eq!(store.bytes(store.subscriptions[1].span), b"gg");
        assert_eq!(store.free_bytes(), 0);
        assert_eq!(store.append(b"x"), Err(StoreFull));
        // The last entry's release just shortens the store.
        store.release(e);
        assert_eq!(store.free_bytes(), 5);
    }

    #[cfg(feature = "v5")]
    #[test]
    fn compaction_keeps_topic_aliases_in_place() {
        let mut buf = [0u8; 10];
        let mut store = entries_only(&mut buf);
        let a = store.append(b"ab").unwrap();
        store.aliases.push(a).unwrap();
        let m = store.append(b"mmm").unwrap();
        store
            .outgoing
            .push(Outgoing {
                packet_id: 1,
                stage: Stage::AwaitPubAck,
                deadline: crate::time::Instant::from_millis(0),
                span: m,
                status: Status::Live,
                send: false,
                payload: 0,
                rec: 0,
            })
            .unwrap();
        let c = store.append(b"cd").unwrap();
        store.aliases.push(c).unwrap();
        store.outgoing[0].status = Status::Done;
        store.finished = true;
        store.collect(None);
        // Six bytes fit only over the released message.
        let e = store.append(b"eeeeee").unwrap();
        assert_eq!(store.bytes(e), b"eeeeee");
        assert_eq!(store.alias_of("ab"), Some(1));
        assert_eq!(store.alias_of("cd"), Some(2));
        assert_eq!(store.alias_of("mmm"), None);
        store.release(e);
        store.clear_aliases();
        assert_eq!(store.free_bytes(), 10);
    }

    #[cfg(feature = "v5")]
    #[test]
    fn an_encoded_append_compacts_when_it_must() {
        use crate::codec::v5;
        let mut buf = [0u8; 16];
        let mut store = entries_only(&mut buf);
        let a = store.append(b"0123456789").unwrap();
        store.aliases.push(a).unwrap();
        let b = store.append(b"ab").unwrap();
        store.aliases.push(b).unwrap();
        // The first alias goes: 10 bytes of garbage below the second.
        let gone = store.aliases.remove(0);
        store.release(gone);
        let publish = v5::Publish::new("t", b"xyz", crate::codec::QoS::AtMostOnce, false);
        let span = store
            .append_encoded(super::super::Encode::Publish5(&publish))
            .unwrap();
        assert_eq!(span.off, 2, "compacted first");
        assert_eq!(store.bytes(span).len(), publish.encoded_len());
        assert_eq!(store.alias_of("ab"), Some(1));
        // Too large even then.
        let big = v5::Publish::new("t", &[0; 20], crate::codec::QoS::AtMostOnce, false);
        assert_eq!(
            store.append_encoded(super::super::Encode::Publish5(&big)),
            Err(StoreFull)
        );
    }

    #[test]
    fn the_transmit_queue_moves_out_of_the_entries_way_and_back() {
        let mut buf = [0u8; 32];
        let mut store = Store::<'_, 4, 4>::new(&mut buf);
        // An empty queue takes its first packet right behind the entries.
        store.tx_push_bytes(b"ping").unwrap();
        assert_eq!((store.tx.held, store.tx.end), (0, 4));
        // An entry needs that room: the pending packet moves to the top.
        let a = store.append(b"0123456789").unwrap();
        assert_eq!(a.off, 0);
        assert_eq!(store.tx_pending(), b"ping");
        assert_eq!(store.tx.end, 32);
        // The next packet has no room at the top: the queue moves back
        // down behind the entries, its bytes in order.
        store.tx_push_bytes(b"abcdefgh").unwrap();
        assert_eq!(store.tx.held, 10);
        assert_eq!(store.tx_pending(), b"pingabcdefgh");
        // Written but held bytes move with the queue.
        store.tx.consume(4, true);
        assert_eq!(store.tx_held(), b"ping");
        let b = store.append(b"xy").unwrap();
        assert_eq!(store.bytes(b), b"xy");
        assert_eq!(store.tx_held(), b"ping");
        assert_eq!(store.tx_pending(), b"abcdefgh");
        assert_eq!(store.bytes(a), b"0123456789");
        // Entries never take the bytes the queue keeps, nor its reserve.
        assert!(!store.has_room_with_tx(0, 9));
        assert_eq!(store.append(&[0; 9]), Err(StoreFull));
        assert_eq!(
            store.tx_push_bytes(&[0; 9]),
            Err(EncodeError::BufferTooSmall { needed: 21 })
        );
        // Once written and released, the queue has no place until its next
        // packet, and the entries may take all but the reserve.
        store.tx.consume(8, false);
        assert!(store.tx.is_vacant());
        assert_eq!(store.free_bytes(), 32 - 12 - TX_RESERVE);
        store.append(&[0; 14]).unwrap();
        assert_eq!(store.append(b"x"), Err(StoreFull));
        // The reserve is there for an acknowledgement.
        let puback = crate::codec::ack_bytes(crate::codec::PacketType::PubAck, 1).unwrap();
        store.tx_push_bytes(&puback).unwrap();
        assert_eq!(store.tx.held, 26);
    }
}
