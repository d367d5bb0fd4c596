//! Record-batch header parsing and validation: no panic; a batch that validates keeps
//! validating after the broker assigns it an offset, and its offsets are consistent.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use gregor_core::batch::{self, BatchHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = BatchHeader::parse(data) else {
        return;
    };
    assert!(h.size <= data.len() || data.len() < h.size);
    if h.size > data.len() || h.verify(&data[..h.size]).is_err() {
        return;
    }
    assert!(h.last_offset() >= h.base_offset || h.last_offset() < 0 || h.base_offset < 0);
    let mut owned = data[..h.size].to_vec();
    batch::assign(&mut owned, 1_000, 7);
    let h2 = BatchHeader::parse(&owned).expect("still parses after assign");
    assert_eq!(h2.base_offset, 1_000);
    assert_eq!(h2.size, h.size);
    h2.verify(&owned)
        .expect("assigning an offset keeps the CRC valid (it does not cover it)");
});
