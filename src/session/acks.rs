//! Acknowledgements of incoming messages, in the order their PUBLISHes
//! arrived (MQTT-4.6.0-2, MQTT-4.6.0-3), some of them deferred by the
//! application until it has stored or processed the message.
//!
//! The last delivered message's PUBACK / PUBREC is *owed*: queued by the
//! next call on the session, unless the application defers it first
//! ([`Session::defer_ack`](super::Session::defer_ack)). A deferred one waits
//! in a FIFO until its [`AckToken`] is redeemed; every acknowledgement
//! after it waits behind it, so the broker sees them in order.

use crate::codec::{self, PacketType, QoS};

/// The right to send one deferred acknowledgement, from
/// [`Session::defer_ack`](super::Session::defer_ack) (or a callback's
/// [`Context::defer_ack`](crate::callbacks::Context::defer_ack)). Redeem it
/// once the message is stored or processed; the broker considers the
/// message delivered only then. Not `Clone`: one token, one
/// acknowledgement.
///
/// A token outlives its connection harmlessly: redeeming it then sends
/// nothing ([`UsageError::StaleAck`](crate::error::UsageError::StaleAck)).
/// A QoS 1 message is then resent by the broker after a reconnect (clean
/// session off) and delivered again; a QoS 2 message is not delivered
/// again (exactly once), and the session acknowledges the resend itself.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AckToken {
    pub(crate) packet_id: u16,
    pub(crate) qos: QoS,
    pub(crate) connection: u32,
}

impl AckToken {
    /// The message's packet id.
    pub fn packet_id(&self) -> u16 {
        self.packet_id
    }

    /// The message's QoS (1: PUBACK, 2: PUBREC).
    pub fn qos(&self) -> QoS {
        self.qos
    }
}

/// Whether the next message's acknowledgement could be deferred, read
/// before its event (which borrows the session): the driver turns it into
/// what the callbacks are offered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckState {
    /// The connection a token handed out now belongs to.
    pub(crate) connection: u32,
    /// Room for one more deferred acknowledgement.
    pub(crate) room: bool,
}

/// One acknowledgement in the FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    packet_id: u16,
    qos: QoS,
    /// Its token was redeemed (or it never had one): it may go.
    ready: bool,
}

/// The owed acknowledgement and the FIFO of deferred ones.
#[derive(Debug)]
pub(crate) struct Acks<const N: usize> {
    /// The last delivered message's acknowledgement, until the next call.
    owed: Option<(u16, QoS)>,
    /// `owed` was set by the last `poll_event`: it may still be deferred.
    fresh: bool,
    // A `Vec`, not a `Deque`: `Deque` needs N > 0, and a window of 0 is
    // allowed. N is small; removing from the front is cheap.
    queue: heapless::Vec<Queued, N>,
    /// Counts connections, so a token of an earlier one is refused.
    connection: u32,
}

impl<const N: usize> Acks<N> {
    pub(crate) const fn new() -> Self {
        Self {
            owed: None,
            fresh: false,
            queue: heapless::Vec::new(),
            connection: 0,
        }
    }

    /// The message just delivered owes this acknowledgement (none at QoS 0).
    pub(crate) fn owe(&mut self, qos: QoS, packet_id: Option<u16>) {
        if let (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) = (qos, packet_id) {
            self.owed = Some((id, qos));
            self.fresh = true;
        }
    }

    /// A message skipped undelivered owes this acknowledgement: in order,
    /// but nobody can defer it (the application never saw the message).
    pub(crate) fn owe_undeliverable(&mut self, qos: QoS, packet_id: Option<u16>) {
        self.owe(qos, packet_id);
        self.fresh = false;
    }

    /// Read before the next `poll_event`, whose `drain` may move the owed
    /// acknowledgement into the queue: counting it makes the room offered
    /// a promise `defer` keeps.
    pub(crate) fn state(&self) -> AckState {
        AckState {
            connection: self.connection,
            room: self.queue.len() + usize::from(self.owed.is_some()) < N,
        }
    }

    /// Whether an owed acknowledgement has not been queued yet: no
    /// further message may be delivered until it is.
    pub(crate) fn is_owing(&self) -> bool {
        self.owed.is_some()
    }

    /// QoS 1 messages delivered (or skipped) whose PUBACK is not queued
    /// yet: with the QoS 2 ids awaiting PUBCOMP, what the broker counts
    /// against the Receive Maximum we advertised (MQTT 5).
    #[cfg(feature = "v5")]
    pub(crate) fn qos1_unacked(&self) -> usize {
        let queued = self.queue.iter().filter(|q| q.qos == QoS::AtLeastOnce);
        let owed = self.owed.filter(|(_, qos)| *qos == QoS::AtLeastOnce);
        queued.count() + usize::from(owed.is_some())
    }

    /// Whether an acknowledgement is ready to be written.
    pub(crate) fn has_ready(&self) -> bool {
        self.queue.first().is_some_and(|q| q.ready)
            || (self.owed.is_some() && self.queue.is_empty())
    }

    /// Takes the owed acknowledgement into the FIFO, deferred.
    pub(crate) fn defer(&mut self) -> Result<AckToken, crate::error::SessionError> {
        use crate::error::{ResourceError, SessionError, UsageError};
        let Some((packet_id, qos)) = self.owed.filter(|_| self.fresh) else {
            return Err(SessionError::Usage(UsageError::NothingToDefer));
        };
        let entry = Queued {
            packet_id,
            qos,
            ready: false,
        };
        if self.queue.push(entry).is_err() {
            return Err(SessionError::Resource(ResourceError::AcksFull));
        }
        self.owed = None;
        self.fresh = false;
        Ok(AckToken {
            packet_id,
            qos,
            connection: self.connection,
        })
    }

    /// Marks the token's acknowledgement ready to go.
    pub(crate) fn redeem(&mut self, token: AckToken) -> Result<(), crate::error::SessionError> {
        use crate::error::{SessionError, UsageError};
        let stale = SessionError::Usage(UsageError::StaleAck);
        if token.connection != self.connection {
            return Err(stale);
        }
        let entry = self
            .queue
            .iter_mut()
            .find(|q| !q.ready && q.packet_id == token.packet_id && q.qos == token.qos)
            .ok_or(stale)?;
        entry.ready = true;
        Ok(())
    }

    /// Whether nothing is owed or deferred: the common case, checked
    /// before [`drain`](Self::drain) at every call on the session.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.owed.is_none() && self.queue.is_empty()
    }

    /// Hands every acknowledgement that may go, in order, to `push` while
    /// it accepts them (the transmit queue has room).
    pub(crate) fn drain(&mut self, mut push: impl FnMut(&[u8]) -> bool) {
        self.fresh = false;
        while let Some(q) = self.queue.first().copied().filter(|q| q.ready) {
            if !push(&ack_bytes(q.packet_id, q.qos)) {
                return;
            }
            self.queue.remove(0);
        }
        let Some((id, qos)) = self.owed else {
            return;
        };
        if self.queue.is_empty() {
            if push(&ack_bytes(id, qos)) {
                self.owed = None;
            }
        } else {
            // Behind a deferred one: it waits its turn.
            let entry = Queued {
                packet_id: id,
                qos,
                ready: true,
            };
            if self.queue.push(entry).is_ok() {
                self.owed = None;
            }
        }
    }

    /// The PUBREC of a QoS 2 message received again, delivered already:
    /// `true` if the queue sees to it, `false` for the caller to send it
    /// at once. While its first PUBREC waits in the queue nothing more is
    /// sent: a resend must not be acknowledged ahead of it. Behind other
    /// deferred acknowledgements it takes its turn, since PUBRECs go in
    /// the order of their PUBLISHes (MQTT-4.6.0-3). With the queue full
    /// it goes at once: an answer out of order rather than none.
    pub(crate) fn queue_pubrec(&mut self, packet_id: u16) -> bool {
        if self.queue.iter().any(|q| q.packet_id == packet_id) {
            return true;
        }
        let entry = Queued {
            packet_id,
            qos: QoS::ExactlyOnce,
            ready: true,
        };
        !self.queue.is_empty() && self.queue.push(entry).is_ok()
    }

    /// The connection is gone: nothing owed or deferred can be sent any
    /// more, and the tokens handed out are stale.
    pub(crate) fn clear(&mut self) {
        self.owed = None;
        self.fresh = false;
        self.queue.clear();
        self.connection = self.connection.wrapping_add(1);
    }
}

/// PUBACK for QoS 1, PUBREC for QoS 2.
fn ack_bytes(packet_id: u16, qos: QoS) -> [u8; super::ACK_LEN] {
    let kind = match qos {
        QoS::ExactlyOnce => PacketType::PubRec,
        _ => PacketType::PubAck,
    };
    // A packet id of 0 never reaches here: the codec refuses it.
    codec::ack_bytes(kind, packet_id).unwrap_or_default()
}
