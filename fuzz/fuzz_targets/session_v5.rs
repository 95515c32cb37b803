//! The sans-IO session on MQTT 5 connections, driven by arbitrary
//! operations: MQTT 5 CONNACKs with arbitrary limits, broker packets
//! (valid ones built from arbitrary fields, and raw bytes cut anywhere),
//! publishes with properties and topic aliases, subscriptions with
//! options, deferred acknowledgements, time, and lost connections.
//!
//! What must hold whatever the input:
//!
//! - nothing panics or loops (libFuzzer's timeout catches a hang);
//! - everything the session writes is a sequence of whole, valid MQTT 5
//!   packets that only a client sends, each within the Maximum Packet
//!   Size of the connection's CONNACK;
//! - a PUBLISH names its topic or an alias announced earlier on the same
//!   connection, never above the CONNACK's Topic Alias Maximum, and no
//!   more QoS 1/2 PUBLISHes are in flight than its Receive Maximum
//!   (resends after a reconnect included);
//! - every QoS 0 PUBLISH written is reported (`Event::Sent`) once, in
//!   order, with its topic (an alias's, for one sent with the alias alone);
//! - after `Event::Closed` (or a lost connection) nothing is written but,
//!   for a broker's violation on an accepted connection, one DISCONNECT
//!   with its reason code, never after part of a packet; no deadline is
//!   left until the next connect.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use minimqtt::codec::v5::{
    self, Properties, Property, ReasonCode, ReasonCodes, RetainHandling, SubscriptionOptions,
};
use minimqtt::codec::{Publish, QoS};
use minimqtt::session::{Closed, Event, Options, Session, State, Timeouts};
use minimqtt::time::{Duration, Instant};

const TOPICS: [&str; 4] = ["a", "b/c", "sensor/0001/temp", "x/y/z"];
/// Longer than the receive buffer (160 bytes): the packet that carries it
/// is read without its properties.
const LONG_REASON: &str = concat!(
    "a reason string longer than the receive buffer, so that the packet ",
    "carrying it cannot be buffered whole and its properties are skipped ",
    "as they arrive, whatever the rest of the packet holds",
);

#[derive(Debug, Arbitrary)]
enum Op {
    Connect {
        clean: bool,
        keep_alive: u8,
        receive_maximum: u8,
        max_packet: Option<u8>,
        /// A Topic Alias Maximum for the broker's aliases.
        aliases: bool,
    },
    ConnAck {
        present: bool,
        refuse: bool,
        receive_maximum: Option<u8>,
        max_packet: Option<u8>,
        aliases: u8,
        maximum_qos: u8,
        keep_alive: Option<u8>,
    },
    Publish {
        topic: u8,
        qos: u8,
        retain: bool,
        len: u8,
        user: bool,
    },
    Subscribe {
        topic: u8,
        qos: u8,
        no_local: bool,
    },
    Unsubscribe {
        topic: u8,
    },
    /// A broker PUBLISH with arbitrary fields.
    Incoming {
        topic: u8,
        qos: u8,
        id: u16,
        dup: bool,
        alias: Option<u16>,
        len: u8,
    },
    /// An acknowledgement of one of ours, with a reason code.
    Ack {
        kind: u8,
        id: u16,
        reason: u8,
    },
    SubAck {
        id: u16,
        codes: Vec<u8>,
        /// A Reason String too long for the receive buffer.
        long: bool,
        /// An UNSUBACK instead.
        unsuback: bool,
    },
    Disconnect {
        reason: u8,
    },
    /// Our DISCONNECT, with any reason code, maybe a Session Expiry
    /// Interval and a Reason String over the broker's Maximum Packet Size.
    Goodbye {
        reason: u8,
        expiry: Option<u8>,
        long: bool,
    },
    /// Raw bytes, possibly cut, possibly malformed.
    Raw(Vec<u8>),
    Defer,
    Redeem,
    Time(u16),
    Lost,
    Write(u16),
}

struct Model<'s> {
    s: Session<'s, 4, 4>,
    now: Instant,
    /// The CONNACK's limits, once accepted.
    max_packet: u32,
    alias_max: u16,
    receive_max: u16,
    /// Aliases the session announced with a topic on this connection.
    announced: BTreeMap<u16, String>,
    /// Packet ids of our QoS 1/2 PUBLISHes written and not acknowledged.
    inflight: BTreeSet<u16>,
    /// Ids the session reported complete before their PUBLISH was
    /// written (this model's broker may acknowledge what it has not
    /// read): not in flight when written.
    completed: BTreeSet<u16>,
    tokens: Vec<minimqtt::session::AckToken>,
    /// Bytes written, not yet whole packets.
    partial: Vec<u8>,
    /// The topics of the QoS 0 PUBLISHes written in full and not reported
    /// yet (an alias resolved), in the order written.
    written0: VecDeque<String>,
}

impl Model<'_> {
    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let space = self.s.receive_buffer();
            if space.is_empty() {
                break;
            }
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            self.s.commit(n);
            rest = &rest[n..];
            self.events();
        }
    }

    fn packet(&mut self, packet: v5::Packet<'_>) {
        let mut buf = vec![0u8; packet.encoded_len()];
        if let Ok(n) = packet.encode(&mut buf) {
            self.feed(&buf[..n]);
        }
    }

    fn events(&mut self) {
        // Bounded: each event consumes input or a queued report.
        for _ in 0..64 {
            let now = self.now;
            let Some(event) = self.s.poll_event(now) else {
                break;
            };
            match event {
                Event::Connected(_) => {
                    let l = *self.s.limits();
                    self.max_packet = l.maximum_packet_size;
                    self.alias_max = l.topic_alias_maximum;
                    self.receive_max = l.receive_maximum;
                }
                Event::Published { packet_id, .. } | Event::Discarded { packet_id, .. } => {
                    if !self.inflight.remove(&packet_id) {
                        self.completed.insert(packet_id);
                    }
                }
                Event::Sent { topic } => {
                    let topic = topic.to_owned();
                    self.sent(&topic);
                }
                Event::Message(m) => {
                    assert!(!m.topic.is_empty(), "a message without a topic");
                    assert!(TOPICS.contains(&m.topic), "a topic never sent: {}", m.topic);
                }
                Event::Stream(st) => {
                    // By its alias too: the topic the alias stands for (a
                    // raw packet's header may name any valid one).
                    assert!(
                        minimqtt::topic::validate_name(st.topic).is_ok(),
                        "a stream without a valid topic: {:?}",
                        st.topic
                    );
                    // Read from the held header: checked, so listing them
                    // cannot fail.
                    let _ = st.properties.iter().count();
                }
                Event::Closed(reason) => {
                    let why = match reason {
                        Closed::Violation(code) => Some(code),
                        Closed::Malformed(m) => Some(ReasonCode::for_malformed(m)),
                        Closed::Protocol(_) => Some(ReasonCode::ProtocolError),
                        _ => None,
                    };
                    // Part of a packet written: its rest, not a DISCONNECT,
                    // is what the broker reads next.
                    let mid_packet = !self.partial.is_empty();
                    self.ended();
                    assert_eq!(self.s.state(), State::Disconnected);
                    // At most a DISCONNECT saying why (§4.13.1), once
                    // CONNACK accepted the connection.
                    let last = self.s.poll_transmit(now);
                    if !last.is_empty() {
                        assert!(!mid_packet, "a DISCONNECT after part of a packet");
                        let (packet, n) = v5::Packet::decode(last).expect("a valid last packet");
                        assert_eq!(n, last.len(), "more than one last packet");
                        match (packet, why) {
                            (v5::Packet::Disconnect(d), Some(code)) => {
                                assert_eq!(d.reason_code, code);
                            }
                            other => panic!("{other:?} written after {reason:?}"),
                        }
                        let n = last.len();
                        self.s.handle_transmit(now, n);
                    }
                    assert!(self.s.poll_transmit(now).is_empty(), "bytes after Closed");
                    assert_eq!(self.s.poll_timeout(), None, "a deadline after Closed");
                }
                Event::Disconnected(_) => {
                    self.ended();
                    assert_eq!(self.s.state(), State::Disconnected);
                    assert!(
                        self.s.poll_transmit(now).is_empty(),
                        "bytes after DISCONNECT"
                    );
                    assert_eq!(self.s.poll_timeout(), None, "a deadline after Closed");
                }
                _ => {}
            }
            if let Ok(token) = self.s.defer_ack() {
                self.tokens.push(token);
            }
        }
    }

    fn ended(&mut self) {
        self.announced.clear();
        self.partial.clear();
        self.written0.clear();
    }

    /// `Event::Sent`: the next QoS 0 message written, by its topic (the
    /// alias's, for one sent with the alias alone).
    fn sent(&mut self, topic: &str) {
        assert_eq!(
            self.written0.pop_front().as_deref(),
            Some(topic),
            "Sent for a message not written, or out of order"
        );
    }

    /// Writes up to `n` bytes and checks every whole packet in them.
    fn write(&mut self, n: usize) {
        let now = self.now;
        let pending = self.s.poll_transmit(now);
        let k = pending.len().min(n);
        if k == 0 {
            return;
        }
        self.partial.extend_from_slice(&pending[..k]);
        self.s.handle_transmit(now, k);
        loop {
            let Ok((packet, len)) = v5::Packet::decode(&self.partial) else {
                if let Err(v5::DecodeError::Incomplete { .. }) = v5::Packet::decode(&self.partial) {
                    break;
                }
                panic!("the session wrote an invalid packet: {:02x?}", self.partial);
            };
            // A CONNECT starts a connection: the last CONNACK's limits
            // are not its.
            let connect = matches!(packet, v5::Packet::Connect(_));
            assert!(
                connect || u32::try_from(len).unwrap() <= self.max_packet,
                "a packet of {len} bytes over the broker's maximum {}",
                self.max_packet
            );
            match packet {
                v5::Packet::Publish(p) => {
                    match p.properties.topic_alias() {
                        Some(a) => {
                            assert!(
                                a >= 1 && a <= self.alias_max,
                                "alias {a} over {}",
                                self.alias_max
                            );
                            if p.topic.is_empty() {
                                assert!(
                                    self.announced.contains_key(&a),
                                    "alias {a} never announced"
                                );
                            } else {
                                self.announced.insert(a, p.topic.to_owned());
                            }
                        }
                        None => assert!(!p.topic.is_empty(), "a PUBLISH without topic or alias"),
                    }
                    if p.qos == QoS::AtMostOnce {
                        let topic = match p.properties.topic_alias() {
                            Some(a) if p.topic.is_empty() => self.announced[&a].clone(),
                            _ => p.topic.to_owned(),
                        };
                        self.written0.push_back(topic);
                    }
                    if let Some(id) = p.packet_id.filter(|id| !self.completed.remove(id)) {
                        self.inflight.insert(id);
                        // Resends (DUP) after a reconnect too (MQTT 5 §4.9).
                        assert!(
                            self.inflight.len() <= usize::from(self.receive_max),
                            "more in flight than the broker's Receive Maximum"
                        );
                    }
                }
                v5::Packet::Connect(_) => {
                    self.max_packet = u32::MAX;
                    self.alias_max = 0;
                    self.receive_max = u16::MAX;
                    self.announced.clear();
                    self.inflight.clear();
                    self.completed.clear();
                }
                v5::Packet::ConnAck(_)
                | v5::Packet::SubAck(_)
                | v5::Packet::UnsubAck(_)
                | v5::Packet::PingResp => panic!("a server's packet from the client: {packet:?}"),
                // MQTT 5 Table 3-10: the codes a client may send.
                v5::Packet::Disconnect(d) => assert!(
                    matches!(d.reason_code.to_u8(), 0x00 | 0x04 | 0x80..=0x83 | 0x90 | 0x93..=0x99),
                    "a DISCONNECT with the server's code {:?}",
                    d.reason_code
                ),
                _ => {}
            }
            self.partial.drain(..len);
        }
        // As a driver does: QoS 0 messages are reported once written, and
        // exactly those.
        assert_eq!(
            self.s.sent_due(),
            !self.written0.is_empty(),
            "{:?}",
            self.written0
        );
        while self.s.sent_due() {
            match self.s.poll_event(now) {
                Some(Event::Sent { topic }) => {
                    let topic = topic.to_owned();
                    self.sent(&topic);
                }
                other => panic!("sent_due, then {other:?}"),
            }
        }
        assert!(
            self.written0.is_empty(),
            "written, not reported: {:?}",
            self.written0
        );
    }
}

fn qos(b: u8) -> QoS {
    QoS::from_bits(b % 3).unwrap_or(QoS::AtMostOnce)
}

fuzz_target!(|ops: Vec<Op>| {
    let (mut rx, mut arena) = ([0u8; 160], [0u8; 768]);
    let mut m = Model {
        s: Session::new(&mut rx, &mut arena, Timeouts::DEFAULT),
        now: Instant::from_millis(0),
        max_packet: u32::MAX,
        alias_max: 0,
        receive_max: u16::MAX,
        announced: BTreeMap::new(),
        inflight: BTreeSet::new(),
        completed: BTreeSet::new(),
        tokens: Vec::new(),
        partial: Vec::new(),
        written0: VecDeque::new(),
    };
    m.s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    let payload = [7u8; 200];
    for op in ops.into_iter().take(200) {
        let now = m.now;
        match op {
            Op::Connect {
                clean,
                keep_alive,
                receive_maximum,
                max_packet,
                aliases,
            } => {
                let mut props = vec![Property::ReceiveMaximum(u16::from(receive_maximum % 4 + 1))];
                if aliases {
                    props.push(Property::TopicAliasMaximum(3));
                }
                if let Some(max) = max_packet {
                    props.push(Property::MaximumPacketSize(u32::from(max).max(16)));
                }
                let connect = v5::Connect {
                    clean_start: clean,
                    keep_alive: u16::from(keep_alive),
                    properties: Properties::new(&props),
                    ..v5::Connect::new("fuzz")
                };
                if m.s.connect_v5(now, &connect).is_ok() {
                    m.ended();
                    m.inflight.clear();
                    m.completed.clear();
                }
            }
            Op::ConnAck {
                present,
                refuse,
                receive_maximum,
                max_packet,
                aliases,
                maximum_qos,
                keep_alive,
            } => {
                let mut props = vec![Property::TopicAliasMaximum(u16::from(aliases % 5))];
                if let Some(r) = receive_maximum {
                    props.push(Property::ReceiveMaximum(u16::from(r).max(1)));
                }
                if let Some(max) = max_packet {
                    // At least an acknowledgement's 4 bytes and a SUBSCRIBE.
                    props.push(Property::MaximumPacketSize(u32::from(max).max(16)));
                }
                if maximum_qos < 2 {
                    props.push(Property::MaximumQoS(maximum_qos));
                }
                if let Some(k) = keep_alive {
                    props.push(Property::ServerKeepAlive(u16::from(k)));
                }
                // A broker answers a CONNECT it has read.
                m.write(usize::MAX);
                m.packet(v5::Packet::ConnAck(v5::ConnAck {
                    session_present: present,
                    reason_code: if refuse {
                        ReasonCode::ServerBusy
                    } else {
                        ReasonCode::Success
                    },
                    properties: Properties::new(&props),
                }));
            }
            Op::Publish {
                topic,
                qos: q,
                retain,
                len,
                user,
            } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                let p = Publish::new(topic, &payload[..usize::from(len % 200)], qos(q), retain);
                let props = [Property::UserProperty("k", "v")];
                let props = Properties::new(if user { &props[..] } else { &[] });
                let _ = m.s.publish_with(now, &p, &props);
            }
            Op::Subscribe {
                topic,
                qos: q,
                no_local,
            } => {
                let options = SubscriptionOptions {
                    no_local,
                    retain_handling: RetainHandling::SendAtNewSubscribe,
                    ..SubscriptionOptions::new(qos(q))
                };
                let filter = TOPICS[usize::from(topic) % TOPICS.len()];
                let sub_id = (topic % 3 != 0).then_some(u32::from(topic % 3));
                let _ =
                    m.s.subscribe_v5(now, &[v5::Subscription { filter, options }], sub_id);
            }
            Op::Unsubscribe { topic } => {
                let _ =
                    m.s.unsubscribe(now, &[TOPICS[usize::from(topic) % TOPICS.len()]]);
            }
            Op::Incoming {
                topic,
                qos: q,
                id,
                dup,
                alias,
                len,
            } => {
                let q = qos(q);
                let props = alias.map(Property::TopicAlias);
                let props = props.as_slice();
                let topic = if topic == 255 {
                    ""
                } else {
                    TOPICS[usize::from(topic) % TOPICS.len()]
                };
                m.packet(v5::Packet::Publish(v5::Publish {
                    dup: dup && q != QoS::AtMostOnce,
                    qos: q,
                    retain: false,
                    topic,
                    packet_id: (q != QoS::AtMostOnce).then_some(id.max(1)),
                    properties: Properties::new(props),
                    payload: &payload[..usize::from(len % 200)],
                }));
            }
            Op::Ack { kind, id, reason } => {
                let reason_code =
                    ReasonCode::from_u8(reason).unwrap_or(ReasonCode::UnspecifiedError);
                let id = id.max(1);
                let packet = match kind % 4 {
                    0 => v5::Packet::PubAck(v5::PubAck {
                        reason_code,
                        ..v5::PubAck::new(id)
                    }),
                    1 => v5::Packet::PubRec(v5::PubRec {
                        reason_code,
                        ..v5::PubRec::new(id)
                    }),
                    2 => v5::Packet::PubRel(v5::PubRel::new(id)),
                    _ => v5::Packet::PubComp(v5::PubComp::new(id)),
                };
                m.packet(packet);
            }
            Op::SubAck {
                id,
                codes,
                long,
                unsuback,
            } => {
                let codes: Vec<ReasonCode> = codes
                    .iter()
                    .take(4)
                    .map(|&c| ReasonCode::from_u8(c).unwrap_or(ReasonCode::GRANTED_QOS_0))
                    .collect();
                let why = [Property::ReasonString(LONG_REASON)];
                let properties = Properties::new(if long { &why } else { &[] });
                let (packet_id, reason_codes) = (id.max(1), ReasonCodes::new(&codes));
                m.packet(if unsuback {
                    v5::Packet::UnsubAck(v5::UnsubAck {
                        packet_id,
                        properties,
                        reason_codes,
                    })
                } else {
                    v5::Packet::SubAck(v5::SubAck {
                        packet_id,
                        properties,
                        reason_codes,
                    })
                });
            }
            Op::Disconnect { reason } => {
                let reason_code =
                    ReasonCode::from_u8(reason).unwrap_or(ReasonCode::ServerShuttingDown);
                m.packet(v5::Packet::Disconnect(v5::Disconnect {
                    reason_code,
                    properties: Properties::EMPTY,
                }));
            }
            Op::Goodbye {
                reason,
                expiry,
                long,
            } => {
                let reason_code = ReasonCode::from_u8(reason).unwrap_or(ReasonCode::Success);
                let expiry = expiry.map(|e| Property::SessionExpiryInterval(u32::from(e)));
                let long = long.then_some(Property::ReasonString(LONG_REASON));
                let properties: Vec<Property<'_>> = expiry.into_iter().chain(long).collect();
                let before = m.s.state();
                let goodbye = v5::Disconnect {
                    reason_code,
                    properties: Properties::new(&properties),
                };
                // Taken, the connection is over; refused, nothing changed
                // (what went out is checked as it is written).
                match m.s.disconnect_v5(&goodbye) {
                    Ok(()) => assert_eq!(m.s.state(), State::Disconnected),
                    Err(_) => assert_eq!(m.s.state(), before),
                }
            }
            Op::Raw(bytes) => m.feed(&bytes),
            Op::Defer => {
                if let Ok(token) = m.s.defer_ack() {
                    m.tokens.push(token);
                }
            }
            Op::Redeem => {
                if let Some(token) = m.tokens.pop() {
                    let _ = m.s.ack(token);
                }
            }
            Op::Time(ms) => {
                m.now = m.now + Duration::from_millis(u64::from(ms) * 10);
                let now = m.now;
                m.s.handle_timeout(now);
            }
            Op::Lost => {
                m.s.connection_lost();
                m.ended();
            }
            Op::Write(n) => m.write(usize::from(n) + 1),
        }
        m.events();
    }
});
