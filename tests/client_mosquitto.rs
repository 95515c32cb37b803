//! Client scenarios (`tests/common/client/scenarios.rs`) against a
//! mosquitto child process, the stricter broker: every test ends by
//! checking mosquitto logged no protocol violation by our client. Each
//! scenario runs over a plain transport and one that splits reads at
//! random places.
//!
//! Skipped (with a message) when mosquitto is not installed, unless `CI`
//! is set.

mod common;

use std::time::{Duration, Instant};

use common::client::scenarios;
use common::client::{BrokerKind, Env, Mode};
use common::mosquitto::{Mosquitto, MosquittoOptions};
use minimqtt::session::Version;

/// A transport mode and the MQTT version the clients speak.
type Way = (Mode, Version);

const V3: Version = Version::V3_1_1;
const V5: Version = Version::V5;

fn env(mosquitto: &Mosquitto, (mode, version): Way) -> Env {
    Env::new(mosquitto.addr(), BrokerKind::Mosquitto, mode).speaking(version)
}

async fn run_with<F: std::future::Future<Output = ()>>(
    options: MosquittoOptions,
    mode: Way,
    scenario: impl FnOnce(Env) -> F,
) {
    let Some(mosquitto) = Mosquitto::start_with(options).await else {
        return;
    };
    scenario(env(&mosquitto, mode)).await;
    check(&mosquitto).await;
}

/// Waits until mosquitto has logged what it saw (it logs asynchronously
/// to what the client observes), then checks it saw no protocol violation.
async fn check(mosquitto: &Mosquitto) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut len = mosquitto.log().len();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = mosquitto.log().len();
        if now == len {
            break;
        }
        len = now;
    }
    mosquitto.assert_no_protocol_errors();
}

async fn run<F: std::future::Future<Output = ()>>(mode: Way, scenario: impl FnOnce(Env) -> F) {
    run_with(MosquittoOptions::default(), mode, scenario).await
}

async fn credentials(mode: Way) {
    let options = MosquittoOptions::default().with_user("alice", "secret");
    let Some(auth) = Mosquitto::start_with(options).await else {
        return;
    };
    let open = Mosquitto::start().await.expect("found a moment ago");
    scenarios::credentials(env(&auth, mode), env(&open, mode)).await;
    auth.wait_for_log("not authorised").await;
    check(&auth).await;
    check(&open).await;
}

async fn wildcards(mode: Way) {
    // mosquitto publishes $SYS topics only with a sys_interval.
    let options = MosquittoOptions {
        extra_config: vec!["sys_interval 1".into()],
        ..MosquittoOptions::default()
    };
    run_with(options, mode, scenarios::wildcards).await
}

/// A test per mode for a scenario: plain, and reads split at random.
macro_rules! per_mode {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn passthrough() {
                per_mode!(@run $name, (Mode::Passthrough, V3));
            }

            #[tokio::test]
            async fn random_split() {
                per_mode!(@run $name, (Mode::RandomSplit, V3));
            }

            /// The same scenario over MQTT 5.
            #[tokio::test]
            async fn v5_passthrough() {
                per_mode!(@run $name, (Mode::Passthrough, V5));
            }

            #[tokio::test]
            async fn v5_random_split() {
                per_mode!(@run $name, (Mode::RandomSplit, V5));
            }
        }
    )*};
    (@run credentials, $mode:expr) => {
        credentials($mode).await
    };
    (@run wildcards, $mode:expr) => {
        wildcards($mode).await
    };
    (@run $name:ident, $mode:expr) => {
        run($mode, scenarios::$name).await
    };
}

per_mode!(
    walkthrough,
    round_trip_self,
    round_trip_between_clients,
    too_large,
    retained,
    last_will,
    credentials,
    wildcards,
    callback_requests,
    keep_alive,
    keep_alive_zero,
    persistent_session,
    streamed,
);

/// Merged reads and partial writes against mosquitto too, on the scenario
/// with the most traffic.
mod more_modes {
    use super::*;

    #[tokio::test]
    async fn round_trip_between_clients_merge() {
        run((Mode::Merge, V3), scenarios::round_trip_between_clients).await
    }

    #[tokio::test]
    async fn round_trip_self_partial_writes() {
        run((Mode::PartialWrites, V3), scenarios::round_trip_self).await
    }

    #[tokio::test]
    async fn streamed_one_byte() {
        run((Mode::OneByte, V3), scenarios::streamed).await
    }

    #[tokio::test]
    async fn v5_round_trip_between_clients_merge() {
        run((Mode::Merge, V5), scenarios::round_trip_between_clients).await
    }

    #[tokio::test]
    async fn streamed_partial_writes() {
        run((Mode::PartialWrites, V3), scenarios::streamed).await
    }
}
