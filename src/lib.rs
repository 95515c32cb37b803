//! A `no_std`, zero-allocation, transport-agnostic async MQTT 3.1.1 and
//! MQTT 5 client with the callbacks of CircuitPython's MiniMQTT. The
//! version is chosen per connection (`Config::version`); the features
//! `v3` and `v5` (both on by default) leave either out of a build.
//!
//! Every layer works on the caller's bytes. Here the wire format alone
//! encodes a PUBLISH into a stack buffer, decodes it back without copying
//! its topic or payload, and routes it by topic filter:
//!
//! ```
//! use minimqtt::codec::{Packet, Publish, QoS};
//! use minimqtt::topic::{TopicFilter, TopicName};
//!
//! let mut buf = [0u8; 64];
//! let publish = Publish {
//!     dup: false,
//!     qos: QoS::AtLeastOnce,
//!     retain: false,
//!     topic: "sensors/0001/temp",
//!     packet_id: Some(1),
//!     payload: b"21.5",
//! };
//! let n = Packet::Publish(publish).encode(&mut buf)?;
//! assert_eq!(buf[0], 0x32); // PUBLISH, QoS 1
//!
//! let (packet, used) = Packet::decode(&buf[..n])?;
//! assert_eq!(used, n);
//! let Packet::Publish(received) = packet else { unreachable!() };
//! assert_eq!(received.payload, b"21.5");
//!
//! let filter = TopicFilter::new("sensors/+/temp")?;
//! assert!(filter.matches(&TopicName::new(received.topic)?));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! The async [`Client`] does the same over a socket, keeps the protocol's
//! promises (acknowledgements, keep-alive, resends after a reconnect) and
//! calls your callbacks; its docs show it connected, subscribed and
//! publishing.
//!
//! - [`Client`] owns the connection's life: it opens every transport (any
//!   `embedded_io_async::Read + Write` stream: embassy-net's `TcpSocket`, a
//!   TLS stream, tokio through `embedded-io-adapters`) through a
//!   [`Connector`], closes it on every fatal condition, reconnects by
//!   policy ([`Client::run_for`]), and calls the [`callbacks`]. Other tasks
//!   reach it through a [`mailbox::Mailbox`]. Messages larger than its
//!   buffers stream through them in chunks, both ways (stream routes and
//!   `Client::publish_from`, feature `streaming`), and a callback can hold
//!   a message's acknowledgement until the application has stored it
//!   ([`Context::defer_ack`]).
//! - [`session::Session`] is the protocol itself, sans I/O: framing,
//!   packet ids, in-flight messages, keep-alive, re-subscription, resends;
//!   bytes and time in, bytes and events out.
//! - [`codec`] encodes and decodes every MQTT 3.1.1 packet, borrowing from
//!   the caller's bytes, and `codec::v5` (feature `v5`) every MQTT 5.0
//!   packet; [`topic`] validates and matches topics.
//! - [`net`] opens the TCP connection by host name through
//!   `embedded-nal-async`.
//!
//! Buffers are the caller's ([`Buffers`]); capacities are const generics.
//! No heap, no `unsafe`, no panics on anything the network sends.
//!
//! # Features
#![doc = document_features::document_features!()]
#![no_std]
// docs.rs builds with `--cfg docsrs` on nightly, so feature-gated items
// are shown with the feature that enables them.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fmt;

#[cfg(not(any(feature = "v3", feature = "v5")))]
compile_error!(
    "minimqtt speaks MQTT 3.1.1 (feature `v3`), MQTT 5 (feature `v5`) or both: enable at least one"
);

pub mod callbacks;
mod client;
pub mod codec;
mod config;
mod error;
pub mod mailbox;
pub mod net;
pub mod reconnect;
pub mod session;
pub mod time;
pub mod topic;

pub use callbacks::{Callbacks, Context, Message};
pub use client::{Client, FromFn, Handled, PayloadSource, payload_from_fn};
pub use codec::{LastWill, QoS, SubscribeReturnCode, Subscription};
pub use config::{BufferSlices, Buffers, Config, generate_client_id};
pub use error::{
    AckKind, BrokerError, Error, ResourceError, SessionError, Unsupported, UsageError,
};
pub use reconnect::{Backoff, Connector};

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
