//! Review tests for the transmit path of stored QoS 1/2 PUBLISHes
//! (`Protocol::stored`): a deterministic random driver with a model
//! broker, and the scenarios it (or reading) turned up.

extern crate std;

use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec;
use std::vec::Vec;

use super::*;
use crate::codec::{PubAck, PubComp, PubRec, PubRel};

const T0: Instant = Instant::from_millis(0);

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// xorshift64*: deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A broker packet, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
}

fn encode_ack(a: Ack) -> Vec<u8> {
    let p = match a {
        Ack::PubAck(id) => Packet::PubAck(PubAck { packet_id: id }),
        Ack::PubRec(id) => Packet::PubRec(PubRec { packet_id: id }),
        Ack::PubComp(id) => Packet::PubComp(PubComp { packet_id: id }),
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
    /// Completed message payloads (acked to the client).
    completed: BTreeSet<Vec<u8>>,
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
            match Packet::decode(&self.buf) {
                Ok((p, n)) => {
                    self.packet(p);
                    self.buf.drain(..n);
                }
                Err(codec::DecodeError::Incomplete { .. }) => return,
                Err(e) => self.fail(std::format!("torn or malformed wire: {e:?} {:02x?}", self.buf)),
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
                    self.fail(std::format!("message id {id} written twice on one connection"));
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
                    QoS::AtLeastOnce => self.out.push_back(Ack::PubAck(id)),
                    _ => {
                        self.awaiting_rel.insert(id);
                        self.out.push_back(Ack::PubRec(id));
                    }
                }
            }
            Packet::PubRel(rel) => {
                let id = rel.packet_id;
                self.released.insert(id);
                if self.recs_read.contains(&id) {
                    self.rels_for_recs.push(id);
                    let n = self.rels_for_recs.len();
                    let expect: Vec<u16> = self
                        .recs_read
                        .iter()
                        .copied()
                        .filter(|r| self.rels_for_recs.contains(r))
                        .collect();
                    if expect != self.rels_for_recs[..n] {
                        self.fail(std::format!(
                            "PUBRELs {:?} not in PUBREC order {:?} (MQTT-4.6.0-4)",
                            self.rels_for_recs, self.recs_read
                        ));
                    }
                }
                self.awaiting_rel.remove(&id);
                self.out.push_back(Ack::PubComp(id));
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
}

impl Run {
    fn new(seed: u64, tx: usize) -> Self {
        let s = Session::new(leak(4096), leak(tx), leak(2048), Timeouts::default());
        let mut r = Run {
            s,
            b: Broker::default(),
            rng: Rng(seed | 1),
            now: T0,
            counter: 0,
            inflight: BTreeMap::new(),
            published: BTreeSet::new(),
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
                    self.b.log.push(std::format!("client: published {packet_id}"));
                    assert!(self.published.insert(body), "published twice");
                }
                Event::Sent { .. } | Event::Connected(_) => {}
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
            Ack::PubRec(id) => self.b.recs_read.push(id),
            Ack::PubComp(id) => {
                self.b.released.remove(&id);
            }
            Ack::PubAck(_) => {}
        }
        if let Ack::PubAck(_) | Ack::PubComp(_) = a {
            // Completed as far as the broker knows.
        }
        let bytes = encode_ack(a);
        self.feed(&bytes);
    }

    fn publish(&mut self) {
        if !self.s.can_publish() {
            return;
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
                self.b.log.push(std::format!("client: publish {id} {qos:?} len {len}"));
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
        let pending = self.s.poll_transmit(self.now).to_vec();
        if pending.is_empty() {
            return;
        }
        let k = match self.rng.below(3) {
            0 => 1,
            1 => pending.len(),
            _ => 1 + self.rng.below(pending.len() as u64) as usize,
        };
        self.b.log.push(std::format!("write {k} of {}", pending.len()));
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
        self.drain();
        self.connect();
    }

    fn step(&mut self, copy_driver: bool) {
        match self.rng.below(10) {
            0..=2 => self.publish(),
            3..=6 => self.write(copy_driver && self.rng.chance(50)),
            7 | 8 => self.broker_send(),
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
    for seed in 1..400u64 {
        for copy in [false, true] {
            let tx = [16, 40, 64, 256][(seed % 4) as usize];
            let mut r = Run::new(seed * 7919, tx);
            r.b.log.push(std::format!("seed {seed} copy {copy} tx {tx}"));
            for _ in 0..300 {
                r.step(copy);
            }
            r.finish();
        }
    }
}
