//! What the footprint programs run, as functions the host can test
//! (`cargo test` in this directory): the bare-metal binaries in `src/bin/`
//! only add a reset handler and feed these functions opaque inputs.
//!
//! - [`codec_path`] (binary `minimal`): encode a CONNECT and a QoS 0
//!   PUBLISH, decode one incoming PUBLISH, and dispatch it to one topic
//!   callback. The smallest useful MQTT core: no client, no session.
//! - [`client_path`] (binary `client`): the full async [`Client`], opened
//!   through a connector over a scripted transport, with a clock that never
//!   waits, doing exactly three steps: connect and read the CONNACK,
//!   publish at QoS 0, and receive one PUBLISH through the receive path
//!   into a topic callback; driven by [`block_on`] with a no-op waker.
#![no_std]
#![forbid(unsafe_code)]

use core::cell::Cell;
use core::convert::Infallible;
use core::future::Future;
use core::pin::pin;
use core::task::{Context as TaskContext, Poll, Waker};

use embedded_io_async::{ErrorType, Read, Write};
use minimqtt::callbacks::{Callbacks, Context, Message, Outbox, RouteError};
use minimqtt::codec::{Connect, DecodeError, EncodeError, Packet, Publish, QoS};
use minimqtt::session::Version;
use minimqtt::time::{Clock, Duration, Instant};
use minimqtt::{BufferSlices, Client, Config, Connector};

/// The client id of the CONNECT.
pub const CLIENT_ID: &str = "anchor-client-01";
/// The topic of the outgoing PUBLISH.
pub const TOPIC: &str = "sensor/0001/temp";
/// The filter of the topic callback.
pub const COMMAND_FILTER: &str = "sensor/+/cmd";

/// The outgoing payload: 32 bytes.
pub static PAYLOAD: [u8; 32] = *b"temperature=21.50;humidity=40.25";

/// What a broker sends: a QoS 0 PUBLISH of `toggle` to `sensor/0001/cmd`.
pub static INCOMING_PUBLISH: [u8; 25] = *b"\x30\x17\x00\x0fsensor/0001/cmdtoggle";

/// What the broker says in [`client_path`]: CONNACK (accepted, no
/// session), then the PUBLISH of [`INCOMING_PUBLISH`].
pub static BROKER_SCRIPT: [u8; 4 + 25] = *b"\x20\x02\x00\x00\
      \x30\x17\x00\x0fsensor/0001/cmdtoggle";

/// [`BROKER_SCRIPT`] in MQTT 5: the CONNACK and the PUBLISH each carry an
/// empty property list.
pub static BROKER_SCRIPT_V5: [u8; 5 + 26] = *b"\x20\x03\x00\x00\x00\
      \x30\x18\x00\x0fsensor/0001/cmd\x00toggle";

/// The user data of the topic callback: an LED switched by commands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Led {
    /// Whether it is on.
    pub on: bool,
    /// Commands received.
    pub commands: u32,
}

/// The topic callback: `on`, `off`, anything else toggles.
pub fn on_command(ctx: &mut Context<'_, Led>, msg: &Message<'_>) {
    let led = &mut *ctx.user_data;
    led.commands += 1;
    led.on = match msg.payload {
        b"on" => true,
        b"off" => false,
        _ => !led.on,
    };
}

/// Why a footprint run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Encoding failed.
    Encode(EncodeError),
    /// Decoding failed.
    Decode(DecodeError),
    /// The incoming packet was not a PUBLISH.
    NotPublish,
    /// The topic callback could not be added.
    Route(RouteError),
    /// The client failed.
    Client(minimqtt::Error<Infallible>),
}

/// Whether the `minimal` program passed, which it reports to `size.sh`
/// (see `src/rt.rs`): [`codec_path`] returned `Ok` with one callback
/// matched, and that callback switched the LED on.
pub fn codec_passed(result: &Result<(&[u8], usize), Failure>, led: &Led) -> bool {
    matches!(
        (result, led),
        (
            Ok((_, 1)),
            Led {
                on: true,
                commands: 1
            }
        )
    )
}

/// Whether the `client` program passed, which it reports to `size.sh`
/// (see `src/rt.rs`): [`client_path`] returned `Ok` and its callback
/// switched the LED on, once.
pub fn client_passed(result: &Result<(Led, usize), Failure>) -> bool {
    matches!(
        result,
        Ok((
            Led {
                on: true,
                commands: 1
            },
            _
        ))
    )
}

/// Encodes a CONNECT (`anchor-client-01`, keep-alive 60, clean session)
/// and a QoS 0 PUBLISH of `payload` to `sensor/0001/temp` into `tx`, then
/// decodes `incoming` and dispatches it to the one topic callback, which
/// updates `led`. Returns the bytes to send and how many callbacks matched.
pub fn codec_path<'t>(
    incoming: &[u8],
    payload: &[u8],
    tx: &'t mut [u8],
    led: &mut Led,
) -> Result<(&'t [u8], usize), Failure> {
    let connect = Connect {
        clean_session: true,
        keep_alive: 60,
        client_id: CLIENT_ID,
        will: None,
        username: None,
        password: None,
    };
    let n = connect.encode(tx).map_err(Failure::Encode)?;
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: TOPIC,
        packet_id: None,
        payload,
    };
    let (_, rest) = tx.split_at_mut(n);
    let m = publish.encode(rest).map_err(Failure::Encode)?;

    let mut callbacks: Callbacks<'_, Led, 1> = Callbacks::new();
    callbacks
        .add_topic_callback(COMMAND_FILTER, on_command)
        .map_err(Failure::Route)?;
    let (packet, _len) = Packet::decode(incoming).map_err(Failure::Decode)?;
    let Packet::Publish(p) = packet else {
        return Err(Failure::NotPublish);
    };
    let mut outbox_buf = [0u8; 64];
    let mut outbox = Outbox::new(&mut outbox_buf);
    let mut ctx = Context::new(led, &mut outbox);
    let matched = callbacks.dispatch_message(&mut ctx, &p.into());
    Ok((&tx[..n + m], matched))
}

/// Runs the async [`Client`] against `script` (what the broker sends), in
/// exactly three steps: connect (client id `anchor-client-01`, keep-alive
/// 60, clean session) and read the CONNACK; publish `payload` at QoS 0 to
/// `sensor/0001/temp`; poll until the incoming PUBLISH reached the topic
/// callback. Returns the user data and the number of bytes the client wrote.
///
/// `version`: the MQTT version to speak ([`BROKER_SCRIPT_V5`] for MQTT 5).
pub fn client_path(
    version: Version,
    script: &[u8],
    payload: &[u8],
    buffers: BufferSlices<'_>,
) -> Result<(Led, usize), Failure> {
    let mut client = Client::new(
        OneScript(Some(Script::new(script))),
        TickClock::default(),
        Config {
            version,
            ..Config::new(CLIENT_ID)
        },
        buffers,
        Callbacks::new(),
        Led::default(),
    );
    client
        .add_topic_callback(COMMAND_FILTER, on_command)
        .map_err(Failure::Route)?;
    block_on(async {
        client.connect().await?;
        client
            .publish(TOPIC, payload, QoS::AtMostOnce, false)
            .await?;
        while client.user_data().commands == 0 {
            client.poll(Duration::from_millis(50)).await?;
        }
        Ok(())
    })
    .map_err(Failure::Client)?;
    let written = client.transport_mut().map_or(0, |t| t.written);
    Ok((*client.user_data(), written))
}

/// Hands out its one [`Script`] at the first connection attempt.
#[derive(Debug)]
pub struct OneScript<'s>(pub Option<Script<'s>>);

impl<'s> Connector for OneScript<'s> {
    type Transport = Script<'s>;
    type Error = ();

    async fn connect(&mut self) -> Result<Script<'s>, ()> {
        self.0.take().ok_or(())
    }
}

/// Runs a future to completion by polling it in a loop with a waker that
/// does nothing: enough for futures that never truly wait, like
/// [`client_path`]'s.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// A transport that reads a fixed script and swallows what is written.
/// Once the script is used up, reads wait forever.
#[derive(Debug)]
pub struct Script<'s> {
    input: &'s [u8],
    /// Bytes written so far.
    pub written: usize,
}

impl<'s> Script<'s> {
    /// Reads `input`, then waits forever.
    pub fn new(input: &'s [u8]) -> Self {
        Self { input, written: 0 }
    }
}

impl ErrorType for Script<'_> {
    type Error = Infallible;
}

impl Read for Script<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if self.input.is_empty() {
            return core::future::pending().await;
        }
        let n = buf.len().min(self.input.len());
        let (now, later) = self.input.split_at(n);
        buf[..n].copy_from_slice(now);
        self.input = later;
        Ok(n)
    }
}

impl Write for Script<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.written += core::hint::black_box(buf).len();
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A clock whose sleeps end at once, by jumping to their deadline.
#[derive(Debug, Default)]
pub struct TickClock {
    now: Cell<u64>,
}

impl Clock for TickClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.now.get())
    }

    async fn sleep_until(&self, deadline: Instant) {
        let t = deadline.as_millis();
        if t > self.now.get() {
            self.now.set(t);
        }
    }
}

/// Zero-sized transport and clock, to measure the client's own state.
pub mod sizes {
    use super::*;

    /// A transport of no size.
    pub struct NoIo;

    impl ErrorType for NoIo {
        type Error = Infallible;
    }

    impl Read for NoIo {
        async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, Infallible> {
            core::future::pending().await
        }
    }

    impl Write for NoIo {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    /// A clock of no size (embassy-time's `EmbassyClock` is one too).
    pub struct NoClock;

    impl Clock for NoClock {
        fn now(&self) -> Instant {
            Instant::from_millis(0)
        }

        async fn sleep_until(&self, _deadline: Instant) {
            core::future::pending().await
        }
    }

    /// Opens [`NoIo`]s.
    pub struct NoConnector;

    impl Connector for NoConnector {
        type Transport = NoIo;
        type Error = ();

        async fn connect(&mut self) -> Result<NoIo, ()> {
            Ok(NoIo)
        }
    }

    /// The client with default capacities (`INFLIGHT`, `SUBS`, `ROUTES`
    /// = 8), a zero-sized connector, transport, clock and user data: its
    /// own state.
    pub type BareClient<'a> = Client<'a, NoConnector, NoClock, ()>;

    /// The walkthrough's buffers.
    pub type WalkthroughBuffers = minimqtt::Buffers<2048, 4096, 512>;

    /// `size_of` the client, its session, its callback registry, and the
    /// walkthrough's buffers, in that order.
    pub const SIZES: [u32; 4] = [
        core::mem::size_of::<BareClient<'static>>() as u32,
        core::mem::size_of::<minimqtt::session::Session<'static, 8, 8>>() as u32,
        core::mem::size_of::<Callbacks<'static, (), 8>>() as u32,
        core::mem::size_of::<WalkthroughBuffers>() as u32,
    ];
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn codec_path_encodes_decodes_and_dispatches() {
        let mut tx = [0u8; 128];
        let mut led = Led::default();
        let (sent, matched) = codec_path(&INCOMING_PUBLISH, &PAYLOAD, &mut tx, &mut led).unwrap();
        assert_eq!(matched, 1);
        assert_eq!(
            led,
            Led {
                on: true,
                commands: 1
            }
        );
        // CONNECT: 2 + 10 + 2 + 16; PUBLISH: 2 + 2 + 16 + 32.
        assert_eq!(sent.len(), 30 + 52);
        let (first, n) = Packet::decode(sent).unwrap();
        assert!(
            matches!(first, Packet::Connect(c) if c.client_id == CLIENT_ID && c.keep_alive == 60)
        );
        let (second, _) = Packet::decode(&sent[n..]).unwrap();
        assert!(matches!(second, Packet::Publish(p) if p.topic == TOPIC && p.payload == PAYLOAD));
        assert!(codec_passed(&Ok((sent, matched)), &led));
        assert!(!codec_passed(&Ok((sent, 0)), &led));
        assert!(!codec_passed(&Ok((sent, 1)), &Led::default()));
        assert!(!codec_passed(&Err(Failure::NotPublish), &led));
    }

    #[test]
    fn client_path_connects_publishes_and_receives() {
        let mut buffers = minimqtt::Buffers::<256, 512, 64>::new();
        let (script, len): (&[u8], _) = match Version::DEFAULT {
            // CONNECT 30, PUBLISH 52.
            Version::V3_1_1 => (&BROKER_SCRIPT, 30 + 52),
            // Each with its empty property list (and CONNECT its
            // Receive Maximum, 3 bytes).
            Version::V5 => (&BROKER_SCRIPT_V5, 31 + 3 + 53),
        };
        let result = client_path(Version::DEFAULT, script, &PAYLOAD, buffers.slices());
        assert!(client_passed(&result));
        let (led, written) = result.unwrap();
        assert_eq!(
            led,
            Led {
                on: true,
                commands: 1
            }
        );
        assert_eq!(written, len);
        // The other outcomes (without the PUBLISH the poll loop would not
        // end, so they are made up).
        assert!(!client_passed(&Ok((Led::default(), len))));
        assert!(!client_passed(&Err(Failure::NotPublish)));
    }

    #[test]
    fn print_sizes() {
        std::println!(
            "host sizes (client, session, callbacks, buffers): {:?}",
            sizes::SIZES
        );
    }
}
