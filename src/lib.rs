//! A `no_std`, zero-allocation, transport-agnostic async MQTT 3.1.1 client
//! with the callbacks of CircuitPython's MiniMQTT.
//!
//! - [`Client`] drives the protocol over any `embedded_io_async::Read +
//!   Write` stream (embassy-net's `TcpSocket`, a TLS stream, tokio through
//!   `embedded-io-adapters`) and calls the [`callbacks`].
//! - [`session::Session`] is the protocol itself, sans I/O: packet ids,
//!   in-flight messages, keep-alive, re-subscription, resends.
//! - [`codec`] encodes and decodes every MQTT 3.1.1 packet, borrowing from
//!   the caller's bytes; [`topic`] validates and matches topics.
//! - [`net`] opens the TCP connection by host name through
//!   `embedded-nal-async`.
//!
//! Buffers are the caller's ([`Buffers`]); capacities are const generics.
//! No heap, no `unsafe`, no panics on anything the network sends.
//!
//! # Features
#![doc = document_features::document_features!()]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fmt;

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
pub use client::{Client, Handled};
pub use codec::{LastWill, QoS, SubscribeReturnCode, Subscription};
pub use config::{BufferSlices, Buffers, Config, generate_client_id};
pub use error::{AckKind, BrokerError, Error, ResourceError, SessionError, UsageError};
pub use reconnect::{Backoff, Connector};

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
