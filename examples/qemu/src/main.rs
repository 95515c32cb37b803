//! minimqtt on an emulated Cortex-M4 (QEMU's `mps2-an386`), with MQTT over
//! the board's UART0, which QEMU connects to a mosquitto on the host
//! (`-serial tcp:127.0.0.1:PORT`). On embassy's thread-mode executor, the
//! firmware connects, subscribes to its echo topic, publishes one message
//! at QoS 1 and one at QoS 2, waits until both come back, then sends an
//! 8 KiB message through its 512-byte transmit buffer (`publish_from`) and
//! receives it back streamed through its 512-byte receive buffer, checking
//! every byte, disconnects,
//! prints its stack high-water mark through semihosting, and ends QEMU
//! with the semihosting exit call: status 0 if every step worked.
//!
//! `run.sh` builds it, starts mosquitto and QEMU, and checks both logs.

#![no_std]
#![no_main]

mod clock;
mod stack;
mod uart;

use core::panic::PanicInfo;

use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hprintln};
use embassy_executor::Spawner;
use minimqtt::callbacks::{Part, Stream};
use minimqtt::time::{Clock, Duration};
use minimqtt::{
    Buffers, Callbacks, Client, Config, Context, Message, QoS, SubscribeReturnCode, payload_from_fn,
};

use crate::clock::SysTickClock;
use crate::uart::{UART0_BASE, Uart, UartConnector};

const CLIENT_ID: &str = "minimqtt-qemu";
const TOPIC: &str = "minimqtt/qemu/echo";
/// What is published, and expected back: one message per QoS level with a
/// handshake.
const MESSAGES: [(&[u8], QoS); 2] = [
    (b"hello from a Cortex-M4 at QoS 1", QoS::AtLeastOnce),
    (b"hello from a Cortex-M4 at QoS 2", QoS::ExactlyOnce),
];
/// The large message: longer than every buffer, generated as it is sent.
const LARGE_TOPIC: &str = "minimqtt/qemu/large";
const LARGE_LEN: usize = 8192;

/// Byte `i` of the large message.
fn large_byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// How long the echoes may take once both publishes completed.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// The callbacks' state: which of `MESSAGES` came back, and anything else.
#[derive(Default)]
struct App {
    echoed: [bool; MESSAGES.len()],
    unexpected: usize,
    /// The large message: bytes checked so far, chunks, and whether every
    /// byte matched and the end came.
    large_received: usize,
    large_chunks: usize,
    large_ok: bool,
    large_done: bool,
}

fn on_large(ctx: &mut Context<'_, App>, s: &Stream<'_>) {
    let app = &mut *ctx.user_data;
    match s.part {
        Part::Start => {
            app.large_received = 0;
            app.large_chunks = 0;
            app.large_ok = s.len == LARGE_LEN;
        }
        Part::Chunk { offset, data } => {
            app.large_ok &= offset == app.large_received
                && data
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == large_byte(offset + i));
            app.large_received += data.len();
            app.large_chunks += 1;
        }
        Part::End => app.large_done = true,
        Part::Aborted => app.large_ok = false,
    }
}

fn on_message(ctx: &mut Context<'_, App>, msg: &Message<'_>) {
    let text = core::str::from_utf8(msg.payload).unwrap_or("<not UTF-8>");
    hprintln!("received on {} at {:?}: {}", msg.topic, msg.qos, text);
    match MESSAGES
        .iter()
        .position(|(payload, _)| *payload == msg.payload)
    {
        Some(i) if msg.topic == TOPIC => ctx.user_data.echoed[i] = true,
        _ => ctx.user_data.unexpected += 1,
    }
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    hprintln!("minimqtt on QEMU mps2-an386 (Cortex-M4), MQTT over UART0");
    let peripherals = cortex_m::Peripherals::take().unwrap();
    let clock = SysTickClock::start(peripherals.SYST);
    // SAFETY: UART0 of mps2-an386 is at UART0_BASE, and this is its only
    // driver.
    let uart = unsafe { Uart::new(UART0_BASE) };

    let started = clock.now();
    let result = mqtt(UartConnector::new(uart), clock).await;
    let elapsed = clock.now().saturating_since(started);
    let (used, size) = stack::high_water_mark();
    hprintln!("stack high-water mark: {} of {} bytes", used, size);
    match result {
        Ok(()) => {
            // As u32: formatting a u64 would link a 64-bit division (about 0.9 KB).
            let millis = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
            hprintln!("PASS in {} ms", millis);
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(why) => {
            hprintln!("FAIL: {}", why);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
}

/// The whole MQTT exchange; its buffers live in this future, which the
/// executor keeps in a static (so they are `.bss`, not stack).
async fn mqtt(connector: UartConnector, clock: SysTickClock) -> Result<(), &'static str> {
    let mut buffers = Buffers::<512, 1024, 128>::new();
    let mut callbacks = Callbacks::new().on_message(on_message);
    callbacks
        .add_stream_callback(LARGE_TOPIC, on_large)
        .map_err(|_| "add the stream route")?;
    let config = Config {
        keep_alive_secs: 30,
        ..Config::new(CLIENT_ID)
    };
    let mut client = Client::new(
        connector,
        clock,
        config,
        buffers.slices(),
        callbacks,
        App::default(),
    );

    let session_present = client.connect().await.map_err(|e| report("connect", e))?;
    hprintln!("connected (session present: {})", session_present);

    let granted = client
        .subscribe(TOPIC, QoS::ExactlyOnce)
        .await
        .map_err(|e| report("subscribe", e))?;
    hprintln!("subscribed to {}: {:?}", TOPIC, granted);
    if granted != SubscribeReturnCode::Success(QoS::ExactlyOnce) {
        return Err("the broker did not grant QoS 2");
    }

    for (payload, qos) in MESSAGES {
        let id = client
            .publish(TOPIC, payload, qos, false)
            .await
            .map_err(|e| report("publish", e))?
            .ok_or("a QoS 1/2 publish got no packet id")?;
        client
            .wait_published(id)
            .await
            .map_err(|e| report("wait_published", e))?;
        hprintln!("published at {:?} (packet id {}), acknowledged", qos, id);
    }

    // Both echoes, and the end of the QoS 2 one's handshake: a QoS 2
    // message is delivered when its PUBLISH arrives, but the broker's
    // PUBREL, and our PUBCOMP, come after. Disconnecting before them would
    // leave the broker with a delivery it never saw completed.
    let deadline = clock.now() + ECHO_TIMEOUT;
    while !client.user_data().echoed.iter().all(|&e| e) || client.session().incoming_pending() > 0 {
        if clock.now() >= deadline {
            return Err("the echoes did not all come back in time");
        }
        client
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| report("poll", e))?;
    }
    if client.user_data().unexpected != 0 {
        return Err("an unexpected message arrived");
    }

    // A message far larger than both buffers, out and back at QoS 1.
    client
        .subscribe(LARGE_TOPIC, QoS::AtLeastOnce)
        .await
        .map_err(|e| report("subscribe", e))?;
    let mut source = payload_from_fn(|offset, buf: &mut [u8]| {
        let n = buf.len().min(LARGE_LEN.saturating_sub(offset));
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = large_byte(offset + i);
        }
        n
    });
    let id = client
        .publish_from(LARGE_TOPIC, LARGE_LEN, QoS::AtLeastOnce, false, &mut source)
        .await
        .map_err(|e| report("publish_from", e))?
        .ok_or("a QoS 1 publish got no packet id")?;
    client
        .wait_published(id)
        .await
        .map_err(|e| report("wait_published", e))?;
    let deadline = clock.now() + ECHO_TIMEOUT;
    while !client.user_data().large_done {
        if clock.now() >= deadline {
            return Err("the large message did not come back in time");
        }
        client
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| report("poll", e))?;
    }
    let app = client.user_data();
    if !app.large_ok || app.large_received != LARGE_LEN {
        return Err("the large message came back wrong");
    }
    hprintln!(
        "sent and received {} bytes through 512-byte buffers ({} chunks), every byte checked",
        app.large_received as u32,
        app.large_chunks as u32
    );

    client
        .disconnect()
        .await
        .map_err(|e| report("disconnect", e))?;
    hprintln!("disconnected");
    Ok(())
}

/// Prints a client error with its details; returns the step that failed.
fn report<E: core::fmt::Debug>(step: &'static str, error: minimqtt::Error<E>) -> &'static str {
    hprintln!("{} failed: {:?}", step, error);
    step
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("hard fault: {:?}", frame);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
