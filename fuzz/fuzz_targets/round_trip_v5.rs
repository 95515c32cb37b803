//! Structured MQTT 5 packets (built with `arbitrary`) through encode and
//! decode.
//!
//! - A packet built from sanitised parts (valid topics, filters, reason
//!   codes, property values, and only the properties its packet allows,
//!   by a table of §2.2.2.2 kept here apart from the codec's) always
//!   encodes.
//! - Whenever `encode` succeeds, valid or not: it wrote exactly
//!   `encoded_len()` bytes, the bytes decode to an equal packet using all of
//!   them, re-encode to the same bytes, every strict prefix is `Incomplete`,
//!   and a buffer one byte short is `BufferTooSmall` with nothing written.
//! - Whenever it fails, it wrote nothing.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use minimqtt::codec::v5::{
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, Properties, Property, PubAck, PubComp,
    PubRec, PubRel, Publish, ReasonCode, ReasonCodes, RetainHandling, SubAck, Subscribe,
    SubscribeFilters, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
use minimqtt::codec::{DecodeError, EncodeError, QoS, UnsubscribeFilters};

#[derive(Arbitrary, Debug)]
enum Level {
    Text(String),
    Plus,
    Hash,
}

/// A property before it is given a type: `kind` picks one of the 27, the
/// other fields supply its value.
#[derive(Arbitrary, Debug, Clone)]
struct RawProp {
    kind: u8,
    num: u32,
    a: String,
    b: String,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct RawWill {
    props: Vec<RawProp>,
    topic: Vec<Level>,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
}

#[derive(Arbitrary, Debug)]
enum Spec {
    Connect {
        clean_start: bool,
        keep_alive: u16,
        props: Vec<RawProp>,
        client_id: String,
        will: Option<RawWill>,
        username: Option<String>,
        password: Option<Vec<u8>>,
    },
    ConnAck {
        session_present: bool,
        code: u8,
        props: Vec<RawProp>,
    },
    Publish {
        dup: bool,
        qos: u8,
        retain: bool,
        topic: Vec<Level>,
        by_alias: bool,
        packet_id: u16,
        props: Vec<RawProp>,
        payload: Vec<u8>,
    },
    Ack {
        kind: u8,
        packet_id: u16,
        code: u8,
        props: Vec<RawProp>,
    },
    Subscribe {
        packet_id: u16,
        props: Vec<RawProp>,
        filters: Vec<(Vec<Level>, u8)>,
    },
    SubAck {
        packet_id: u16,
        props: Vec<RawProp>,
        codes: Vec<u8>,
    },
    Unsubscribe {
        packet_id: u16,
        props: Vec<RawProp>,
        filters: Vec<Vec<Level>>,
    },
    UnsubAck {
        packet_id: u16,
        props: Vec<RawProp>,
        codes: Vec<u8>,
    },
    PingReq,
    PingResp,
    Disconnect {
        code: u8,
        props: Vec<RawProp>,
    },
    Auth {
        code: u8,
        props: Vec<RawProp>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Repair every field into a valid one, so `encode` must succeed.
    sanitise: bool,
    spec: Spec,
}

/// Where a property list stands.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

/// §2.2.2.2, by packet: the identifiers each may carry.
fn allowed(ctx: Ctx) -> &'static [u8] {
    match ctx {
        Ctx::Connect => &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
        Ctx::Will => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
        Ctx::ConnAck => &[
            0x11, 0x12, 0x13, 0x15, 0x16, 0x1a, 0x1c, 0x1f, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27,
            0x28, 0x29, 0x2a,
        ],
        Ctx::Publish => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x23, 0x26],
        Ctx::Ack => &[0x1f, 0x26],
        Ctx::Subscribe => &[0x0b, 0x26],
        Ctx::Unsubscribe => &[0x26],
        Ctx::Disconnect => &[0x11, 0x1c, 0x1f, 0x26],
        Ctx::Auth => &[0x15, 0x16, 0x1f, 0x26],
    }
}

const IDS: [u8; 27] = [
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1c,
    0x1f, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
];

fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\0' | '+' | '#' | '/'))
        .collect()
}

fn text(s: &str, sanitise: bool) -> String {
    if sanitise {
        s.replace('\0', "")
    } else {
        s.to_owned()
    }
}

fn topic(levels: &[Level], wildcards: bool, sanitise: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        let last = i + 1 == levels.len();
        parts.push(match level {
            Level::Text(s) if sanitise => clean_text(s),
            Level::Text(s) => s.clone(),
            Level::Plus if wildcards || !sanitise => "+".into(),
            Level::Hash if (wildcards && last) || !sanitise => "#".into(),
            _ => "x".into(),
        });
    }
    let joined = parts.join("/");
    if sanitise && joined.is_empty() {
        "t".into()
    } else if sanitise && wildcards && minimqtt::topic::validate_shared(&joined).is_err() {
        // A filter that starts like a shared subscription must be one
        // (MQTT-4.8.2-1, -2); one level in front makes it a plain filter.
        format!("x/{joined}")
    } else {
        joined
    }
}

/// A property's fields repaired into a valid value of its kind.
fn repair(raw: &RawProp, sanitise: bool) -> RawProp {
    let mut p = raw.clone();
    p.kind = IDS[usize::from(raw.kind) % IDS.len()];
    if !sanitise {
        return p;
    }
    p.a = text(&raw.a, true);
    p.b = text(&raw.b, true);
    p.data.truncate(1000);
    p.num = match p.kind {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => raw.num % 2,
        0x0b => raw.num % 268_435_455 + 1,
        0x21 | 0x23 => raw.num % 65_535 + 1,
        0x27 => raw.num.max(1),
        _ => raw.num,
    };
    if p.kind == 0x08 {
        p.a = clean_text(&raw.a);
        if p.a.is_empty() {
            p.a.push('r');
        }
    }
    p
}

fn view(p: &RawProp) -> Property<'_> {
    let (a, b, n) = (p.a.as_str(), p.b.as_str(), p.num);
    match p.kind {
        0x01 => Property::PayloadFormatIndicator(n as u8),
        0x02 => Property::MessageExpiryInterval(n),
        0x03 => Property::ContentType(a),
        0x08 => Property::ResponseTopic(a),
        0x09 => Property::CorrelationData(&p.data),
        0x0b => Property::SubscriptionIdentifier(n),
        0x11 => Property::SessionExpiryInterval(n),
        0x12 => Property::AssignedClientIdentifier(a),
        0x13 => Property::ServerKeepAlive(n as u16),
        0x15 => Property::AuthenticationMethod(a),
        0x16 => Property::AuthenticationData(&p.data),
        0x17 => Property::RequestProblemInformation(n as u8),
        0x18 => Property::WillDelayInterval(n),
        0x19 => Property::RequestResponseInformation(n as u8),
        0x1a => Property::ResponseInformation(a),
        0x1c => Property::ServerReference(a),
        0x1f => Property::ReasonString(a),
        0x21 => Property::ReceiveMaximum(n as u16),
        0x22 => Property::TopicAliasMaximum(n as u16),
        0x23 => Property::TopicAlias(n as u16),
        0x24 => Property::MaximumQoS(n as u8),
        0x25 => Property::RetainAvailable(n as u8),
        0x26 => Property::UserProperty(a, b),
        0x27 => Property::MaximumPacketSize(n),
        0x28 => Property::WildcardSubscriptionAvailable(n as u8),
        0x29 => Property::SubscriptionIdentifierAvailable(n as u8),
        _ => Property::SharedSubscriptionAvailable(n as u8),
    }
}

/// The properties to use in `ctx`: sanitised, only the allowed ones and
/// no forbidden repeat; raw, all of them.
fn props_in<'a>(list: &'a [RawProp], ctx: Ctx, sanitise: bool) -> Vec<Property<'a>> {
    let mut out: Vec<Property<'a>> = Vec::new();
    for p in list {
        let property = view(p);
        let id = property.id();
        let repeatable = id == 0x26 || (id == 0x0b && ctx == Ctx::Publish);
        let fits = allowed(ctx).contains(&id)
            && (repeatable || out.iter().all(|q| q.id() != id))
            // Authentication Data only after its method (§3.1.2.11.10).
            && (id != 0x16 || out.iter().any(|q| q.id() == 0x15));
        if fits || !sanitise {
            out.push(property);
        }
    }
    out
}

fn qos(bits: u8) -> QoS {
    match bits % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn id(raw: u16, sanitise: bool) -> u16 {
    if sanitise { raw.max(1) } else { raw }
}

/// A reason code for `packet_type`: sanitised, the next valid one from
/// `byte` up; raw, any defined code, valid here or not.
fn reason(byte: u8, packet_type: PacketType, sanitise: bool) -> ReasonCode {
    if sanitise {
        (byte..=255)
            .filter_map(ReasonCode::from_u8)
            .find(|c| c.is_valid_for(packet_type))
            .unwrap_or(ReasonCode::Success)
    } else {
        (byte..=255)
            .find_map(ReasonCode::from_u8)
            .unwrap_or(ReasonCode::Success)
    }
}

fn options(byte: u8, shared: bool, sanitise: bool) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: qos(byte),
        no_local: byte & 0x04 != 0 && !(sanitise && shared),
        retain_as_published: byte & 0x08 != 0,
        retain_handling: match (byte >> 4) % 3 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtNewSubscribe,
            _ => RetainHandling::DoNotSend,
        },
    }
}

fn check(packet: &Packet<'_>, sanitise: bool) {
    let len = packet.encoded_len();
    let mut buf = vec![0xa5u8; len + 1];
    let n = match packet.encode(&mut buf) {
        Ok(n) => n,
        // A payload marked UTF-8 (Payload Format Indicator 1) that is
        // not: refused, as it must be, however the packet was made.
        Err(e) if !sanitise || e == EncodeError::PayloadFormat => {
            assert!(
                buf.iter().all(|&b| b == 0xa5),
                "a failed encode ({e:?}) wrote bytes"
            );
            return;
        }
        Err(e) => panic!("valid packet {packet:?} failed to encode: {e:?}"),
    };
    assert_eq!(n, len, "encoded_len disagrees with encode for {packet:?}");
    assert_eq!(buf[len], 0xa5, "encode wrote past its length");
    let bytes = &buf[..n];
    match Packet::decode(bytes) {
        Ok((decoded, used)) => {
            assert_eq!(used, n);
            assert_eq!(&decoded, packet, "round trip changed the packet");
            let mut again = vec![0u8; n];
            assert_eq!(decoded.encode(&mut again), Ok(n));
            assert_eq!(again, bytes, "the decoded packet re-encodes differently");
        }
        Err(e) => panic!("encoded {packet:?} as {bytes:02x?}, which decodes as {e:?}"),
    }
    for cut in 0..n {
        match Packet::decode(&bytes[..cut]) {
            Err(DecodeError::Incomplete { needed }) => {
                assert!(
                    needed >= 1 && needed <= n - cut,
                    "needed {needed} at cut {cut} of {n}"
                )
            }
            other => panic!("prefix of {cut} of {n} bytes gave {other:?}"),
        }
    }
    let mut short = vec![0x5au8; n - 1];
    assert_eq!(
        packet.encode(&mut short),
        Err(EncodeError::BufferTooSmall { needed: n })
    );
    assert!(
        short.iter().all(|&b| b == 0x5a),
        "a failed encode wrote bytes"
    );
}

fuzz_target!(|input: Input| {
    let s = input.sanitise;
    let fix = |list: &[RawProp]| list.iter().map(|p| repair(p, s)).collect::<Vec<_>>();
    match &input.spec {
        Spec::Connect {
            clean_start,
            keep_alive,
            props,
            client_id,
            will,
            username,
            password,
        } => {
            let props = fix(props);
            let client_id = text(client_id, s);
            let username = username.as_deref().map(|u| text(u, s));
            let will_props = will.as_ref().map(|w| fix(&w.props)).unwrap_or_default();
            let will_topic = will
                .as_ref()
                .map(|w| topic(&w.topic, false, s))
                .unwrap_or_default();
            let list = props_in(&props, Ctx::Connect, s);
            let will_list = props_in(&will_props, Ctx::Will, s);
            let packet = Packet::Connect(Connect {
                clean_start: *clean_start,
                keep_alive: *keep_alive,
                properties: Properties::new(&list),
                client_id: &client_id,
                will: will.as_ref().map(|w| Will {
                    properties: Properties::new(&will_list),
                    topic: &will_topic,
                    payload: &w.payload,
                    qos: qos(w.qos),
                    retain: w.retain,
                }),
                username: username.as_deref(),
                password: password.as_deref(),
            });
            check(&packet, s);
        }
        Spec::ConnAck {
            session_present,
            code,
            props,
        } => {
            let props = fix(props);
            let list = props_in(&props, Ctx::ConnAck, s);
            let reason_code = reason(*code, PacketType::ConnAck, s);
            let packet = Packet::ConnAck(ConnAck {
                session_present: *session_present && (!s || reason_code == ReasonCode::Success),
                reason_code,
                properties: Properties::new(&list),
            });
            check(&packet, s);
        }
        Spec::Publish {
            dup,
            qos: q,
            retain,
            topic: levels,
            by_alias,
            packet_id,
            props,
            payload,
        } => {
            let props = fix(props);
            let list = props_in(&props, Ctx::Publish, s);
            let properties = Properties::new(&list);
            let mut name = topic(levels, false, s);
            if *by_alias && (!s || properties.topic_alias().is_some()) {
                name.clear();
            }
            let q = qos(*q);
            let at_most_once = q == QoS::AtMostOnce;
            let packet = Packet::Publish(Publish {
                dup: *dup && !(s && at_most_once),
                qos: q,
                retain: *retain,
                topic: &name,
                packet_id: match (at_most_once, s) {
                    (true, true) => None,
                    (false, true) => Some(id(*packet_id, true)),
                    (_, false) => (packet_id % 2 == 1).then_some(*packet_id / 2),
                },
                properties,
                payload,
            });
            check(&packet, s);
        }
        Spec::Ack {
            kind,
            packet_id,
            code,
            props,
        } => {
            let props = fix(props);
            let list = props_in(&props, Ctx::Ack, s);
            let properties = Properties::new(&list);
            let packet_id = id(*packet_id, s);
            let packet = match kind % 4 {
                0 => Packet::PubAck(PubAck {
                    packet_id,
                    reason_code: reason(*code, PacketType::PubAck, s),
                    properties,
                }),
                1 => Packet::PubRec(PubRec {
                    packet_id,
                    reason_code: reason(*code, PacketType::PubRec, s),
                    properties,
                }),
                2 => Packet::PubRel(PubRel {
                    packet_id,
                    reason_code: reason(*code, PacketType::PubRel, s),
                    properties,
                }),
                _ => Packet::PubComp(PubComp {
                    packet_id,
                    reason_code: reason(*code, PacketType::PubComp, s),
                    properties,
                }),
            };
            check(&packet, s);
        }
        Spec::Subscribe {
            packet_id,
            props,
            filters,
        } => {
            let props = fix(props);
            let list = props_in(&props, Ctx::Subscribe, s);
            let mut names: Vec<(String, u8)> = filters
                .iter()
                .map(|(levels, o)| (topic(levels, true, s), *o))
                .collect();
            if s && names.is_empty() {
                names.push(("#".into(), 0));
            }
            let subs: Vec<Subscription<'_>> = names
                .iter()
                .map(|(filter, o)| Subscription {
                    filter,
                    options: options(*o, filter.starts_with("$share/"), s),
                })
                .collect();
            let packet = Packet::Subscribe(Subscribe {
                packet_id: id(*packet_id, s),
                properties: Properties::new(&list),
                filters: SubscribeFilters::new(&subs),
            });
            check(&packet, s);
        }
        Spec::Unsubscribe {
            packet_id,
            props,
            filters,
        } => {
            let props = fix(props);
            let list = props_in(&props, Ctx::Unsubscribe, s);
            let mut names: Vec<String> = filters.iter().map(|l| topic(l, true, s)).collect();
            if s && names.is_empty() {
                names.push("#".into());
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let packet = Packet::Unsubscribe(Unsubscribe {
                packet_id: id(*packet_id, s),
                properties: Properties::new(&list),
                filters: UnsubscribeFilters::new(&refs),
            });
            check(&packet, s);
        }
        Spec::SubAck {
            packet_id,
            props,
            codes,
        }
        | Spec::UnsubAck {
            packet_id,
            props,
            codes,
        } => {
            let sub = matches!(input.spec, Spec::SubAck { .. });
            let packet_type = if sub {
                PacketType::SubAck
            } else {
                PacketType::UnsubAck
            };
            let props = fix(props);
            let list = props_in(&props, Ctx::Ack, s);
            let mut reasons: Vec<ReasonCode> =
                codes.iter().map(|&c| reason(c, packet_type, s)).collect();
            if s && reasons.is_empty() {
                reasons.push(ReasonCode::Success);
            }
            let (packet_id, properties) = (id(*packet_id, s), Properties::new(&list));
            let reason_codes = ReasonCodes::new(&reasons);
            let packet = if sub {
                Packet::SubAck(SubAck {
                    packet_id,
                    properties,
                    reason_codes,
                })
            } else {
                Packet::UnsubAck(UnsubAck {
                    packet_id,
                    properties,
                    reason_codes,
                })
            };
            check(&packet, s);
        }
        Spec::PingReq => check(&Packet::PingReq, s),
        Spec::PingResp => check(&Packet::PingResp, s),
        Spec::Disconnect { code, props } => {
            let props = fix(props);
            let list = props_in(&props, Ctx::Disconnect, s);
            let packet = Packet::Disconnect(Disconnect {
                reason_code: reason(*code, PacketType::Disconnect, s),
                properties: Properties::new(&list),
            });
            check(&packet, s);
        }
        Spec::Auth { code, props } => {
            let props = fix(props);
            let mut list = props_in(&props, Ctx::Auth, s);
            let reason_code = reason(*code, PacketType::Auth, s);
            // The method is required but in the short form (§3.15.2.2.2).
            let short = reason_code == ReasonCode::Success && list.is_empty();
            if s && !short && list.iter().all(|p| p.id() != 0x15) {
                list.insert(0, Property::AuthenticationMethod("M"));
            }
            let packet = Packet::Auth(Auth {
                reason_code,
                properties: Properties::new(&list),
            });
            check(&packet, s);
        }
    }
});
