//! Any bytes from a client: frames are decoded by the wire layer and served by the broker. No
//! panic, and every response the broker produces encodes at the version asked for.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use gregor_core::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = gregor_fuzz::harness(Config::default());
    h.feed_stream(1, data);
    // Let parked fetches, produce timeouts and group timers fire.
    h.advance_ms(40_000);
});
