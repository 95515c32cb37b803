//! The smallest MQTT core: encode a CONNECT and a QoS 0 PUBLISH, decode one
//! incoming PUBLISH, dispatch it to one topic callback
//! (`minimqtt_footprint::codec_path`). No client, no session, no async.
#![no_std]
#![no_main]

#[path = "../rt.rs"]
mod rt;

use core::hint::black_box;

use minimqtt_footprint::{INCOMING_PUBLISH, Led, PAYLOAD, codec_passed, codec_path};

/// Ends in `rt::footprint_done`, with 1 if the path passed.
#[unsafe(no_mangle)]
extern "C" fn footprint_main() -> ! {
    let mut tx = [0u8; 128];
    let mut led = Led::default();
    // Opaque inputs: the optimiser cannot fold the decode away.
    let incoming: &[u8] = black_box(&INCOMING_PUBLISH);
    let payload: &[u8] = black_box(&PAYLOAD);
    let result = codec_path(incoming, payload, &mut tx, &mut led);
    // ... nor drop what it produced.
    black_box(&result);
    black_box(&led);
    let status = u32::from(codec_passed(&result, &led));
    loop {
        rt::footprint_done(status);
    }
}
