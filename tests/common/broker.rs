//! The in-process rumqttd broker, kept in `support/broker` so that the
//! walkthrough example can use it without the tests' dev-dependencies.
// Not every test binary that includes `common` starts a broker.
#[allow(unused_imports)]
pub use minimqtt_test_broker::*;
