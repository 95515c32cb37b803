//! The MQTT 5 counterpart of `stored_sends_tests`: stored QoS 1/2
//! PUBLISHes and Topic Alias sends (which go through the transmit queue)
//! driven at random against a model broker that, on top of the 3.1.1 wire
//! rules (whole packets, DUP on resends, nothing for an id after its
//! PUBREL, PUBRELs in PUBREC order, every message completed once), checks
//! its own limits: the Receive Maximum, the Topic Alias Maximum and alias
//! map of each connection, and the Maximum Packet Size. Alongside: QoS 2
//! messages refused at PUBREC (no PUBREL may follow), a Maximum Packet
//! Size lowered across a reconnect (what no longer fits is discarded),
//! QoS 1/2 messages in publish order on each connection, and the broker's
//! own messages to the client, whose acknowledgements share the wire.

extern crate std;

use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::stored_sends_tests::Rng;
use super::*;
use crate::codec::v5::{self, Properties, Property, ReasonCode};

const T0: Instant = Instant::from_millis(0);

/// Topics of the messages: a one-byte one (longer by alias alone than
/// with its topic), a long one, and more than the broker's 3 aliases.
const TOPICS: [&str; 5] = ["t/a", "x", "sensor/0001/temperature", "t/b", "t/c"];

/// Our CONNECT: clean start off, the session kept across connections.
static OURS: [Property<'static>; 1] = [Property::SessionExpiryInterval(3600)];

/// A user property some messages carry beside their alias.
static USER: [Property<'static>; 1] = [Property::UserProperty("k", "v")];

type S = Session<'static, 4, 4>;

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

fn persistent_connect() -> v5::Connect<'static> {
    v5::Connect {
        clean_start: false,
        keep_alive: 0,
        properties: Properties::new(&OURS),
        ..v5::Connect::new("c")
    }
}

/// The bytes of a broker packet.
fn encode(p: &v5::Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; p.encoded_len()];
    let n = p.encode(&mut buf).expect("encode broker packet");
    buf.truncate(n);
    buf
}

/// A CONNACK accepting the connection with the session kept.
fn connack_bytes(props: &[Property<'_>]) -> Vec<u8> {
    encode(&v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::new(props),
    }))
}

/// A broker acknowledgement, owned; PUBACK and PUBREC with their reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    Puback(u16, ReasonCode),
    Pubrec(u16, ReasonCode),
    Pubcomp(u16),
}

impl Ack {
    fn bytes(self) -> Vec<u8> {
        let properties = Properties::EMPTY;
        encode(&match self {
            Ack::Puback(packet_id, reason_code) => v5::Packet::PubAck(v5::PubAck {
                packet_id,
                reason_code,
                properties,
            }),
            Ack::Pubrec(packet_id, reason_code) => v5::Packet::PubRec(v5::PubRec {
                packet_id,
                reason_code,
                properties,
            }),
            Ack::Pubcomp(id) => v5::Packet::PubComp(v5::PubComp::new(id)),
        })
    }
}

/// What the broker sends: an answer to the client's messages, or its own
/// traffic (a message to the client, its PUBREL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Ack(Ack),
    Publish(u16),
    Pubrel(u16),
}

/// A message of the broker to the client, in flight.
#[derive(Debug, Clone, Copy)]
struct ToClient {
    number: u32,
    qos: QoS,
    /// Its PUBLISH was sent (a resend carries DUP).
    sent: bool,
    /// PUBREC read: PUBREL sent or due.
    released: bool,
}

/// How the broker answers message `n` at `qos`, every time: some QoS 1
/// messages have no subscribers (0x10, a success), some QoS 2 messages
/// are refused (0x80: the message ends at its PUBREC, without PUBREL).
fn answer(n: u32, qos: QoS) -> ReasonCode {
    match qos {
        QoS::AtLeastOnce if n.is_multiple_of(5) => ReasonCode::NoMatchingSubscribers,
        QoS::ExactlyOnce if n.is_multiple_of(7) => ReasonCode::UnspecifiedError,
        _ => ReasonCode::Success,
    }
}

/// A message published, as the model knows it (by its number, the first
/// four bytes of its payload).
#[derive(Debug, Clone)]
struct Msg {
    body: Vec<u8>,
    topic: &'static str,
    qos: QoS,
    /// Published with the user property.
    user: bool,
}

impl Msg {
    /// The length of its PUBLISH with its topic and no alias: what the
    /// store keeps, and a resend on a new connection is.
    fn stored_len(&self, packet_id: u16) -> usize {
        v5::Publish {
            dup: true,
            qos: self.qos,
            retain: false,
            topic: self.topic,
            packet_id: Some(packet_id),
            properties: Properties::new(if self.user { &USER } else { &[] }),
            payload: &self.body,
        }
        .encoded_len()
    }
}

fn number(body: &[u8]) -> u32 {
    u32::from_be_bytes(body[..4].try_into().unwrap())
}

/// What the broker's CONNACK granted on a connection.
#[derive(Debug, Clone, Copy)]
struct Limits5 {
    receive_maximum: u16,
    topic_alias_maximum: u16,
    maximum_packet_size: Option<u32>,
}

/// What the model broker counted.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// PUBLISHes that set an alias (topic and alias).
    alias_set: usize,
    /// PUBLISHes by alias alone.
    alias_only: usize,
    /// QoS 1/2 PUBLISHes received when the broker held Receive Maximum
    /// of them.
    at_receive_maximum: usize,
    /// Connections with a Maximum Packet Size.
    size_limited: usize,
    qos0: usize,
    /// QoS 2 messages refused at PUBREC (answers read).
    refused: usize,
}

/// What the broker side saw and checks.
struct Broker {
    /// Bytes of the current connection not yet framed.
    buf: Vec<u8>,
    /// Packets to send on this connection, in order.
    out: VecDeque<Out>,
    /// Its messages to the client in flight, by id (ids in sending order).
    to_client: BTreeMap<u16, ToClient>,
    next_to_client: u32,
    /// The QoS of each message to the client, by number.
    sent_to_client: BTreeMap<u32, QoS>,
    limits: Limits5,
    /// The topic alias map of this connection (MQTT-3.3.2-7: none carried
    /// over).
    aliases: BTreeMap<u16, String>,
    /// Ids of the QoS 1/2 PUBLISHes received on this connection not yet
    /// answered with PUBACK / PUBCOMP (MQTT 5 §4.9).
    unacked: BTreeSet<u16>,
    /// Ids answered on this connection before their resend arrived on it
    /// (from the original): the client has its answer, the resend does not
    /// count against the Receive Maximum.
    answered_early: BTreeSet<u16>,
    /// Number of the last QoS 1/2 message received on this connection.
    last: Option<u32>,
    /// Every message published, by number.
    msgs: BTreeMap<u32, Msg>,
    /// Messages (payload) seen on any connection.
    seen: BTreeSet<Vec<u8>>,
    /// Messages seen on this connection.
    seen_here: BTreeSet<Vec<u8>>,
    /// QoS 2 ids waiting for PUBREL (broker session state).
    awaiting_rel: BTreeSet<u16>,
    /// Ids the client sent PUBREL for, whose PUBCOMP it has not read.
    released: BTreeSet<u16>,
    /// Ids of QoS 2 messages refused at PUBREC: no PUBREL may come for
    /// them.
    refused: BTreeSet<u16>,
    /// PUBRECs read by the client on this connection, in order.
    recs_read: Vec<u16>,
    /// PUBRELs received on this connection for ids in `recs_read`.
    rels_for_recs: Vec<u16>,
    counts: Counts,
    log: Vec<String>,
}

impl Broker {
    fn new() -> Self {
        Broker {
            buf: Vec::new(),
            out: VecDeque::new(),
            to_client: BTreeMap::new(),
            next_to_client: 0,
            sent_to_client: BTreeMap::new(),
            limits: Limits5 {
                receive_maximum: u16::MAX,
                topic_alias_maximum: 0,
                maximum_packet_size: None,
            },
            aliases: BTreeMap::new(),
            unacked: BTreeSet::new(),
            answered_early: BTreeSet::new(),
            last: None,
            msgs: BTreeMap::new(),
            seen: BTreeSet::new(),
            seen_here: BTreeSet::new(),
            awaiting_rel: BTreeSet::new(),
            released: BTreeSet::new(),
            refused: BTreeSet::new(),
            recs_read: Vec::new(),
            rels_for_recs: Vec::new(),
            counts: Counts::default(),
            log: Vec::new(),
        }
    }

    fn new_connection(&mut self, limits: Limits5) {
        self.buf.clear();
        self.out.clear();
        self.limits = limits;
        self.aliases.clear();
        self.unacked.clear();
        self.answered_early.clear();
        self.last = None;
        self.seen_here.clear();
        self.recs_read.clear();
        self.rels_for_recs.clear();
        // Its own messages, again (MQTT-4.4.0-1), in order.
        for (&id, m) in &self.to_client {
            self.out.push_back(if m.released {
                Out::Pubrel(id)
            } else {
                Out::Publish(id)
            });
        }
        if limits.maximum_packet_size.is_some() {
            self.counts.size_limited += 1;
        }
    }

    fn fail(&self, why: String) -> ! {
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
            match v5::Packet::decode(&buf) {
                Ok((p, n)) => {
                    if let Some(max) = self.limits.maximum_packet_size {
                        if n > max as usize {
                            self.fail(format!(
                                "a {n}-byte {:?} over the Maximum Packet Size {max} \
                                 (MQTT-3.1.2-24)",
                                p.packet_type()
                            ));
                        }
                    }
                    self.packet(p);
                    self.buf.drain(..n);
                }
                Err(codec::DecodeError::Incomplete { .. }) => return,
                Err(e) => self.fail(format!("torn or malformed wire: {e:?} {:02x?}", self.buf)),
            }
        }
    }

    /// The topic a PUBLISH names, through this connection's alias map.
    fn resolve(&mut self, p: &v5::Publish<'_>) -> String {
        let Some(alias) = p.properties.topic_alias() else {
            return p.topic.into();
        };
        if alias == 0 || alias > self.limits.topic_alias_maximum {
            self.fail(format!(
                "Topic Alias {alias} over the broker's Topic Alias Maximum {} \
                 (MQTT-3.3.2-9)",
                self.limits.topic_alias_maximum
            ));
        }
        if !p.topic.is_empty() {
            self.counts.alias_set += 1;
            self.aliases.insert(alias, p.topic.into());
            return p.topic.into();
        }
        self.counts.alias_only += 1;
        match self.aliases.get(&alias) {
            Some(topic) => topic.clone(),
            None => self.fail(format!(
                "alias {alias} alone, not set on this connection (MQTT 5 §3.3.2.3.4, \
                 a Protocol Error)"
            )),
        }
    }

    fn packet(&mut self, p: v5::Packet<'_>) {
        self.log.push(format!("broker got {p:?}"));
        match p {
            v5::Packet::Publish(publish) => {
                let topic = self.resolve(&publish);
                let body = publish.payload.to_vec();
                let n = number(&body);
                let Some(msg) = self.msgs.get(&n) else {
                    self.fail(format!("message {n} never published"))
                };
                if topic != msg.topic || publish.qos != msg.qos {
                    self.fail(format!(
                        "message {n} as {topic:?} {:?}, published as {:?} {:?}",
                        publish.qos, msg.topic, msg.qos
                    ));
                }
                if self.seen_here.contains(&body) {
                    self.fail(format!("message {n} written twice on one connection"));
                }
                if publish.qos == QoS::AtMostOnce {
                    if publish.dup {
                        self.fail(format!("QoS 0 message {n} with DUP (MQTT-3.3.1-2)"));
                    }
                    if !self.seen.insert(body.clone()) {
                        self.fail(format!("QoS 0 message {n} sent twice"));
                    }
                    self.seen_here.insert(body);
                    self.counts.qos0 += 1;
                    return;
                }
                let id = publish.packet_id.unwrap();
                if self.seen.contains(&body) && !publish.dup {
                    self.fail(format!("resend of id {id} without DUP (MQTT-3.3.1-1)"));
                }
                if self.released.contains(&id) {
                    self.fail(format!(
                        "PUBLISH id {id} after its PUBREL (MQTT-4.3.3-1 / 4.6.0)"
                    ));
                }
                if self.last.is_some_and(|last| last > n) {
                    self.fail(format!(
                        "message {n} after message {:?} on one connection (MQTT-4.6.0-1)",
                        self.last
                    ));
                }
                self.last = Some(n);
                if !self.answered_early.remove(&id) {
                    if self.unacked.len() >= usize::from(self.limits.receive_maximum) {
                        self.fail(format!(
                            "PUBLISH id {id} beyond the Receive Maximum {}: unanswered {:?} \
                             (MQTT-3.3.4-7)",
                            self.limits.receive_maximum, self.unacked
                        ));
                    }
                    self.unacked.insert(id);
                    if self.unacked.len() == usize::from(self.limits.receive_maximum) {
                        self.counts.at_receive_maximum += 1;
                    }
                }
                self.seen.insert(body.clone());
                self.seen_here.insert(body);
                let code = answer(n, publish.qos);
                match publish.qos {
                    QoS::AtLeastOnce => self.out.push_back(Out::Ack(Ack::Puback(id, code))),
                    _ if code.is_error() => {
                        self.refused.insert(id);
                        self.out.push_back(Out::Ack(Ack::Pubrec(id, code)));
                    }
                    _ => {
                        self.refused.remove(&id);
                        self.awaiting_rel.insert(id);
                        self.out.push_back(Out::Ack(Ack::Pubrec(id, code)));
                    }
                }
            }
            v5::Packet::PubRel(rel) => {
                let id = rel.packet_id;
                if rel.reason_code != ReasonCode::Success {
                    self.fail(format!("PUBREL {id} with {:?}", rel.reason_code));
                }
                if self.refused.contains(&id) {
                    self.fail(format!(
                        "PUBREL {id} after a PUBREC refusing it (MQTT 5 §4.3.3: the id is \
                         released at a PUBREC of reason 0x80 or above)"
                    ));
                }
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
                        self.fail(format!(
                            "PUBRELs {:?} not in PUBREC order {:?} (MQTT-4.6.0-4)",
                            self.rels_for_recs, self.recs_read
                        ));
                    }
                }
                self.awaiting_rel.remove(&id);
                self.out.push_back(Out::Ack(Ack::Pubcomp(id)));
            }
            v5::Packet::PubAck(ack) => {
                let id = ack.packet_id;
                match self.to_client.get(&id) {
                    Some(m) if m.qos == QoS::AtLeastOnce && m.sent => {
                        self.to_client.remove(&id);
                    }
                    m => self.fail(format!("PUBACK {id} for {m:?}")),
                }
            }
            v5::Packet::PubRec(rec) => {
                let id = rec.packet_id;
                match self.to_client.get(&id).copied() {
                    Some(m) if m.qos == QoS::ExactlyOnce && m.sent => {
                        if !m.released {
                            self.to_client.insert(
                                id,
                                ToClient {
                                    released: true,
                                    ..m
                                },
                            );
                            self.out.push_back(Out::Pubrel(id));
                        }
                    }
                    m => self.fail(format!("PUBREC {id} for {m:?}")),
                }
            }
            v5::Packet::PubComp(comp) => {
                let id = comp.packet_id;
                match self.to_client.get(&id) {
                    Some(m) if m.released => {
                        self.to_client.remove(&id);
                    }
                    m => self.fail(format!("PUBCOMP {id} for {m:?}")),
                }
            }
            v5::Packet::Connect(_) => self.fail("CONNECT on a connection".into()),
            v5::Packet::Disconnect(d) => self.fail(format!("the client said goodbye: {d:?}")),
            _ => {}
        }
    }

    /// A new message to the client, queued; at most two in flight (the
    /// session remembers `INFLIGHT` incoming QoS 2 ids).
    fn queue_to_client(&mut self, qos: QoS) {
        if self.to_client.len() >= 2 {
            return;
        }
        self.next_to_client += 1;
        let number = self.next_to_client;
        // Ids far from the client's own (distinct spaces anyway).
        let id = 1000 + (number % 60_000) as u16;
        self.out.push_back(Out::Publish(id));
        self.sent_to_client.insert(number, qos);
        self.to_client.insert(
            id,
            ToClient {
                number,
                qos,
                sent: false,
                released: false,
            },
        );
    }

    /// The bytes of `o`, sent now.
    fn send_out(&mut self, o: Out) -> Option<Vec<u8>> {
        match o {
            Out::Ack(a) => {
                self.sends(a, false);
                Some(a.bytes())
            }
            Out::Pubrel(id) => {
                self.log.push(format!("broker sends PUBREL {id}"));
                Some(encode(&v5::Packet::PubRel(v5::PubRel::new(id))))
            }
            Out::Publish(id) => {
                let m = self.to_client.get_mut(&id)?;
                let dup = m.sent;
                m.sent = true;
                let (number, qos) = (m.number, m.qos);
                if qos == QoS::AtMostOnce {
                    self.to_client.remove(&id);
                }
                self.log
                    .push(format!("broker sends PUBLISH {id} {qos:?} dup {dup}"));
                let payload = number.to_be_bytes();
                Some(encode(&v5::Packet::Publish(v5::Publish {
                    dup,
                    qos,
                    retain: false,
                    topic: "in/x",
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    properties: Properties::EMPTY,
                    payload: &payload,
                })))
            }
        }
    }

    /// The broker sends `a` (the caller feeds it to the client).
    fn sends(&mut self, a: Ack, early: bool) {
        self.log.push(format!(
            "broker sends {}{a:?}",
            if early { "early " } else { "" }
        ));
        match a {
            Ack::Pubrec(id, code) if !code.is_error() => self.recs_read.push(id),
            // A refusal ends the message as a PUBACK does.
            Ack::Pubcomp(id) | Ack::Puback(id, _) | Ack::Pubrec(id, _) => {
                if let Ack::Pubrec(..) = a {
                    self.counts.refused += 1;
                }
                if let Ack::Pubcomp(_) = a {
                    self.released.remove(&id);
                }
                if !self.unacked.remove(&id) && early {
                    self.answered_early.insert(id);
                }
            }
        }
    }
}

struct Run {
    s: S,
    b: Broker,
    rng: Rng,
    now: Instant,
    counter: u32,
    /// Outgoing QoS 1/2 messages in flight: id -> number.
    inflight: BTreeMap<u16, u32>,
    /// How many times each message of the broker was delivered.
    delivered: BTreeMap<u32, usize>,
    /// Topics of the QoS 0 messages queued on this connection, for their
    /// `Sent` events.
    qos0: VecDeque<&'static str>,
    published: BTreeSet<u32>,
    discarded: usize,
    early: usize,
    /// Streamed payloads by id (a payload may be due after its message
    /// completed).
    bodies: BTreeMap<Option<u16>, Vec<u8>>,
    streamed: usize,
    reconnects: usize,
    /// The broker's Maximum Packet Size, when it has one, varies around
    /// this (0: never one).
    size_limit: u32,
}

impl Run {
    fn new(seed: u64, tx: usize, store: usize, size_limit: u32) -> Self {
        let s = Session::new(leak(4096), leak(tx + store), Timeouts::default());
        let mut r = Run {
            s,
            b: Broker::new(),
            rng: Rng(seed | 1),
            now: T0,
            counter: 0,
            inflight: BTreeMap::new(),
            qos0: VecDeque::new(),
            delivered: BTreeMap::new(),
            published: BTreeSet::new(),
            discarded: 0,
            early: 0,
            bodies: BTreeMap::new(),
            streamed: 0,
            reconnects: 0,
            size_limit,
        };
        r.connect();
        r
    }

    /// What the broker grants on the next connection.
    fn pick_limits(&mut self) -> Limits5 {
        let maximum_packet_size = (self.size_limit > 0 && self.rng.chance(70))
            .then(|| self.size_limit + self.rng.below(40) as u32);
        Limits5 {
            receive_maximum: 1 + self.rng.below(4) as u16,
            topic_alias_maximum: self.rng.below(4) as u16,
            maximum_packet_size,
        }
    }

    fn connect(&mut self) {
        self.s.connect_v5(self.now, &persistent_connect()).unwrap();
        let limits = self.pick_limits();
        self.b.new_connection(limits);
        self.qos0.clear();
        // The CONNECT, whole.
        let connect = self.s.poll_transmit(self.now).to_vec();
        self.s.handle_transmit(self.now, connect.len());
        let (p, n) = v5::Packet::decode(&connect).unwrap();
        assert!(matches!(p, v5::Packet::Connect(_)) && n == connect.len());
        let mut props = vec![
            Property::ReceiveMaximum(limits.receive_maximum),
            Property::TopicAliasMaximum(limits.topic_alias_maximum),
        ];
        if let Some(max) = limits.maximum_packet_size {
            props.push(Property::MaximumPacketSize(max));
        }
        self.b.log.push(format!("connect: {limits:?}"));
        let bytes = connack_bytes(&props);
        self.feed(&bytes);
        assert_eq!(self.s.state(), State::Connected);
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
                Event::Published {
                    packet_id,
                    topic,
                    qos,
                    reason,
                } => {
                    let Some(n) = self.inflight.remove(&packet_id) else {
                        self.b.fail(format!("published {packet_id}, not in flight"))
                    };
                    let msg = &self.b.msgs[&n];
                    let code = answer(n, msg.qos);
                    if (topic, qos, reason.code) != (msg.topic, msg.qos, code) {
                        let why = format!("published {packet_id} as {topic:?} {qos:?} {reason:?}");
                        self.b.fail(why);
                    }
                    self.b.log.push(format!("client: published {packet_id}"));
                    if !self.b.seen.contains(&msg.body) {
                        self.b
                            .fail(format!("message {n} published, never received"));
                    }
                    assert!(self.published.insert(n), "published twice");
                }
                Event::Sent { topic } => {
                    if self.qos0.pop_front() != Some(topic) {
                        let why = format!("Sent {topic:?}, not the next QoS 0 message");
                        self.b.fail(why);
                    }
                }
                Event::Connected(_) => {}
                Event::Message(m) => {
                    let n = number(m.payload);
                    let times = self.delivered.entry(n).or_insert(0);
                    *times += 1;
                    let qos = self.b.sent_to_client.get(&n).copied();
                    if m.topic != "in/x" || qos != Some(m.qos) {
                        self.b.fail(format!("delivered {m:?}"));
                    }
                    if m.qos == QoS::ExactlyOnce && *times > 1 {
                        self.b.fail(format!(
                            "QoS 2 message {n} of the broker delivered twice (MQTT-4.3.3)"
                        ));
                    }
                }
                Event::Discarded {
                    packet_id, topic, ..
                } => {
                    let Some(n) = self.inflight.remove(&packet_id) else {
                        self.b.fail(format!("discarded {packet_id}, not in flight"))
                    };
                    let msg = &self.b.msgs[&n];
                    let len = msg.stored_len(packet_id);
                    let max = self.b.limits.maximum_packet_size;
                    if topic != msg.topic || max.is_none_or(|max| len <= max as usize) {
                        let why = format!("discarded {packet_id} ({len} bytes) under {max:?}");
                        self.b.fail(why);
                    }
                    self.b
                        .log
                        .push(format!("client: discarded {packet_id} ({len} bytes)"));
                    self.discarded += 1;
                }
                Event::Closed(reason) => self.b.fail(format!("closed: {reason:?}")),
                other => self.b.fail(format!("unexpected {other:?}")),
            }
        }
    }

    /// The broker sends its next acknowledgement.
    fn broker_send(&mut self) {
        let Some(o) = self.b.out.pop_front() else {
            return;
        };
        if let Some(bytes) = self.b.send_out(o) {
            self.feed(&bytes);
        }
    }

    /// The broker answers a message it got on an earlier connection
    /// before its resend arrives on this one ("from the original").
    fn early_ack(&mut self) {
        let ids: Vec<u16> = self.inflight.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.below(ids.len() as u64) as usize];
        let n = self.inflight[&id];
        let body = self.b.msgs[&n].body.clone();
        if !self.b.seen.contains(&body) || self.b.seen_here.contains(&body) {
            return;
        }
        let stage = self
            .s
            .inflight_ids()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s);
        let a = match stage {
            Some(Stage::AwaitPubAck) => Ack::Puback(id, answer(n, QoS::AtLeastOnce)),
            Some(Stage::AwaitPubRec) if self.b.awaiting_rel.contains(&id) => {
                Ack::Pubrec(id, ReasonCode::Success)
            }
            _ => return,
        };
        self.early += 1;
        self.b.sends(a, true);
        self.feed(&a.bytes());
    }

    /// A new message: its number, payload and topic.
    fn new_msg(&mut self, qos: QoS, max_len: u64) -> (u32, Vec<u8>) {
        self.counter += 1;
        let n = self.counter;
        let len = 4 + self.rng.below(max_len) as usize;
        let mut body = vec![(n % 251) as u8; len];
        body[..4].copy_from_slice(&n.to_be_bytes());
        // The first topics more often: aliases get reused.
        let topic = TOPICS[match self.rng.below(10) {
            0..=3 => 0,
            4..=5 => 1,
            6 => 2,
            7 => 3,
            _ => 4,
        }];
        let user = self.rng.chance(15);
        let msg = Msg {
            body: body.clone(),
            topic,
            qos,
            user,
        };
        self.b.msgs.insert(n, msg);
        (n, body)
    }

    /// The outcome of a publish: refused only for want of room, or over
    /// the broker's Maximum Packet Size.
    fn check_refusal(&self, e: SessionError) {
        match e {
            SessionError::Resource(ResourceError::PacketTooLarge { len, max }) => {
                assert!(len > max as usize && Some(max) == self.b.limits.maximum_packet_size);
            }
            SessionError::Resource(_) => {}
            e => self.b.fail(format!("publish refused: {e:?}")),
        }
    }

    #[cfg(feature = "streaming")]
    fn publish_streamed(&mut self, qos: QoS) {
        let (n, body) = self.new_msg(qos, 200);
        // No properties: `publish_streamed` takes none.
        self.b.msgs.get_mut(&n).unwrap().user = false;
        let msg = &self.b.msgs[&n];
        let p = Publish::new(msg.topic, &[], qos, false);
        match self.s.publish_streamed(self.now, &p, body.len()) {
            Ok(Some(id)) => {
                self.b.log.push(format!(
                    "client: publish streamed {id} (message {n}) len {}",
                    body.len()
                ));
                self.inflight.insert(id, n);
                self.bodies.insert(Some(id), body);
                self.streamed += 1;
            }
            Ok(None) => {
                self.b
                    .log
                    .push(format!("client: publish streamed message {n} QoS 0"));
                self.qos0.push_back(msg.topic);
                self.bodies.insert(None, body);
                self.streamed += 1;
            }
            Err(e) => self.check_refusal(e),
        }
    }

    /// Writes a piece of the due streamed payload.
    fn write_payload(&mut self) -> bool {
        let Some(due) = self.s.payload_due() else {
            return false;
        };
        let body = self.bodies[&due.packet_id].clone();
        let left = due.len - due.offset;
        let k = 1 + self.rng.below(left as u64) as usize;
        self.b.wire(&body[due.offset..due.offset + k]);
        self.s.handle_payload(self.now, k);
        true
    }

    fn publish(&mut self) {
        let qos = match self.rng.below(10) {
            0..=1 => QoS::AtMostOnce,
            2..=5 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        if qos != QoS::AtMostOnce && !self.s.can_publish() {
            return;
        }
        #[cfg(feature = "streaming")]
        if self.rng.chance(10) {
            return self.publish_streamed(qos);
        }
        let (n, body) = self.new_msg(qos, 120);
        let msg = &self.b.msgs[&n];
        let (topic, user) = (msg.topic, msg.user);
        let p = Publish::new(topic, &body, qos, false);
        let result = if user {
            self.s.publish_with(self.now, &p, &Properties::new(&USER))
        } else {
            self.s.publish(self.now, &p)
        };
        match result {
            Ok(Some(id)) => {
                self.b.log.push(format!(
                    "client: publish {id} (message {n}) {qos:?} {topic} len {}",
                    body.len()
                ));
                self.inflight.insert(id, n);
            }
            Ok(None) => {
                self.b
                    .log
                    .push(format!("client: publish message {n} QoS 0 {topic}"));
                self.qos0.push_back(topic);
            }
            Err(e) => self.check_refusal(e),
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
        self.b.log.push(format!("write {k} of {}", pending.len()));
        self.b.wire(&pending[..k]);
        if copy {
            for _ in 0..self.rng.below(3) {
                if self.rng.chance(20) {
                    self.early_ack();
                } else {
                    self.broker_send();
                }
            }
            // A driver that copied the bytes may take a publish before it
            // says how many went out.
            if self.rng.chance(20) {
                self.publish();
            }
        }
        self.s.handle_transmit(self.now, k);
        // As a driver does, mostly: QoS 0 messages written are reported.
        if self.rng.chance(70) {
            self.drain();
        }
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
            7 => {
                if self.rng.chance(20) {
                    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
                        [self.rng.below(3) as usize];
                    self.b.queue_to_client(qos);
                }
                self.broker_send();
            }
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
            // A packet read while the transmit queue was full is handled
            // now (and may let a resend out).
            self.drain();
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
        let undelivered: Vec<u32> = self
            .b
            .sent_to_client
            .iter()
            .filter(|&(n, &qos)| qos != QoS::AtMostOnce && !self.delivered.contains_key(n))
            .map(|(&n, _)| n)
            .collect();
        if !self.b.to_client.is_empty() || !undelivered.is_empty() {
            self.b.fail(format!(
                "broker's messages stuck {:?}, undelivered {undelivered:?}",
                self.b.to_client
            ));
        }
        if self.s.inflight() != 0 || !self.inflight.is_empty() || !self.qos0.is_empty() {
            self.b.fail(format!(
                "stuck: session in flight {:?}, model {:?}, QoS 0 unreported {:?}",
                self.s.inflight_ids().collect::<Vec<_>>(),
                self.inflight.keys().collect::<Vec<_>>(),
                self.qos0
            ));
        }
    }
}

#[test]
fn random_v5_stored_and_aliased_sends_keep_the_brokers_limits() {
    let (mut published, mut discarded, mut early, mut streamed, mut reconnects) = (0, 0, 0, 0, 0);
    let mut counts = Counts::default();
    let (mut seeds, mut incoming) = (0, 0);
    for seed in 1..1000u64 {
        for copy in [false, true] {
            seeds += 1;
            let tx = [24, 48, 80, 256][(seed % 4) as usize];
            let size_limit = [0, 0, 40, 90][(seed / 4 % 4) as usize];
            let store = [2048, 400, 200][(seed / 16 % 3) as usize];
            let mut r = Run::new(seed * 7919, tx, store, size_limit);
            r.b.log.push(format!(
                "seed {seed} copy {copy} tx {tx} store {store} size limit {size_limit}"
            ));
            for _ in 0..300 {
                r.step(copy);
            }
            r.finish();
            published += r.published.len();
            discarded += r.discarded;
            early += r.early;
            streamed += r.streamed;
            reconnects += r.reconnects;
            incoming += r.delivered.values().sum::<usize>();
            let c = r.b.counts;
            counts.alias_set += c.alias_set;
            counts.alias_only += c.alias_only;
            counts.at_receive_maximum += c.at_receive_maximum;
            counts.size_limited += c.size_limited;
            counts.qos0 += c.qos0;
            counts.refused += c.refused;
        }
    }
    std::eprintln!(
        "runs {seeds}: published {published} discarded {discarded} QoS 0 {} early {early} \
         streamed {streamed} reconnects {reconnects} ({} size-limited connections); \
         aliases set {} alias-only {}; at Receive Maximum {}; refused at PUBREC {}; \
         delivered to us {incoming}",
        counts.qos0,
        counts.size_limited,
        counts.alias_set,
        counts.alias_only,
        counts.at_receive_maximum,
        counts.refused
    );
    // What the run is for happened.
    assert!(counts.alias_set > 0 && counts.alias_only > 0 && counts.at_receive_maximum > 0);
    assert!(discarded > 0 && early > 0 && reconnects > 0 && counts.refused > 0);
}
