//! A transport that is always readable (a flood of messages): the
//! session's timers still run.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::connector::Queue;
use common::fake::{Log, SmallBuffers, connack, publish, recording_callbacks};
use minimqtt::time::{Clock, Duration, Instant};
use minimqtt::{Client, Config, QoS};

#[derive(Clone, Default)]
struct ManualClock(Arc<AtomicU64>);

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.load(Ordering::SeqCst))
    }
    async fn sleep_until(&self, deadline: Instant) {
        // Ready at once when due; otherwise let others run and check again.
        loop {
            if self.now() >= deadline {
                return;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Every read returns at once (as a socket with data queued does): the
/// CONNACK, then one QoS 0 PUBLISH per read, each read taking 100 ms; a
/// PINGREQ's PINGRESP comes in the next read.
struct Flood {
    clock: ManualClock,
    sent_connack: bool,
    pings: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl embedded_io_async::ErrorType for Flood {
    type Error = std::io::Error;
}
impl embedded_io_async::Read for Flood {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let bytes = if self.pings > 0 {
            self.pings -= 1;
            vec![0xd0, 0x00]
        } else if self.sent_connack {
            self.clock.0.fetch_add(100, Ordering::SeqCst);
            publish("flood", b"x", QoS::AtMostOnce, None)
        } else {
            self.sent_connack = true;
            connack(false, 0)
        };
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}
impl embedded_io_async::Write for Flood {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        // The client writes whole packets here: a PINGREQ is one write.
        if buf == [0xc0, 0x00] {
            self.pings += 1;
        }
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

type FloodClient<'a> = Client<'a, Queue<Flood>, ManualClock, Log>;

/// A client connected over a [`Flood`], with `config`; what it wrote.
async fn flooded<'a>(
    config: Config<'a>,
    buffers: &'a mut SmallBuffers,
) -> (FloodClient<'a>, ManualClock, Arc<Mutex<Vec<u8>>>) {
    let clock = ManualClock::default();
    let written = Arc::new(Mutex::new(Vec::new()));
    let flood = Flood {
        clock: clock.clone(),
        sent_connack: false,
        pings: 0,
        written: written.clone(),
    };
    let mut c = Client::new(
        Queue::with(flood),
        clock.clone(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    c.connect().await.unwrap();
    (c, clock, written)
}

/// MQTT-3.1.2-23: the client must send a control packet within every
/// keep-alive period, even while QoS 0 messages pour in.
#[tokio::test]
async fn pingreq_goes_out_under_an_inbound_qos0_flood() {
    let mut buffers = SmallBuffers::new();
    let config = Config {
        keep_alive_secs: 10,
        ..Config::new("flood")
    };
    let (mut c, _clock, written) = flooded(config, &mut buffers).await;
    let connect_len = written.lock().unwrap().len();
    // 30 s of flood (300 reads); the PINGREQ goes out within each
    // keep-alive period, while the messages keep coming.
    let handled = c.poll(Duration::from_secs(30)).await.unwrap();
    assert!(handled.messages >= 290, "{} messages", handled.messages);
    let out = written.lock().unwrap()[connect_len..].to_vec();
    let pings = out.windows(2).filter(|w| *w == [0xc0, 0x00]).count();
    assert!(
        pings >= 3,
        "{pings} PINGREQs in 30 s with a keep-alive of 10 s: {out:02x?}"
    );
}

/// The flood would hide a PUBACK that never comes: the PUBACK timeout
/// still ends the connection.
#[tokio::test]
async fn puback_timeout_fires_under_an_inbound_qos0_flood() {
    let mut buffers = SmallBuffers::new();
    let (mut c, clock, _) = flooded(Config::new("flood"), &mut buffers).await;
    c.publish("t", b"x", QoS::AtLeastOnce, false).await.unwrap();
    let r = c.poll(Duration::from_secs(30)).await;
    assert!(
        matches!(r, Err(minimqtt::Error::Timeout(minimqtt::AckKind::PubAck))),
        "{:?} after {} ms",
        r.map(|h| h.messages),
        clock.now().as_millis()
    );
}
