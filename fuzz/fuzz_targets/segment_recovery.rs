//! Recovery from arbitrary file contents: a segment scan and the log rebuilt from it never
//! panic, keep only whole valid batches, and the metadata decoders reject garbage cleanly.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use gregor_core::files::{scan_segment, BrokerMeta, PartitionMeta};
use gregor_core::io::PartitionDir;
use gregor_core::log::PartitionLog;
use gregor_core::Instant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PartitionMeta::decode(data);
    let _ = BrokerMeta::decode(data);
    let base = if data.len() > 8 {
        (data[0] as i64) * 10
    } else {
        0
    };
    let scan = scan_segment(base, data);
    let dir = PartitionDir {
        topic: "t".into(),
        partition: 0,
    };
    let (log, _repairs, _notes) = PartitionLog::recover(dir, vec![scan], Instant(1));
    log.invariants();
    assert!(log.log_end_offset() >= log.log_start_offset());
});
