//! Client scenarios (`tests/common/client/scenarios.rs`) against the
//! in-process rumqttd, each once per transport mode: a scenario must pass
//! unchanged when packets are split, merged, or written piecemeal.
//!
//! rumqttd refuses keep-alive 0 and answers bad credentials by closing the
//! connection without CONNACK; `keep_alive_zero` therefore runs against
//! mosquitto only, and `credentials` expects a closed connection here.

mod common;

use common::broker::{Broker, BrokerOptions};
use common::client::scenarios;
use common::client::{BrokerKind, Env, Mode};

fn env(broker: &Broker, mode: Mode) -> Env {
    Env::new(broker.addr(), BrokerKind::Rumqttd, mode)
}

async fn run<F: std::future::Future<Output = ()>>(mode: Mode, scenario: impl FnOnce(Env) -> F) {
    let broker = Broker::start().await;
    scenario(env(&broker, mode)).await;
    broker.stop().await;
}

async fn credentials(mode: Mode) {
    let auth = Broker::start_with(BrokerOptions::default().with_user("alice", "secret")).await;
    let open = Broker::start().await;
    scenarios::credentials(env(&auth, mode), env(&open, mode)).await;
    auth.stop().await;
    open.stop().await;
}

/// One test per transport mode for a scenario.
macro_rules! per_mode {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn passthrough() {
                per_mode!(@run $name, Mode::Passthrough);
            }

            #[tokio::test]
            async fn one_byte() {
                per_mode!(@run $name, Mode::OneByte);
            }

            #[tokio::test]
            async fn random_split() {
                per_mode!(@run $name, Mode::RandomSplit);
            }

            #[tokio::test]
            async fn merge() {
                per_mode!(@run $name, Mode::Merge);
            }

            #[tokio::test]
            async fn partial_writes() {
                per_mode!(@run $name, Mode::PartialWrites);
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
