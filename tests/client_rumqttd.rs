//! Client scenarios (`tests/common/client/scenarios.rs`) against the
//! in-process rumqttd, each once per transport mode: a scenario must pass
//! unchanged when packets are split, merged, or written piecemeal. Every
//! scenario runs over MQTT 3.1.1 (rumqttd's v4 listener) and over MQTT 5
//! (its v5 listener, `BrokerOptions::v5`), in every mode: the v5 codec's
//! properties must survive reshaping as well.
//!
//! rumqttd refuses keep-alive 0 and answers bad credentials by closing the
//! connection without CONNACK, on both listeners; `keep_alive_zero`
//! therefore runs against mosquitto only, and `credentials` expects a
//! closed connection here.
//!
//! rumqttd 0.20's MQTT 5 is partial, but no scenario needs a rumqttd-only
//! v5 expectation: the deviations the scenarios meet are the same as over
//! 3.1.1 (delivery at the granted QoS, `Env::delivered`), and the others
//! stay out of their way. It ignores the client's Receive Maximum (read
//! by its v5 codec, never used by its router), but no scenario has more
//! than 5 messages in flight to a client, below the 8 minimqtt
//! advertises; it ignores the Session Expiry Interval (only the will delay
//! reads it, in `link/remote.rs`), and `persistent_session` asks for the
//! longest one anyway; its CONNACK's only property is Topic Alias Maximum
//! (`topic_alias_max: Some(TOPIC_ALIAS_MAX)` in `router/routing.rs`),
//! which the client may ignore, and it sends no alias to a client whose
//! CONNECT has none.

mod common;

use common::broker::{Broker, BrokerOptions};
use common::client::scenarios;
use common::client::{BrokerKind, Env, Mode};
use minimqtt::session::Version;

/// A transport mode and the MQTT version the clients speak.
type Way = (Mode, Version);

const V3: Version = Version::V3_1_1;
const V5: Version = Version::V5;

/// The broker's options for `version`: rumqttd's v4 listener for MQTT
/// 3.1.1, its v5 one for MQTT 5 (a listener speaks one version only).
fn options(version: Version) -> BrokerOptions {
    match version {
        Version::V5 => BrokerOptions::default().v5(),
        _ => BrokerOptions::default(),
    }
}

fn env(broker: &Broker, (mode, version): Way) -> Env {
    Env::new(broker.addr(), BrokerKind::Rumqttd, mode).speaking(version)
}

async fn run<F: std::future::Future<Output = ()>>(way: Way, scenario: impl FnOnce(Env) -> F) {
    let broker = Broker::start_with(options(way.1)).await;
    scenario(env(&broker, way)).await;
    broker.stop().await;
}

async fn credentials(way: Way) {
    let auth = Broker::start_with(options(way.1).with_user("alice", "secret")).await;
    let open = Broker::start_with(options(way.1)).await;
    scenarios::credentials(env(&auth, way), env(&open, way)).await;
    auth.stop().await;
    open.stop().await;
}

/// One test per transport mode and MQTT version for a scenario.
macro_rules! per_mode {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn passthrough() {
                per_mode!(@run $name, (Mode::Passthrough, V3));
            }

            #[tokio::test]
            async fn one_byte() {
                per_mode!(@run $name, (Mode::OneByte, V3));
            }

            #[tokio::test]
            async fn random_split() {
                per_mode!(@run $name, (Mode::RandomSplit, V3));
            }

            #[tokio::test]
            async fn merge() {
                per_mode!(@run $name, (Mode::Merge, V3));
            }

            #[tokio::test]
            async fn partial_writes() {
                per_mode!(@run $name, (Mode::PartialWrites, V3));
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

            #[tokio::test]
            async fn v5_one_byte() {
                per_mode!(@run $name, (Mode::OneByte, V5));
            }

            #[tokio::test]
            async fn v5_merge() {
                per_mode!(@run $name, (Mode::Merge, V5));
            }

            #[tokio::test]
            async fn v5_partial_writes() {
                per_mode!(@run $name, (Mode::PartialWrites, V5));
            }
        }
    )*};
    (@run credentials, $mode:expr) => {
        credentials($mode).await
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
    persistent_session,
    streamed,
);
