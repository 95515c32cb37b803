//! QoS 0 completion: a QoS 0 PUBLISH is complete once written in full
//! ([`Event::Sent`](super::Event::Sent)). Its bytes stay held in the
//! transmit queue until the event is polled, so the event can lend its
//! topic without a copy or a table of its own.

use super::*;
use crate::codec::queued_packet;

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// A QoS 0 PUBLISH was queued (the last packet pushed): its event is
    /// due once it is written.
    pub(crate) fn sent_queued(&mut self) {
        if self.unreported == 0 {
            self.sent_from = self.store.tx.last_pushed();
        }
        self.unreported += 1;
    }

    /// Where the held bytes start in the transmit stream.
    fn held_from(&self) -> u64 {
        self.store.tx.written() - self.store.tx_held().len() as u64
    }

    /// Whether the head of an earlier streamed message is still held (a
    /// QoS 0 message before it is unreported): another streamed head
    /// waits until it is released, since [`next_sent`](Self::next_sent)
    /// knows where one head ends, not two.
    pub(crate) fn head_held(&self) -> bool {
        self.unreported > 0 && self.head_end > self.held_from()
    }

    /// Drops the bytes of the message last reported, once its event has
    /// been consumed, and every held byte once no report is due.
    pub(crate) fn release_reported(&mut self) {
        self.store.tx.release(core::mem::take(&mut self.reported));
        if self.unreported == 0 {
            self.store.tx.release(usize::MAX);
        }
    }

    /// Where the next QoS 0 PUBLISH written in full and not yet reported
    /// starts among the held bytes, and its length (`None`: there is none
    /// yet, and the bytes before that offset are written packets that need
    /// no report).
    pub(crate) fn find_sent(&self) -> Option<(usize, Option<usize>)> {
        if self.unreported == 0 {
            return None;
        }
        let held = self.store.tx_held();
        let mut at = usize::try_from(self.sent_from.checked_sub(self.held_from())?).ok()?;
        loop {
            let Some((mut len, _, qos0_publish)) = held.get(at..).and_then(queued_packet) else {
                return Some((at, None));
            };
            let from = self.held_from() + at as u64;
            if cfg!(feature = "streaming")
                && from < self.head_end
                && self.head_end < from.saturating_add(len as u64)
            {
                // A streamed head: its payload went (or goes) straight to
                // the transport, and is complete once the session is told.
                if self.payload.is_some_and(|p| p.at == self.head_end) {
                    return Some((at, None));
                }
                len = usize::try_from(self.head_end - from).unwrap_or(usize::MAX);
            }
            if held.len() - at < len {
                // Not written in full yet.
                return Some((at, None));
            }
            if qos0_publish {
                return Some((at, Some(len)));
            }
            at += len;
        }
    }

    /// Takes the message [`find_sent`](Self::find_sent) finds as reported:
    /// its topic is then [`reported_topic`](Self::reported_topic)'s. The
    /// packets written before it are released now, and it at the next
    /// call ([`release_reported`](Self::release_reported)). Without one,
    /// the written packets that need no report are released (room for a
    /// streamed payload, among others).
    pub(crate) fn next_sent(&mut self) -> bool {
        let Some((at, found)) = self.find_sent() else {
            return false;
        };
        // Where the walk stopped: a packet's start, which may lie past the
        // bytes written (then all of them go).
        self.sent_from = self.held_from() + at as u64;
        self.store.tx.release(at);
        let Some(len) = found else {
            return false;
        };
        self.unreported -= 1;
        self.reported = len;
        self.sent_from += len as u64;
        true
    }

    /// The topic of the QoS 0 PUBLISH [`next_sent`](Self::next_sent)
    /// found. Empty only if it could not be read back, which does not
    /// happen: the session wrote it from a `&str`.
    pub(crate) fn reported_topic(&self) -> &str {
        self.store
            .tx_held()
            .get(..self.reported)
            .and_then(|packet| self.queued_topic(packet))
            .unwrap_or_default()
    }

    /// The topic of a QoS 0 PUBLISH this session queued: written in it,
    /// or on MQTT 5 named by the Topic Alias it carries instead.
    fn queued_topic<'s>(&'s self, packet: &'s [u8]) -> Option<&'s str> {
        let (topic, rest) = codec::queued_topic(packet)?;
        #[cfg(not(feature = "v5"))]
        let _ = rest;
        #[cfg(feature = "v5")]
        if topic.is_empty() && self.version == Version::V5 {
            let alias = codec::v5::publish_alias(rest).ok()??;
            let span = *self.store.aliases.get(usize::from(alias).checked_sub(1)?)?;
            return core::str::from_utf8(self.store.bytes(span)).ok();
        }
        core::str::from_utf8(topic).ok()
    }
}
