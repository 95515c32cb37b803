//! Helpers shared by the integration tests (`mod common;` in each test
//! file). Each module is self-contained so an example can include one
//! with `#[path = "..."]`.
pub mod broker;
pub mod client;
pub mod connector;
pub mod fake;
pub mod faults;
pub mod mosquitto;
pub mod transport;
pub mod wire;
