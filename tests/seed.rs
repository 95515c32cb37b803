//! `Config::seed`, the client's one random input, and `Config::with_rng`.

use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::time::TokioClock;
use minimqtt::{Buffers, Callbacks, Client, Config, Connector, generate_client_id};
use rand_core::RngCore;

/// Never connects: these tests only build the client.
struct Offline;

impl Connector for Offline {
    type Transport = FromTokio<tokio::io::DuplexStream>;
    type Error = ();

    async fn connect(&mut self) -> Result<Self::Transport, ()> {
        Err(())
    }
}

/// Counts up from a start value, to tell which draw landed where.
struct Counter(u64);

impl RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dst);
    }
}

fn client_id_of(config: Config<'_>) -> String {
    let mut buffers = Buffers::<256, 512, 64>::new();
    let client = Client::new(
        Offline,
        TokioClock::new(),
        config,
        buffers.slices(),
        Callbacks::new(),
        (),
    );
    client.client_id().to_owned()
}

#[test]
fn with_rng_draws_one_u64_as_the_seed_and_keeps_the_rest() {
    let mut rng = Counter(6);
    let base = Config {
        keep_alive_secs: 30,
        ..Config::new("")
    };
    let config = base.with_rng(&mut rng);
    assert_eq!(config.seed, Some(7));
    assert_eq!(
        Config {
            seed: None,
            ..config
        },
        base
    );
    // One draw, no more.
    assert_eq!(rng.next_u64(), 8);
}

#[tokio::test]
async fn the_seed_makes_up_the_client_id_only_when_there_is_none() {
    let seeded = Config::new("").with_rng(&mut Counter(41));
    assert_eq!(client_id_of(seeded), generate_client_id(42).as_str());
    assert_ne!(
        client_id_of(Config::new("").with_rng(&mut Counter(42))),
        generate_client_id(42).as_str()
    );
    // Without a seed the broker assigns one; a given id is kept.
    assert_eq!(client_id_of(Config::new("")), "");
    let named = Config::new("sensor-0001").with_rng(&mut Counter(41));
    assert_eq!(client_id_of(named), "sensor-0001");
}
