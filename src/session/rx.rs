//! Framing incoming bytes into packets, in a caller-supplied receive slice.
//!
//! Reads land behind whatever partial packet is already buffered, so a
//! packet may arrive over any number of reads and one read may carry many
//! packets. A packet longer than the whole slice cannot be buffered; it is
//! skipped as its bytes arrive, after its topic and packet id (when they
//! fit) have been read, so it can still be reported and acknowledged.
//!
//! Framing ([`Rx::frame_at`]) only reads: the session frames and handles
//! several packets in one pass, and hands out an event that borrows the
//! last one, before it drops any of their bytes ([`Rx::consume`]).

use crate::codec::{self, DecodeError, FixedHeader, Malformed, Packet, PacketType, Peek, QoS};

/// What the buffered bytes hold at an offset.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// A whole packet of `len` bytes.
    Packet(Packet<'a>, usize),
    /// A packet of `len` bytes, too large for the buffer, starts here; what
    /// could be read of it. `here` of its bytes are buffered now.
    Dropped {
        len: usize,
        here: usize,
        packet_type: PacketType,
        qos: QoS,
        dup: bool,
        topic: Option<&'a str>,
        packet_id: Option<u16>,
    },
    /// A whole packet of a type only clients send (CONNECT, SUBSCRIBE,
    /// UNSUBSCRIBE, PINGREQ, DISCONNECT): a protocol error from a server,
    /// whatever its body holds.
    ClientPacket(PacketType),
    /// More bytes are needed.
    Incomplete,
}

pub(crate) struct Rx<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
    /// Bytes of an oversized packet still to be thrown away as they arrive.
    skip: usize,
}

impl core::fmt::Debug for Rx<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rx")
            .field("capacity", &self.buf.len())
            .field("buffered", &(self.end - self.start))
            .field("skip", &self.skip)
            .finish()
    }
}

impl<'b> Rx<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            start: 0,
            end: 0,
            skip: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Drops everything buffered: the connection it came from is gone.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.skip = 0;
    }

    /// The free space to read into. Never empty while a partial packet
    /// that fits the buffer waits for its end: it is moved to the front.
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
    /// Bytes of a packet being skipped go at once.
    pub(crate) fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
        self.apply_skip();
    }

    /// Drops the first `n` buffered bytes (handled packets), then skips
    /// `skip` more as they arrive (the rest of an oversized packet).
    pub(crate) fn consume(&mut self, n: usize, skip: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
        self.skip = self.skip.saturating_add(skip);
        self.apply_skip();
    }

    fn apply_skip(&mut self) {
        let n = self.skip.min(self.end - self.start);
        self.start += n;
        self.skip -= n;
    }

    /// Frames the packet that starts `offset` bytes into the buffered data.
    pub(crate) fn frame_at(&self, offset: usize) -> Result<Next<'_>, Malformed> {
        if self.skip > 0 {
            return Ok(Next::Incomplete);
        }
        let avail = self
            .buf
            .get(self.start.saturating_add(offset)..self.end)
            .unwrap_or(&[]);
        let capacity = self.buf.len();
        let framed = codec::frame_shared(avail, capacity).and_then(|(header, body, len)| {
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
            Err(DecodeError::TooLarge { len }) => oversized(avail, len, capacity),
        }
    }
}

/// An oversized packet of `len` bytes at the start of `avail`.
fn oversized(avail: &[u8], len: usize, capacity: usize) -> Result<Next<'_>, Malformed> {
    // `TooLarge` comes only after the fixed header decoded.
    let header = FixedHeader::decode(avail).map_err(|_| Malformed::Truncated)?;
    let (qos, topic, packet_id) = if header.packet_type == PacketType::Publish {
        match codec::peek_oversized(header, avail, capacity) {
            Peek::Known {
                qos,
                topic,
                packet_id,
            } => (qos, topic, packet_id),
            Peek::NeedMore => return Ok(Next::Incomplete),
            Peek::Malformed(m) => return Err(m),
        }
    } else {
        (QoS::AtMostOnce, None, None)
    };
    Ok(Next::Dropped {
        len,
        here: avail.len().min(len),
        packet_type: header.packet_type,
        qos,
        dup: codec::publish_dup(header.flags),
        topic,
        packet_id,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;
    use std::{format, vec};

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

    /// Feeds `stream` `chunk` bytes at a time, framing after each read,
    /// and returns the packets and drops it saw, as text.
    fn run(stream: &[u8], buf: &mut [u8], chunk: usize) -> Vec<String> {
        let mut rx = Rx::new(buf);
        let mut seen = Vec::new();
        let mut fed = 0;
        loop {
            loop {
                match rx.frame_at(0).unwrap() {
                    Next::Incomplete => break,
                    Next::Packet(p, len) => {
                        seen.push(format!("{:?} {len}", p.packet_type()));
                        rx.consume(len, 0);
                    }
                    Next::Dropped {
                        len,
                        here,
                        topic,
                        packet_id,
                        ..
                    } => {
                        seen.push(format!("dropped {len} {topic:?} {packet_id:?}"));
                        rx.consume(here, len - here);
                    }
                    Next::ClientPacket(t) => panic!("{t:?}"),
                }
            }
            if fed == stream.len() {
                return seen;
            }
            let space = rx.receive_buffer();
            let k = space.len().min(chunk).min(stream.len() - fed);
            assert!(k > 0, "receive buffer full");
            space[..k].copy_from_slice(&stream[fed..fed + k]);
            rx.commit(k);
            fed += k;
        }
    }

    #[test]
    fn one_byte_reads_frame_the_packet() {
        let (bytes, n) = publish(QoS::AtLeastOnce, b"hello");
        let mut buf = [0u8; 32];
        assert_eq!(run(&bytes[..n], &mut buf, 1), [format!("Publish {n}")]);
    }

    #[test]
    fn a_buffer_too_small_for_the_topic_length_still_skips() {
        // 3 bytes hold the fixed header and no more: the packet is dropped
        // without topic or id instead of waiting for bytes that cannot fit.
        let (bytes, n) = publish(QoS::AtLeastOnce, b"hello");
        let mut buf = [0u8; 3];
        assert_eq!(
            run(&bytes[..n], &mut buf, 3),
            [format!("dropped {n} None None")]
        );
    }

    #[test]
    fn oversized_publish_is_skipped_with_its_topic_and_id() {
        let (big, n) = publish(QoS::ExactlyOnce, &[7; 60]);
        let (small, m) = publish(QoS::AtMostOnce, b"x");
        let mut stream = vec![];
        stream.extend_from_slice(&big[..n]);
        stream.extend_from_slice(&small[..m]);
        for chunk in [1, 5, 24] {
            let mut buf = [0u8; 24];
            assert_eq!(
                run(&stream, &mut buf, chunk),
                [
                    format!("dropped {n} Some(\"a/b\") Some(9)"),
                    format!("Publish {m}")
                ],
                "chunk {chunk}"
            );
        }
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
        let mut rx = Rx::new(&mut buf);
        rx.receive_buffer()[..stream.len()].copy_from_slice(&stream);
        rx.commit(stream.len());
        let mut offset = 0;
        for (want, len) in [
            (PacketType::Connect, 4),
            (PacketType::Subscribe, 4),
            (PacketType::Unsubscribe, 4),
            (PacketType::PingReq, 2),
            (PacketType::Disconnect, 2),
        ] {
            match rx.frame_at(offset) {
                Ok(Next::ClientPacket(t)) => assert_eq!(t, want),
                other => panic!("{want:?}: {other:?}"),
            }
            offset += len;
        }
        assert!(matches!(
            rx.frame_at(offset),
            Ok(Next::Packet(Packet::PingResp, 2))
        ));
        // Fixed-header flags are still checked: a SUBSCRIBE with flags 0.
        rx.clear();
        rx.receive_buffer()[..4].copy_from_slice(&[0x80, 0x02, 0x00, 0x01]);
        rx.commit(4);
        assert!(matches!(rx.frame_at(0), Err(Malformed::HeaderFlags)));
    }

    #[test]
    fn an_oversized_publish_with_a_bad_topic_is_malformed() {
        // QoS 1, remaining length 40, topic "a+" (a wildcard).
        let bytes = [0x32, 40, 0, 2, b'a', b'+', 0, 1];
        let mut buf = [0u8; 16];
        let mut rx = Rx::new(&mut buf);
        rx.receive_buffer()[..bytes.len()].copy_from_slice(&bytes);
        rx.commit(bytes.len());
        assert!(matches!(rx.frame_at(0), Err(Malformed::TopicName(_))));
    }
}
