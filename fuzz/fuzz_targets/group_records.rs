//! `__consumer_offsets` records read back at start: decoding arbitrary bytes never panics, and
//! what decodes re-encodes to records that decode the same.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use bytes::Bytes;
use gregor_core::group::{decode_batches, encode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = decode_batches(Bytes::copy_from_slice(data)) else {
        return;
    };
    if records.is_empty() {
        return;
    }
    let again = decode_batches(encode_batch(&records, 0)).expect("our own encoding decodes");
    assert_eq!(records, again);
});
