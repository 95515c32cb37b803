//! CONNECT and CONNACK ([MQTT 5.0 §3.1, §3.2]).
//!
//! [MQTT 5.0 §3.1, §3.2]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901033

use super::properties::Context;
use super::{PacketType, Parsed, Properties, ReasonCode, byte, end, shared, two, write_packet};
use crate::codec::publish::check_name;
use crate::codec::{EncodeError, Malformed, QoS, packet_len, prefixed_len, string};

/// The protocol version of MQTT 5 (§3.1.2.2). The protocol name is
/// "MQTT", as in 3.1.1 ([`PROTOCOL_NAME`](crate::codec::PROTOCOL_NAME)).
pub const PROTOCOL_VERSION: u8 = 5;

mod flag {
    pub const USERNAME: u8 = 0x80;
    pub const PASSWORD: u8 = 0x40;
    pub const WILL_RETAIN: u8 = 0x20;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_QOS_MASK: u8 = 0b11;
    pub const WILL: u8 = 0x04;
    pub const CLEAN_START: u8 = 0x02;
    pub const RESERVED: u8 = 0x01;
}

/// The protocol name, version, flags and keep-alive: 6 + 1 + 1 + 2 bytes.
const FIXED_PART_LEN: usize = 10;

/// The will message (§3.1.2.5, §3.1.3.2): published by the server when
/// the client goes without a normal DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Will<'a> {
    /// The will properties: Will Delay Interval, Payload Format Indicator,
    /// Message Expiry Interval, Content Type, Response Topic, Correlation
    /// Data and User Properties.
    pub properties: Properties<'a>,
    /// Where the will is published; a valid topic name.
    pub topic: &'a str,
    /// The will payload, at most 65,535 bytes.
    pub payload: &'a [u8],
    /// The QoS it is published with.
    pub qos: QoS,
    /// Whether it is published retained.
    pub retain: bool,
}

/// CONNECT: the first packet a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect<'a> {
    /// Start a new session, discarding any stored one (§3.1.2.4).
    pub clean_start: bool,
    /// Seconds between control packets before the server may give up on
    /// the client; 0 turns keep-alive off (§3.1.2.10).
    pub keep_alive: u16,
    /// The CONNECT properties (§3.1.2.11).
    pub properties: Properties<'a>,
    /// The client identifier; may be empty, for the server to assign one.
    pub client_id: &'a str,
    /// The will, if any.
    pub will: Option<Will<'a>>,
    /// The user name, if any.
    pub username: Option<&'a str>,
    /// The password, if any; MQTT 5 allows one without a user name.
    pub password: Option<&'a [u8]>,
}

impl<'a> Connect<'a> {
    /// A CONNECT with this client id: clean start, keep-alive 60 s, no
    /// properties, no will, no credentials.
    pub const fn new(client_id: &'a str) -> Self {
        Self {
            clean_start: true,
            keep_alive: 60,
            properties: Properties::EMPTY,
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }

    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let (rest, name) = shared(string::utf8(body))?;
        if name != crate::codec::PROTOCOL_NAME {
            return Err(Malformed::ProtocolName);
        }
        let (rest, version) = byte(rest)?;
        if version != PROTOCOL_VERSION {
            return Err(Malformed::ProtocolVersion);
        }
        let (rest, flags) = byte(rest)?;
        let (rest, keep_alive) = two(rest)?;
        let will_qos = (flags >> flag::WILL_QOS_SHIFT) & flag::WILL_QOS_MASK;
        let has_will = flags & flag::WILL != 0;
        // MQTT-3.1.2-3 (reserved bit), MQTT-3.1.2-11 and -13 (will QoS and
        // retain without a will). A password alone is allowed in MQTT 5.
        if flags & flag::RESERVED != 0
            || (!has_will && (will_qos != 0 || flags & flag::WILL_RETAIN != 0))
        {
            return Err(Malformed::ConnectFlags);
        }
        let (rest, properties) = Properties::parse(rest, Context::Connect)?;
        let (mut rest, client_id) = shared(string::utf8(rest))?;
        let mut will = None;
        if has_will {
            let Some(qos) = QoS::from_bits(will_qos) else {
                return Err(Malformed::QoS);
            };
            let (after, parsed) = parse_will(rest, qos, flags & flag::WILL_RETAIN != 0)?;
            rest = after;
            will = Some(parsed);
        }
        let mut username = None;
        if flags & flag::USERNAME != 0 {
            let (after, name) = shared(string::utf8(rest))?;
            rest = after;
            username = Some(name);
        }
        let mut password = None;
        if flags & flag::PASSWORD != 0 {
            let (after, secret) = shared(string::binary(rest))?;
            rest = after;
            password = Some(secret);
        }
        end(
            rest,
            Self {
                clean_start: flags & flag::CLEAN_START != 0,
                keep_alive,
                properties,
                client_id,
                will,
                username,
                password,
            },
        )
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        flags
    }

    fn remaining_len(&self) -> usize {
        let mut len = FIXED_PART_LEN + self.properties.field_len();
        len += prefixed_len(self.client_id.len());
        if let Some(will) = &self.will {
            len += will.properties.field_len()
                + prefixed_len(will.topic.len())
                + prefixed_len(will.payload.len());
        }
        len += self.username.map_or(0, |u| prefixed_len(u.len()));
        len + self.password.map_or(0, |p| prefixed_len(p.len()))
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        packet_len(self.remaining_len())
    }

    /// Checks what §3.1 requires of an outgoing CONNECT, properties
    /// included.
    pub fn validate(&self) -> Result<(), EncodeError> {
        self.properties.check(Context::Connect)?;
        string::check(self.client_id)?;
        if let Some(will) = &self.will {
            will.properties.check(Context::Will)?;
            will.properties.check_payload(will.payload)?;
            check_name(will.topic)?;
            check_binary(will.payload)?;
        }
        if let Some(name) = self.username {
            string::check(name)?;
        }
        if let Some(secret) = self.password {
            check_binary(secret)?;
        }
        Ok(())
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing
    /// on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let first = PacketType::Connect.first_byte(0);
        write_packet(buf, first, self.remaining_len(), |w| {
            w.prefixed(crate::codec::PROTOCOL_NAME.as_bytes());
            w.u8(PROTOCOL_VERSION);
            w.u8(self.flags());
            w.u16(self.keep_alive);
            self.properties.write(w);
            w.prefixed(self.client_id.as_bytes());
            if let Some(will) = &self.will {
                will.properties.write(w);
                w.prefixed(will.topic.as_bytes());
                w.prefixed(will.payload);
            }
            if let Some(name) = self.username {
                w.prefixed(name.as_bytes());
            }
            if let Some(secret) = self.password {
                w.prefixed(secret);
            }
        })
    }
}

/// The will's properties, topic and payload (§3.1.3.2 to §3.1.3.4).
fn parse_will(input: &[u8], qos: QoS, retain: bool) -> Parsed<'_, Will<'_>> {
    let (rest, properties) = Properties::parse(input, Context::Will)?;
    // Not `string::topic_name`: as in the 3.1.1 CONNECT, its inlined fast
    // path is not worth its flash for a field a client never parses.
    let (rest, topic) = shared(string::utf8(rest))?;
    if let Err(e) = crate::topic::validate_name(topic) {
        return Err(Malformed::TopicName(e));
    }
    let (rest, payload) = shared(string::binary(rest))?;
    Ok((
        rest,
        Will {
            properties,
            topic,
            payload,
            qos,
            retain,
        },
    ))
}

/// A binary field must fit its two-byte length.
pub(crate) fn check_binary(bytes: &[u8]) -> Result<(), EncodeError> {
    if bytes.len() > usize::from(u16::MAX) {
        Err(EncodeError::StringTooLong)
    } else {
        Ok(())
    }
}

const SESSION_PRESENT: u8 = 0x01;

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnAck<'a> {
    /// Whether the server resumed a stored session (§3.2.2.1.1). Always
    /// false when the connection is refused.
    pub session_present: bool,
    /// 0x00 when the connection is accepted, otherwise why not.
    pub reason_code: ReasonCode,
    /// The CONNACK properties: the server's limits and assignments
    /// (§3.2.2.3).
    pub properties: Properties<'a>,
}

impl<'a> ConnAck<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let (rest, flags) = byte(body)?;
        let (rest, code) = byte(rest)?;
        if flags & !SESSION_PRESENT != 0 {
            return Err(Malformed::ConnAckFlags);
        }
        let reason_code = ReasonCode::parse(code, PacketType::ConnAck)?;
        let session_present = flags & SESSION_PRESENT != 0;
        // MQTT-3.2.2-6: a refusal never has a session.
        if session_present && reason_code != ReasonCode::Success {
            return Err(Malformed::SessionPresent);
        }
        let (rest, properties) = Properties::parse(rest, Context::ConnAck)?;
        end(
            rest,
            Self {
                session_present,
                reason_code,
                properties,
            },
        )
    }

    fn remaining_len(&self) -> usize {
        2 + self.properties.field_len()
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        packet_len(self.remaining_len())
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing
    /// on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.reason_code.check(PacketType::ConnAck)?;
        if self.session_present && self.reason_code != ReasonCode::Success {
            return Err(EncodeError::SessionPresent);
        }
        self.properties.check(Context::ConnAck)?;
        let first = PacketType::ConnAck.first_byte(0);
        write_packet(buf, first, self.remaining_len(), |w| {
            w.u8(u8::from(self.session_present));
            w.u8(self.reason_code.to_u8());
            self.properties.write(w);
        })
    }
}
