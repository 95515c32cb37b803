//! The full async client: `Client::new` over a scripted transport and a
//! clock that never waits; connect, subscribe, publish, poll, driven by a
//! no-op-waker `block_on` (`minimqtt_footprint::client_path`).
#![no_std]
#![no_main]

#[path = "../rt.rs"]
mod rt;

use core::hint::black_box;

use minimqtt::Buffers;
use minimqtt_footprint::{BROKER_SCRIPT, PAYLOAD, client_path, sizes};

/// `size_of` the client's types on this target, for `size.sh` (a section
/// the linker script keeps but does not load: it costs no flash).
#[used]
#[unsafe(link_section = ".footprint.sizes")]
static SIZES: [u32; 4] = sizes::SIZES;

/// Receive, transmit, session store, outbox: 1.75 KiB of `.bss`.
static mut BUFFERS: Buffers<512, 512, 512, 256> = Buffers::new();

#[unsafe(no_mangle)]
extern "C" fn footprint_main() -> ! {
    // SAFETY: `footprint_main` runs once and is the only user of BUFFERS.
    let buffers = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let script: &[u8] = black_box(&BROKER_SCRIPT);
    let payload: &[u8] = black_box(&PAYLOAD);
    let result = client_path(script, payload, buffers.slices());
    black_box(&result);
    loop {
        core::hint::spin_loop();
    }
}
