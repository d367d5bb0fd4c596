//! Recovery from arbitrary file contents: a segment recovered with or without an index file
//! never panics, keeps only whole valid batches, and the metadata decoders reject garbage
//! cleanly. An index the broker itself would have written for any prefix of the segment changes
//! nothing that recovery finds, only how much it reads.
//!
//! Input: one byte choosing where the index file ends, the index file's bytes, then the segment.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use gregor_core::files::{
    encode_segment_index, index_entry, recover_segment, scan_segment, BrokerMeta, PartitionMeta,
};
use gregor_core::io::PartitionDir;
use gregor_core::log::PartitionLog;
use gregor_core::Instant;
use libfuzzer_sys::fuzz_target;

fn recover(base: i64, index: Option<&[u8]>, segment: &[u8]) -> gregor_core::files::SegmentScan {
    recover_segment(base, index, segment.len() as u64, |from| {
        Ok::<_, ()>(segment[from as usize..].to_vec())
    })
    .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let _ = PartitionMeta::decode(data);
    let _ = BrokerMeta::decode(data);
    let (split, rest) = data.split_first().unwrap_or((&0, &[]));
    let split = (*split as usize * 4).min(rest.len());
    let (index, segment) = rest.split_at(split);
    let base = if segment.len() > 8 {
        (segment[0] as i64) * 10
    } else {
        0
    };
    let dir = PartitionDir {
        topic: "t".into(),
        partition: 0,
    };

    // Whatever the index file holds, recovery yields a consistent log.
    let scan = recover(base, Some(index), segment);
    assert!(scan.indexed_len <= scan.valid_len && scan.valid_len <= scan.file_len);
    let (log, _repairs, _notes) = PartitionLog::recover(dir.clone(), vec![scan], Instant(1));
    log.invariants();
    assert!(log.log_end_offset() >= log.log_start_offset());

    // An index written by the broker for a prefix of the segment agrees with a full scan.
    let full = scan_segment(base, segment);
    if full.valid_len > 0 {
        let keep = split % (full.batches.len() + 1);
        let entries: Vec<u8> = full.batches[..keep]
            .iter()
            .flat_map(|b| index_entry(b.position, &b.raw_header))
            .collect();
        let covers = full
            .batches
            .get(keep)
            .map(|b| b.position)
            .unwrap_or(full.valid_len);
        let ours = encode_segment_index(base, covers, &entries);
        let scan = recover(base, Some(&ours), segment);
        assert_eq!(scan.batches, full.batches);
        assert_eq!(scan.valid_len, full.valid_len);
        assert_eq!(scan.indexed_len, covers);
    }
});
