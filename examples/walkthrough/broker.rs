//! The walkthrough's in-process broker: just enough MQTT 3.1.1 and MQTT 5
//! for one walkthrough on a loopback port, written on minimqtt's codec so
//! that running the example compiles nothing but minimqtt, tokio and the
//! adapter. The integration tests run the client against real brokers
//! (rumqttd and mosquitto); set `MQTT_BROKER` to run the walkthrough
//! against one too.
//!
//! Each connection speaks the version its CONNECT asks for: protocol level
//! 4 is MQTT 3.1.1 ([`minimqtt::codec`]), 5 is MQTT 5
//! ([`minimqtt::codec::v5`]); any other level gets a 3.1.1 CONNACK
//! "unacceptable protocol version" and the connection closes. Messages
//! pass between the two: an MQTT 5 PUBLISH's properties (User Properties,
//! Content Type, Correlation Data, ...) reach MQTT 5 subscribers and are
//! dropped toward MQTT 3.1.1 ones.
//!
//! What it does: accepts any CONNECT (no credentials checked, no session
//! kept: session present is always 0); grants each subscription at most
//! QoS 1; acknowledges a PUBLISH (PUBACK, or PUBREC then PUBCOMP) and
//! forwards it at once to every connection with a matching filter, at the
//! lower of the two QoS levels; answers PINGREQ.
//!
//! On MQTT 5 it also: gives its reason codes (SUBACK: the granted QoS;
//! PUBACK / PUBREC: 0x10 "no matching subscribers" when nobody got the
//! message; UNSUBACK: 0x11 "no subscription existed" for a filter it did
//! not have); assigns a client identifier to a CONNECT without one; says
//! in its CONNACK what it lacks (Retain Available, Shared Subscription
//! Available and Subscription Identifier Available all 0, Session Expiry
//! Interval 0 when the client asked for more), refuses `$share/` filters
//! (0x9E) and Subscription Identifiers (0xA1) in its SUBACK; honours No
//! Local and the client's Maximum Packet Size; sends DISCONNECT with a
//! reason code before closing a connection that broke the protocol.
//!
//! What it leaves out: retained messages, wills, sessions, resends,
//! exactly-once delivery of a QoS 2 message that its publisher sends
//! again, topic aliases (it grants none), extended authentication, and
//! the client's Receive Maximum (it has at most a few messages in flight).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use minimqtt::codec::v5::{self, Property, ReasonCode, ReasonCodes};
use minimqtt::codec::{
    self, ConnectReturnCode, DecodeError, QoS, ReturnCodes, SubscribeReturnCode,
};
use minimqtt::topic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running broker on `127.0.0.1`; dropping it stops accepting.
pub struct Broker {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Broker {
    /// Starts a broker on a free loopback port.
    pub async fn start() -> Broker {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("walkthrough broker: bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("walkthrough broker: its address");
        let task = tokio::spawn(serve(listener));
        Broker { addr, task }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The MQTT version a connection speaks, from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    V3_1_1,
    V5,
}

/// Bytes queued for one connection's writer task, so a PUBLISH from one
/// client can be forwarded to another without sharing its socket.
type Outbox = mpsc::UnboundedSender<Vec<u8>>;

/// One subscription of a connection.
struct Filter {
    filter: String,
    qos: QoS,
    /// MQTT 5 No Local: not sent the connection's own messages.
    no_local: bool,
}

/// What the broker knows of one connected client.
struct Subscriber {
    protocol: Protocol,
    filters: Vec<Filter>,
    outbox: Outbox,
    last_packet_id: u16,
    /// MQTT 5: the client's Maximum Packet Size; larger messages are not
    /// sent to it.
    max_packet_len: usize,
}

type Subscribers = Arc<Mutex<HashMap<u64, Subscriber>>>;

async fn serve(listener: TcpListener) {
    let subscribers = Subscribers::default();
    let mut next_id = 0;
    while let Ok((stream, _)) = listener.accept().await {
        next_id += 1;
        tokio::spawn(connection(next_id, stream, subscribers.clone()));
    }
}

/// What became of the bytes at the start of the receive buffer.
enum Step {
    /// A packet of this many bytes was handled.
    Used(usize),
    /// Not a whole packet yet: read more.
    More,
    /// The connection is over.
    Close,
}

async fn connection(id: u64, stream: TcpStream, subscribers: Subscribers) {
    // Small packets must not wait in Nagle's buffer.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
    let writing = tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut conn = Connection {
        id,
        outbox,
        subscribers,
        connected: false,
    };

    let mut chosen = None;
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    'connection: loop {
        // Every whole packet first: one read may carry several.
        loop {
            // The CONNECT's protocol level picks the codec.
            let protocol = match chosen {
                Some(protocol) => protocol,
                None => match protocol_level(&received) {
                    Level::Incomplete => break,
                    Level::NotConnect => break 'connection,
                    Level::Is(codec::PROTOCOL_LEVEL) => *chosen.insert(Protocol::V3_1_1),
                    Level::Is(v5::PROTOCOL_VERSION) => *chosen.insert(Protocol::V5),
                    // MQTT 3.1.1 §3.1.2.2 (MQTT-3.1.2-2).
                    Level::Is(_) => {
                        conn.send_v3(codec::Packet::ConnAck(codec::ConnAck {
                            session_present: false,
                            return_code: ConnectReturnCode::UnacceptableProtocolVersion,
                        }));
                        break 'connection;
                    }
                },
            };
            let step = match protocol {
                Protocol::V3_1_1 => conn.next_v3(&received),
                Protocol::V5 => conn.next_v5(&received),
            };
            match step {
                Step::Used(used) => {
                    received.drain(..used);
                }
                Step::More => break,
                Step::Close => break 'connection,
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }

    conn.subscribers.lock().expect("broker state").remove(&id);
    // The writer ends once the last sender, ours, is gone: queued packets
    // (a final UNSUBACK, say) still go out first.
    drop(conn);
    let _ = writing.await;
}

/// The protocol level of the CONNECT at the start of a connection's bytes.
enum Level {
    Incomplete,
    NotConnect,
    Is(u8),
}

/// Reads the byte after the "MQTT" protocol name of the CONNECT that must
/// open the connection: the fixed header (0x10, then the remaining length
/// in 1 to 4 bytes), the name's length (0, 4), the name, the level.
fn protocol_level(buf: &[u8]) -> Level {
    match buf.first() {
        None => return Level::Incomplete,
        Some(&first) if first != 0x10 => return Level::NotConnect,
        Some(_) => {}
    }
    let mut header_len = None;
    for i in 1..=4 {
        match buf.get(i) {
            None => return Level::Incomplete,
            Some(&byte) if byte & 0x80 == 0 => {
                header_len = Some(i + 1);
                break;
            }
            Some(_) => {}
        }
    }
    let Some(header_len) = header_len else {
        return Level::NotConnect;
    };
    let name = b"\x00\x04MQTT";
    let start = &buf[header_len..];
    let known = start.len().min(name.len());
    if start[..known] != name[..known] {
        return Level::NotConnect;
    }
    match start.get(name.len()) {
        Some(&level) => Level::Is(level),
        None => Level::Incomplete,
    }
}

/// A PUBLISH as the broker forwards it, whichever version it came in.
struct Incoming<'a> {
    topic: &'a str,
    payload: &'a [u8],
    qos: QoS,
    /// MQTT 5 properties to forward (none from an MQTT 3.1.1 publisher).
    properties: v5::Properties<'a>,
}

/// Where a PUBLISH goes: how many subscribers matched, and the packets
/// for them (one per subscriber, each in its own version).
struct Routed {
    matched: usize,
    deliveries: Vec<(Outbox, Vec<u8>)>,
}

/// One connection's side of the broker.
struct Connection {
    id: u64,
    outbox: Outbox,
    subscribers: Subscribers,
    /// CONNECT received and accepted.
    connected: bool,
}

impl Connection {
    fn send_v3(&self, packet: codec::Packet<'_>) {
        let _ = self.outbox.send(encode_v3(&packet));
    }

    fn send_v5(&self, packet: v5::Packet<'_>) {
        let _ = self.outbox.send(encode_v5(&packet));
    }

    /// MQTT 5: tells the client why the connection ends (§3.14).
    fn disconnect_v5(&self, reason_code: ReasonCode) -> bool {
        self.send_v5(v5::Packet::Disconnect(v5::Disconnect {
            reason_code,
            properties: v5::Properties::EMPTY,
        }));
        false
    }

    /// Registers the client once its CONNECT is accepted.
    fn register(&mut self, protocol: Protocol, max_packet_len: usize) {
        self.connected = true;
        self.subscribers.lock().expect("broker state").insert(
            self.id,
            Subscriber {
                protocol,
                filters: Vec::new(),
                outbox: self.outbox.clone(),
                last_packet_id: 0,
                max_packet_len,
            },
        );
    }

    /// Decodes and handles the MQTT 3.1.1 packet at the start of `buf`.
    fn next_v3(&mut self, buf: &[u8]) -> Step {
        match codec::Packet::decode(buf) {
            Ok((packet, used)) if self.handle_v3(packet) => Step::Used(used),
            Ok(_) => Step::Close,
            Err(DecodeError::Incomplete { .. }) => Step::More,
            // Malformed or too large: a broker closes the connection.
            Err(_) => Step::Close,
        }
    }

    /// Decodes and handles the MQTT 5 packet at the start of `buf`.
    fn next_v5(&mut self, buf: &[u8]) -> Step {
        let why = match v5::Packet::decode(buf) {
            Ok((packet, used)) if self.handle_v5(packet) => return Step::Used(used),
            Ok(_) => return Step::Close,
            Err(DecodeError::Incomplete { .. }) => return Step::More,
            Err(DecodeError::TooLarge { .. }) => ReasonCode::PacketTooLarge,
            Err(DecodeError::Malformed(_)) => ReasonCode::MalformedPacket,
        };
        // Before CONNACK the refusal is a CONNACK (§3.2.2.2), after it a
        // DISCONNECT (§4.13).
        if self.connected {
            self.disconnect_v5(why);
        } else {
            self.send_v5(v5::Packet::ConnAck(v5::ConnAck {
                session_present: false,
                reason_code: why,
                properties: v5::Properties::EMPTY,
            }));
        }
        Step::Close
    }

    /// Answers one MQTT 3.1.1 packet; `false` ends the connection.
    fn handle_v3(&mut self, packet: codec::Packet<'_>) -> bool {
        use codec::Packet;
        // CONNECT comes first, and only once (MQTT-3.1.0-1, -2).
        if self.connected == matches!(packet, Packet::Connect(_)) {
            return false;
        }
        match packet {
            Packet::Connect(_) => {
                self.register(Protocol::V3_1_1, usize::MAX);
                self.send_v3(Packet::ConnAck(codec::ConnAck {
                    session_present: false,
                    return_code: ConnectReturnCode::Accepted,
                }));
            }
            Packet::Subscribe(subscribe) => {
                let mut codes = Vec::new();
                for wanted in subscribe.filters.iter() {
                    let granted = wanted.qos.min(QoS::AtLeastOnce);
                    self.add_filter(wanted.filter, granted, false);
                    codes.push(SubscribeReturnCode::Success(granted).to_u8());
                }
                self.send_v3(Packet::SubAck(codec::SubAck {
                    packet_id: subscribe.packet_id,
                    return_codes: ReturnCodes::new(&codes),
                }));
            }
            Packet::Unsubscribe(unsubscribe) => {
                for filter in unsubscribe.filters.iter() {
                    self.remove_filter(filter);
                }
                self.send_v3(Packet::UnsubAck(codec::UnsubAck {
                    packet_id: unsubscribe.packet_id,
                }));
            }
            Packet::Publish(publish) => {
                let routed = self.route(&Incoming {
                    topic: publish.topic,
                    payload: publish.payload,
                    qos: publish.qos,
                    properties: v5::Properties::EMPTY,
                });
                match (publish.qos, publish.packet_id) {
                    (QoS::AtLeastOnce, Some(packet_id)) => {
                        self.send_v3(Packet::PubAck(codec::PubAck { packet_id }))
                    }
                    (QoS::ExactlyOnce, Some(packet_id)) => {
                        self.send_v3(Packet::PubRec(codec::PubRec { packet_id }))
                    }
                    _ => {}
                }
                deliver(routed);
            }
            Packet::PubRel(release) => self.send_v3(Packet::PubComp(codec::PubComp {
                packet_id: release.packet_id,
            })),
            Packet::PingReq => self.send_v3(Packet::PingResp),
            Packet::Disconnect => return false,
            // Acknowledgements of what this broker forwarded: it resends
            // nothing, so there is nothing to settle.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => {}
            // Packets only a broker sends.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return false;
            }
        }
        true
    }

    /// Answers one MQTT 5 packet; `false` ends the connection.
    fn handle_v5(&mut self, packet: v5::Packet<'_>) -> bool {
        use v5::Packet;
        // CONNECT comes first, and only once (MQTT-3.1.0-1, -2).
        match (self.connected, matches!(packet, Packet::Connect(_))) {
            (false, false) => return false,
            (true, true) => return self.disconnect_v5(ReasonCode::ProtocolError),
            _ => {}
        }
        match packet {
            Packet::Connect(connect) => {
                if connect.properties.authentication_method().is_some() {
                    self.send_v5(Packet::ConnAck(v5::ConnAck {
                        session_present: false,
                        reason_code: ReasonCode::BadAuthenticationMethod,
                        properties: v5::Properties::EMPTY,
                    }));
                    return false;
                }
                let max_packet_len = connect
                    .properties
                    .maximum_packet_size()
                    .map_or(usize::MAX, |n| n as usize);
                self.register(Protocol::V5, max_packet_len);
                // What this broker lacks, said as a real one says it.
                let assigned = format!("walkthrough-{}", self.id);
                let mut properties = vec![
                    Property::RetainAvailable(0),
                    Property::SharedSubscriptionAvailable(0),
                    Property::SubscriptionIdentifierAvailable(0),
                ];
                if connect.client_id.is_empty() {
                    properties.push(Property::AssignedClientIdentifier(&assigned));
                }
                if connect.properties.session_expiry_interval().unwrap_or(0) != 0 {
                    properties.push(Property::SessionExpiryInterval(0));
                }
                self.send_v5(Packet::ConnAck(v5::ConnAck {
                    session_present: false,
                    reason_code: ReasonCode::Success,
                    properties: v5::Properties::new(&properties),
                }));
            }
            Packet::Subscribe(subscribe) => {
                let identified = subscribe
                    .properties
                    .subscription_identifiers()
                    .next()
                    .is_some();
                let mut codes = Vec::new();
                for wanted in subscribe.filters.iter() {
                    let code = if identified {
                        ReasonCode::SubscriptionIdentifiersNotSupported
                    } else if wanted.filter.starts_with("$share/") {
                        ReasonCode::SharedSubscriptionsNotSupported
                    } else {
                        let granted = wanted.options.qos.min(QoS::AtLeastOnce);
                        self.add_filter(wanted.filter, granted, wanted.options.no_local);
                        match granted {
                            QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                            _ => ReasonCode::GrantedQoS1,
                        }
                    };
                    codes.push(code);
                }
                self.send_v5(Packet::SubAck(v5::SubAck {
                    packet_id: subscribe.packet_id,
                    properties: v5::Properties::EMPTY,
                    reason_codes: ReasonCodes::new(&codes),
                }));
            }
            Packet::Unsubscribe(unsubscribe) => {
                let codes: Vec<ReasonCode> = unsubscribe
                    .filters
                    .iter()
                    .map(|filter| match self.remove_filter(filter) {
                        true => ReasonCode::Success,
                        false => ReasonCode::NoSubscriptionExisted,
                    })
                    .collect();
                self.send_v5(Packet::UnsubAck(v5::UnsubAck {
                    packet_id: unsubscribe.packet_id,
                    properties: v5::Properties::EMPTY,
                    reason_codes: ReasonCodes::new(&codes),
                }));
            }
            Packet::Publish(publish) => {
                // It granted no Topic Alias (its CONNACK has no Topic
                // Alias Maximum), so none may be used.
                if publish.topic.is_empty() || publish.properties.topic_alias().is_some() {
                    return self.disconnect_v5(ReasonCode::TopicAliasInvalid);
                }
                let routed = self.route(&Incoming {
                    topic: publish.topic,
                    payload: publish.payload,
                    qos: publish.qos,
                    properties: publish.properties,
                });
                let reason_code = match routed.matched {
                    0 => ReasonCode::NoMatchingSubscribers,
                    _ => ReasonCode::Success,
                };
                match (publish.qos, publish.packet_id) {
                    (QoS::AtLeastOnce, Some(packet_id)) => {
                        self.send_v5(Packet::PubAck(v5::PubAck {
                            packet_id,
                            reason_code,
                            properties: v5::Properties::EMPTY,
                        }))
                    }
                    (QoS::ExactlyOnce, Some(packet_id)) => {
                        self.send_v5(Packet::PubRec(v5::PubRec {
                            packet_id,
                            reason_code,
                            properties: v5::Properties::EMPTY,
                        }))
                    }
                    _ => {}
                }
                deliver(routed);
            }
            Packet::PubRel(release) => {
                self.send_v5(Packet::PubComp(v5::PubComp::new(release.packet_id)))
            }
            Packet::PingReq => self.send_v5(Packet::PingResp),
            Packet::Disconnect(_) => return false,
            // Acknowledgements of what this broker forwarded: it resends
            // nothing, so there is nothing to settle.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => {}
            // No CONNECT asked for extended authentication.
            Packet::Auth(_) => return self.disconnect_v5(ReasonCode::ProtocolError),
            // Packets only a broker sends.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return self.disconnect_v5(ReasonCode::ProtocolError);
            }
        }
        true
    }

    /// Adds (or replaces) a subscription of this connection.
    fn add_filter(&self, filter: &str, qos: QoS, no_local: bool) {
        if let Some(me) = self
            .subscribers
            .lock()
            .expect("broker state")
            .get_mut(&self.id)
        {
            me.filters.retain(|f| f.filter != filter);
            me.filters.push(Filter {
                filter: filter.to_owned(),
                qos,
                no_local,
            });
        }
    }

    /// Drops a subscription of this connection: whether it had one.
    fn remove_filter(&self, filter: &str) -> bool {
        let mut all = self.subscribers.lock().expect("broker state");
        let Some(me) = all.get_mut(&self.id) else {
            return false;
        };
        let before = me.filters.len();
        me.filters.retain(|f| f.filter != filter);
        me.filters.len() != before
    }

    /// The copies of `publish` for every connection with a matching
    /// filter, once each, at the best QoS among its matching filters,
    /// capped at the publisher's; MQTT 5 subscribers get its properties,
    /// MQTT 3.1.1 ones cannot.
    fn route(&self, publish: &Incoming<'_>) -> Routed {
        // Topic aliases belong to one connection; Subscription
        // Identifiers are the broker's to add (and it supports none).
        let properties: Vec<Property<'_>> = publish
            .properties
            .iter()
            .filter(|p| {
                !matches!(
                    p,
                    Property::TopicAlias(_) | Property::SubscriptionIdentifier(_)
                )
            })
            .collect();
        let mut routed = Routed {
            matched: 0,
            deliveries: Vec::new(),
        };
        let mut all = self.subscribers.lock().expect("broker state");
        for (&id, subscriber) in all.iter_mut() {
            let Some(granted) = subscriber
                .filters
                .iter()
                .filter(|f| !(f.no_local && id == self.id))
                .filter(|f| topic::matches(&f.filter, publish.topic))
                .map(|f| f.qos)
                .max()
            else {
                continue;
            };
            routed.matched += 1;
            let qos = granted.min(publish.qos);
            let packet_id = (qos != QoS::AtMostOnce).then(|| {
                subscriber.last_packet_id = subscriber.last_packet_id.checked_add(1).unwrap_or(1);
                subscriber.last_packet_id
            });
            let bytes = match subscriber.protocol {
                Protocol::V3_1_1 => encode_v3(&codec::Packet::Publish(codec::Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: publish.topic,
                    packet_id,
                    payload: publish.payload,
                })),
                Protocol::V5 => encode_v5(&v5::Packet::Publish(v5::Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: publish.topic,
                    packet_id,
                    properties: v5::Properties::new(&properties),
                    payload: publish.payload,
                })),
            };
            // MQTT-3.1.2-24: nothing larger than the client accepts.
            if bytes.len() <= subscriber.max_packet_len {
                routed.deliveries.push((subscriber.outbox.clone(), bytes));
            }
        }
        routed
    }
}

/// Sends what [`Connection::route`] prepared.
fn deliver(routed: Routed) {
    for (outbox, bytes) in routed.deliveries {
        let _ = outbox.send(bytes);
    }
}

fn encode_v3(packet: &codec::Packet<'_>) -> Vec<u8> {
    let mut bytes = vec![0; packet.encoded_len()];
    let n = packet
        .encode(&mut bytes)
        .expect("walkthrough broker: encode");
    bytes.truncate(n);
    bytes
}

fn encode_v5(packet: &v5::Packet<'_>) -> Vec<u8> {
    let mut bytes = vec![0; packet.encoded_len()];
    let n = packet
        .encode(&mut bytes)
        .expect("walkthrough broker: encode");
    bytes.truncate(n);
    bytes
}
