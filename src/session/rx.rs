//! Framing incoming bytes into packets, in a caller-supplied receive slice.
//!
//! Reads land behind whatever partial packet is already buffered, so a
//! packet may arrive over any number of reads and one read may carry many
//! packets. A packet longer than the whole slice cannot be buffered; it is
//! skipped as its bytes arrive, after its topic and packet id (when they
//! fit) have been read, so it can still be reported and acknowledged (a
//! packet id behind a topic longer than the slice is read as it passes).
//!
//! Framing ([`Rx::frame_at`]) only reads: the session frames and handles
//! several packets in one pass, and hands out an event that borrows the
//! last one, before it drops any of their bytes ([`Rx::consume`]).

#[cfg(feature = "v3")]
use crate::codec::Packet;
#[cfg(feature = "v5")]
use crate::codec::v5;
use crate::codec::{self, DecodeError, FixedHeader, Malformed, PacketType, Peek, QoS};

/// A packet from the broker, in the version the connection speaks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Any<'a> {
    #[cfg(feature = "v3")]
    V3(Packet<'a>),
    #[cfg(feature = "v5")]
    V5(v5::Packet<'a>),
}

impl Any<'_> {
    /// A PUBLISH's QoS and packet id.
    pub(crate) fn publish_ids(&self) -> Option<(QoS, Option<u16>)> {
        match self {
            #[cfg(feature = "v3")]
            Self::V3(Packet::Publish(p)) => Some((p.qos, p.packet_id)),
            #[cfg(feature = "v5")]
            Self::V5(v5::Packet::Publish(p)) => Some((p.qos, p.packet_id)),
            _ => None,
        }
    }
}

/// What the buffered bytes hold at an offset.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// A whole packet of `len` bytes.
    Packet(Any<'a>, usize),
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
        retain: bool,
        /// Where its payload starts, when everything before it fits in
        /// the buffer with room to spare: it can be streamed.
        payload_at: Option<usize>,
        /// Where its topic starts.
        topic_at: usize,
        /// A QoS 1/2 PUBLISH whose topic is longer than the buffer: where
        /// its packet id starts, to be read as it arrives.
        id_at: Option<usize>,
        /// MQTT 5: its Topic Alias, when its properties could be read.
        #[cfg(feature = "v5")]
        alias: AliasPeek,
    },
    /// MQTT 5: an acknowledgement of the QoS 1/2 handshake, or a server's
    /// DISCONNECT, too large for the buffer, as a packet without its
    /// properties; `len` bytes in all, `here` of them buffered now, the
    /// rest skipped as they arrive. `true` if it had properties.
    #[cfg(feature = "v5")]
    Trimmed(Any<'a>, usize, usize, bool),
    /// MQTT 5: an AUTH too large for the buffer. Its Authentication Data
    /// is read whole or not at all, so the connection cannot go on.
    #[cfg(feature = "v5")]
    TooLarge,
    /// A SUBACK (MQTT 5: or UNSUBACK) too large for the buffer, whose
    /// codes (its last bytes) fit: its packet id, and where its codes
    /// start, behind MQTT 5's properties to skip as they arrive; `len`
    /// bytes in all, `here` of them buffered now. `properties`: it had
    /// some.
    Codes {
        packet_type: PacketType,
        packet_id: [u8; 2],
        len: usize,
        at: usize,
        here: usize,
        properties: bool,
    },
    /// A packet of a type only clients send (CONNECT, SUBSCRIBE,
    /// UNSUBSCRIBE, PINGREQ, DISCONNECT), or one the server may not send
    /// in the connection's state: a protocol error, whatever its body
    /// holds, so it is reported once its first byte has come.
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
    /// Bytes at the front kept while a message streams: its header, which
    /// its events borrow the topic from. Payload bytes land after them.
    hold: usize,
}

impl core::fmt::Debug for Rx<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rx")
            .field("capacity", &self.buf.len())
            .field("buffered", &(self.end - self.start))
            .field("skip", &self.skip)
            .field("hold", &self.hold)
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
            hold: 0,
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
        self.hold = 0;
    }

    /// Keeps the first `len` buffered bytes (a streamed message's header)
    /// until [`release`](Self::release).
    pub(crate) fn hold(&mut self, len: usize) {
        self.hold = len;
    }

    /// The held header.
    pub(crate) fn held(&self) -> &[u8] {
        self.buf
            .get(self.start..self.start.saturating_add(self.hold))
            .unwrap_or(&[])
    }

    /// The bytes buffered after the held header.
    pub(crate) fn after_hold(&self) -> &[u8] {
        self.buf
            .get(self.start.saturating_add(self.hold)..self.end)
            .unwrap_or(&[])
    }

    /// Drops every byte after the held header: payload handed out.
    pub(crate) fn truncate_to_hold(&mut self) {
        self.end = self.end.min(self.start.saturating_add(self.hold));
    }

    /// Drops the held header and the first `n` bytes after it, then skips
    /// `skip` more as they arrive: the streamed message is over.
    pub(crate) fn release(&mut self, n: usize, skip: usize) {
        let held = core::mem::take(&mut self.hold);
        self.consume(held.saturating_add(n), skip);
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

    /// Bytes of a packet too large to buffer are still to come, and go as
    /// they arrive.
    pub(crate) fn skipping(&self) -> bool {
        self.skip > 0
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

    /// The `n` codes at the front of the buffered data that end a SUBACK
    /// (MQTT 5: or UNSUBACK) too large to buffer, whose packet id was
    /// `packet_id`: the packet they end, without MQTT 5's properties,
    /// checked as a whole one and framed as `n` bytes.
    pub(crate) fn codes(
        &self,
        packet_type: PacketType,
        packet_id: [u8; 2],
        n: usize,
        v5: bool,
    ) -> Result<Next<'_>, Malformed> {
        let bytes = self.after_hold().get(..n).unwrap_or(&[]);
        let packet = match v5 {
            #[cfg(feature = "v5")]
            true => v5::ack_list_tail(packet_type.into(), packet_id, bytes).map(Any::V5),
            // Only a SUBACK: an UNSUBACK's size is fixed.
            #[cfg(feature = "v3")]
            false => codec::SubAck::split(packet_id, bytes).map(|p| Any::V3(Packet::SubAck(p))),
            #[allow(unreachable_patterns)]
            _ => Err(Malformed::PacketType),
        };
        #[cfg(not(feature = "v5"))]
        let _ = packet_type;
        Ok(Next::Packet(packet?, n))
    }

    /// Frames the packet that starts `offset` bytes into the buffered
    /// data, decoding it as MQTT 5 when `v5`; `connecting` while the
    /// CONNACK is awaited.
    pub(crate) fn frame_at(
        &self,
        offset: usize,
        v5: bool,
        connecting: bool,
    ) -> Result<Next<'_>, Malformed> {
        if self.skip > 0 {
            return Ok(Next::Incomplete);
        }
        let avail = self
            .buf
            .get(self.start.saturating_add(offset)..self.end)
            .unwrap_or(&[]);
        let capacity = self.buf.len();
        #[cfg(feature = "v5")]
        if v5 {
            let framed = match v5::decode_server(avail, capacity) {
                Ok(Ok((packet, len))) => Ok(Next::Packet(Any::V5(packet), len)),
                // (Only CONNECT, SUBSCRIBE, UNSUBSCRIBE and PINGREQ come
                // here, all of them 3.1.1 types.)
                Ok(Err(client_only)) => Ok(Next::ClientPacket(
                    client_only.to_v3().unwrap_or(PacketType::PingReq),
                )),
                Err(e) => Err(e),
            };
            return self.framed(framed, avail, capacity, true, connecting);
        }
        let _ = v5;
        #[cfg(feature = "v3")]
        let framed = codec::frame_shared(avail, capacity).and_then(|(header, body, len)| {
            // A packet only clients send is a protocol error from the server
            // (the session would refuse it), whatever its body: it is not
            // parsed, which keeps CONNECT's parser out of firmware.
            match Packet::decode_server_body(header, body) {
                Some(packet) => Ok(Next::Packet(Any::V3(packet?), len)),
                None => Ok(Next::ClientPacket(header.packet_type)),
            }
        });
        // No 3.1.1 connection can exist: nothing to frame.
        #[cfg(not(feature = "v3"))]
        let framed = Ok(Next::Incomplete);
        self.framed(framed, avail, capacity, false, connecting)
    }

    fn framed<'a>(
        &self,
        framed: Result<Next<'a>, DecodeError>,
        avail: &'a [u8],
        capacity: usize,
        v5: bool,
        connecting: bool,
    ) -> Result<Next<'a>, Malformed> {
        let len = match framed {
            Ok(next) => return Ok(next),
            Err(DecodeError::Malformed(m)) => return Err(m),
            Err(DecodeError::Incomplete { .. }) => None,
            Err(DecodeError::TooLarge { len }) => Some(len),
        };
        // A packet the broker may not send is refused from its first
        // byte, whole or too large: the rest may never come, and the
        // connection would wait for the CONNACK or keep-alive timeout
        // meanwhile.
        let refused = avail
            .first()
            .and_then(|&first| codec::refused_from_server(first, v5, connecting));
        match (refused, len) {
            (Some(packet_type), _) => Ok(Next::ClientPacket(packet_type)),
            (None, Some(len)) => oversized(avail, len, capacity, v5),
            (None, None) => Ok(Next::Incomplete),
        }
    }
}

/// MQTT 5: what the properties of an oversized PUBLISH said of its Topic
/// Alias.
#[cfg(feature = "v5")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasPeek {
    /// They could not be read: they do not fit the buffer.
    Unread,
    /// They were read: the alias, if any.
    Read(Option<u16>),
}

/// An oversized packet of `len` bytes at the start of `avail`.
// Not inlined: in the driver's event dispatch, where the session's framing
// ends up, it compiled 384 bytes larger on thumbv7em (3.1.1 build).
#[inline(never)]
fn oversized(avail: &[u8], len: usize, capacity: usize, v5: bool) -> Result<Next<'_>, Malformed> {
    #[cfg(feature = "v5")]
    let mut alias = AliasPeek::Unread;
    // `TooLarge` comes only after the fixed header decoded, by 3.1.1's
    // rules but for AUTH's type, which only MQTT 5 has.
    #[cfg(feature = "v5")]
    if v5 && avail.first().is_some_and(|&first| first >> 4 == 15) {
        return Ok(Next::TooLarge);
    }
    let header = FixedHeader::decode(avail).map_err(|_| Malformed::Truncated)?;
    let h = usize::from(header.header_len);
    let mut id_at = None;
    let (qos, topic, packet_id, payload_at) = if header.packet_type == PacketType::Publish {
        // MQTT 5: an empty topic stands for a Topic Alias.
        match codec::peek_oversized(header, avail, capacity, v5) {
            Peek::Known {
                qos,
                packet_id: None,
                ..
            } if qos != QoS::AtMostOnce => {
                // The packet id does not fit behind the topic; the topic's
                // length says where it is (checked to be in the packet).
                if let Some(&[hi, lo]) = avail.get(h..h + 2) {
                    id_at = Some(h + 2 + usize::from(u16::from_be_bytes([hi, lo])));
                }
                (qos, None, None, None)
            }
            Peek::Known {
                qos,
                topic,
                packet_id,
                payload_at,
            } => match payload_at {
                // MQTT 5: properties come between the packet id and the
                // payload. Read when they fit (the stream's header holds
                // them): they may set a Topic Alias.
                #[cfg(feature = "v5")]
                Some(at) if v5 => match v5::payload_start(avail, at) {
                    _ if at >= capacity => (qos, topic, packet_id, None),
                    Some(Ok(start)) if start >= capacity => (qos, topic, packet_id, None),
                    Some(Ok(start)) => match avail.get(at..start) {
                        Some(props) => {
                            alias = AliasPeek::Read(v5::publish_alias(props)?);
                            (qos, topic, packet_id, Some(start))
                        }
                        None => return Ok(Next::Incomplete),
                    },
                    Some(Err(m)) => return Err(m),
                    // Its Property Length runs past a full buffer: it can
                    // never be read, and waiting for it would stall the
                    // connection. Skipped as one whose properties do not
                    // fit.
                    None if avail.len() >= capacity => (qos, topic, packet_id, None),
                    None => return Ok(Next::Incomplete),
                },
                _ => (qos, topic, packet_id, payload_at),
            },
            Peek::NeedMore => return Ok(Next::Incomplete),
            Peek::Malformed(m) => return Err(m),
        }
    } else {
        // MQTT 5: an acknowledgement's packet id and reason code come
        // before its properties; they fit (in all but a buffer of under 8
        // bytes and a header of 4 or 5), and the handshake goes on. So
        // does a server's DISCONNECT's reason code, before its Reason
        // String or Server Reference.
        #[cfg(feature = "v5")]
        if v5 {
            let head_len = match header.packet_type {
                PacketType::PubAck
                | PacketType::PubRec
                | PacketType::PubRel
                | PacketType::PubComp => 3,
                PacketType::Disconnect => 1,
                _ => 0,
            };
            if head_len > 0 && h + head_len <= capacity {
                let Some(head) = avail.get(h..h + head_len) else {
                    return Ok(Next::Incomplete);
                };
                let packet = v5::ack_head(header.packet_type.into(), head)?;
                let here = avail.len().min(len);
                // More than the head and a Property Length of 0.
                let properties = header.remaining_len as usize > head_len + 1;
                return Ok(Next::Trimmed(Any::V5(packet), len, here, properties));
            }
        }
        // A SUBACK's codes (and an MQTT 5 UNSUBACK's) come at its end,
        // after MQTT 5's properties: they are read once what comes before
        // them has passed, if they fit.
        let listed = match header.packet_type {
            PacketType::SubAck => true,
            PacketType::UnsubAck => v5,
            _ => false,
        };
        if listed && h + 2 <= capacity {
            let at = match v5 {
                #[cfg(feature = "v5")]
                true => match v5::payload_start(avail, h + 2) {
                    Some(Ok(at)) if at > len => return Err(Malformed::PropertyLength),
                    Some(Ok(at)) => Some(at),
                    Some(Err(m)) => return Err(m),
                    // Its Property Length runs past a full buffer: skipped.
                    None if avail.len() >= capacity => None,
                    None => return Ok(Next::Incomplete),
                },
                _ => Some(h + 2),
            };
            if let Some(at) = at.filter(|&at| len - at <= capacity) {
                let packet_id = match avail.get(h..h + 2) {
                    Some(&[hi, lo]) => [hi, lo],
                    _ => return Ok(Next::Incomplete),
                };
                return Ok(Next::Codes {
                    packet_type: header.packet_type,
                    packet_id,
                    len,
                    at,
                    here: avail.len().min(len),
                    // An empty list is its Property Length alone.
                    properties: at > h + 3,
                });
            }
        }
        (QoS::AtMostOnce, None, None, None)
    };
    Ok(Next::Dropped {
        len,
        here: avail.len().min(len),
        packet_type: header.packet_type,
        qos,
        dup: codec::publish_dup(header.flags),
        topic,
        packet_id,
        retain: codec::publish_retain(header.flags),
        // At least one payload byte must fit beside the header, or the
        // stream could never move.
        payload_at: payload_at.filter(|&at| at < capacity),
        topic_at: h + 2,
        id_at,
        #[cfg(feature = "v5")]
        alias,
    })
}

// Its packets are 3.1.1's.
#[cfg(all(test, feature = "v3"))]
#[path = "rx_tests.rs"]
mod tests;
