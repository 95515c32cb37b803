//! Proves the reshaping transport of `tests/common/transport.rs` does what
//! the client tests rely on: every mode delivers the byte stream unchanged
//! (only cut differently), counts the packets right, and loses nothing
//! when the client drops a read half-way.

mod common;

use std::time::Duration;

use common::transport::{MERGE_LINGER, Mode, Transport};
use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{Read, Write};
use minimqtt::codec::{Packet, PacketType, PubAck, Publish, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A stream of packets and their types: small ones, and one longer than
/// the duplex pipe's buffer.
fn packets() -> (Vec<u8>, Vec<PacketType>) {
    let payload = vec![0x5a; 300];
    fn publish(qos: QoS, payload: &[u8]) -> Packet<'_> {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: "a/b",
            packet_id: (qos != QoS::AtMostOnce).then_some(7),
            payload,
        })
    }
    let list = [
        Packet::PingResp,
        Packet::PubAck(PubAck { packet_id: 1 }),
        publish(QoS::AtLeastOnce, &payload),
        Packet::PingResp,
        publish(QoS::AtMostOnce, b"x"),
        publish(QoS::AtMostOnce, b"y"),
        publish(QoS::ExactlyOnce, b"z"),
    ];
    let mut bytes = Vec::new();
    for packet in &list {
        let mut buf = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut buf).expect("encode");
        bytes.extend_from_slice(&buf[..n]);
    }
    (bytes, list.iter().map(Packet::packet_type).collect())
}

fn pipe(mode: Mode) -> (Transport<FromTokio<DuplexStream>>, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(64);
    (Transport::new(FromTokio::new(ours), mode, 42), theirs)
}

#[tokio::test]
async fn every_mode_reads_the_stream_unchanged() {
    let (bytes, types) = packets();
    for mode in Mode::ALL {
        let (mut transport, mut peer) = pipe(mode);
        let sent = bytes.clone();
        let writer = tokio::spawn(async move {
            peer.write_all(&sent).await.expect("write");
            // Dropping `peer` is the end of the stream.
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = transport.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.expect("writer");
        assert_eq!(got, bytes, "{mode:?}");
        let stats = transport.stats();
        let stats = stats.get();
        assert_eq!(stats.read, types, "{mode:?}");
        assert_eq!(stats.bytes_read, bytes.len());
        match mode {
            Mode::OneByte => assert_eq!(stats.reads, bytes.len()),
            Mode::RandomSplit => assert!(stats.split_reads > 0, "{stats:?}"),
            Mode::Merge => assert!(stats.max_packets_per_read >= 2, "{stats:?}"),
            Mode::Passthrough | Mode::PartialWrites => {}
        }
    }
}

#[tokio::test]
async fn partial_writes_keep_the_stream_and_count_packets() {
    let (bytes, types) = packets();
    for mode in [Mode::Passthrough, Mode::PartialWrites] {
        let (mut transport, mut peer) = pipe(mode);
        let expected = bytes.len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; expected];
            peer.read_exact(&mut got).await.expect("read");
            got
        });
        // Like the client: write what is left until all is accepted.
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = transport.write(rest).await.expect("write");
            assert!(n > 0 && n <= rest.len());
            rest = &rest[n..];
        }
        transport.flush().await.expect("flush");
        assert_eq!(reader.await.expect("reader"), bytes, "{mode:?}");
        let stats = transport.stats();
        let stats = stats.get();
        assert_eq!(stats.written_types(), types, "{mode:?}");
        assert_eq!(stats.count_written(PacketType::PingResp), 2);
        assert_eq!(stats.bytes_written, bytes.len());
        if mode == Mode::PartialWrites {
            assert!(stats.writes > types.len(), "{stats:?}");
        }
    }
}

/// The client races every read against its timers and drops the loser:
/// bytes a merging read holds back must survive that.
#[tokio::test]
async fn dropped_reads_lose_nothing() {
    let (bytes, _) = packets();
    let (mut transport, mut peer) = pipe(Mode::Merge);
    let sent = bytes.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(5) {
            peer.write_all(chunk).await.expect("write");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let mut dropped = 0;
    loop {
        let short = MERGE_LINGER / 4;
        match tokio::time::timeout(short, transport.read(&mut buf)).await {
            Err(_) => dropped += 1,
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e:?}"),
        }
    }
    writer.await.expect("writer");
    assert_eq!(got, bytes);
    assert!(dropped > 0, "no read was dropped: the test proved nothing");
}
