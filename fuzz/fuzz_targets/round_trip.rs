//! Structured packets (built with `arbitrary`) through encode and decode.
//!
//! - A packet built from sanitised parts (valid topics, filters, QoS, ids)
//!   always encodes.
//! - Whenever `encode` succeeds, valid or not: it wrote exactly
//!   `encoded_len()` bytes, the bytes decode to an equal packet using all of
//!   them, every strict prefix is `Incomplete`, and a buffer one byte short
//!   is `BufferTooSmall` with nothing written.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use minimqtt::codec::{
    ConnAck, Connect, ConnectReturnCode, DecodeError, EncodeError, LastWill, Packet, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, ReturnCodes, SubAck, Subscribe, SubscribeFilters,
    Subscription, UnsubAck, Unsubscribe, UnsubscribeFilters,
};

/// One level of a topic: text, or (in filters) a wildcard.
#[derive(Arbitrary, Debug)]
enum Level {
    Text(String),
    Plus,
    Hash,
}

#[derive(Arbitrary, Debug)]
struct Will {
    topic: Vec<Level>,
    message: Vec<u8>,
    qos: u8,
    retain: bool,
}

#[derive(Arbitrary, Debug)]
enum Spec {
    Connect {
        clean_session: bool,
        keep_alive: u16,
        client_id: String,
        will: Option<Will>,
        username: Option<String>,
        password: Option<Vec<u8>>,
    },
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        dup: bool,
        qos: u8,
        retain: bool,
        topic: Vec<Level>,
        packet_id: u16,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        packet_id: u16,
        filters: Vec<(Vec<Level>, u8)>,
    },
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<Vec<Level>>,
    },
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Repair every field into a valid one, so `encode` must succeed.
    /// Otherwise fields go in as generated and `encode` may refuse.
    sanitise: bool,
    spec: Spec,
}

/// The owned strings and lists a packet borrows from.
#[derive(Default)]
struct Store {
    strings: Vec<String>,
    /// Index into `strings` of the user name, if any.
    username: Option<usize>,
    /// SUBSCRIBE: (index into `strings`, QoS).
    subscriptions: Vec<(usize, QoS)>,
    /// UNSUBSCRIBE: indices into `strings`.
    filters: Vec<usize>,
    /// SUBACK return codes.
    codes: Vec<u8>,
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

fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\0' | '+' | '#' | '/'))
        .collect()
}

/// A topic name (`wildcards == false`) or filter from levels. Sanitised:
/// text loses NUL, `/` and wildcards; names get no wildcard levels; `#`
/// only last; never empty. Raw: the levels joined as given.
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
    } else {
        joined
    }
}

fn text(s: &str, sanitise: bool) -> String {
    if sanitise {
        s.replace('\0', "")
    } else {
        s.to_owned()
    }
}

impl Store {
    fn push(&mut self, s: String) -> usize {
        self.strings.push(s);
        self.strings.len() - 1
    }

    fn new(spec: &Spec, sanitise: bool) -> Self {
        let mut store = Self::default();
        match spec {
            Spec::Connect {
                client_id,
                will,
                username,
                password,
                ..
            } => {
                store.push(text(client_id, sanitise));
                store.push(
                    will.as_ref()
                        .map_or(String::new(), |w| topic(&w.topic, false, sanitise)),
                );
                let mut user = username.as_deref().map(|u| text(u, sanitise));
                if sanitise && password.is_some() && user.is_none() {
                    user = Some(String::new());
                }
                store.username = user.map(|u| store.push(u));
            }
            Spec::Publish { topic: levels, .. } => {
                store.push(topic(levels, false, sanitise));
            }
            Spec::Subscribe { filters, .. } => {
                for (levels, q) in filters {
                    let i = store.push(topic(levels, true, sanitise));
                    store.subscriptions.push((i, qos(*q)));
                }
                if sanitise && filters.is_empty() {
                    let i = store.push("#".into());
                    store.subscriptions.push((i, QoS::AtMostOnce));
                }
            }
            Spec::Unsubscribe { filters, .. } => {
                for levels in filters {
                    let i = store.push(topic(levels, true, sanitise));
                    store.filters.push(i);
                }
                if sanitise && filters.is_empty() {
                    let i = store.push("#".into());
                    store.filters.push(i);
                }
            }
            Spec::SubAck { codes, .. } => {
                store.codes = codes
                    .iter()
                    .map(|&c| {
                        if sanitise {
                            [0x00, 0x01, 0x02, 0x80][usize::from(c % 4)]
                        } else {
                            c
                        }
                    })
                    .collect();
                if sanitise && store.codes.is_empty() {
                    store.codes.push(0x80);
                }
            }
            _ => {}
        }
        store
    }
}

fn build<'a>(
    spec: &'a Spec,
    sanitise: bool,
    store: &'a Store,
    subscriptions: &'a [Subscription<'a>],
    filters: &'a [&'a str],
) -> Packet<'a> {
    let s = |i: usize| store.strings[i].as_str();
    match spec {
        Spec::Connect {
            clean_session,
            keep_alive,
            will,
            password,
            ..
        } => Packet::Connect(Connect {
            // An empty client id needs clean session (MQTT-3.1.3-7).
            clean_session: *clean_session || (sanitise && s(0).is_empty()),
            keep_alive: *keep_alive,
            client_id: s(0),
            will: will.as_ref().map(|w| LastWill {
                topic: s(1),
                message: &w.message,
                qos: qos(w.qos),
                retain: w.retain,
            }),
            username: store.username.map(s),
            password: password.as_deref(),
        }),
        Spec::ConnAck {
            session_present,
            code,
        } => {
            let return_code = ConnectReturnCode::from_u8(code % 6).expect("0..=5 are codes");
            Packet::ConnAck(ConnAck {
                // A refusal with session present is forbidden (§3.2.2.2).
                session_present: *session_present
                    && (!sanitise || return_code == ConnectReturnCode::Accepted),
                return_code,
            })
        }
        Spec::Publish {
            dup,
            qos: q,
            retain,
            packet_id,
            payload,
            ..
        } => {
            let q = qos(*q);
            let at_most_once = q == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: *dup && !(sanitise && at_most_once),
                qos: q,
                retain: *retain,
                topic: s(0),
                packet_id: match (at_most_once, sanitise) {
                    (true, true) => None,
                    (false, true) => Some(id(*packet_id, true)),
                    // Raw: an id on QoS 0, none on QoS > 0, or 0, which encode refuses.
                    (_, false) => (packet_id % 2 == 1).then_some(*packet_id / 2),
                },
                payload,
            })
        }
        Spec::PubAck(i) => Packet::PubAck(PubAck {
            packet_id: id(*i, sanitise),
        }),
        Spec::PubRec(i) => Packet::PubRec(PubRec {
            packet_id: id(*i, sanitise),
        }),
        Spec::PubRel(i) => Packet::PubRel(PubRel {
            packet_id: id(*i, sanitise),
        }),
        Spec::PubComp(i) => Packet::PubComp(PubComp {
            packet_id: id(*i, sanitise),
        }),
        Spec::UnsubAck(i) => Packet::UnsubAck(UnsubAck {
            packet_id: id(*i, sanitise),
        }),
        Spec::Subscribe { packet_id, .. } => Packet::Subscribe(Subscribe {
            packet_id: id(*packet_id, sanitise),
            filters: SubscribeFilters::new(subscriptions),
        }),
        Spec::Unsubscribe { packet_id, .. } => Packet::Unsubscribe(Unsubscribe {
            packet_id: id(*packet_id, sanitise),
            filters: UnsubscribeFilters::new(filters),
        }),
        Spec::SubAck { packet_id, .. } => Packet::SubAck(SubAck {
            packet_id: id(*packet_id, sanitise),
            return_codes: ReturnCodes::new(&store.codes),
        }),
        Spec::PingReq => Packet::PingReq,
        Spec::PingResp => Packet::PingResp,
        Spec::Disconnect => Packet::Disconnect,
    }
}

fuzz_target!(|input: Input| {
    let store = Store::new(&input.spec, input.sanitise);
    let subscriptions: Vec<Subscription<'_>> = store
        .subscriptions
        .iter()
        .map(|&(i, qos)| Subscription {
            filter: &store.strings[i],
            qos,
        })
        .collect();
    let filters: Vec<&str> = store
        .filters
        .iter()
        .map(|&i| store.strings[i].as_str())
        .collect();
    let packet = build(
        &input.spec,
        input.sanitise,
        &store,
        &subscriptions,
        &filters,
    );

    let len = packet.encoded_len();
    let mut buf = vec![0xa5u8; len + 1];
    let n = match packet.encode(&mut buf) {
        Ok(n) => n,
        Err(e) if !input.sanitise => {
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
            assert_eq!(decoded, packet, "round trip changed the packet");
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
});
