//! The sans-IO session driven by an arbitrary sequence of operations: broker
//! packets (structured, with ids picked from what is in flight, or raw bytes
//! through `Packet::decode_limited`), user calls with arbitrary arguments,
//! time advancing, partial writes. Small capacities, so every "full" path
//! is reached.
//!
//! Checked after every step:
//! - nothing panics;
//! - in-flight packet ids are unique and non-zero, at most `INFLIGHT` of
//!   them; at most `SUBS` subscriptions, each a valid, distinct filter;
//! - `poll_transmit` never returns more than the transmit buffer, and the
//!   bytes written since `connect` decode as a sequence of client packets,
//!   CONNECT first, nothing but CONNECT / acks / DISCONNECT before CONNACK;
//! - `poll_timeout` is `Some` while connected with acks pending (or
//!   keep-alive on), `None` when disconnected; `handle_timeout` before that
//!   deadline changes nothing;
//! - a refused user call leaves the in-flight messages and subscriptions as
//!   they were; a successful one does what it says;
//! - `Published` names a message that was in flight and is no longer;
//!   `Subscribed` pairs as many codes as filters;
//! - exactly once: a QoS 2 message id is delivered again only after its
//!   PUBREL, its eviction from the full set, a clean session or a broker
//!   that lost the session (a model kept a subset of the session's set);
//! - an acceptable CONNACK on an idle connection connects: a failure there
//!   (no room to re-subscribe) would repeat on every reconnect;
//! - after a reconnect the resends go first, in their original order, each
//!   PUBLISH with DUP and the original topic, payload, QoS and id.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use minimqtt::Error;
use minimqtt::codec::{
    ConnAck, Connect, ConnectReturnCode, DecodeError, Packet, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, ReturnCodes, SubAck, Subscribe, SubscribeFilters, Subscription, UnsubAck,
    Unsubscribe, UnsubscribeFilters,
};
use minimqtt::session::{Event, Session, Stage, State, Timeouts};
use minimqtt::time::{Duration, Instant};
use minimqtt::topic;

const INFLIGHT: usize = 4;
const SUBS: usize = 4;
const TX: usize = 96;
const STORE: usize = 192;
/// The receive limit: larger packets are `TooLarge`.
const RX: usize = 128;

const TOPICS: &[&str] = &["a", "a/b", "b/c", "c", "x/y/z", "a/+", "", "$SYS/x"];
const FILTERS: &[&str] = &[
    "a",
    "a/b",
    "a/+",
    "#",
    "+/+",
    "b/#",
    "c",
    "a/#/b",
    "",
    "x/y/z",
    // Each fits a SUBSCRIBE of its own; together they outgrow the
    // transmit buffer (and nearly fill the store).
    "sensors/+/temperature/0123456789abcdef",
    "sensors/+/humidity/0123456789abcdef0123",
    "actuators/#",
];

fn qos(bits: u8) -> QoS {
    match bits % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Where a broker packet's id comes from.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Id {
    /// The n-th outgoing message in flight.
    Inflight(u8),
    /// The n-th SUBSCRIBE / UNSUBSCRIBE seen on the wire.
    Request(u8),
    /// The n-th incoming QoS 1/2 message id seen.
    Incoming(u8),
    Raw(u16),
}

#[derive(Arbitrary, Debug)]
enum Broker {
    Raw(Vec<u8>),
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        qos: u8,
        dup: bool,
        retain: bool,
        topic: u8,
        id: Id,
        payload: u8,
    },
    PubAck(Id),
    PubRec(Id),
    PubRel(Id),
    PubComp(Id),
    SubAck {
        id: Id,
        exact: bool,
        codes: Vec<u8>,
    },
    UnsubAck(Id),
    PingResp,
    /// A packet only a client may send.
    ServerOnly(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Broker(Broker),
    /// The rest of a packet split over reads: these bytes are appended to
    /// the receive buffer only.
    Partial(Vec<u8>),
    Connect {
        clean_session: bool,
        keep_alive: u8,
        empty_id: bool,
    },
    /// Connection lost, connect, write CONNECT, CONNACK accepted.
    Reconnect {
        clean_session: bool,
        keep_alive: u8,
        session_present: bool,
    },
    Publish {
        qos: u8,
        topic: u8,
        payload: u8,
        retain: bool,
        dup: bool,
        id: u16,
    },
    Subscribe(Vec<(u8, u8)>),
    /// One SUBSCRIBE per filter, each written.
    SubscribeEach(Vec<(u8, u8)>),
    Unsubscribe(Vec<u8>),
    Ping,
    Disconnect,
    ConnectionLost,
    Acknowledge {
        qos: u8,
        id: Option<u16>,
    },
    AcknowledgeDropped {
        qos: u8,
        id: u16,
    },
    /// Milliseconds, times 16.
    Advance(u16),
    /// Jump to `poll_timeout`.
    AdvanceToDeadline,
    Transmit(u8),
    /// Write everything.
    Flush,
}

#[derive(Arbitrary, Debug)]
struct Input {
    timeouts: [u8; 5],
    ops: Vec<Op>,
}

struct Harness<'b> {
    s: Session<'b, INFLIGHT, SUBS>,
    now: Instant,
    rx: Vec<u8>,
    /// Bytes written since the transmit queue was last cleared.
    wire: Vec<u8>,
    /// Whether the next packet on the wire must be a CONNECT.
    expect_connect: bool,
    /// A CONNACK was accepted on this connection.
    connacked: bool,
    /// Packet ids of SUBSCRIBE (with their filter counts) / UNSUBSCRIBE seen on the wire.
    requests: Vec<(u16, Option<usize>)>,
    incoming_ids: Vec<u16>,
    /// Model: incoming QoS 2 ids the session must still remember, oldest
    /// first: delivered (or dropped) and neither released by a PUBREL,
    /// nor evicted (the full set forgets its oldest), nor dropped by a
    /// clean session or a broker without our session. Always a subset of what the session remembers (it
    /// may keep an id longer, until its PUBCOMP is written), so a QoS 2
    /// message delivered while its id is in here is delivered twice.
    incoming_qos2: Vec<u16>,
    subscribe_counts: BTreeMap<u16, usize>,
    /// The resends expected after the last CONNACK, in order.
    resends: Vec<(u16, Stage)>,
    /// Ids the broker sent PUBREC for since the last CONNACK: a resend
    /// still to come for one of them goes out as PUBREL.
    pubrec_since_connack: BTreeSet<u16>,
    /// The CONNACK queued a re-subscription, which may precede the resends.
    resubscribe: bool,
    /// The clean-session flag and keep-alive of the last CONNECT.
    clean_session: bool,
    keep_alive: u8,
    /// What each QoS 1/2 publish carried: topic, payload, QoS, retain.
    originals: BTreeMap<u16, (String, Vec<u8>, QoS, bool)>,
}

fn pick<T: Copy>(list: &[T], n: u8) -> Option<T> {
    if list.is_empty() {
        None
    } else {
        Some(list[usize::from(n) % list.len()])
    }
}

impl<'b> Harness<'b> {
    fn id(&self, id: Id) -> u16 {
        let picked = match id {
            Id::Inflight(n) => {
                let ids: Vec<u16> = self.s.inflight_ids().map(|(id, _)| id).collect();
                pick(&ids, n)
            }
            Id::Request(n) => {
                let ids: Vec<u16> = self.requests.iter().map(|&(id, _)| id).collect();
                pick(&ids, n)
            }
            Id::Incoming(n) => pick(&self.incoming_ids, n),
            Id::Raw(raw) => Some(raw),
        };
        picked.unwrap_or(1).max(1)
    }

    fn broker(&mut self, b: Broker) {
        let mut codes_buf: Vec<u8>;
        let subs = [Subscription {
            filter: "a",
            qos: QoS::AtMostOnce,
        }];
        let connect = connect_packet(true, 0, false);
        let packet = match b {
            Broker::Raw(bytes) => {
                self.rx.extend_from_slice(&bytes);
                self.receive();
                return;
            }
            Broker::ConnAck {
                session_present,
                code,
            } => Packet::ConnAck(ConnAck {
                session_present: session_present && code % 8 == 0,
                return_code: ConnectReturnCode::from_u8(code % 8 % 6)
                    .unwrap_or(ConnectReturnCode::Accepted),
            }),
            Broker::Publish {
                qos: q,
                dup,
                retain,
                topic,
                id,
                payload,
            } => {
                let q = qos(q);
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                Packet::Publish(Publish {
                    dup: dup && q != QoS::AtMostOnce,
                    qos: q,
                    retain,
                    topic: if topic::validate_name(topic).is_ok() {
                        topic
                    } else {
                        "t"
                    },
                    packet_id: (q != QoS::AtMostOnce).then(|| self.id(id)),
                    payload: &[0x55; 255][..usize::from(payload)],
                })
            }
            Broker::PubAck(id) => Packet::PubAck(PubAck {
                packet_id: self.id(id),
            }),
            Broker::PubRec(id) => Packet::PubRec(PubRec {
                packet_id: self.id(id),
            }),
            Broker::PubRel(id) => Packet::PubRel(PubRel {
                packet_id: self.id(id),
            }),
            Broker::PubComp(id) => Packet::PubComp(PubComp {
                packet_id: self.id(id),
            }),
            Broker::UnsubAck(id) => Packet::UnsubAck(UnsubAck {
                packet_id: self.id(id),
            }),
            Broker::SubAck { id, exact, codes } => {
                let packet_id = self.id(id);
                codes_buf = codes
                    .iter()
                    .map(|&c| [0x00, 0x01, 0x02, 0x80][usize::from(c % 4)])
                    .collect();
                if let (true, Some(&n)) = (exact, self.subscribe_counts.get(&packet_id)) {
                    codes_buf.resize(n, 0x01);
                }
                if codes_buf.is_empty() {
                    codes_buf.push(0x00);
                }
                Packet::SubAck(SubAck {
                    packet_id,
                    return_codes: ReturnCodes::new(&codes_buf),
                })
            }
            Broker::PingResp => Packet::PingResp,
            Broker::ServerOnly(n) => match n % 5 {
                0 => Packet::Connect(connect),
                1 => Packet::Subscribe(Subscribe {
                    packet_id: 1,
                    filters: SubscribeFilters::new(&subs),
                }),
                2 => Packet::Unsubscribe(Unsubscribe {
                    packet_id: 1,
                    filters: UnsubscribeFilters::new(&["a"]),
                }),
                3 => Packet::PingReq,
                _ => Packet::Disconnect,
            },
        };
        let mut buf = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut buf).expect("broker packets are valid");
        self.rx.extend_from_slice(&buf[..n]);
        self.receive();
    }

    /// Decodes and handles whatever whole packets the receive buffer holds.
    fn receive(&mut self) {
        loop {
            let rx = std::mem::take(&mut self.rx);
            match Packet::decode_limited(&rx, RX) {
                Ok((packet, n)) => {
                    let ok = self.handle(packet);
                    self.rx = rx;
                    if ok {
                        self.rx.drain(..n);
                    } else {
                        self.lost();
                        return;
                    }
                }
                Err(DecodeError::Incomplete { .. }) => {
                    self.rx = rx;
                    return;
                }
                Err(DecodeError::Malformed(_)) | Err(DecodeError::TooLarge { .. }) => {
                    self.lost();
                    return;
                }
            }
        }
    }

    /// Handles one packet; false when the connection must close.
    fn handle(&mut self, packet: Packet<'_>) -> bool {
        if let Packet::PubRec(r) = packet {
            self.pubrec_since_connack.insert(r.packet_id);
        }
        let before: Vec<u16> = self.s.inflight_ids().map(|(id, _)| id).collect();
        let state = self.s.state();
        let released = match packet {
            Packet::PubRel(rel) => Some(rel.packet_id),
            _ => None,
        };
        let pending_before = self.s.incoming_pending();
        let mut message = None;
        let mut published = None;
        let mut connected = None;
        // An acceptable CONNACK on an idle connection must connect: a
        // failure here would repeat on every reconnect.
        let must_connect = match packet {
            Packet::ConnAck(ack) => {
                state == State::Connecting
                    && self.s.transmit_idle()
                    && ack.return_code == ConnectReturnCode::Accepted
                    && !(ack.session_present && self.clean_session)
            }
            _ => false,
        };
        let ok = match self.s.handle_packet(self.now, packet) {
            Err(e) => {
                assert!(!must_connect, "an acceptable CONNACK failed: {e:?}");
                false
            }
            Ok(None) => true,
            Ok(Some(event)) => {
                match event {
                    Event::Connected {
                        session_present,
                        resubscribed,
                        resending,
                    } => {
                        assert_eq!(state, State::Connecting);
                        assert!(resubscribed <= SUBS);
                        assert!(resending <= INFLIGHT);
                        self.connacked = true;
                        connected = Some((session_present, resubscribed));
                    }
                    Event::Message(p) => {
                        assert_eq!(state, State::Connected);
                        message = Some((p.qos, p.packet_id));
                    }
                    Event::Published { packet_id, .. } => {
                        assert!(
                            before.contains(&packet_id),
                            "Published {packet_id} was not in flight"
                        );
                        published = Some(packet_id);
                    }
                    Event::Subscribed { filters, codes, .. } => {
                        assert_eq!(filters.len(), codes.iter().count());
                    }
                    Event::Unsubscribed { filters, .. } => assert!(!filters.is_empty()),
                    Event::Pong => {}
                }
                true
            }
        };
        if let Some((session_present, resubscribed)) = connected {
            if !session_present {
                // A new broker session numbers its messages afresh.
                self.incoming_qos2.clear();
            }
            self.resends = self.s.inflight_ids().collect();
            self.pubrec_since_connack.clear();
            self.resubscribe = resubscribed > 0;
        }
        // After the event: a published message is no longer in flight.
        let after: Vec<u16> = self.s.inflight_ids().map(|(id, _)| id).collect();
        for id in &after {
            assert!(before.contains(id), "an incoming packet put {id} in flight");
        }
        if let Some(id) = published {
            assert!(!after.contains(&id), "{id} still in flight after Published");
        }
        // A PUBREL releases its id (the session may keep it until the
        // PUBCOMP is written, which the model need not follow).
        if let (Some(id), State::Connected) = (released, state) {
            self.incoming_qos2.retain(|&x| x != id);
        }
        if let Some((q, id)) = message {
            if let Some(id) = id {
                self.incoming_ids.push(id);
                if self.incoming_ids.len() > 8 {
                    self.incoming_ids.remove(0);
                }
            }
            if q == QoS::ExactlyOnce {
                let id = id.expect("QoS 2 has an id");
                assert!(
                    !self.incoming_qos2.contains(&id),
                    "QoS 2 message {id} delivered twice"
                );
                let evicted = pending_before == INFLIGHT && self.s.incoming_pending() == INFLIGHT;
                self.remember(id, evicted);
            }
            // The driver acknowledges after delivering.
            let _ = self.s.acknowledge(q, id);
        }
        ok
    }

    /// The session remembered `id`; `evicted`: it may have forgotten its
    /// oldest id to make room. The model's oldest is that one or one the
    /// session still has: forgetting it keeps the model a subset.
    fn remember(&mut self, id: u16, evicted: bool) {
        if !self.incoming_qos2.contains(&id) {
            if evicted && !self.incoming_qos2.is_empty() {
                self.incoming_qos2.remove(0);
            }
            self.incoming_qos2.push(id);
        }
    }

    /// Calls `connect`; true when it succeeded.
    fn connect(&mut self, clean_session: bool, keep_alive: u8, empty_id: bool) -> bool {
        let connect = connect_packet(clean_session, u16::from(keep_alive), empty_id);
        let state = self.s.state();
        let result = self.s.connect(self.now, &connect);
        if result == Err(Error::EmptyClientId) {
            assert!(empty_id && !clean_session);
        } else if result == Err(Error::AlreadyConnected) {
            assert_ne!(state, State::Disconnected);
        } else {
            // The transmit queue was cleared: a new transport.
            self.rx.clear();
            self.reset_wire(result.is_ok());
            self.connacked = false;
            if clean_session {
                assert_eq!(self.s.inflight(), 0);
                assert_eq!(self.s.incoming_pending(), 0);
                self.incoming_qos2.clear();
            }
            if result.is_ok() {
                assert_eq!(self.s.state(), State::Connecting);
                self.clean_session = clean_session;
                self.keep_alive = keep_alive;
            }
        }
        result.is_ok()
    }

    fn subscribe(&mut self, filters: &[Subscription<'_>]) -> Option<u16> {
        let before: Vec<(String, QoS)> = self
            .s
            .subscriptions()
            .map(|(f, q)| (f.to_owned(), q))
            .collect();
        match self.s.subscribe(self.now, filters) {
            Ok(id) => {
                assert_ne!(id, 0);
                assert!(self.s.request_pending(id));
                for f in filters {
                    assert!(self.s.subscriptions().any(|(g, _)| g == f.filter));
                }
                Some(id)
            }
            Err(_) => {
                let after: Vec<(String, QoS)> = self
                    .s
                    .subscriptions()
                    .map(|(f, q)| (f.to_owned(), q))
                    .collect();
                assert_eq!(before, after, "a refused subscribe changed the list");
                None
            }
        }
    }

    fn flush(&mut self) {
        for _ in 0..64 {
            if self.s.poll_transmit(self.now).is_empty() {
                break;
            }
            self.transmit(TX);
        }
    }

    fn lost(&mut self) {
        self.s.connection_lost();
        self.rx.clear();
        self.reset_wire(false);
        self.connacked = false;
    }

    fn reset_wire(&mut self, expect_connect: bool) {
        self.wire.clear();
        self.resends.clear();
        self.resubscribe = false;
        self.expect_connect = expect_connect;
    }

    fn transmit(&mut self, n: usize) {
        let pending = self.s.poll_transmit(self.now);
        assert!(
            pending.len() <= TX,
            "poll_transmit returned {} bytes",
            pending.len()
        );
        let k = n.min(pending.len());
        self.wire.extend_from_slice(&pending[..k]);
        self.s.handle_transmit(self.now, n);
        self.check_wire();
    }

    /// Every whole packet written decodes as a client packet.
    fn check_wire(&mut self) {
        let mut used = 0;
        let wire = std::mem::take(&mut self.wire);
        loop {
            let rest = &wire[used..];
            let (packet, n) = match Packet::decode(rest) {
                Ok(ok) => ok,
                Err(DecodeError::Incomplete { .. }) => break,
                Err(e) => panic!("the session wrote {rest:02x?}: {e:?}"),
            };
            used += n;
            if self.expect_connect {
                assert!(
                    matches!(packet, Packet::Connect(_)),
                    "first packet {packet:?}"
                );
                self.expect_connect = false;
            }
            if !self.connacked {
                assert!(
                    matches!(
                        packet,
                        Packet::Connect(_)
                            | Packet::PubAck(_)
                            | Packet::PubRec(_)
                            | Packet::PubComp(_)
                            | Packet::Disconnect
                    ),
                    "{packet:?} before CONNACK"
                );
            }
            if self.connacked {
                self.check_order(&packet);
            }
            match packet {
                Packet::Subscribe(s) => {
                    self.subscribe_counts.insert(s.packet_id, s.filters.len());
                    self.requests.push((s.packet_id, Some(s.filters.len())));
                }
                Packet::Unsubscribe(u) => self.requests.push((u.packet_id, None)),
                Packet::Publish(p) => {
                    assert!(!(p.dup && p.qos == QoS::AtMostOnce));
                }
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                    panic!("the client sent a server packet {packet:?}")
                }
                _ => {}
            }
            if self.requests.len() > 8 {
                self.requests.remove(0);
            }
        }
        self.wire = wire;
        self.wire.drain(..used);
    }

    /// Resends go first, in their original order, as they were sent.
    fn check_order(&mut self, packet: &Packet<'_>) {
        let resend = match *packet {
            Packet::Publish(p) if p.dup => {
                let id = p.packet_id.expect("DUP only with QoS > 0");
                if let Some((topic, payload, qos, retain)) = self.originals.get(&id) {
                    assert_eq!(
                        (p.topic, p.payload, p.qos, p.retain),
                        (topic.as_str(), payload.as_slice(), *qos, *retain),
                        "resend {id} differs from the original"
                    );
                }
                Some((id, false))
            }
            Packet::PubRel(r) => Some((r.packet_id, true)),
            _ => None,
        };
        if let Some((id, rel)) = resend {
            if let Some(pos) = self.resends.iter().position(|&(i, _)| i == id) {
                let (_, stage) = self.resends[pos];
                let released = stage == Stage::AwaitPubComp
                    || (rel && self.pubrec_since_connack.contains(&id));
                assert_eq!(rel, released, "resend {id} at {stage:?} as {packet:?}");
                for &(other, _) in &self.resends[..pos] {
                    assert!(
                        !self.s.publish_pending(other),
                        "resend {id} overtook {other}"
                    );
                }
                self.resends.drain(..=pos);
                return;
            }
            assert!(rel, "DUP PUBLISH {id} is no resend of this connection");
        }
        let first_subscribe = matches!(packet, Packet::Subscribe(_)) && self.resubscribe;
        if matches!(packet, Packet::Subscribe(_)) {
            self.resubscribe = false;
        }
        // A PINGREQ may go ahead: it reorders no message.
        let new_traffic = matches!(
            packet,
            Packet::Publish(_)
                | Packet::PubRel(_)
                | Packet::Subscribe(_)
                | Packet::Unsubscribe(_)
                | Packet::Disconnect
        ) && !first_subscribe;
        if new_traffic {
            for &(id, _) in &self.resends {
                assert!(
                    !self.s.publish_pending(id),
                    "{packet:?} before the resend of {id}"
                );
            }
        }
    }

    fn check(&mut self) {
        let ids: Vec<u16> = self.s.inflight_ids().map(|(id, _)| id).collect();
        assert!(ids.len() <= INFLIGHT);
        assert_eq!(ids.len(), self.s.inflight());
        let unique: BTreeSet<u16> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate in-flight ids {ids:?}");
        assert!(!unique.contains(&0), "packet id 0 in flight");
        let subs: Vec<(String, QoS)> = self
            .s
            .subscriptions()
            .map(|(f, q)| (f.to_owned(), q))
            .collect();
        assert!(subs.len() <= SUBS);
        let distinct: BTreeSet<&str> = subs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            distinct.len(),
            subs.len(),
            "duplicate subscriptions {subs:?}"
        );
        for (f, _) in &subs {
            assert!(
                topic::validate_filter(f).is_ok(),
                "invalid filter {f:?} subscribed"
            );
        }
        assert!(self.s.incoming_pending() <= INFLIGHT);
        assert!(
            self.s.incoming_pending() >= self.incoming_qos2.len(),
            "incoming QoS 2 model"
        );
        match self.s.state() {
            State::Disconnected => assert_eq!(self.s.poll_timeout(), None),
            State::Connecting => {}
            State::Connected => {
                let requests = self
                    .requests
                    .iter()
                    .any(|&(id, _)| self.s.request_pending(id));
                if !ids.is_empty() || requests || self.s.ping_outstanding() || self.keep_alive > 0 {
                    assert!(
                        self.s.poll_timeout().is_some(),
                        "acks pending without a deadline"
                    );
                }
            }
        }
    }

    fn advance_to(&mut self, now: Instant) {
        self.now = now.max(self.now);
        let deadline = self.s.poll_timeout();
        let ping = self.s.ping_outstanding();
        let tx_before = self.s.transmit_idle();
        let result = self.s.handle_timeout(self.now);
        if deadline.is_none_or(|d| self.now < d) {
            assert_eq!(
                result,
                Ok(()),
                "handle_timeout before its deadline {deadline:?}"
            );
            assert_eq!(
                self.s.ping_outstanding(),
                ping,
                "a ping before the deadline"
            );
            assert_eq!(self.s.transmit_idle(), tx_before);
        }
        if result.is_err() {
            self.lost();
        }
    }
}

fn connect_packet(clean_session: bool, keep_alive: u16, empty_id: bool) -> Connect<'static> {
    Connect {
        clean_session,
        keep_alive,
        client_id: if empty_id { "" } else { "fz" },
        will: None,
        username: None,
        password: None,
    }
}

fuzz_target!(|input: Input| {
    let mut tx = [0u8; TX];
    let mut store = [0u8; STORE];
    let t = |b: u8| Duration::from_millis(u64::from(b.max(1)) * 100);
    let [connack, suback, unsuback, puback, pingresp] = input.timeouts;
    let timeouts = Timeouts {
        connack: t(connack),
        suback: t(suback),
        unsuback: t(unsuback),
        puback: t(puback),
        pingresp: t(pingresp),
    };
    let mut h = Harness {
        s: Session::new(&mut tx, &mut store, timeouts),
        now: Instant::from_millis(0),
        rx: Vec::new(),
        wire: Vec::new(),
        expect_connect: false,
        connacked: false,
        requests: Vec::new(),
        incoming_ids: Vec::new(),
        incoming_qos2: Vec::new(),
        subscribe_counts: BTreeMap::new(),
        resends: Vec::new(),
        pubrec_since_connack: BTreeSet::new(),
        resubscribe: false,
        clean_session: true,
        keep_alive: 0,
        originals: BTreeMap::new(),
    };
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Broker(b) => h.broker(b),
            Op::Partial(bytes) => h.rx.extend_from_slice(&bytes),
            Op::Connect {
                clean_session,
                keep_alive,
                empty_id,
            } => {
                h.connect(clean_session, keep_alive, empty_id);
            }
            Op::Reconnect {
                clean_session,
                keep_alive,
                session_present,
            } => {
                h.lost();
                if h.connect(clean_session, keep_alive, false) {
                    h.flush();
                    h.broker(Broker::ConnAck {
                        session_present,
                        code: 0,
                    });
                }
            }
            Op::Publish {
                qos: q,
                topic,
                payload,
                retain,
                dup,
                id,
            } => {
                let before: Vec<_> = h.s.inflight_ids().collect();
                let q = qos(q);
                let publish = Publish {
                    dup,
                    qos: q,
                    retain,
                    topic: TOPICS[usize::from(topic) % TOPICS.len()],
                    packet_id: Some(id),
                    payload: &[0xaa; 255][..usize::from(payload)],
                };
                match h.s.publish(h.now, &publish) {
                    Ok(None) => assert_eq!(q, QoS::AtMostOnce),
                    Ok(Some(id)) => {
                        h.originals.insert(
                            id,
                            (
                                publish.topic.to_owned(),
                                publish.payload.to_vec(),
                                q,
                                retain,
                            ),
                        );
                        assert_ne!(q, QoS::AtMostOnce);
                        assert_ne!(id, 0);
                        assert!(h.s.publish_pending(id));
                        assert!(before.iter().all(|&(b, _)| b != id), "id {id} reused");
                    }
                    Err(_) => {
                        let after: Vec<_> = h.s.inflight_ids().collect();
                        assert_eq!(before, after, "a refused publish changed the window");
                    }
                }
            }
            Op::Subscribe(list) => {
                let filters: Vec<Subscription<'_>> = list
                    .iter()
                    .take(6)
                    .map(|&(f, q)| Subscription {
                        filter: FILTERS[usize::from(f) % FILTERS.len()],
                        qos: qos(q),
                    })
                    .collect();
                h.subscribe(&filters);
            }
            Op::SubscribeEach(list) => {
                for &(f, q) in list.iter().take(6) {
                    let filter = FILTERS[usize::from(f) % FILTERS.len()];
                    if let Some(id) = h.subscribe(&[Subscription {
                        filter,
                        qos: qos(q),
                    }]) {
                        h.flush();
                        h.subscribe_counts.insert(id, 1);
                        h.broker(Broker::SubAck {
                            id: Id::Raw(id),
                            exact: true,
                            codes: vec![q],
                        });
                    }
                }
            }
            Op::Unsubscribe(list) => {
                let filters: Vec<&str> = list
                    .iter()
                    .take(6)
                    .map(|&f| FILTERS[usize::from(f) % FILTERS.len()])
                    .collect();
                if let Ok(id) = h.s.unsubscribe(h.now, &filters) {
                    assert_ne!(id, 0);
                    assert!(h.s.request_pending(id));
                    for f in &filters {
                        assert!(h.s.subscriptions().all(|(g, _)| g != *f));
                    }
                }
            }
            Op::Ping => {
                if h.s.ping(h.now).is_ok() {
                    assert!(h.s.ping_outstanding());
                }
            }
            Op::Disconnect => {
                if h.s.disconnect().is_ok() {
                    assert_eq!(h.s.state(), State::Disconnected);
                }
            }
            Op::ConnectionLost => h.lost(),
            Op::Acknowledge { qos: q, id } => {
                let _ = h.s.acknowledge(qos(q), id);
            }
            Op::AcknowledgeDropped { qos: q, id } => {
                let q = qos(q);
                let before = h.s.incoming_pending();
                let _ = h.s.acknowledge_dropped(q, id);
                if q == QoS::ExactlyOnce {
                    // Unchanged and full: a new id evicted one, or the id
                    // was known; assuming eviction is the safe side.
                    let evicted = before == INFLIGHT && h.s.incoming_pending() == INFLIGHT;
                    h.remember(id, evicted);
                }
            }
            Op::Advance(ms) => {
                let now = h.now + Duration::from_millis(u64::from(ms) * 16);
                h.advance_to(now);
            }
            Op::AdvanceToDeadline => {
                let now =
                    h.s.poll_timeout()
                        .unwrap_or(h.now + Duration::from_secs(3600));
                h.advance_to(now);
            }
            Op::Transmit(n) => h.transmit(usize::from(n)),
            Op::Flush => h.flush(),
        }
        h.check();
    }
});
