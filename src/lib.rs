#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! minimqtt
pub mod codec;
pub mod topic;
