//! Wall-time benches of the codec: `cargo bench --bench parse`.
//!
//! Groups:
//! - `decode`: one packet of each kind (`Packet::decode`), throughput in
//!   bytes; `floor/publish_qos0_32` only frames the same packet
//!   (`FixedHeader::decode` and a bounds check) as a lower bound.
//! - `decode_stream_bytes` / `decode_stream_packets`: 10,000 mixed packets
//!   decoded back to back from one buffer, in MB/s and in packets/s, beside
//!   the floor that frames and skips each packet.
//! - `encode`: the same packets encoded into a buffer, beside a plain
//!   `copy_from_slice` of the large payloads (encode should run at memcpy speed).
//!
//! The corpus is deterministic (`benches/common`). Instruction counts, which
//! unlike these times do not depend on the load of the machine, come from
//! `benches/callgrind.sh`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use minimqtt::codec::Packet;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for sample in common::samples() {
        group.throughput(Throughput::Bytes(sample.bytes.len() as u64));
        group.bench_function(sample.name.as_str(), |b| {
            b.iter(|| {
                let (packet, n) = Packet::decode(black_box(&sample.bytes)).expect("decodes");
                black_box((common::touch(&packet), n))
            })
        });
    }
    let publish32 = common::publish32_bytes();
    group.throughput(Throughput::Bytes(publish32.len() as u64));
    group.bench_function("floor/publish_qos0_32", |b| {
        b.iter(|| black_box(common::skip_one(black_box(&publish32))))
    });
    // MQTT 5: the same PUBLISH, without and with properties (a user
    // property, a topic alias, a message expiry), each read back.
    for (name, props) in [
        ("v5/publish_qos0_32", &[][..]),
        ("v5/publish_qos0_32_props", &common::V5_PROPERTIES[..]),
    ] {
        let bytes = common::publish_v5_bytes(props);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let (packet, n) =
                    minimqtt::codec::v5::Packet::decode(black_box(&bytes)).expect("decodes");
                black_box((common::touch_v5(&packet), n))
            })
        });
    }
    group.finish();
}

fn decode_stream(c: &mut Criterion) {
    let stream = common::stream();
    assert_eq!(
        common::decode_stream(&stream).0,
        common::STREAM_PACKETS,
        "the whole stream decodes"
    );
    assert_eq!(common::skip_stream(&stream).0, common::STREAM_PACKETS);
    for (name, throughput) in [
        (
            "decode_stream_bytes",
            Throughput::Bytes(stream.len() as u64),
        ),
        (
            "decode_stream_packets",
            Throughput::Elements(common::STREAM_PACKETS as u64),
        ),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(throughput);
        group.bench_function("decode", |b| {
            b.iter(|| black_box(common::decode_stream(black_box(&stream))))
        });
        group.bench_function("floor", |b| {
            b.iter(|| black_box(common::skip_stream(black_box(&stream))))
        });
        group.finish();
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let mut out = vec![0u8; 70_000];
    for sample in common::samples() {
        let (packet, _) = Packet::decode(&sample.bytes).expect("decodes");
        group.throughput(Throughput::Bytes(sample.bytes.len() as u64));
        group.bench_function(sample.name.as_str(), |b| {
            b.iter(|| {
                black_box(&packet)
                    .encode(black_box(&mut out[..]))
                    .expect("encodes")
            })
        });
    }
    let data = common::payload(32);
    for (name, props) in [
        ("v5/publish_qos0_32", &[][..]),
        ("v5/publish_qos0_32_props", &common::V5_PROPERTIES[..]),
    ] {
        let packet = minimqtt::codec::v5::Packet::Publish(common::publish_v5(&data, props));
        group.throughput(Throughput::Bytes(packet.encoded_len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(&packet)
                    .encode(black_box(&mut out[..]))
                    .expect("encodes")
            })
        });
    }
    // The reference for the large payloads: copying the same bytes, nothing else.
    for size in [4096, 65_536] {
        let data = common::payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("memcpy/{size}"), |b| {
            b.iter(|| {
                out[..size].copy_from_slice(black_box(&data));
                black_box(&mut out);
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // About 30 benches at ~2 s each keeps the whole run near a minute.
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, decode_stream, encode
}
criterion_main!(benches);
