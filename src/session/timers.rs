//! Time: the acknowledgement deadlines and keep-alive. The keep-alive
//! rule is written once ([`keep_alive_deadline`](Protocol::keep_alive_deadline));
//! [`handle_timeout`](Protocol::handle_timeout) walks every deadline as one
//! list, [`poll_timeout`](Protocol::poll_timeout) the same ones in plain
//! loops.

use super::*;

/// How long the session waits for each acknowledgement.
///
/// ```
/// use minimqtt::session::Timeouts;
/// use minimqtt::time::Duration;
///
/// let timeouts = Timeouts {
///     pingresp: Duration::from_secs(5),
///     ..Timeouts::default()
/// };
/// assert_eq!(timeouts.connack, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// CONNACK after CONNECT, and (MQTT 5) the broker's AUTH after ours
    /// during a re-authentication (default 10 s).
    pub connack: Duration,
    /// SUBACK after SUBSCRIBE (default 10 s).
    pub suback: Duration,
    /// UNSUBACK after UNSUBSCRIBE (default 10 s).
    pub unsuback: Duration,
    /// PUBACK, PUBREC and PUBCOMP after the packet that asks for them
    /// (default 10 s).
    pub puback: Duration,
    /// PINGRESP after PINGREQ (default 10 s). With a keep-alive K the wait
    /// is the shorter of this and K: a broker that has not answered within
    /// one keep-alive period is taken as gone. The client also gives a
    /// write (or flush) that no other deadline bounds this long (keep-alive
    /// 0, nothing awaited; DISCONNECT's write) before it takes the peer as
    /// gone.
    pub pingresp: Duration,
}

impl Timeouts {
    /// 10 s for every wait; `const`, so a `Config` can be built in a `const`.
    pub const DEFAULT: Self = {
        let ten = Duration::from_secs(10);
        Self {
            connack: ten,
            suback: ten,
            unsuback: ten,
            puback: ten,
            pingresp: ten,
        }
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// A PINGREQ must go out.
    Ping,
    /// This acknowledgement never came: the connection is dead.
    Lost(AckKind),
}

/// When a PINGREQ goes out after the last packet sent, for a keep-alive
/// of `keep_alive`: early enough that it is *written* before the
/// keep-alive has passed (MQTT-3.1.2-23), whatever the scheduling delays.
/// A tenth of the period, at least half a second and at most half the
/// period, is that margin.
pub(crate) fn ping_interval(keep_alive: Duration) -> Duration {
    // In u32 (a keep-alive is at most 65,535 s, 65,535,000 ms): a u64
    // division is a library call of almost a kilobyte on 32-bit MCUs.
    let k = u32::try_from(keep_alive.as_millis()).unwrap_or(u32::MAX);
    let margin = (k / 10).max(500).min(k / 2);
    Duration::from_millis(u64::from(k - margin))
}

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// While connected: the PINGRESP awaited, or else the next PINGREQ
    /// (none with a keep-alive of 0).
    fn keep_alive_deadline(&self) -> Option<(Instant, Due)> {
        match self.pingresp_deadline {
            Some(t) => Some((t, Due::Lost(AckKind::PingResp))),
            None if !self.keep_alive.is_zero() => {
                Some((self.last_sent + ping_interval(self.keep_alive), Due::Ping))
            }
            None => None,
        }
    }

    /// While a streamed payload is written nothing is read: the one
    /// deadline then is write progress.
    fn payload_deadline(&self) -> Option<Instant> {
        if !cfg!(feature = "streaming") || self.state != State::Connected {
            return None;
        }
        // From when its head is written: until then the queue ahead of it
        // is written as any other, under the usual deadlines.
        self.payload
            .filter(|p| self.store.tx.written() >= p.at)
            .map(|_| self.last_sent + self.pingresp_wait())
    }

    /// Acknowledgements could not arrive before `now` through no fault of
    /// the broker's: a payload was being written (nothing was read), or a
    /// long message was arriving (they queue behind it). Their waits
    /// start again.
    pub(crate) fn restart_waits(&mut self, now: Instant) {
        self.earliest_ack.set(None);
        let ack = now + self.timeouts.puback;
        for e in self.store.outgoing.iter_mut() {
            e.deadline = e.deadline.max(ack);
        }
        let request = now + self.timeouts.suback.max(self.timeouts.unsuback);
        for r in self.store.requests.iter_mut() {
            r.deadline = r.deadline.max(request);
        }
        if let Some(due) = self.pingresp_deadline {
            self.pingresp_deadline = Some(due.max(now + self.pingresp_wait()));
        }
    }

    /// Bytes of a long message arrived at `now` (a streamed chunk, or
    /// bytes of one skipped): the broker is alive, and what it owes us
    /// queues behind the message ([`restart_waits`](Self::restart_waits)).
    /// A PINGRESP is no longer awaited: the keep-alive's own schedule
    /// sends the next PINGREQ, so that a message arriving for longer than
    /// the keep-alive does not leave us silent that long (MQTT-3.1.2-23).
    pub(crate) fn heard_from_broker(&mut self, now: Instant) {
        self.restart_waits(now);
        self.pingresp_deadline = None;
    }

    /// Every running deadline, in no particular order.
    fn deadlines(&self) -> impl Iterator<Item = (Instant, Due)> + '_ {
        let writing = self.payload_deadline();
        let connecting = self.state == State::Connecting;
        let connected = self.state == State::Connected && writing.is_none();
        let writing = writing.map(|t| (t, Due::Lost(AckKind::PingResp)));
        let connack = self
            .connack_deadline
            .filter(|_| connecting)
            .map(|t| (t, Due::Lost(AckKind::ConnAck)));
        let ping = self.keep_alive_deadline().filter(|_| connected);
        let outgoing = self
            .store
            .outgoing
            .iter()
            // A resend still to be queued waits for no answer yet (under
            // MQTT 5's Receive Maximum it may wait long): its deadline
            // starts when it is queued.
            .filter(move |e| connected && e.is_live() && !e.send)
            .map(|e| {
                let kind = match e.stage {
                    Stage::AwaitPubAck => AckKind::PubAck,
                    Stage::AwaitPubRec => AckKind::PubRec,
                    Stage::AwaitPubComp => AckKind::PubComp,
                };
                (e.deadline, Due::Lost(kind))
            });
        let requests = self
            .store
            .requests
            .iter()
            .filter(move |r| connected && !r.done)
            .map(|r| {
                let kind = match r.kind {
                    RequestKind::Subscribe => AckKind::SubAck,
                    RequestKind::Unsubscribe => AckKind::UnsubAck,
                };
                (r.deadline, Due::Lost(kind))
            });
        #[cfg(feature = "v5")]
        let auth = self
            .auth_deadline
            .filter(|_| connected)
            .map(|t| (t, Due::Lost(AckKind::Auth)));
        #[cfg(not(feature = "v5"))]
        let auth = None;
        connack
            .into_iter()
            .chain(writing)
            .chain(ping)
            .chain(outgoing)
            .chain(requests)
            .chain(auth)
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work:
    /// the earliest of [`deadlines`](Self::deadlines).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        // The same deadlines as `deadlines()`, in plain loops: the driver
        // asks for this once or twice a message, over a window of up to
        // INFLIGHT entries, and the iterator chain cost several times more
        // instructions per entry.
        if let Some(t) = self.payload_deadline() {
            return Some(t);
        }
        match self.state {
            State::Disconnected => None,
            State::Connecting => self.connack_deadline,
            State::Connected => {
                let ping = self.keep_alive_deadline().map(|(t, _)| t);
                let acks = match self.earliest_ack.get() {
                    Some(known) => {
                        // Tests and the fuzzer hold the cache to the scan.
                        debug_assert_eq!(known, self.scan_ack_deadlines(), "stale earliest ack");
                        known
                    }
                    None => {
                        let scanned = self.scan_ack_deadlines();
                        self.earliest_ack.set(Some(scanned));
                        scanned
                    }
                };
                [ping, acks, self.auth_deadline()]
                    .into_iter()
                    .flatten()
                    .min()
            }
        }
    }

    /// The earliest deadline of a live outgoing message or a pending
    /// request.
    fn scan_ack_deadlines(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut earliest = |t: Instant| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for e in &self.store.outgoing {
            if e.is_live() && !e.send {
                earliest(e.deadline);
            }
        }
        for r in &self.store.requests {
            if !r.done {
                earliest(r.deadline);
            }
        }
        next
    }

    /// MQTT 5: when the broker's answer to our AUTH is due.
    fn auth_deadline(&self) -> Option<Instant> {
        #[cfg(feature = "v5")]
        return self.auth_deadline;
        #[cfg(not(feature = "v5"))]
        None
    }

    /// An acknowledgement deadline `t` started.
    pub(crate) fn deadline_added(&self, t: Instant) {
        if let Some(known) = self.earliest_ack.get() {
            if known.is_none_or(|k| t < k) {
                self.earliest_ack.set(Some(Some(t)));
            }
        }
    }
}

/// The earliest acknowledgement deadline as
/// [`Protocol::earliest_ack`] keeps it.
pub(crate) type EarliestAck = core::cell::Cell<Option<Option<Instant>>>;

/// An acknowledgement deadline `t` ended or moved later: if it was the
/// earliest, the next one is found again when asked for. (On the field,
/// not the protocol, so it can be called while an entry is borrowed.)
pub(crate) fn deadline_gone(earliest: &EarliestAck, t: Instant) {
    if earliest.get() == Some(Some(t)) {
        earliest.set(None);
    }
}

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// Acts on every deadline that has passed at `now`: an acknowledgement
    /// that never came ends the connection, a keep-alive period without
    /// sending queues a PINGREQ.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut ping = false;
        let mut lost = None;
        for (at, due) in self.deadlines() {
            if now < at {
                continue;
            }
            match due {
                Due::Ping => ping = true,
                Due::Lost(kind) => {
                    lost = Some(kind);
                    break;
                }
            }
        }
        if let Some(kind) = lost {
            crate::fmt::warning!("acknowledgement timed out");
            self.lose(Closed::Timeout(kind));
        } else if ping {
            // Cannot fail: connected, and no PINGREQ outstanding.
            let _ = self.ping(now);
        }
    }

    /// How long a PINGRESP may take.
    pub(crate) fn pingresp_wait(&self) -> Duration {
        if self.keep_alive.is_zero() {
            self.timeouts.pingresp
        } else {
            self.timeouts.pingresp.min(self.keep_alive)
        }
    }
}
