//! The deterministic corpus shared by `benches/parse.rs` (criterion, wall
//! time) and `benches/instructions.rs` (callgrind, instruction counts).
//!
//! Nothing here is random: payload bytes follow a fixed pattern and the mixed
//! stream is drawn from a fixed-seed LCG, so every run and every machine sees
//! the same bytes.

#![allow(dead_code)] // each bench uses a different part

use minimqtt::codec::{
    Connect, FixedHeader, LastWill, Packet, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    ReturnCodes, SubAck, Subscribe, SubscribeFilters, Subscription, UnsubAck,
};

/// The 16-byte topic of every benchmark PUBLISH.
pub const TOPIC: &str = "sensor/0001/temp";

/// Payload sizes of the QoS 0 PUBLISH benches.
pub const PAYLOAD_SIZES: [usize; 5] = [0, 32, 256, 4096, 65_536];

/// Packets in the mixed stream.
pub const STREAM_PACKETS: usize = 10_000;

/// `len` bytes of a fixed, non-trivial pattern.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

pub fn publish<'a>(qos: QoS, payload: &'a [u8]) -> Publish<'a> {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: TOPIC,
        packet_id: if qos == QoS::AtMostOnce {
            None
        } else {
            Some(7)
        },
        payload,
    }
}

pub const SUBSCRIPTIONS: [Subscription<'static>; 4] = [
    Subscription {
        filter: "sensor/+/temp",
        qos: QoS::AtMostOnce,
    },
    Subscription {
        filter: "sensor/0001/#",
        qos: QoS::AtLeastOnce,
    },
    Subscription {
        filter: "home/livingroom/light",
        qos: QoS::ExactlyOnce,
    },
    Subscription {
        filter: "$SYS/broker/uptime",
        qos: QoS::AtMostOnce,
    },
];

pub fn subscribe() -> Packet<'static> {
    Packet::Subscribe(Subscribe {
        packet_id: 42,
        filters: SubscribeFilters::new(&SUBSCRIPTIONS),
    })
}

/// The filters of the SUBSCRIBE instruction-count cases: one of each
/// shape (`+` inside, `#` last, plain, `$SYS` with `#`), QoS mixed.
pub const SUBSCRIBE4_FILTERS: [Subscription<'static>; 4] = [
    Subscription {
        filter: "sensors/+/temperature",
        qos: QoS::AtLeastOnce,
    },
    Subscription {
        filter: "home/#",
        qos: QoS::AtMostOnce,
    },
    Subscription {
        filter: "devices/0001/cmd",
        qos: QoS::ExactlyOnce,
    },
    Subscription {
        filter: "$SYS/broker/load/#",
        qos: QoS::AtMostOnce,
    },
];

/// The SUBSCRIBE of the instruction-count cases (4 filters, 77 bytes).
pub fn subscribe4() -> Packet<'static> {
    Packet::Subscribe(Subscribe {
        packet_id: 42,
        filters: SubscribeFilters::new(&SUBSCRIBE4_FILTERS),
    })
}

/// [`subscribe4`] with its filters checked when it is built
/// ([`SubscribeFilters::checked`]), so encoding it does not check them.
pub fn subscribe4_checked() -> Packet<'static> {
    Packet::Subscribe(Subscribe {
        packet_id: 42,
        filters: SubscribeFilters::checked(&SUBSCRIBE4_FILTERS).expect("valid filters"),
    })
}

/// Reads every filter of a decoded SUBSCRIBE, as a broker would.
#[inline]
pub fn touch_filters(packet: &Packet<'_>) -> usize {
    match packet {
        Packet::Subscribe(s) => s
            .filters
            .iter()
            .map(|sub| sub.filter.len() + usize::from(sub.qos as u8))
            .sum(),
        _ => 0,
    }
}

pub const SUBACK_CODES: [u8; 4] = [0x00, 0x01, 0x02, 0x80];

pub fn suback() -> Packet<'static> {
    Packet::SubAck(SubAck {
        packet_id: 42,
        return_codes: ReturnCodes::new(&SUBACK_CODES),
    })
}

pub fn connect() -> Packet<'static> {
    Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 60,
        client_id: "minimqtt-bench-client",
        will: Some(LastWill {
            topic: "sensor/0001/status",
            message: b"offline",
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
        username: Some("user"),
        password: Some(b"correct horse battery staple"),
    })
}

pub fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0; packet.encoded_len()];
    let n = packet.encode(&mut buf).expect("corpus packet encodes");
    assert_eq!(n, buf.len());
    buf
}

/// A named, encoded packet of the single-packet benches.
pub struct Sample {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every single-packet case, encoded. Payload buffers are leaked so the
/// packets can borrow them for the whole bench run.
pub fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for size in PAYLOAD_SIZES {
        let data: &'static [u8] = payload(size).leak();
        out.push(Sample {
            name: format!("publish_qos0_{size}"),
            bytes: encode(&Packet::Publish(publish(QoS::AtMostOnce, data))),
        });
    }
    let data: &'static [u8] = payload(32).leak();
    out.push(Sample {
        name: "publish_qos1_32".into(),
        bytes: encode(&Packet::Publish(publish(QoS::AtLeastOnce, data))),
    });
    for (name, packet) in [
        ("subscribe_4", subscribe()),
        ("suback_4", suback()),
        ("connect_will_auth", connect()),
        ("pingresp", Packet::PingResp),
    ] {
        out.push(Sample {
            name: name.into(),
            bytes: encode(&packet),
        });
    }
    out
}

/// The encoded 32-byte QoS 0 PUBLISH (52 bytes on the wire).
pub fn publish32_bytes() -> Vec<u8> {
    encode(&Packet::Publish(publish(QoS::AtMostOnce, &payload(32))))
}

/// Knuth's MMIX LCG; the high bits are the good ones.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    pub fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// 10,000 packets of the kinds a client receives (and a few it sends), back
/// to back in one buffer: mostly PUBLISH at all QoS with 0–511-byte
/// payloads, plus acks, SUBACK, SUBSCRIBE, CONNECT and PINGRESP.
pub fn stream() -> Vec<u8> {
    let mut rng = Lcg::new(0x6d69_6e69_6d71_7474); // "minimqtt"
    let data = payload(512);
    let topics = [
        "sensor/0001/temp",
        "a/b",
        "home/livingroom/light/brightness",
        "$SYS/broker/load/messages/received/1min",
    ];
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1024];
    for _ in 0..STREAM_PACKETS {
        let id = (rng.below(65_535) + 1) as u16;
        let packet = match rng.below(20) {
            0..=7 => Packet::Publish(Publish {
                topic: topics[rng.below(4) as usize],
                payload: &data[..rng.below(512) as usize],
                ..publish(QoS::AtMostOnce, &[])
            }),
            8..=10 => Packet::Publish(Publish {
                dup: rng.below(2) == 1,
                qos: QoS::AtLeastOnce,
                retain: rng.below(2) == 1,
                topic: topics[rng.below(4) as usize],
                packet_id: Some(id),
                payload: &data[..rng.below(512) as usize],
            }),
            11 => Packet::Publish(Publish {
                qos: QoS::ExactlyOnce,
                packet_id: Some(id),
                payload: &data[..rng.below(64) as usize],
                ..publish(QoS::AtMostOnce, &[])
            }),
            12 => Packet::PubAck(PubAck { packet_id: id }),
            13 => Packet::PubRec(PubRec { packet_id: id }),
            14 => Packet::PubRel(PubRel { packet_id: id }),
            15 => Packet::PubComp(PubComp { packet_id: id }),
            16 => suback(),
            17 => match rng.below(3) {
                0 => subscribe(),
                1 => Packet::UnsubAck(UnsubAck { packet_id: id }),
                _ => connect(),
            },
            _ => Packet::PingResp,
        };
        let n = packet.encode(&mut buf).expect("stream packet encodes");
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Reads a field of each kind of packet so the decode cannot be optimised away.
#[inline]
pub fn touch(packet: &Packet<'_>) -> usize {
    match packet {
        Packet::Publish(p) => p.payload.len() + p.topic.len() + usize::from(p.qos as u8),
        Packet::PubAck(a) => usize::from(a.packet_id),
        Packet::PubRec(a) => usize::from(a.packet_id),
        Packet::PubRel(a) => usize::from(a.packet_id),
        Packet::PubComp(a) => usize::from(a.packet_id),
        Packet::UnsubAck(a) => usize::from(a.packet_id),
        Packet::SubAck(s) => s.return_codes.len(),
        Packet::Subscribe(s) => usize::from(s.packet_id),
        Packet::Connect(c) => usize::from(c.keep_alive) + c.client_id.len(),
        _ => 1,
    }
}

/// Decodes every packet of `buf` back to back. Returns (packets, checksum).
/// Stops at the first error, which the corpus never produces.
#[inline]
pub fn decode_stream(buf: &[u8]) -> (usize, usize) {
    let (mut rest, mut count, mut sum) = (buf, 0, 0);
    while !rest.is_empty() {
        let Ok((packet, n)) = Packet::decode(rest) else {
            break;
        };
        sum += touch(&packet);
        count += 1;
        rest = &rest[n..];
    }
    (count, sum)
}

/// The floor: frame each packet (fixed header and remaining length) and skip
/// its body unparsed. Returns (packets, checksum).
#[inline]
pub fn skip_stream(buf: &[u8]) -> (usize, usize) {
    let (mut rest, mut count, mut sum) = (buf, 0, 0);
    while !rest.is_empty() {
        let Ok(header) = FixedHeader::decode(rest) else {
            break;
        };
        let Some(next) = rest.get(header.packet_len()..) else {
            break;
        };
        sum += header.remaining_len as usize;
        count += 1;
        rest = next;
    }
    (count, sum)
}

/// The floor for one packet: its fixed header, and a bounds check of the body.
#[inline]
pub fn skip_one(buf: &[u8]) -> Option<usize> {
    let header = FixedHeader::decode(buf).ok()?;
    let len = header.packet_len();
    buf.get(usize::from(header.header_len)..len)
        .map(|body| body.len())
}

/// The properties of the MQTT 5 PUBLISH benches: a user property, a topic
/// alias and a message expiry.
pub const V5_PROPERTIES: [minimqtt::codec::v5::Property<'static>; 3] = [
    minimqtt::codec::v5::Property::UserProperty("unit", "celsius"),
    minimqtt::codec::v5::Property::TopicAlias(3),
    minimqtt::codec::v5::Property::MessageExpiryInterval(60),
];

/// The 32-byte QoS 0 PUBLISH of the 3.1.1 benches, in MQTT 5, with
/// [`V5_PROPERTIES`] (or none).
pub fn publish_v5<'a>(
    payload: &'a [u8],
    properties: &'a [minimqtt::codec::v5::Property<'a>],
) -> minimqtt::codec::v5::Publish<'a> {
    minimqtt::codec::v5::Publish {
        properties: minimqtt::codec::v5::Properties::new(properties),
        ..minimqtt::codec::v5::Publish::new(TOPIC, payload, QoS::AtMostOnce, false)
    }
}

/// [`publish_v5`] encoded.
pub fn publish_v5_bytes(properties: &[minimqtt::codec::v5::Property<'_>]) -> Vec<u8> {
    let data = payload(32);
    let packet = minimqtt::codec::v5::Packet::Publish(publish_v5(&data, properties));
    let mut out = vec![0u8; packet.encoded_len()];
    let n = packet.encode(&mut out).expect("encodes");
    out.truncate(n);
    out
}

/// Reads what an application reads of a decoded MQTT 5 PUBLISH: topic,
/// payload and every property.
pub fn touch_v5(packet: &minimqtt::codec::v5::Packet<'_>) -> usize {
    match packet {
        minimqtt::codec::v5::Packet::Publish(p) => {
            let props: usize = p.properties.iter().map(|_| 1).sum();
            p.topic.len() + p.payload.len() + props
        }
        _ => 0,
    }
}
