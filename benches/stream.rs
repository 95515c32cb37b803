//! Wall time of a 1 MiB message streamed through a 512-byte receive
//! buffer by the sans-IO session: `cargo bench --bench stream`.
//!
//! - `stream_1mib/session`: the PUBLISH's bytes are copied into the
//!   session's receive buffer as a socket would deliver them (as much as
//!   fits each time), and every chunk event is consumed.
//! - `stream_1mib/copy_512`: the floor, the same copies into a 512-byte
//!   buffer and nothing else.
//! - `stream_1mib/memcpy`: one `copy_from_slice` of the whole payload.
//!
//! Throughput is in payload bytes; the ratio session / memcpy is what the
//! README reports.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use minimqtt::codec::{ConnAck, Connect, ConnectReturnCode, Packet, Publish, QoS};
use minimqtt::session::{Event, Options, Part, Session, Timeouts};
use minimqtt::time::Instant;

const LEN: usize = 1 << 20;
const RX: usize = 512;

fn connected<'b>(rx: &'b mut [u8], arena: &'b mut [u8]) -> Session<'b, 4, 4> {
    let mut s = Session::new(rx, arena, Timeouts::DEFAULT);
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    let now = Instant::from_millis(0);
    s.connect(now, &Connect::new("bench")).expect("connect");
    let n = s.poll_transmit(now).len();
    s.handle_transmit(now, n);
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        return_code: ConnectReturnCode::Accepted,
    });
    let n = connack.encode(s.receive_buffer()).expect("connack");
    s.commit(n);
    assert!(matches!(s.poll_event(now), Some(Event::Connected(_))));
    s
}

fn stream(c: &mut Criterion) {
    let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let publish = Publish::new("devices/42/firmware", &payload, QoS::AtMostOnce, false);
    let mut wire = vec![0u8; publish.encoded_len()];
    publish.encode(&mut wire).expect("encode");

    let (mut rx, mut arena) = ([0u8; RX], [0u8; 512]);
    let mut s = connected(&mut rx, &mut arena);
    let now = Instant::from_millis(0);

    let mut group = c.benchmark_group("stream_1mib");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.bench_function("session", |b| {
        b.iter(|| {
            let mut fed = 0;
            let mut got = 0;
            loop {
                while let Some(event) = s.poll_event(now) {
                    if let Event::Stream(st) = event {
                        if let Part::Chunk { data, .. } = st.part {
                            got += black_box(data).len();
                        }
                    }
                }
                if fed == wire.len() {
                    break;
                }
                let space = s.receive_buffer();
                let n = space.len().min(wire.len() - fed);
                space[..n].copy_from_slice(&wire[fed..fed + n]);
                s.commit(n);
                fed += n;
            }
            assert_eq!(got, LEN);
        })
    });
    let mut buf = [0u8; RX];
    group.bench_function("copy_512", |b| {
        b.iter(|| {
            for piece in wire.chunks(RX) {
                buf[..piece.len()].copy_from_slice(black_box(piece));
                black_box(&mut buf);
            }
        })
    });
    let mut out = vec![0u8; LEN];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            out.copy_from_slice(black_box(&payload));
            black_box(&mut out);
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = stream
}
criterion_main!(benches);
