//! Publishing a payload larger than the session's arena: the PUBLISH's
//! head goes through the session, then the payload is written straight to
//! the transport in pieces, put together in the arena's free
//! space.

#[cfg(feature = "streaming")]
use super::driver::sleep_until;
#[cfg(feature = "streaming")]
use super::*;
#[cfg(feature = "streaming")]
use crate::callbacks::PayloadRequest;

/// Where a streamed payload comes from ([`Client::publish_from`], and
/// resends after a reconnect through
/// [`Callbacks::on_resend_payload`](crate::callbacks::Callbacks::on_resend_payload)).
///
/// `fill` may be asked for any offset, more than once (a write cut short
/// by a deadline asks again from where it stopped), and must give the
/// same bytes each time: they are one message.
pub trait PayloadSource {
    /// Copies payload bytes from `offset` on into `buf`; returns how many
    /// (at least one while bytes remain). 0 before the end means the
    /// payload is no longer available: the message is discarded and the
    /// connection ends, since a packet cannot be taken back half sent.
    fn fill(&mut self, offset: usize, buf: &mut [u8]) -> usize;
}

impl PayloadSource for &[u8] {
    fn fill(&mut self, offset: usize, buf: &mut [u8]) -> usize {
        let rest = self.get(offset..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        n
    }
}

/// A [`PayloadSource`] from a closure `(offset, buf) -> bytes copied`.
///
/// ```
/// use minimqtt::{PayloadSource, payload_from_fn};
///
/// // 1 MiB of a repeating pattern, generated as it is sent.
/// let mut source = payload_from_fn(|offset, buf: &mut [u8]| {
///     for (i, b) in buf.iter_mut().enumerate() {
///         *b = ((offset + i) % 251) as u8;
///     }
///     buf.len()
/// });
/// let mut piece = [0u8; 4];
/// assert_eq!(source.fill(250, &mut piece), 4);
/// assert_eq!(piece, [250, 0, 1, 2]);
/// ```
pub fn payload_from_fn<F: FnMut(usize, &mut [u8]) -> usize>(f: F) -> FromFn<F> {
    FromFn(f)
}

/// See [`payload_from_fn`].
#[derive(Debug, Clone, Copy)]
pub struct FromFn<F>(F);

impl<F: FnMut(usize, &mut [u8]) -> usize> PayloadSource for FromFn<F> {
    fn fill(&mut self, offset: usize, buf: &mut [u8]) -> usize {
        (self.0)(offset, buf)
    }
}

#[cfg(feature = "streaming")]
impl<K, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    Client<'_, K, C, U, INFLIGHT, SUBS, ROUTES>
where
    K: Connector,
    C: Clock,
{
    /// Publishes a message of `len` payload bytes from `source`, however
    /// large: the fixed header carries the total length, then the payload
    /// goes straight to the transport, a transmit buffer's worth at a
    /// time. Returns when the whole message is written (QoS 0) or queued
    /// and written (QoS 1/2: then [`wait_published`](Self::wait_published)).
    /// Waits while the window is full, as [`publish`](Self::publish) does.
    ///
    /// A QoS 1/2 message keeps only its head in the store; if it must be
    /// resent after a reconnect (clean session off), its payload is asked
    /// of [`on_resend_payload`](crate::callbacks::Callbacks::on_resend_payload),
    /// which must give the same bytes. Without that callback such messages
    /// are discarded at the reconnect (`on_publish_discarded`).
    ///
    /// Errors: as [`publish`](Self::publish); [`Error::PayloadShort`] if
    /// `source` ran dry before `len` bytes (the connection is closed).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe once the head is queued, at its first write (while
    /// it waits for room in the window, it has queued nothing): dropping
    /// the future then leaves the packet begun, even with none of it
    /// written yet, and the next call on the client asks
    /// `on_resend_payload` for the rest (QoS 1/2), or ends the connection
    /// with [`Error::PayloadShort`] (QoS 0, or without the callback).
    pub async fn publish_from(
        &mut self,
        topic: &str,
        len: usize,
        qos: QoS,
        retain: bool,
        source: &mut dyn PayloadSource,
    ) -> Res<Option<u16>, TransportError<K>> {
        if qos != QoS::AtMostOnce && INFLIGHT > 0 && !self.session.can_publish() {
            self.require_connected()?;
            self.drive(None, &|c| c.session.can_publish()).await?;
        }
        self.require_connected()?;
        self.flush(None).await?;
        let publish = Publish::new(topic, &[], qos, retain);
        let now = self.clock.now();
        let packet_id = self.session.publish_streamed(now, &publish, len)?;
        loop {
            self.flush_transmit(None, None).await?;
            if self.session.payload_due().is_none() {
                break;
            }
            self.write_payload(Some(&mut *source)).await?;
        }
        self.report_sent();
        Ok(packet_id)
    }

    /// Writes the next piece of the due payload, from `source` or, for a
    /// resend, from `on_resend_payload`.
    pub(super) async fn write_payload(
        &mut self,
        source: Option<&mut dyn PayloadSource>,
    ) -> Res<(), TransportError<K>> {
        // The QoS 0 messages written before the head are complete: their
        // report releases the room the payload's pieces are put together in.
        self.report_sent();
        let Some(due) = self.session.payload_due() else {
            return Ok(());
        };
        let wake = self.session.poll_timeout();
        let Client {
            session,
            transport,
            clock,
            callbacks,
            user_data,
            ..
        } = self;
        let Some(transport) = transport.as_mut() else {
            return Err(Error::Usage(UsageError::NotConnected));
        };
        let (buf, topic) = session.payload_buffer();
        let want = buf.len().min(due.len - due.offset);
        let filled = match (source, due.packet_id) {
            (Some(source), _) => source.fill(due.offset, &mut buf[..want]),
            (None, Some(packet_id)) => {
                let request = PayloadRequest {
                    topic: topic.unwrap_or(""),
                    packet_id,
                    offset: due.offset,
                    len: due.len,
                };
                callbacks.resend_payload(user_data, &request, &mut buf[..want])
            }
            (None, None) => 0,
        };
        let chunk = &buf[..filled.min(want)];
        if chunk.is_empty() {
            warning!("streamed payload unavailable; the message is discarded");
            self.session.abandon_payload();
            // The session is disconnected now: this reports the discard
            // (`on_publish_discarded`) at once.
            let now = self.clock.now();
            let _ = self.dispatch(now, &mut Handled::default());
            self.drop_connection(DisconnectReason::PayloadShort);
            return Err(Error::PayloadShort);
        }
        // One write per call, its count recorded before the next await:
        // a future dropped at the write loses nothing already written.
        let (done, expired) = match select(transport.write(chunk), sleep_until(clock, wake)).await {
            Either::First(Ok(0)) => return Err(self.fail(Error::ConnectionClosed)),
            Either::First(Ok(n)) => (n, false),
            Either::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
            Either::Second(()) => (0, true),
        };
        let now = self.clock.now();
        self.session.handle_payload(now, done);
        if expired {
            self.expire(now)?;
        }
        Ok(())
    }
}
