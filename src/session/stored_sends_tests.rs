//! The transmit path of stored QoS 1/2 PUBLISHes (`Protocol::stored`):
//! a deterministic random driver against a model broker that checks the
//! wire (whole packets, DUP on resends, nothing after its PUBREL, PUBRELs
//! in PUBREC order, every message completed once), and the scenarios it
//! turned up.
// Without `streaming`, the streamed messages' half of the driver and the
// scenarios' helpers go unused.
#![cfg_attr(not(feature = "streaming"), allow(dead_code))]

extern crate std;

use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec;
use std::vec::Vec;

use super::*;
use crate::codec::{PubAck, PubComp, PubRec};

const T0: Instant = Instant::from_millis(0);

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// xorshift64*: deterministic (shared with `stored_sends_v5_tests`).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A broker packet, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    Puback(u16),
    Pubrec(u16),
    Pubcomp(u16),
}

fn encode_ack(a: Ack) -> Vec<u8> {
    let p = match a {
        Ack::Puback(id) => Packet::PubAck(PubAck { packet_id: id }),
        Ack::Pubrec(id) => Packet::PubRec(PubRec { packet_id: id }),
        Ack::Pubcomp(id) => Packet::PubComp(PubComp { packet_id: id }),
    };
    let mut buf = vec![0u8; p.encoded_len()];
    let n = p.encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// What the broker side saw and checks.
#[derive(Default)]
struct Broker {
    /// Bytes of the current connection not yet framed.
    buf: Vec<u8>,
    /// Acks to send on this connection, in order.
    out: VecDeque<Ack>,
    /// Messages (payload) seen on any connection.
    seen: BTreeSet<Vec<u8>>,
    /// Messages seen on this connection.
    seen_here: BTreeSet<Vec<u8>>,
    /// QoS 2 ids waiting for PUBREL (broker session state).
    awaiting_rel: BTreeSet<u16>,
    /// Ids the client sent PUBREL for, whose PUBCOMP it has not read.
    released: BTreeSet<u16>,
    /// PUBRECs read by the client on this connection, in order.
    recs_read: Vec<u16>,
    /// PUBRELs received on this connection for ids in `recs_read`.
    rels_for_recs: Vec<u16>,
    log: Vec<std::string::String>,
}

impl Broker {
    fn new_connection(&mut self) {
        self.buf.clear();
        self.out.clear();
        self.seen_here.clear();
        self.recs_read.clear();
        self.rels_for_recs.clear();
    }

    fn fail(&self, why: std::string::String) -> ! {
        for l in &self.log {
            std::eprintln!("{l}");
        }
        panic!("{why}");
    }

    /// Bytes written by the client.
    fn wire(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            let buf = self.buf.clone();
            match Packet::decode(&buf) {
                Ok((p, n)) => {
                    self.packet(p);
                    self.buf.drain(..n);
                }
                Err(codec::DecodeError::Incomplete { .. }) => return,
                Err(e) => self.fail(std::format!(
                    "torn or malformed wire: {e:?} {:02x?}",
                    self.buf
                )),
            }
        }
    }

    fn packet(&mut self, p: Packet<'_>) {
        self.log.push(std::format!("broker got {p:?}"));
        match p {
            Packet::Publish(publish) if publish.qos != QoS::AtMostOnce => {
                let id = publish.packet_id.unwrap();
                let body = publish.payload.to_vec();
                if self.seen_here.contains(&body) {
                    self.fail(std::format!(
                        "message id {id} written twice on one connection"
                    ));
                }
                if self.seen.contains(&body) && !publish.dup {
                    self.fail(std::format!("resend of id {id} without DUP (MQTT-3.3.1-1)"));
                }
                if self.released.contains(&id) {
                    self.fail(std::format!(
                        "PUBLISH id {id} after its PUBREL (MQTT-4.3.3-1 / 4.6.0)"
                    ));
                }
                self.seen.insert(body.clone());
                self.seen_here.insert(body);
                match publish.qos {
                    QoS::AtLeastOnce => self.out.push_back(Ack::Puback(id)),
                    _ => {
                        self.awaiting_rel.insert(id);
                        self.out.push_back(Ack::Pubrec(id));
                    }
                }
            }
            Packet::PubRel(rel) => {
                let id = rel.packet_id;
                self.released.insert(id);
                if self.recs_read.contains(&id) {
                    if !self.rels_for_recs.contains(&id) {
                        self.rels_for_recs.push(id);
                    }
                    // First PUBREC of each id, in order (a PUBREC repeated
                    // gets its PUBREL again: not counted).
                    let mut expect: Vec<u16> = Vec::new();
                    for &r in &self.recs_read {
                        if !expect.contains(&r) && self.rels_for_recs.contains(&r) {
                            expect.push(r);
                        }
                    }
                    if expect != self.rels_for_recs {
                        self.fail(std::format!(
                            "PUBRELs {:?} not in PUBREC order {:?} (MQTT-4.6.0-4)",
                            self.rels_for_recs,
                            self.recs_read
                        ));
                    }
                }
                self.awaiting_rel.remove(&id);
                self.out.push_back(Ack::Pubcomp(id));
            }
            _ => {}
        }
    }
}

type S = Session<'static, 4, 4>;

struct Run {
    s: S,
    b: Broker,
    rng: Rng,
    now: Instant,
    counter: u32,
    /// Outgoing QoS 1/2 messages in flight: id -> payload.
    inflight: BTreeMap<u16, Vec<u8>>,
    published: BTreeSet<Vec<u8>>,
    early: usize,
    /// Streamed payloads by id (a payload may be due after its message
    /// completed).
    bodies: BTreeMap<u16, Vec<u8>>,
    streamed: usize,
    reconnects: usize,
}

impl Run {
    fn new(seed: u64, tx: usize) -> Self {
        let s = Session::new(leak(4096), leak(tx + 2048), Timeouts::default());
        let mut r = Run {
            s,
            b: Broker::default(),
            rng: Rng(seed | 1),
            now: T0,
            counter: 0,
            inflight: BTreeMap::new(),
            published: BTreeSet::new(),
            early: 0,
            bodies: BTreeMap::new(),
            streamed: 0,
            reconnects: 0,
        };
        r.connect();
        r
    }

    fn connect(&mut self) {
        let c = Connect {
            clean_session: false,
            keep_alive: 0,
            client_id: "c",
            will: None,
            username: None,
            password: None,
        };
        self.s.connect(self.now, &c).unwrap();
        self.b.new_connection();
        // The CONNECT, whole.
        let n = self.s.poll_transmit(self.now).len();
        let connect = self.s.poll_transmit(self.now).to_vec();
        self.s.handle_transmit(self.now, n);
        let (p, _) = Packet::decode(&connect).unwrap();
        assert!(matches!(p, Packet::Connect(_)));
        let ack = Packet::ConnAck(ConnAck {
            session_present: true,
            return_code: ConnectReturnCode::Accepted,
        });
        let mut buf = vec![0u8; ack.encoded_len()];
        let n = ack.encode(&mut buf).unwrap();
        self.feed(&buf[..n]);
        assert_eq!(self.s.state(), State::Connected);
        self.b.log.push("connected".into());
    }

    fn feed(&mut self, bytes: &[u8]) {
        let space = self.s.receive_buffer();
        assert!(space.len() >= bytes.len());
        space[..bytes.len()].copy_from_slice(bytes);
        self.s.commit(bytes.len());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.s.poll_event(self.now) {
            match e {
                Event::Published { packet_id, .. } => {
                    let body = self.inflight.remove(&packet_id).unwrap();
                    self.b
                        .log
                        .push(std::format!("client: published {packet_id}"));
                    assert!(self.published.insert(body), "published twice");
                }
                Event::Sent { .. } | Event::Connected(_) => {}
                Event::Discarded { packet_id, .. } => {
                    self.b.fail(std::format!("discarded {packet_id}"))
                }
                Event::Closed(reason) => self.b.fail(std::format!("closed: {reason:?}")),
                other => self.b.fail(std::format!("unexpected {other:?}")),
            }
        }
    }

    /// The broker sends its next acknowledgement.
    fn broker_send(&mut self) {
        let Some(a) = self.b.out.pop_front() else {
            return;
        };
        self.b.log.push(std::format!("broker sends {a:?}"));
        match a {
            Ack::Pubrec(id) => self.b.recs_read.push(id),
            Ack::Pubcomp(id) => {
                self.b.released.remove(&id);
            }
            Ack::Puback(_) => {}
        }
        let bytes = encode_ack(a);
        self.feed(&bytes);
    }

    /// The broker answers a message it got on an earlier connection
    /// before its resend arrives on this one ("from the original").
    fn early_ack(&mut self) {
        let ids: Vec<u16> = self.inflight.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.below(ids.len() as u64) as usize];
        let body = self.inflight[&id].clone();
        if !self.b.seen.contains(&body) || self.b.seen_here.contains(&body) {
            return;
        }
        let stage = self
            .s
            .inflight_ids()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s);
        let a = match stage {
            Some(Stage::AwaitPubAck) => Ack::Puback(id),
            Some(Stage::AwaitPubRec) if self.b.awaiting_rel.contains(&id) => Ack::Pubrec(id),
            _ => return,
        };
        self.early += 1;
        self.b.log.push(std::format!("broker sends early {a:?}"));
        if let Ack::Pubrec(id) = a {
            self.b.recs_read.push(id);
        }
        let bytes = encode_ack(a);
        self.feed(&bytes);
    }

    #[cfg(feature = "streaming")]
    fn publish_streamed(&mut self) {
        if !self.s.can_publish() {
            return;
        }
        self.counter += 1;
        let len = 4 + self.rng.below(200) as usize;
        let mut body = vec![(self.counter % 251) as u8; len];
        body[..4].copy_from_slice(&self.counter.to_be_bytes());
        let qos = if self.rng.chance(50) {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        let p = Publish {
            dup: false,
            qos,
            retain: false,
            topic: "t/s",
            packet_id: None,
            payload: &[],
        };
        match self.s.publish_streamed(self.now, &p, len) {
            Ok(Some(id)) => {
                self.b
                    .log
                    .push(std::format!("client: publish streamed {id} len {len}"));
                self.inflight.insert(id, body.clone());
                self.bodies.insert(id, body);
                self.streamed += 1;
            }
            Ok(None) => unreachable!(),
            Err(SessionError::Resource(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Writes a piece of the due streamed payload.
    fn write_payload(&mut self) -> bool {
        let Some(due) = self.s.payload_due() else {
            return false;
        };
        let body = self.bodies[&due.packet_id.unwrap()].clone();
        let left = due.len - due.offset;
        let k = 1 + self.rng.below(left as u64) as usize;
        self.b.wire(&body[due.offset..due.offset + k]);
        self.s.handle_payload(self.now, k);
        true
    }

    fn publish(&mut self) {
        if !self.s.can_publish() {
            return;
        }
        if self.rng.chance(20) {
            self.counter += 1;
            let body = self.counter.to_be_bytes();
            let p = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t/0",
                packet_id: None,
                payload: &body,
            };
            let _ = self.s.publish(self.now, &p);
            return;
        }
        #[cfg(feature = "streaming")]
        if self.rng.chance(20) {
            return self.publish_streamed();
        }
        self.counter += 1;
        let len = 4 + self.rng.below(120) as usize;
        let mut body = vec![(self.counter % 251) as u8; len];
        body[..4].copy_from_slice(&self.counter.to_be_bytes());
        let qos = if self.rng.chance(50) {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        let p = Publish {
            dup: false,
            qos,
            retain: false,
            topic: "t/x",
            packet_id: None,
            payload: &body,
        };
        match self.s.publish(self.now, &p) {
            Ok(Some(id)) => {
                self.b
                    .log
                    .push(std::format!("client: publish {id} {qos:?} len {len}"));
                self.inflight.insert(id, body);
            }
            Ok(None) => unreachable!(),
            Err(SessionError::Resource(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }

    /// One write of the driver: `copy` tells the session only after the
    /// broker's next packets are read.
    fn write(&mut self, copy: bool) {
        #[cfg(feature = "streaming")]
        if self.write_payload() {
            return;
        }
        let pending = self.s.poll_transmit(self.now).to_vec();
        if pending.is_empty() {
            return;
        }
        let k = match self.rng.below(3) {
            0 => 1,
            1 => pending.len(),
            _ => 1 + self.rng.below(pending.len() as u64) as usize,
        };
        self.b
            .log
            .push(std::format!("write {k} of {}", pending.len()));
        self.b.wire(&pending[..k]);
        if copy {
            for _ in 0..self.rng.below(3) {
                self.broker_send();
            }
        }
        self.s.handle_transmit(self.now, k);
    }

    fn reconnect(&mut self) {
        self.b.log.push("connection lost".into());
        self.s.connection_lost();
        self.reconnects += 1;
        self.drain();
        self.connect();
    }

    fn step(&mut self, copy_driver: bool) {
        match self.rng.below(10) {
            0..=2 => self.publish(),
            3..=6 => {
                let copy = copy_driver && self.rng.chance(50);
                self.write(copy);
            }
            7 => self.broker_send(),
            8 => {
                if self.rng.chance(30) {
                    self.early_ack();
                } else {
                    self.broker_send();
                }
            }
            _ => {
                if self.rng.chance(15) {
                    self.reconnect();
                }
            }
        }
    }

    /// Runs to quiescence: everything written and answered.
    fn finish(&mut self) {
        for _ in 0..10_000 {
            #[cfg(feature = "streaming")]
            if self.write_payload() {
                continue;
            }
            let pending = self.s.poll_transmit(self.now).to_vec();
            if !pending.is_empty() {
                self.b.wire(&pending);
                self.s.handle_transmit(self.now, pending.len());
                continue;
            }
            if self.b.out.is_empty() {
                break;
            }
            self.broker_send();
        }
        self.drain();
        if self.s.inflight() != 0 || !self.inflight.is_empty() {
            self.b.fail(std::format!(
                "stuck: session in flight {:?}, model {:?}",
                self.s.inflight_ids().collect::<Vec<_>>(),
                self.inflight.keys().collect::<Vec<_>>()
            ));
        }
    }
}

#[test]
fn random_stored_sends_keep_the_wire_whole_and_in_order() {
    let (mut published, mut early, mut streamed, mut reconnects) = (0, 0, 0, 0);
    for seed in 1..1500u64 {
        for copy in [false, true] {
            let tx = [16, 40, 64, 256][(seed % 4) as usize];
            let mut r = Run::new(seed * 7919, tx);
            r.b.log
                .push(std::format!("seed {seed} copy {copy} tx {tx}"));
            for _ in 0..300 {
                r.step(copy);
            }
            r.finish();
            published += r.published.len();
            early += r.early;
            streamed += r.streamed;
            reconnects += r.reconnects;
        }
    }
    std::eprintln!(
        "published {published} early {early} streamed {streamed} reconnects {reconnects}"
    );
}

// ------------------------------------------------------------ scenarios

fn persistent_connect() -> Connect<'static> {
    Connect {
        clean_session: false,
        keep_alive: 0,
        client_id: "c",
        will: None,
        username: None,
        password: None,
    }
}

fn feed_packet(s: &mut S, p: Packet<'_>) -> Option<std::string::String> {
    let mut buf = vec![0u8; p.encoded_len()];
    let n = p.encode(&mut buf).unwrap();
    let space = s.receive_buffer();
    space[..n].copy_from_slice(&buf[..n]);
    s.commit(n);
    s.poll_event(T0).map(|e| std::format!("{e:?}"))
}

/// Writes everything, streamed payloads (`body`) included, and returns
/// the bytes.
fn write_everything(s: &mut S, body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    loop {
        while s.sent_due() {
            let _ = s.poll_event(T0);
        }
        if let Some(due) = s.payload_due() {
            wire.extend_from_slice(&body[due.offset..due.len]);
            s.handle_payload(T0, due.len - due.offset);
            continue;
        }
        let pending = s.poll_transmit(T0);
        if pending.is_empty() {
            return wire;
        }
        let n = pending.len();
        wire.extend_from_slice(pending);
        s.handle_transmit(T0, n);
    }
}

/// The packets of `wire`, as (type, packet id, dup) for the PUBLISH /
/// PUBREL ones.
fn ids_of(wire: &[u8]) -> Vec<(&'static str, u16, bool)> {
    let mut rest = wire;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (p, n) = Packet::decode(rest).expect("whole packets");
        match p {
            Packet::Publish(p) => out.push(("PUBLISH", p.packet_id.unwrap_or(0), p.dup)),
            Packet::PubRel(r) => out.push(("PUBREL", r.packet_id, false)),
            _ => {}
        }
        rest = &rest[n..];
    }
    out
}

#[cfg(feature = "streaming")]
#[test]
fn pubrels_follow_pubrec_order_when_a_resend_still_to_come_is_answered_first() {
    // MQTT-4.6.0-4: PUBRELs in the order of their PUBRECs. After a
    // reconnect, message 1 (QoS 2) is resent from the store; the streamed
    // resend of message 2 waits until that stored PUBLISH is written, and
    // message 3 (QoS 2) waits behind it. PUBREC 1 comes while they wait
    // (its PUBREL goes to `late_rels`), then the broker answers message 3
    // from its original. Its PUBREL once took the place of message 3's
    // resend, ahead of PUBREL 1; it goes behind it.
    let mut s: S = Session::new(leak(4096), leak(2304), Timeouts::default());
    s.connect(T0, &persistent_connect()).unwrap();
    let _ = write_everything(&mut s, &[]);
    assert!(
        feed_packet(
            &mut s,
            Packet::ConnAck(ConnAck {
                session_present: false,
                return_code: ConnectReturnCode::Accepted,
            })
        )
        .is_some()
    );
    let body = [7u8; 50];
    let m = |qos| Publish {
        dup: false,
        qos,
        retain: false,
        topic: "t",
        packet_id: None,
        payload: b"x",
    };
    assert_eq!(s.publish(T0, &m(QoS::ExactlyOnce)), Ok(Some(1)));
    assert_eq!(
        s.publish_streamed(T0, &m(QoS::AtLeastOnce), body.len()),
        Ok(Some(2))
    );
    assert_eq!(s.publish(T0, &m(QoS::ExactlyOnce)), Ok(Some(3)));
    // All three reach the broker on the first connection; no answer.
    let first = write_everything(&mut s, &body);
    assert_eq!(
        ids_of(&first),
        [
            ("PUBLISH", 1, false),
            ("PUBLISH", 2, false),
            ("PUBLISH", 3, false)
        ]
    );
    s.connection_lost();
    s.connect(T0, &persistent_connect()).unwrap();
    let _ = s.poll_transmit(T0).len();
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    assert!(
        feed_packet(
            &mut s,
            Packet::ConnAck(ConnAck {
                session_present: true,
                return_code: ConnectReturnCode::Accepted,
            })
        )
        .is_some()
    );
    // The stored resend of message 1 is written.
    let a = s.poll_transmit(T0).to_vec();
    s.handle_transmit(T0, a.len());
    assert_eq!(ids_of(&a), [("PUBLISH", 1, true)]);
    // PUBREC 1, then PUBREC 3 (from message 3's original).
    assert_eq!(
        feed_packet(&mut s, Packet::PubRec(PubRec { packet_id: 1 })),
        None
    );
    assert_eq!(
        feed_packet(&mut s, Packet::PubRec(PubRec { packet_id: 3 })),
        None
    );
    let rest = write_everything(&mut s, &body);
    let rels: Vec<u16> = ids_of(&rest)
        .into_iter()
        .filter(|(t, _, _)| *t == "PUBREL")
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(
        rels,
        [1, 3],
        "PUBRELs in PUBREC order; wire {:?}",
        ids_of(&rest)
    );
}
