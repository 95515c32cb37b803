//! A tiny driver for instruction counting under callgrind; see
//! `benches/callgrind.sh`, which runs it with two iteration counts and takes
//! the difference, so start-up and corpus building cancel out.
//!
//! ```text
//! instructions <case> <iterations>
//! ```
//!
//! Cases: `loop` (the bare black-boxed loop, to subtract), `decode_publish32`,
//! `floor_publish32`, `encode_publish32`, `decode_subscribe4` (decode a
//! SUBSCRIBE of 4 filters and read each filter back), `encode_subscribe4`
//! (the filters checked by the encoder), `encode_subscribe4_checked` (checked
//! when the packet was built),
//! `decode_stream` and `floor_stream` (one iteration = the whole
//! 10,000-packet stream). Run by `cargo bench`
//! without those arguments, it checks each case once and exits.

mod common;

use std::hint::black_box;

use minimqtt::codec::{Packet, QoS};

const CASES: [&str; 13] = [
    "loop",
    "decode_publish32",
    "floor_publish32",
    "encode_publish32",
    "decode_publish32_v5",
    "encode_publish32_v5",
    "decode_publish32_v5_props",
    "encode_publish32_v5_props",
    "decode_subscribe4",
    "encode_subscribe4",
    "encode_subscribe4_checked",
    "decode_stream",
    "floor_stream",
];

fn run(case: &str, iterations: u64) -> usize {
    let mut sum = 0usize;
    match case {
        "loop" => {
            let bytes = common::publish32_bytes();
            for _ in 0..iterations {
                sum += black_box(&bytes[..]).len();
            }
        }
        "decode_publish32" => {
            let bytes = common::publish32_bytes();
            for _ in 0..iterations {
                if let Ok((packet, n)) = Packet::decode(black_box(&bytes)) {
                    sum += common::touch(&packet) + n;
                }
            }
        }
        "floor_publish32" => {
            let bytes = common::publish32_bytes();
            for _ in 0..iterations {
                sum += common::skip_one(black_box(&bytes)).unwrap_or(0);
            }
        }
        "encode_publish32" => {
            let data = common::payload(32);
            let packet = Packet::Publish(common::publish(QoS::AtMostOnce, &data));
            let mut out = [0u8; 64];
            for _ in 0..iterations {
                sum += black_box(&packet).encode(black_box(&mut out)).unwrap_or(0);
            }
        }
        // MQTT 5: the same PUBLISH with an empty property list, then with
        // a user property, a topic alias and a message expiry (each
        // property read back by the decode case).
        "decode_publish32_v5" | "decode_publish32_v5_props" => {
            let props: &[_] = if case.ends_with("props") {
                &common::V5_PROPERTIES
            } else {
                &[]
            };
            let bytes = common::publish_v5_bytes(props);
            for _ in 0..iterations {
                if let Ok((packet, n)) = minimqtt::codec::v5::Packet::decode(black_box(&bytes)) {
                    sum += common::touch_v5(&packet) + n;
                }
            }
        }
        "encode_publish32_v5" | "encode_publish32_v5_props" => {
            let props: &[_] = if case.ends_with("props") {
                &common::V5_PROPERTIES
            } else {
                &[]
            };
            let data = common::payload(32);
            let packet = minimqtt::codec::v5::Packet::Publish(common::publish_v5(&data, props));
            let mut out = [0u8; 128];
            for _ in 0..iterations {
                sum += black_box(&packet).encode(black_box(&mut out)).unwrap_or(0);
            }
        }
        "decode_subscribe4" => {
            let bytes = common::encode(&common::subscribe4());
            for _ in 0..iterations {
                if let Ok((packet, n)) = Packet::decode(black_box(&bytes)) {
                    sum += common::touch(&packet) + common::touch_filters(&packet) + n;
                }
            }
        }
        "encode_subscribe4" => {
            let packet = common::subscribe4();
            let mut out = [0u8; 128];
            for _ in 0..iterations {
                sum += black_box(&packet).encode(black_box(&mut out)).unwrap_or(0);
            }
        }
        "encode_subscribe4_checked" => {
            let packet = common::subscribe4_checked();
            let mut out = [0u8; 128];
            for _ in 0..iterations {
                sum += black_box(&packet).encode(black_box(&mut out)).unwrap_or(0);
            }
        }
        "decode_stream" => {
            let stream = common::stream();
            for _ in 0..iterations {
                sum += common::decode_stream(black_box(&stream)).1;
            }
        }
        "floor_stream" => {
            let stream = common::stream();
            for _ in 0..iterations {
                sum += common::skip_stream(black_box(&stream)).1;
            }
        }
        other => {
            eprintln!("unknown case {other:?}; cases: {CASES:?}");
            std::process::exit(2);
        }
    }
    black_box(sum)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args[..] {
        [case, n] if CASES.contains(&case.as_str()) && n.parse::<u64>().is_ok() => {
            run(case, n.parse().unwrap_or(0));
        }
        // `cargo bench` passes `--bench` (and any filter): a smoke run of every case.
        _ => {
            for case in CASES {
                run(case, 1);
            }
            println!(
                "instructions: {} cases ran; see benches/callgrind.sh",
                CASES.len()
            );
        }
    }
}
