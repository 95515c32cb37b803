//! Framing incoming bytes into packets, in a caller-supplied receive slice.
//!
//! Reads land behind whatever partial packet is already buffered, so a
//! packet may arrive over any number of reads and one read may carry many
//! packets. A packet longer than the whole slice cannot be buffered; it is
//! skipped as its bytes arrive, and if it is a QoS 1/2 PUBLISH its packet
//! id is picked out first so it can still be acknowledged.

use crate::codec::{self, DecodeError, FixedHeader, Malformed, Packet, PacketType, QoS};

/// What the buffered bytes hold next.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// A whole packet, `len` bytes; call [`PacketReader::consume`] after use.
    Packet(Packet<'a>, usize),
    /// A packet of `len` bytes too large for the buffer is being skipped;
    /// `packet_type` is its type, `ack` its QoS and packet id when it is a
    /// QoS 1/2 PUBLISH.
    Dropped {
        len: usize,
        packet_type: PacketType,
        ack: Option<(QoS, u16)>,
    },
    /// A whole packet of a type only clients send (CONNECT, SUBSCRIBE,
    /// UNSUBSCRIBE, PINGREQ, DISCONNECT): a protocol error from a server,
    /// whatever its body holds.
    ClientPacket(PacketType),
    /// More bytes are needed.
    Incomplete,
}

#[derive(Debug)]
pub(crate) struct PacketReader<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
    /// Bytes of an oversized packet still to be thrown away.
    skip: usize,
}

impl<'b> PacketReader<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            start: 0,
            end: 0,
            skip: 0,
        }
    }

    /// Drops everything buffered: the connection it came from is gone.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.skip = 0;
    }

    /// Whether bytes are buffered that may hold a packet.
    pub(crate) fn has_data(&self) -> bool {
        self.end > self.start
    }

    /// The free space to read into. Never empty: a partial packet that fits
    /// the buffer is moved to the front first.
    pub(crate) fn receive_buffer(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// `n` bytes were read into [`receive_buffer`](Self::receive_buffer).
    pub(crate) fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// Drops the first `n` buffered bytes (a handled packet).
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
    }

    /// Frames the next packet.
    pub(crate) fn next(&mut self) -> Result<Next<'_>, Malformed> {
        if self.skip > 0 {
            let n = self.skip.min(self.end - self.start);
            self.start += n;
            self.skip -= n;
            if self.skip > 0 {
                return Ok(Next::Incomplete);
            }
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or(&[]);
        let framed = codec::frame_shared(avail, self.buf.len()).and_then(|(header, body, len)| {
            // A packet only clients send is a protocol error from the server
            // (the session would refuse it), whatever its body: it is not
            // parsed, which keeps CONNECT's parser out of firmware.
            match Packet::decode_server_body(header, body) {
                Some(packet) => Ok(Next::Packet(packet?, len)),
                None => Ok(Next::ClientPacket(header.packet_type)),
            }
        });
        match framed {
            Ok(next) => Ok(next),
            Err(DecodeError::Incomplete { .. }) => Ok(Next::Incomplete),
            Err(DecodeError::Malformed(m)) => Err(m),
            Err(DecodeError::TooLarge { len }) => {
                // The header decoded, or the packet could not be too large.
                // Decoded once, here: each decode is inlined code.
                let (packet_type, ack) = match FixedHeader::decode(avail) {
                    Ok(header) => match oversized_ack(header, avail, self.buf.len()) {
                        AckInfo::Known(ack) => (header.packet_type, ack),
                        AckInfo::NeedMore => return Ok(Next::Incomplete),
                        AckInfo::Malformed(m) => return Err(m),
                    },
                    Err(_) => (PacketType::Publish, None),
                };
                self.skip = len;
                Ok(Next::Dropped {
                    len,
                    packet_type,
                    ack,
                })
            }
        }
    }
}

enum AckInfo {
    Known(Option<(QoS, u16)>),
    NeedMore,
    Malformed(Malformed),
}

/// The QoS and packet id of an oversized PUBLISH, from its first bytes
/// (`header` is their fixed header).
fn oversized_ack(header: FixedHeader, avail: &[u8], capacity: usize) -> AckInfo {
    if header.packet_type != PacketType::Publish {
        return AckInfo::Known(None);
    }
    let qos = match QoS::from_bits((header.flags >> 1) & 0b11) {
        Some(QoS::AtMostOnce) | None => return AckInfo::Known(None),
        Some(qos) => qos,
    };
    let h = usize::from(header.header_len);
    if h + 2 > capacity {
        // Not even the topic length fits: as below, dropped unacknowledged.
        return AckInfo::Known(None);
    }
    let Some(len_bytes) = avail.get(h..h + 2) else {
        return AckInfo::NeedMore;
    };
    let topic_len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let id_at = h + 2 + topic_len;
    if id_at + 2 > capacity {
        // The id lies beyond what the buffer can ever hold at once: the
        // message is dropped unacknowledged (and documented as such).
        return AckInfo::Known(None);
    }
    let Some(id) = avail.get(id_at..id_at + 2) else {
        return AckInfo::NeedMore;
    };
    match u16::from_be_bytes([id[0], id[1]]) {
        0 => AckInfo::Malformed(Malformed::PacketId),
        id => AckInfo::Known(Some((qos, id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Publish;

    fn publish(qos: QoS, payload: &[u8]) -> ([u8; 128], usize) {
        let mut out = [0u8; 128];
        let p = Publish {
            dup: false,
            qos,
            retain: false,
            topic: "a/b",
            packet_id: (qos != QoS::AtMostOnce).then_some(9),
            payload,
        };
        let n = Packet::Publish(p).encode(&mut out).unwrap();
        (out, n)
    }

    #[test]
    fn one_byte_reads_frame_the_packet() {
        let (bytes, n) = publish(QoS::AtLeastOnce, b"hello");
        let mut buf = [0u8; 32];
        let mut reader = PacketReader::new(&mut buf);
        for (i, b) in bytes[..n].iter().enumerate() {
            assert!(matches!(reader.next(), Ok(Next::Incomplete)), "byte {i}");
            reader.receive_buffer()[0] = *b;
            reader.commit(1);
        }
        match reader.next() {
            Ok(Next::Packet(Packet::Publish(p), len)) => {
                assert_eq!((p.payload, len), (&b"hello"[..], n));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_buffer_too_small_for_the_topic_length_still_skips() {
        // 3 bytes hold the fixed header and no more: the packet is dropped
        // unacknowledged instead of waiting for bytes that cannot fit.
        let (bytes, n) = publish(QoS::AtLeastOnce, b"hello");
        let mut buf = [0u8; 3];
        let mut reader = PacketReader::new(&mut buf);
        let mut fed = 0;
        let mut dropped = None;
        while fed < n {
            let space = reader.receive_buffer();
            let k = space.len().min(n - fed);
            space[..k].copy_from_slice(&bytes[fed..fed + k]);
            reader.commit(k);
            fed += k;
            loop {
                match reader.next() {
                    Ok(Next::Incomplete) => break,
                    Ok(Next::Dropped { len, ack, .. }) => dropped = Some((len, ack)),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(dropped, Some((n, None)));
    }

    #[test]
    fn oversized_publish_is_skipped_and_its_id_kept() {
        let (big, n) = publish(QoS::ExactlyOnce, &[7; 60]);
        let (small, m) = publish(QoS::AtMostOnce, b"x");
        let mut stream = [0u8; 256];
        stream[..n].copy_from_slice(&big[..n]);
        stream[n..n + m].copy_from_slice(&small[..m]);
        let mut buf = [0u8; 24];
        let mut reader = PacketReader::new(&mut buf);
        let mut fed = 0;
        let mut dropped = None;
        let mut got = None;
        while got.is_none() {
            match reader.next().unwrap() {
                Next::Incomplete => {
                    let space = reader.receive_buffer();
                    let k = space.len().min(5).min(n + m - fed);
                    space[..k].copy_from_slice(&stream[fed..fed + k]);
                    reader.commit(k);
                    fed += k;
                }
                Next::Dropped { len, ack, .. } => dropped = Some((len, ack)),
                Next::Packet(p, len) => {
                    got = Some(matches!(p, Packet::Publish(p) if p.payload == b"x"));
                    reader.consume(len);
                }
                Next::ClientPacket(t) => panic!("{t:?}"),
            }
        }
        assert_eq!(dropped, Some((n, Some((QoS::ExactlyOnce, 9)))));
        assert_eq!(got, Some(true));
    }

    #[test]
    fn client_packets_are_framed_but_not_parsed() {
        // A CONNECT whose body is not even a protocol name, a SUBSCRIBE
        // without filters, and the two empty ones; then a PINGRESP.
        let stream = [
            0x10, 0x02, 0xff, 0xff, 0x82, 0x02, 0x00, 0x01, 0xa2, 0x02, 0x00, 0x00, 0xc0, 0x00,
            0xe0, 0x00, 0xd0, 0x00,
        ];
        let mut buf = [0u8; 32];
        let mut reader = PacketReader::new(&mut buf);
        reader.receive_buffer()[..stream.len()].copy_from_slice(&stream);
        reader.commit(stream.len());
        for (want, len) in [
            (PacketType::Connect, 4),
            (PacketType::Subscribe, 4),
            (PacketType::Unsubscribe, 4),
            (PacketType::PingReq, 2),
            (PacketType::Disconnect, 2),
        ] {
            match reader.next() {
                Ok(Next::ClientPacket(t)) => assert_eq!(t, want),
                other => panic!("{want:?}: {other:?}"),
            }
            reader.consume(len);
        }
        assert!(matches!(
            reader.next(),
            Ok(Next::Packet(Packet::PingResp, 2))
        ));
        // Fixed-header flags are still checked: a SUBSCRIBE with flags 0.
        reader.clear();
        reader.receive_buffer()[..4].copy_from_slice(&[0x80, 0x02, 0x00, 0x01]);
        reader.commit(4);
        assert!(matches!(reader.next(), Err(Malformed::HeaderFlags)));
    }
}
