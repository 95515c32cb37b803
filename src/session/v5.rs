//! MQTT 5 in the session: the limits the CONNECT advertised and the
//! CONNACK granted, both enforced, and the packets whose handling differs
//! from MQTT 3.1.1 (reason codes, server DISCONNECT, AUTH, Topic Alias).
//!
//! Everything else is shared: a v5 PUBACK of reason 0x00 is the same four
//! bytes as a 3.1.1 PUBACK, a PUBLISH keeps its DUP bit in the same place,
//! and the window, the store and the resends work on either encoding.

use super::*;
use crate::codec::EncodeError;
use crate::codec::v5::{self, Properties, Property, ReasonCode};
use crate::error::Unsupported;

/// What the broker's CONNACK allows on this connection (MQTT 5), from
/// [`Session::limits`]. The session holds itself to it: a request it
/// breaks is refused before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Receive Maximum: QoS 1/2 messages in flight at once. The window is
    /// the smaller of this and `INFLIGHT`.
    pub receive_maximum: u16,
    /// Maximum Packet Size: no larger packet is sent
    /// ([`ResourceError::PacketTooLarge`]).
    pub maximum_packet_size: u32,
    /// Topic Alias Maximum: how many aliases the broker accepts.
    pub topic_alias_maximum: u16,
    /// Maximum QoS of our PUBLISHes.
    pub maximum_qos: QoS,
    /// Retain Available.
    pub retain_available: bool,
    /// Wildcard Subscription Available.
    pub wildcard_subscription_available: bool,
    /// Subscription Identifier Available.
    pub subscription_identifier_available: bool,
    /// Shared Subscription Available.
    pub shared_subscription_available: bool,
}

impl Limits {
    /// Nothing limited: MQTT 3.1.1, and an MQTT 5 CONNACK with none of
    /// these properties.
    pub const NONE: Self = Self {
        receive_maximum: u16::MAX,
        maximum_packet_size: u32::MAX,
        topic_alias_maximum: 0,
        maximum_qos: QoS::ExactlyOnce,
        retain_available: true,
        wildcard_subscription_available: true,
        subscription_identifier_available: true,
        shared_subscription_available: true,
    };

    /// The limits a CONNACK's properties set, its Server Keep Alive and
    /// its Session Expiry Interval.
    // One pass over the list: a getter per property would be a loop each,
    // kilobytes of firmware.
    fn from_connack(p: &Properties<'_>) -> (Self, Option<u16>, Option<u32>) {
        let mut limits = Self::NONE;
        let mut keep_alive = None;
        let mut expiry = None;
        for property in p.iter() {
            match property {
                Property::ReceiveMaximum(v) => limits.receive_maximum = v,
                Property::MaximumPacketSize(v) => limits.maximum_packet_size = v,
                Property::TopicAliasMaximum(v) => limits.topic_alias_maximum = v,
                Property::MaximumQoS(v) => {
                    limits.maximum_qos = QoS::from_bits(v).unwrap_or(QoS::ExactlyOnce);
                }
                Property::RetainAvailable(v) => limits.retain_available = v != 0,
                Property::WildcardSubscriptionAvailable(v) => {
                    limits.wildcard_subscription_available = v != 0;
                }
                Property::SubscriptionIdentifierAvailable(v) => {
                    limits.subscription_identifier_available = v != 0;
                }
                Property::SharedSubscriptionAvailable(v) => {
                    limits.shared_subscription_available = v != 0;
                }
                Property::ServerKeepAlive(v) => keep_alive = Some(v),
                Property::SessionExpiryInterval(v) => expiry = Some(v),
                _ => {}
            }
        }
        (limits, keep_alive, expiry)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::NONE
    }
}

/// Enhanced authentication (MQTT 5 §4.12) on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthState {
    /// The CONNECT named no Authentication Method: no AUTH may come.
    Off,
    /// It did: the broker may send AUTH to continue.
    On,
    /// We sent AUTH to re-authenticate; its answer is due.
    Reauthenticating,
}

/// What our CONNECT advertised, and the broker is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Advertised {
    pub(crate) receive_maximum: u16,
    pub(crate) maximum_packet_size: u32,
    /// The CONNECT named an Authentication Method: its [`method_id`],
    /// which the broker's AUTH packets and CONNACK must name too
    /// (MQTT-4.12.0-5).
    pub(crate) authentication: Option<u32>,
    /// Topic Alias Maximum: the aliases the broker may set.
    pub(crate) topic_alias_maximum: u16,
    /// Request Problem Information: without it (0), a Reason String or a
    /// User Property may come only on PUBLISH, CONNACK and DISCONNECT
    /// (MQTT-3.1.2-29).
    pub(crate) problem_information: bool,
    /// Session Expiry Interval, in seconds (absent: 0).
    pub(crate) session_expiry: u32,
}

impl Advertised {
    pub(crate) const NONE: Self = Self {
        receive_maximum: u16::MAX,
        maximum_packet_size: u32::MAX,
        authentication: None,
        topic_alias_maximum: 0,
        problem_information: true,
        session_expiry: 0,
    };

    /// Whether `properties` name the CONNECT's Authentication Method, or
    /// none when it had none (MQTT-4.12.0-5, MQTT-4.12.0-6).
    fn same_method(&self, properties: &Properties<'_>) -> bool {
        properties.authentication_method().map(method_id) == self.authentication
    }
}

/// An Authentication Method, as the session remembers it: FNV-1a of its
/// bytes, so the CONNECT's can be compared with the broker's without
/// keeping the string. (A broker naming another method that collides is
/// not caught; it is not worth a copy of the method.)
fn method_id(method: &str) -> u32 {
    const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
    const FNV_PRIME: u32 = 0x0100_0193;
    method.bytes().fold(FNV_OFFSET_BASIS, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// What an incoming PUBLISH does with its Topic Alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasUse {
    /// It has none (or its topic is already the one to use).
    None,
    /// It sets alias `.0` to its topic.
    Set(u16),
    /// Its alias stands for a topic the session could not keep: the
    /// message cannot be delivered (it is skipped and acknowledged).
    Unknown,
}

/// Whether `connect` may be sent by a session that tracks `inflight`
/// incoming QoS 2 messages and `subs` topic aliases each way, and what it
/// advertises. The client checks this before opening a transport too.
pub(crate) fn check_connect_v5(
    connect: &v5::Connect<'_>,
    inflight: usize,
    subs: usize,
) -> Result<Advertised> {
    connect.validate()?;
    let mut advertised = Advertised::NONE;
    for property in connect.properties.iter() {
        match property {
            // More aliases than the session keeps could not be resolved.
            Property::TopicAliasMaximum(max) if usize::from(max) > subs => {
                return Err(unsupported(Unsupported::TopicAlias));
            }
            Property::TopicAliasMaximum(max) => advertised.topic_alias_maximum = max,
            // More than the incoming QoS 2 set holds could not be held to.
            Property::ReceiveMaximum(v) if usize::from(v) > inflight => {
                return Err(unsupported(Unsupported::ReceiveMaximum));
            }
            Property::ReceiveMaximum(v) => advertised.receive_maximum = v,
            Property::MaximumPacketSize(v) => advertised.maximum_packet_size = v,
            Property::AuthenticationMethod(m) => advertised.authentication = Some(method_id(m)),
            Property::RequestProblemInformation(v) => advertised.problem_information = v != 0,
            Property::SessionExpiryInterval(v) => advertised.session_expiry = v,
            _ => {}
        }
    }
    Ok(advertised)
}

fn unsupported(what: Unsupported) -> SessionError {
    SessionError::Usage(UsageError::Unsupported(what))
}

/// The 3.1.1 type of a v5 packet type, for [`Closed::Protocol`]; AUTH
/// has none and is reported as a [`Closed::Violation`] instead.
fn v3_type(t: v5::PacketType) -> PacketType {
    t.to_v3().unwrap_or(PacketType::Disconnect)
}

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// The DISCONNECT to send before closing because the broker broke the
    /// protocol, on an MQTT 5 connection it had accepted: its reason code
    /// says why (§4.13.1: a malformed packet 0x81, a protocol error 0x82,
    /// or the limit broken; [`ReasonCode::for_malformed`] sorts the
    /// decoder's faults). Nothing on MQTT 3.1.1, whose DISCONNECT would
    /// tell the broker to drop the will, nor before CONNACK.
    pub(crate) fn goodbye(&self, reason: Closed) -> Option<[u8; 3]> {
        if self.version != Version::V5 || self.state != State::Connected {
            return None;
        }
        let code = match reason {
            Closed::Malformed(fault) => ReasonCode::for_malformed(fault),
            Closed::Protocol(_) => ReasonCode::ProtocolError,
            Closed::Violation(code) => code,
            _ => return None,
        };
        let bytes = v5::Disconnect::with_reason(code);
        // Within the broker's Maximum Packet Size (MQTT-3.2.2-15), or none.
        self.check_packet_len(bytes.len()).ok()?;
        Some(bytes)
    }

    /// Starts an MQTT 5 connection with `connect`.
    pub(crate) fn connect_v5(&mut self, now: Instant, connect: &v5::Connect<'_>) -> Result<()> {
        if self.state != State::Disconnected {
            return Err(SessionError::Usage(UsageError::AlreadyConnected));
        }
        let advertised = check_connect_v5(connect, INFLIGHT, SUBS)?;
        self.start_connect(
            now,
            Encode::Connect5(connect),
            connect.keep_alive,
            connect.clean_start,
            advertised.session_expiry == 0,
        )?;
        self.version = Version::V5;
        self.auth = match advertised.authentication {
            Some(_) => AuthState::On,
            None => AuthState::Off,
        };
        self.advertised = advertised;
        self.limits = Limits::NONE;
        self.auth_turn = false;
        Ok(())
    }

    /// Handles one MQTT 5 packet from the broker. An `Err` ends the
    /// connection.
    #[inline(never)]
    pub(crate) fn handle_v5(
        &mut self,
        now: Instant,
        packet: v5::Packet<'_>,
        qos1_unacked: usize,
    ) -> Result<Handled, Closed> {
        use v5::Packet as P;
        self.collect();
        if !self.advertised.problem_information {
            self.check_no_problem_information(&packet)?;
        }
        match (self.state, packet) {
            (State::Connecting, P::ConnAck(ack)) => {
                self.on_connack_v5(now, ack).map(Handled::Connected)
            }
            (State::Connected, P::Publish(publish)) => {
                let alias = self.check_incoming(&publish, qos1_unacked)?;
                if let AliasUse::Set(a) = alias {
                    let keep = self.alias_room(publish.topic.len());
                    self.store.set_in_alias(a, publish.topic.as_bytes(), keep);
                }
                match self.on_publish(publish.qos, publish.packet_id, publish.dup) {
                    Handled::Message if alias == AliasUse::Unknown => Ok(Handled::Unresolved),
                    handled => Ok(handled),
                }
            }
            (State::Connected, P::PubAck(ack)) => {
                Ok(self.on_complete(ack.packet_id, Stage::AwaitPubAck))
            }
            (State::Connected, P::PubRec(rec)) if rec.reason_code.is_error() => {
                // Refused: no PUBREL, the id is free (MQTT 5 §4.3.3).
                Ok(self.on_complete(rec.packet_id, Stage::AwaitPubRec))
            }
            (State::Connected, P::PubRec(rec)) => {
                self.on_pubrec(now, rec.packet_id);
                Ok(Handled::Nothing)
            }
            (State::Connected, P::PubComp(comp)) => {
                Ok(self.on_complete(comp.packet_id, Stage::AwaitPubComp))
            }
            (State::Connected, P::PubRel(rel)) => {
                self.on_pubrel(rel.packet_id);
                Ok(Handled::Nothing)
            }
            (State::Connected, P::SubAck(ack)) => self.on_suback(SubAck {
                packet_id: ack.packet_id,
                return_codes: codec::ReturnCodes::new(ack.reason_codes.wire().unwrap_or(&[])),
            }),
            (State::Connected, P::UnsubAck(ack)) => self.on_unsuback_v5(ack),
            (State::Connected, P::PingResp) => {
                self.pingresp_deadline = None;
                Ok(Handled::Pong)
            }
            // Only after a CONNACK that accepted (MQTT-3.14.0-1): before
            // it, a DISCONNECT is a protocol error (the catch-all below).
            (State::Connected, P::Disconnect(d)) => {
                // Logged first: a violation below loses it otherwise.
                if let Some(_why) = d.properties.reason_string() {
                    crate::fmt::warning!("broker disconnected: {}", _why);
                }
                // A server's DISCONNECT carries no Session Expiry Interval
                // (MQTT-3.14.2-2), nor 0x04, the client's code for "publish
                // my will" (§3.14.2.1).
                if d.properties.session_expiry_interval().is_some()
                    || d.reason_code == ReasonCode::DisconnectWithWillMessage
                {
                    return Err(Closed::Violation(ReasonCode::ProtocolError));
                }
                // Over now; the event that says so carries the packet.
                self.connection_lost();
                Ok(Handled::Disconnected)
            }
            (State::Connecting | State::Connected, P::Auth(a)) => self.on_auth(a),
            (_, other) => Err(Closed::Protocol(v3_type(other.packet_type()))),
        }
    }

    /// MQTT-3.1.2-29 for an acknowledgement too large to buffer, handled
    /// without its properties (`properties`: it had some): an
    /// acknowledgement's can only be a Reason String and User Properties.
    pub(crate) fn check_trimmed(&self, properties: bool) -> Result<(), Closed> {
        if properties && !self.advertised.problem_information {
            return Err(Closed::Violation(ReasonCode::ProtocolError));
        }
        Ok(())
    }

    /// MQTT-3.1.2-29: with Request Problem Information 0 in our CONNECT,
    /// a Reason String or User Property on anything but PUBLISH, CONNACK
    /// or DISCONNECT is a Protocol Error.
    // Not inlined: the rare case, kept out of `handle_v5`.
    #[inline(never)]
    fn check_no_problem_information(&self, packet: &v5::Packet<'_>) -> Result<(), Closed> {
        use v5::Packet as P;
        let properties = match packet {
            P::PubAck(a) => a.properties,
            P::PubRec(a) => a.properties,
            P::PubRel(a) => a.properties,
            P::PubComp(a) => a.properties,
            P::SubAck(a) => a.properties,
            P::UnsubAck(a) => a.properties,
            P::Auth(a) => a.properties,
            _ => return Ok(()),
        };
        let problem =
            |p: Property<'_>| matches!(p, Property::ReasonString(_) | Property::UserProperty(..));
        if properties.iter().any(problem) {
            return Err(Closed::Violation(ReasonCode::ProtocolError));
        }
        Ok(())
    }

    /// An AUTH from the broker: the next step of the exchange, for the
    /// application to answer ([`Session::auth`]), or the end of a
    /// re-authentication. Without an Authentication Method in our
    /// CONNECT none may come (MQTT-4.12.0-6); Re-authenticate is ours to
    /// send; Success ends only a re-authentication (the first exchange
    /// ends with CONNACK).
    ///
    /// Every AUTH names the CONNECT's Authentication Method
    /// (MQTT-4.12.0-5), and once connected the broker's AUTH only answers
    /// a re-authentication of ours.
    /// Whether the broker may send an AUTH now: enhanced authentication
    /// was asked for, and the connection is being made or re-authenticated.
    pub(crate) fn auth_expected(&self) -> bool {
        !matches!(
            (self.auth, self.state),
            (AuthState::Off, _) | (AuthState::On, State::Connected)
        )
    }

    fn on_auth(&mut self, auth: v5::Auth<'_>) -> Result<Handled, Closed> {
        let violation = Err(Closed::Violation(ReasonCode::ProtocolError));
        if !self.advertised.same_method(&auth.properties) {
            return violation;
        }
        // Answered: the next step, if any, is the application's.
        self.auth_deadline = None;
        match (self.auth, self.state, auth.reason_code) {
            (AuthState::Off, ..) => violation,
            (AuthState::On, State::Connected, _) => violation,
            (_, _, ReasonCode::ContinueAuthentication) => {
                self.auth_turn = true;
                Ok(Handled::Auth)
            }
            (AuthState::Reauthenticating, State::Connected, ReasonCode::Success) => {
                // The exchange is over, answered or not.
                self.auth = AuthState::On;
                self.auth_turn = false;
                Ok(Handled::Auth)
            }
            _ => violation,
        }
    }

    /// Queues an AUTH of ours: the answer to the broker's, or the start
    /// of a re-authentication (reason Re-authenticate, connected).
    pub(crate) fn auth(&mut self, now: Instant, auth: &v5::Auth<'_>) -> Result<()> {
        if self.auth == AuthState::Off {
            return Err(unsupported(Unsupported::Authentication));
        }
        let reauthenticate = auth.reason_code == ReasonCode::ReAuthenticate;
        // Continue only answers the broker's Continue, and nothing else
        // may go until it is answered (MQTT-4.12.0-3); Re-authenticate
        // starts an exchange on a connection that is up.
        let allowed = match auth.reason_code {
            ReasonCode::ContinueAuthentication => {
                self.auth_turn && self.state != State::Disconnected
            }
            _ => reauthenticate && self.state == State::Connected && !self.auth_turn,
        };
        if !allowed {
            return Err(SessionError::Usage(UsageError::NotConnected));
        }
        // Every AUTH names the CONNECT's method (MQTT-4.12.0-5,
        // MQTT-4.12.1-1).
        if !self.advertised.same_method(&auth.properties) {
            return Err(SessionError::Usage(UsageError::Encode(
                crate::codec::EncodeError::PropertyValue(v5::AUTHENTICATION_METHOD),
            )));
        }
        let packet = Encode::Auth5(auth);
        self.check_packet_len(packet.encoded_len())?;
        if !self.store.tx_has_room(packet.encoded_len()) {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall {
                    needed: packet.encoded_len(),
                },
            ));
        }
        self.store.tx_push(packet)?;
        self.auth_turn = false;
        if reauthenticate {
            self.auth = AuthState::Reauthenticating;
        }
        if self.state == State::Connected {
            // Connecting, the CONNACK's deadline bounds the exchange.
            self.auth_deadline = Some(now + self.timeouts.connack);
        }
        Ok(())
    }

    /// Whether `disconnect` may be sent: a code and properties a client
    /// may send, within the broker's Maximum Packet Size, and no Session
    /// Expiry Interval that revives a session that ends with its
    /// connection.
    pub(crate) fn check_disconnect(&self, disconnect: &v5::Disconnect<'_>) -> Result<()> {
        if self.state == State::Disconnected {
            return Err(SessionError::Usage(UsageError::NotConnected));
        }
        if self.version != Version::V5 {
            return Err(unsupported(Unsupported::Mqtt5Only));
        }
        let refuse = |e| Err(SessionError::Usage(UsageError::Encode(e)));
        // What the encoder refuses (properties a DISCONNECT may not carry,
        // twice, too long), before what a client may not send.
        if let Err(e) = disconnect.check() {
            return refuse(e);
        }
        let code = disconnect.reason_code;
        if !code.client_disconnect() {
            return refuse(EncodeError::ReasonCode(code.to_u8()));
        }
        let properties = &disconnect.properties;
        // The server's, to send a client elsewhere (§3.14.2.2.5).
        if properties.server_reference().is_some() {
            return refuse(EncodeError::PropertyNotAllowed(v5::SERVER_REFERENCE));
        }
        // MQTT-3.14.2-2: with a Session Expiry Interval of 0 in the
        // CONNECT (`ephemeral_next` keeps it; a CONNACK's value does not
        // count), none other may come at the last moment.
        if properties
            .session_expiry_interval()
            .is_some_and(|secs| secs != 0)
            && self.ephemeral_next
        {
            return refuse(EncodeError::PropertyValue(v5::SESSION_EXPIRY_INTERVAL));
        }
        let len = Encode::Disconnect5(disconnect).encoded_len();
        self.check_packet_len(len)?;
        if len > self.store.tx_capacity() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { needed: len },
            ));
        }
        Ok(())
    }

    /// Queues an MQTT 5 DISCONNECT with its reason code and properties.
    pub(crate) fn disconnect_v5(&mut self, disconnect: &v5::Disconnect<'_>) -> Result<()> {
        self.check_disconnect(disconnect)?;
        let packet = Encode::Disconnect5(disconnect);
        // Behind a streamed payload, which is asked for only while
        // connected, it could never be written (as `disconnect`).
        if !self.store.tx_has_room(packet.encoded_len()) || self.payload.is_some() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall {
                    needed: packet.encoded_len(),
                },
            ));
        }
        self.store.tx_push(packet)?;
        // Its Session Expiry Interval is the session's now: 0 ends it with
        // this connection (the next CONNECT starts a new one, §3.1.2.11.2),
        // another keeps it, even where the CONNACK had said 0.
        if let Some(secs) = disconnect.properties.session_expiry_interval() {
            self.ephemeral = secs == 0;
        }
        self.disconnected();
        Ok(())
    }

    fn on_connack_v5(
        &mut self,
        now: Instant,
        ack: v5::ConnAck<'_>,
    ) -> Result<Connected<'static>, Closed> {
        if ack.reason_code.is_error() {
            self.connack_deadline = None;
            return Err(Closed::RefusedV5(ack.reason_code));
        }
        // Accepted: the broker holds the connection open, so a rule it
        // breaks in the CONNACK gets DISCONNECT with its reason code
        // (§4.13.1), as on any connection (`goodbye`).
        self.state = State::Connected;
        // And the authentication exchange is over, answered or not.
        self.auth_turn = false;
        // The CONNECT's Authentication Method, or none if it had none
        // (MQTT-4.12.0-5, MQTT-4.12.0-6).
        if !self.advertised.same_method(&ack.properties) {
            return Err(Closed::Violation(ReasonCode::ProtocolError));
        }
        let (limits, keep_alive, expiry) = Limits::from_connack(&ack.properties);
        self.limits = limits;
        if let Some(secs) = keep_alive {
            // The broker's value replaces ours (MQTT-3.2.2-21).
            self.keep_alive = Duration::from_secs(u64::from(secs));
        }
        // `ephemeral` is still the last session's: `on_connack` moves it on.
        if ack.session_present && self.ephemeral {
            // MQTT-3.2.2-4: our last session ended with its connection
            // (Session Expiry 0), so there is none the broker could have
            // kept for us.
            return Err(Closed::Protocol(PacketType::ConnAck));
        }
        if !ack.session_present && !self.clean_session {
            // We kept a session the broker does not have: discard ours
            // (MQTT-3.2.2-5), each message reported as discarded.
            self.store.discard_inflight();
        }
        // A PUBLISH this broker forbids can never be resent: too large
        // (MQTT-3.1.2-25), above its Maximum QoS (MQTT-3.2.2-11) or
        // retained where it has no retain (MQTT-3.2.2-14). It is
        // discarded, and reported so. (A PUBREL is resent whatever the
        // limits: its PUBLISH went out under the old ones.)
        let max = usize::try_from(self.limits.maximum_packet_size).unwrap_or(usize::MAX);
        let Limits {
            maximum_qos,
            retain_available,
            ..
        } = self.limits;
        for i in 0..self.store.outgoing.len() {
            let e = self.store.outgoing[i];
            if !e.is_live() || e.stage == Stage::AwaitPubComp {
                continue;
            }
            let qos = match e.stage {
                Stage::AwaitPubAck => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            let retain = codec::stored_retain(self.store.bytes(e.span));
            if e.span.len.saturating_add(e.payload) > max
                || qos > maximum_qos
                || (retain && !retain_available)
            {
                let e = &mut self.store.outgoing[i];
                e.status = Status::Discarded;
                e.send = false;
            }
        }
        let accepted = ConnAck {
            session_present: ack.session_present,
            return_code: ConnectReturnCode::Accepted,
        };
        let mut connected = self.on_connack(now, accepted)?;
        if let Some(secs) = expiry {
            // Its Session Expiry Interval replaces ours too (§3.2.2.3.2);
            // `ephemeral_next` keeps the CONNECT's, for MQTT-3.14.2-2.
            self.ephemeral = secs == 0;
        }
        if self.resubscribe {
            // A filter that does not fit a SUBSCRIBE of its own under this
            // broker's maximum is not re-sent on this connection (the rest
            // go in SUBSCRIBEs that fit, `queue_resubscribe`), and
            // `resubscribed` does not count it.
            //
            // Nor is one this broker says it does not take: a wildcard, a
            // shared subscription or a Subscription Identifier that its
            // CONNACK says is not available (§3.2.2.3.11 to .13: sending
            // it is a Protocol Error).
            for i in 0..self.store.subscriptions.len() {
                let sub = self.store.subscriptions[i];
                if sub.confirmed {
                    continue;
                }
                let filter = core::str::from_utf8(self.store.bytes(sub.span)).unwrap_or("");
                let refused = self.check_filters_v5(core::iter::once(filter)).is_err()
                    || (sub.id != 0 && !self.limits.subscription_identifier_available);
                let len = super::resume::resubscribe_len(sub.id, core::iter::once(sub.span.len));
                if !refused && len <= max {
                    continue;
                }
                crate::fmt::warning!("a filter this broker does not take is not re-sent");
                self.store.subscriptions[i].requested = true;
                connected.resubscribed -= 1;
            }
            self.resubscribe = connected.resubscribed > 0;
        }
        Ok(connected)
    }

    /// What MQTT 5 asks of an incoming PUBLISH beyond 3.1.1's rules.
    ///
    /// `qos1_unacked`: QoS 1 messages whose PUBACK is not queued yet.
    /// With the QoS 2 ids awaiting PUBCOMP, they are what the broker
    /// counts against our Receive Maximum, as far as we know: a PUBACK
    /// queued but not written is not counted, so the broker is never
    /// blamed for one it has not seen.
    fn check_incoming(
        &self,
        publish: &v5::Publish<'_>,
        qos1_unacked: usize,
    ) -> Result<AliasUse, Closed> {
        if let Some(id) = publish.packet_id {
            self.check_receive_maximum(publish.qos, id, publish.dup, qos1_unacked)?;
        }
        self.alias_use(publish.properties.topic_alias(), !publish.topic.is_empty())
    }

    /// MQTT-3.3.4-9: a QoS 1/2 PUBLISH `packet_id` over the Receive
    /// Maximum we advertised (unacknowledged QoS 1 and unreleased QoS 2
    /// messages; the resend of one of these does not count) ends the
    /// connection. Messages too large to buffer count too. The quota is
    /// the connection's (§4.9): a QoS 2 message of an earlier connection
    /// waiting for its PUBREL counts only once the broker sends it again.
    pub(crate) fn check_receive_maximum(
        &self,
        qos: QoS,
        packet_id: u16,
        dup: bool,
        qos1_unacked: usize,
    ) -> Result<(), Closed> {
        let current = self.incoming.iter().filter(|i| i.is_current());
        let resend = qos == QoS::ExactlyOnce
            && self.is_duplicate(packet_id, dup)
            && current.clone().any(|i| i.packet_id == packet_id);
        let unacked = current.count() + qos1_unacked;
        if !resend && unacked >= usize::from(self.advertised.receive_maximum) {
            return Err(Closed::Violation(ReasonCode::ReceiveMaximumExceeded));
        }
        Ok(())
    }

    /// What a PUBLISH's Topic Alias `alias` does, with or without a topic
    /// of its own: within the maximum we advertised (MQTT-3.3.2-9), and
    /// standing for a topic set earlier on this connection when the
    /// PUBLISH has none (MQTT 5 §3.3.2.3.4).
    pub(crate) fn alias_use(&self, alias: Option<u16>, topic: bool) -> Result<AliasUse, Closed> {
        match (alias, topic) {
            (None, true) => Ok(AliasUse::None),
            (None, false) => Err(Closed::Violation(ReasonCode::ProtocolError)),
            // (0 is refused by the decoder, as a property value out of
            // range.)
            (Some(a), _) if a > self.advertised.topic_alias_maximum => {
                Err(Closed::Violation(ReasonCode::TopicAliasInvalid))
            }
            (Some(a), true) => Ok(AliasUse::Set(a)),
            (Some(a), false) => match self.store.in_alias(a) {
                Some(Some(_)) => Ok(AliasUse::None),
                Some(None) => Ok(AliasUse::Unknown),
                // Set by a message too large to read its properties: not
                // the broker's fault.
                None if self.aliases_uncertain => Ok(AliasUse::Unknown),
                None => Err(Closed::Violation(ReasonCode::ProtocolError)),
            },
        }
    }

    /// The topic the broker's alias `alias` stands for.
    pub(crate) fn alias_topic(&self, alias: Option<u16>) -> Option<&str> {
        let span = self.store.in_alias(alias?)??;
        core::str::from_utf8(self.store.bytes(span)).ok()
    }

    fn on_unsuback_v5(&mut self, ack: v5::UnsubAck<'_>) -> Result<Handled, Closed> {
        let handled = self.on_unsuback(ack.packet_id);
        if let Handled::Unsubscribed(i) = handled {
            let count = self.store.requests.get(i).map_or(0, |r| {
                codec::stored(self.store.bytes(r.span))
                    .map_or(0, |(_, body)| self.stored_unsubscribe_filters(body).len())
            });
            if count != ack.reason_codes.len() {
                return Err(Closed::Protocol(PacketType::UnsubAck));
            }
        }
        Ok(handled)
    }

    /// The event for what [`handle_v5`](Self::handle_v5) reported.
    pub(crate) fn event_v5<'a>(
        &'a self,
        handled: Handled,
        packet: v5::Packet<'a>,
    ) -> Option<Event<'a>> {
        use v5::Packet as P;
        Some(match (handled, packet) {
            (Handled::Connected(mut info), P::ConnAck(ack)) => {
                info.properties = ack.properties;
                Event::Connected(info)
            }
            (Handled::Message, P::Publish(publish)) => {
                let mut message: Message<'a> = publish.into();
                if publish.topic.is_empty() {
                    message.topic = self.alias_topic(publish.properties.topic_alias())?;
                }
                Event::Message(message)
            }
            (Handled::Published(i), packet) => {
                let (topic, packet_id, qos) = self.outgoing_topic(i)?;
                let (code, properties) = match packet {
                    P::PubAck(a) => (a.reason_code, a.properties),
                    P::PubRec(a) => (a.reason_code, a.properties),
                    P::PubComp(a) => (a.reason_code, a.properties),
                    _ => (ReasonCode::Success, Properties::EMPTY),
                };
                Event::Published {
                    topic,
                    packet_id,
                    qos,
                    reason: Reason { code, properties },
                }
            }
            (Handled::Subscribed(i), P::SubAck(ack)) => {
                let r = self.store.requests.get(i)?;
                Event::Subscribed {
                    packet_id: r.packet_id,
                    filters: self.stored_filters(r.span),
                    codes: codec::ReturnCodes::new(ack.reason_codes.wire().unwrap_or(&[])),
                    properties: ack.properties,
                }
            }
            (Handled::Unsubscribed(i), P::UnsubAck(ack)) => {
                let r = self.store.requests.get(i)?;
                let (_, body) = codec::stored(self.store.bytes(r.span))?;
                Event::Unsubscribed {
                    packet_id: r.packet_id,
                    filters: self.stored_unsubscribe_filters(body),
                    codes: codec::ReturnCodes::new(ack.reason_codes.wire().unwrap_or(&[])),
                    properties: ack.properties,
                }
            }
            (Handled::Pong, _) => Event::Pong,
            (Handled::Auth, P::Auth(auth)) => Event::Auth(auth),
            (Handled::Disconnected, P::Disconnect(d)) => Event::Disconnected(d),
            _ => return None,
        })
    }

    /// What an MQTT 5 connection refuses of an outgoing PUBLISH of `len`
    /// bytes, beyond 3.1.1's rules.
    pub(crate) fn check_publish_v5(&self, publish: &v5::Publish<'_>, len: usize) -> Result<()> {
        let properties = &publish.properties;
        if properties.topic_alias().is_some() {
            return Err(unsupported(Unsupported::TopicAlias));
        }
        if properties.subscription_identifiers().next().is_some() {
            return Err(unsupported(Unsupported::SubscriptionIdentifier));
        }
        if publish.qos > self.limits.maximum_qos {
            return Err(unsupported(Unsupported::QoS));
        }
        if publish.retain && !self.limits.retain_available {
            return Err(unsupported(Unsupported::Retain));
        }
        self.check_packet_len(len)?;
        if publish.qos != QoS::AtMostOnce
            && self.inflight_live() >= usize::from(self.limits.receive_maximum)
        {
            return Err(SessionError::Resource(ResourceError::InflightFull));
        }
        Ok(())
    }

    /// What an MQTT 5 connection refuses of an outgoing SUBSCRIBE.
    pub(crate) fn check_filters_v5<'f>(
        &self,
        mut filters: impl Iterator<Item = &'f str>,
    ) -> Result<()> {
        let l = &self.limits;
        filters.try_for_each(|f| {
            if !l.shared_subscription_available && f.starts_with(crate::topic::SHARED_PREFIX) {
                return Err(unsupported(Unsupported::SharedSubscription));
            }
            if !l.wildcard_subscription_available && crate::topic::has_wildcard(f) {
                return Err(unsupported(Unsupported::WildcardSubscription));
            }
            Ok(())
        })
    }

    /// The broker's Maximum Packet Size (MQTT-3.1.2-24).
    pub(crate) fn check_packet_len(&self, len: usize) -> Result<()> {
        let max = self.limits.maximum_packet_size;
        if u32::try_from(len).map_or(true, |len| len > max) {
            return Err(SessionError::Resource(ResourceError::PacketTooLarge {
                len,
                max,
            }));
        }
        Ok(())
    }

    fn inflight_live(&self) -> usize {
        self.store.outgoing.iter().filter(|e| e.is_live()).count()
    }

    /// Whether a packet of `len` bytes is over the Maximum Packet Size we
    /// advertised.
    pub(crate) fn over_our_maximum(&self, len: usize) -> bool {
        self.version == Version::V5
            && u32::try_from(len).map_or(true, |len| len > self.advertised.maximum_packet_size)
    }
}
