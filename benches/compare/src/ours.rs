//! minimqtt's side: the `Client` over tokio TCP (through
//! `embedded_io_adapters`), with a clock and a transport that count their
//! calls. Counting is a non-atomic increment per call (a nanosecond or so);
//! it is left on in the timed runs, so it can only make minimqtt look worse.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant as WallClock;

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{ErrorType, Read, Write};
use minimqtt::time::{Clock, Duration, Instant, TokioClock};
use minimqtt::{Buffers, Callbacks, Client, Config, Connector, Context, Message, QoS};

use crate::cpu::Cpu;
use crate::{FLOOD_TOPIC, PAYLOAD, PUBLISH_TOPIC, Sample, Workload};

/// Calls made through the counting clock and transport.
#[derive(Default)]
struct Counters {
    now: Cell<u64>,
    sleeps: Cell<u64>,
    reads: Cell<u64>,
    writes: Cell<u64>,
    flushes: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// What minimqtt asked of its clock and transport during the timed part.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// `Clock::now` calls.
    pub now: u64,
    /// `Clock::sleep_until` futures polled (each arms a tokio timer).
    pub sleeps: u64,
    /// `Read::read` futures polled (including ones a timer won the race
    /// against, and reads that found the socket empty and waited).
    pub reads: u64,
    /// `Write::write` calls (each a `send` on the socket).
    pub writes: u64,
    /// `Write::flush` calls (a no-op on a tokio `TcpStream`).
    pub flushes: u64,
}

impl Counters {
    fn snapshot(&self) -> Counts {
        Counts {
            now: self.now.get(),
            sleeps: self.sleeps.get(),
            reads: self.reads.get(),
            writes: self.writes.get(),
            flushes: self.flushes.get(),
        }
    }
}

impl Counts {
    fn since(self, start: Counts) -> Counts {
        Counts {
            now: self.now - start.now,
            sleeps: self.sleeps - start.sleeps,
            reads: self.reads - start.reads,
            writes: self.writes - start.writes,
            flushes: self.flushes - start.flushes,
        }
    }
}

struct CountingClock {
    inner: TokioClock,
    counters: Rc<Counters>,
}

impl Clock for CountingClock {
    fn now(&self) -> Instant {
        bump(&self.counters.now);
        self.inner.now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        bump(&self.counters.sleeps);
        self.inner.sleep_until(deadline).await
    }
}

struct Counted<T> {
    inner: T,
    counters: Rc<Counters>,
}

impl<T: ErrorType> ErrorType for Counted<T> {
    type Error = T::Error;
}

impl<T: Read> Read for Counted<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, T::Error> {
        bump(&self.counters.reads);
        self.inner.read(buf).await
    }
}

impl<T: Write> Write for Counted<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, T::Error> {
        bump(&self.counters.writes);
        self.inner.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), T::Error> {
        bump(&self.counters.flushes);
        self.inner.flush().await
    }
}

/// Opens a TCP connection with Nagle off, as `examples/walkthrough.rs`.
struct Tcp {
    addr: SocketAddr,
    counters: Rc<Counters>,
}

impl Connector for Tcp {
    type Transport = Counted<FromTokio<tokio::net::TcpStream>>;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Self::Transport, std::io::Error> {
        let socket = tokio::net::TcpStream::connect(self.addr).await?;
        socket.set_nodelay(true)?;
        Ok(Counted {
            inner: FromTokio::new(socket),
            counters: self.counters.clone(),
        })
    }
}

#[derive(Default)]
struct Tally {
    published: usize,
    received: usize,
}

fn on_publish(ctx: &mut Context<'_, Tally>, _topic: &str, _id: Option<u16>) {
    ctx.user_data.published += 1;
}

fn on_message(ctx: &mut Context<'_, Tally>, msg: &Message<'_>) {
    ctx.user_data.received += 1;
    std::hint::black_box(msg.payload);
}

/// One timed run of `workload` with `n` messages.
pub async fn run(
    addr: SocketAddr,
    workload: Workload,
    n: usize,
    client_id: &str,
    flood: Option<mpsc::Sender<()>>,
) -> Sample {
    match workload {
        Workload::Qos0 => publish::<100>(addr, QoS::AtMostOnce, n, client_id).await,
        Workload::Qos1Window100 => publish::<100>(addr, QoS::AtLeastOnce, n, client_id).await,
        Workload::Qos1Window1 => publish::<1>(addr, QoS::AtLeastOnce, n, client_id).await,
        Workload::ReceiveFlood => receive(addr, n, client_id, flood.expect("flood trigger")).await,
    }
}

type Bench<'a, const W: usize> = Client<'a, Tcp, CountingClock, Tally, W>;

fn config(client_id: &str) -> Config<'_> {
    Config {
        keep_alive_secs: 60,
        clean_session: true,
        ..Config::new(client_id)
    }
}

async fn publish<const W: usize>(addr: SocketAddr, qos: QoS, n: usize, client_id: &str) -> Sample {
    let counters = Rc::new(Counters::default());
    // The store holds a copy of each of the (up to) 100 messages in flight.
    let mut buffers = Buffers::<4096, 20480, 256>::new();
    let callbacks = Callbacks::new().on_publish(on_publish);
    let connector = Tcp {
        addr,
        counters: counters.clone(),
    };
    let clock = CountingClock {
        inner: TokioClock::new(),
        counters: counters.clone(),
    };
    let mut client: Bench<'_, W> = Client::with_capacity(
        connector,
        clock,
        config(client_id),
        buffers.slices(),
        callbacks,
        Tally::default(),
    );
    client.connect().await.expect("minimqtt: connect");

    let counts0 = counters.snapshot();
    let wall = WallClock::now();
    let cpu = Cpu::now();
    let mut last = None;
    for _ in 0..n {
        let id = client
            .publish(PUBLISH_TOPIC, &PAYLOAD, qos, false)
            .await
            .expect("minimqtt: publish");
        last = id.or(last);
    }
    if qos == QoS::AtMostOnce {
        // A QoS 1 fence: its PUBACK means the broker has read every QoS 0
        // message before it (the same fence as on rumqttc's side).
        last = client
            .publish(PUBLISH_TOPIC, &PAYLOAD, QoS::AtLeastOnce, false)
            .await
            .expect("minimqtt: fence");
    }
    // mosquitto acknowledges in order: the last PUBACK is the end.
    client
        .wait_published(last.expect("a packet id"))
        .await
        .expect("minimqtt: wait_published");
    let cpu = Cpu::now().since(cpu);
    let wall = wall.elapsed();
    let counts = counters.snapshot().since(counts0);
    let expected = if qos == QoS::AtMostOnce { n + 1 } else { n };
    assert_eq!(
        client.user_data().published,
        expected,
        "minimqtt: on_publish count"
    );
    let _ = client.disconnect().await;
    Sample {
        cpu,
        wall,
        messages: n,
        counts: Some(counts),
    }
}

async fn receive(addr: SocketAddr, n: usize, client_id: &str, go: mpsc::Sender<()>) -> Sample {
    let counters = Rc::new(Counters::default());
    let mut buffers = Buffers::<4096, 2048, 256>::new();
    let callbacks = Callbacks::new().on_message(on_message);
    let connector = Tcp {
        addr,
        counters: counters.clone(),
    };
    let clock = CountingClock {
        inner: TokioClock::new(),
        counters: counters.clone(),
    };
    let mut client: Bench<'_, 8> = Client::with_capacity(
        connector,
        clock,
        config(client_id),
        buffers.slices(),
        callbacks,
        Tally::default(),
    );
    client.connect().await.expect("minimqtt: connect");
    client
        .subscribe(FLOOD_TOPIC, QoS::AtMostOnce)
        .await
        .expect("minimqtt: subscribe");

    let counts0 = counters.snapshot();
    let wall = WallClock::now();
    let cpu = Cpu::now();
    go.send(()).expect("start the flood");
    // `poll` returns at its deadline; a short one ends the run soon
    // after the last message (the wait itself costs no CPU).
    while client.user_data().received < n {
        client
            .poll(Duration::from_millis(5))
            .await
            .expect("minimqtt: poll");
    }
    let cpu = Cpu::now().since(cpu);
    let wall = wall.elapsed();
    let counts = counters.snapshot().since(counts0);
    assert_eq!(
        client.user_data().received,
        n,
        "minimqtt: messages received"
    );
    let _ = client.disconnect().await;
    Sample {
        cpu,
        wall,
        messages: n,
        counts: Some(counts),
    }
}
