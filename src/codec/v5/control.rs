//! DISCONNECT and AUTH ([MQTT 5.0 §3.14, §3.15]): a reason code and
//! properties, both optional on the wire.
//!
//! [MQTT 5.0 §3.14, §3.15]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901205

use super::properties::Context;
use super::{PacketType, Properties, ReasonCode, byte, write_packet};
use crate::codec::{EncodeError, Malformed, packet_len};

/// The body of a DISCONNECT or AUTH: empty means reason 0x00 and no
/// properties; one byte, a reason without properties (the property
/// length is then 0, §3.14.2.2.1, §3.15.2.2.1).
fn parse_body(
    body: &[u8],
    packet_type: PacketType,
    context: Context,
) -> Result<(ReasonCode, Properties<'_>), Malformed> {
    if body.is_empty() {
        return Ok((ReasonCode::Success, Properties::EMPTY));
    }
    let (rest, code) = byte(body)?;
    let reason_code = ReasonCode::parse(code, packet_type)?;
    if rest.is_empty() {
        return Ok((reason_code, Properties::EMPTY));
    }
    let (rest, properties) = Properties::parse(rest, context)?;
    super::end(rest, (reason_code, properties))
}

/// The remaining length in the shortest form.
fn remaining_len(reason_code: ReasonCode, properties: &Properties<'_>) -> usize {
    match (reason_code, properties.is_empty()) {
        (ReasonCode::Success, true) => 0,
        (_, true) => 1,
        (_, false) => 1 + properties.field_len(),
    }
}

/// Whether an AUTH of this reason and these properties lacks its
/// Authentication Method, a Protocol Error (§3.15.2.2.2) in all but the
/// short form (§3.15.2.1: reason 0x00, no properties).
fn auth_without_method(reason_code: ReasonCode, properties: &Properties<'_>) -> bool {
    !(reason_code == ReasonCode::Success && properties.is_empty())
        && properties.authentication_method().is_none()
}

macro_rules! reason_packet {
    ($(#[$doc:meta])* $name:ident, $props:literal, $needs_method:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// The reason; 0x00 in the short form.
            pub reason_code: ReasonCode,
            #[doc = $props]
            pub properties: Properties<'a>,
        }

        impl<'a> $name<'a> {
            /// Reason 0x00 without properties: the 2-byte short form.
            pub const fn new() -> Self {
                Self {
                    reason_code: ReasonCode::Success,
                    properties: Properties::EMPTY,
                }
            }

            pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
                let (reason_code, properties) =
                    parse_body(body, PacketType::$name, Context::$name)?;
                if $needs_method && auth_without_method(reason_code, &properties) {
                    return Err(Malformed::AuthenticationMethod);
                }
                Ok(Self {
                    reason_code,
                    properties,
                })
            }

            /// The encoded length: the shortest form the fields allow.
            pub fn encoded_len(&self) -> usize {
                packet_len(remaining_len(self.reason_code, &self.properties))
            }

            /// Encodes the packet into `buf` in its shortest form,
            /// returning its length. Writes nothing on error.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
                self.reason_code.check(PacketType::$name)?;
                self.properties.check(Context::$name)?;
                if $needs_method && auth_without_method(self.reason_code, &self.properties) {
                    return Err(EncodeError::AuthenticationMethod);
                }
                let remaining = remaining_len(self.reason_code, &self.properties);
                write_packet(buf, PacketType::$name.first_byte(0), remaining, |w| {
                    if remaining > 0 {
                        w.u8(self.reason_code.to_u8());
                    }
                    if remaining > 1 {
                        self.properties.write(w);
                    }
                })
            }
        }
    };
}

reason_packet!(
    /// DISCONNECT: the last packet either side sends on a connection (§3.14).
    Disconnect,
    "Session Expiry Interval (from the client), Server Reference (from the server), Reason String and User Properties.",
    false
);
reason_packet!(
    /// AUTH: a step of extended authentication (§3.15).
    Auth,
    "Authentication Method and Data, Reason String and User Properties. The method must be there, but in the short form (reason 0x00 and no properties, §3.15.2.1).",
    true
);

impl Disconnect<'_> {
    /// What [`encode`](Self::encode) would refuse, without encoding.
    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        self.reason_code.check(PacketType::Disconnect)?;
        self.properties.check(Context::Disconnect).map(drop)
    }

    /// A DISCONNECT with `reason_code` and no properties, in its shortest
    /// form (§3.14.2.2.1: no property length when there are none): what a
    /// client sends before closing when the server broke the protocol
    /// (§4.13.1). The code must be one a DISCONNECT may carry.
    pub(crate) const fn with_reason(reason_code: ReasonCode) -> [u8; 3] {
        [PacketType::Disconnect.first_byte(0), 1, reason_code.to_u8()]
    }
}
