//! The full async client: `Client::new` over a scripted transport and a
//! clock that never waits; connect, subscribe, publish, poll, driven by a
//! no-op-waker `block_on` (`minimqtt_footprint::client_path`).
#![no_std]
#![no_main]

#[path = "../rt.rs"]
mod rt;

use core::hint::black_box;

use minimqtt::Buffers;
use minimqtt::session::Version;
use minimqtt_footprint::{
    BROKER_SCRIPT, BROKER_SCRIPT_V5, PAYLOAD, client_passed, client_path, sizes,
};

/// `size_of` the client's types on this target, for `size.sh` (a section
/// the linker script keeps but does not load: it costs no flash).
#[used]
#[unsafe(link_section = ".footprint.sizes")]
static SIZES: [u32; 4] = sizes::SIZES;

/// Receive buffer, arena (transmit queue and session store), outbox:
/// 1.75 KiB of `.bss`.
static mut BUFFERS: Buffers<512, 1024, 256> = Buffers::new();

/// Ends in `rt::footprint_done`, with 1 if the path passed.
#[unsafe(no_mangle)]
extern "C" fn footprint_main() -> ! {
    // SAFETY: `footprint_main` runs once and is the only user of BUFFERS.
    let buffers = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    // Opaque, so that a build with both versions keeps both: 3.1.1 when
    // the build has it, MQTT 5 otherwise.
    let version = black_box(Version::DEFAULT);
    let script: &[u8] = match version {
        Version::V3_1_1 => black_box(&BROKER_SCRIPT),
        Version::V5 => black_box(&BROKER_SCRIPT_V5),
    };
    let payload: &[u8] = black_box(&PAYLOAD);
    let result = client_path(version, script, payload, buffers.slices());
    black_box(&result);
    let status = u32::from(client_passed(&result));
    loop {
        rt::footprint_done(status);
    }
}
