//! Recovery from arbitrary file contents: a partition directory whose segment, index files
//! (`.index`, `.timeindex`) and producer snapshot hold anything never panics, keeps only whole
//! valid batches, and the metadata decoders reject garbage cleanly. A segment found as a
//! compaction's `.swap` file recovers as the segment it holds, whatever lies beside it. Index files and a snapshot
//! the broker itself would have written for any prefix of the segment change nothing that
//! recovery finds (the log, its sparse index, the producers' state), only how much it reads.
//!
//! Input: a byte of choices, a byte choosing where the fuzzed index bytes end, those bytes,
//! then the segment.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use gregor_core::batch::BatchHeader;
use gregor_core::files::{walk_batches, BrokerMeta, PartitionMeta, SEGMENT_HEADER_BYTES};
use gregor_core::io::{PartitionDir, StorageRequest};
use gregor_core::log::index::{encode_indexes, SparseIndex};
use gregor_core::log::recover::{recover_partition, DirEntry};
use gregor_core::log::PartitionLog;
use gregor_core::log::LeaderEpochCache;
use gregor_core::producer::{encode_snapshot, encode_snapshot_with_epochs, ProducerStates};
use gregor_core::{Instant, Recovered};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

type Files = BTreeMap<String, Vec<u8>>;

/// Recover the directory; returns the partition and the segment bytes read.
fn recover(files: &Files) -> (gregor_core::log::recover::RecoveredPartition, u64) {
    let entries: Vec<DirEntry> = files
        .iter()
        .map(|(name, b)| DirEntry {
            name: name.clone(),
            len: b.len() as u64,
        })
        .collect();
    let mut read = 0;
    let rp = recover_partition("t-0".into(), None, &entries, |name, from, to| {
        if name.ends_with(".log") {
            read += to - from;
        }
        Ok::<_, ()>(files[name][from as usize..to as usize].to_vec())
    })
    .unwrap();
    (rp, read)
}

fn same_state(a: &ProducerStates, b: &ProducerStates) -> bool {
    encode_snapshot(a, i64::MAX) == encode_snapshot(b, i64::MAX)
}

fuzz_target!(|data: &[u8]| {
    let _ = PartitionMeta::decode(data);
    let _ = BrokerMeta::decode(data);
    let _ = gregor_core::producer::decode_snapshot(data, 0);
    let [choice, split, rest @ ..] = data else {
        return;
    };
    let keep_choice = *split as usize;
    let split = (keep_choice * 4).min(rest.len());
    let (junk, segment) = rest.split_at(split);
    let base = if segment.len() > 8 {
        (segment[0] as i64) * 10
    } else {
        0
    };
    let dir = PartitionDir {
        topic: "t".into(),
        partition: 0,
    };
    let log_name = format!("{base:020}.log");
    let (index_name, time_name) = (format!("{base:020}.index"), format!("{base:020}.timeindex"));

    // Whatever the index and snapshot files hold, recovery yields a consistent log.
    let mut files = Files::new();
    files.insert(log_name.clone(), segment.to_vec());
    let half = junk.len() / 2;
    if choice & 1 != 0 {
        files.insert(index_name.clone(), junk[..half].to_vec());
    }
    if choice & 2 != 0 {
        files.insert(time_name.clone(), junk[half..].to_vec());
    }
    if choice & 4 != 0 {
        files.insert(
            format!("{:020}.snapshot", base + (choice >> 3) as i64),
            junk.to_vec(),
        );
    }
    let (rp, _) = recover(&files);
    let (log, _, _) =
        PartitionLog::recover(dir.clone(), rp.segments.clone(), rp.snapshot, Instant(1));
    log.invariants();
    let _ = Recovered::default();

    // The truth: walk the whole segment.
    let mut headers: Vec<(u64, BatchHeader)> = Vec::new();
    let valid = segment.len() >= SEGMENT_HEADER_BYTES as usize
        && gregor_core::files::check_segment_header(segment) == Ok(base);
    if valid {
        walk_batches(
            &segment[SEGMENT_HEADER_BYTES as usize..],
            SEGMENT_HEADER_BYTES,
            base,
            |p, h, _| headers.push((p, *h)),
        );
    }
    let full = recover(&BTreeMap::from([(log_name.clone(), segment.to_vec())])).0;
    let truth = &full.segments[0];
    assert_eq!(
        rp.segments[0].valid_len, truth.valid_len,
        "damaged caches never change the log"
    );
    assert_eq!(rp.segments[0].next_offset, truth.next_offset);

    // A clean (log compaction) interrupted after its output became `<base>.log.swap`: whatever
    // the old `.log`, its index files and a `.cleaned` leftover hold, recovery reads the swap,
    // finds what the segment alone gives, and renames the swap into place before any repair.
    let swapped = Files::from([
        (log_name.clone(), junk.to_vec()),
        (format!("{log_name}.swap"), segment.to_vec()),
        (index_name.clone(), junk.to_vec()),
        (time_name.clone(), junk.to_vec()),
        (format!("{log_name}.cleaned"), junk.to_vec()),
    ]);
    let s = &recover(&swapped).0.segments;
    assert_eq!(s.len(), 1, "one segment, from its swap file");
    assert_eq!(
        (s[0].valid_len, s[0].next_offset, &s[0].index),
        (truth.valid_len, truth.next_offset, &truth.index),
        "a swap recovers as the segment it holds"
    );
    assert!(s[0].swap && s[0].cleaned_leftover && s[0].indexed_len == 0);
    let (_, repairs, _) = PartitionLog::recover(dir.clone(), s.clone(), None, Instant(1));
    assert!(
        matches!(&repairs[..2], [StorageRequest::CompleteSegmentSwap { .. }, StorageRequest::DiscardCleanedSegment { .. }]),
        "the swap goes into place first: {repairs:?}"
    );
    if !valid {
        return;
    }

    // Where recovery saw a leader epoch start (or go back) it can cut without reading again:
    // each such cut names a batch the walk found, at its byte position, with the producer
    // state the batches below it give (a torn `partitionLeaderEpoch` is cut there, seed 477).
    for c in full.epoch_starts.iter().chain(&full.epoch_regress) {
        let i = headers
            .iter()
            .position(|(_, h)| h.base_offset == c.offset)
            .expect("an epoch cut lies at a batch");
        assert_eq!(headers[i].0, c.position, "at the batch's byte position");
        assert_eq!(headers[i].1.partition_leader_epoch, c.epoch);
        let mut below = ProducerStates::default();
        for (_, h) in &headers[..i] {
            below.record(h);
        }
        assert!(same_state(&below, &c.producers), "the state below the cut");
    }

    // Index files and a snapshot the broker would write for a prefix of `keep` batches.
    let keep = keep_choice % (headers.len() + 1);
    let mut index = SparseIndex::new(base);
    let mut producers = ProducerStates::default();
    let mut epochs = LeaderEpochCache::default();
    for (p, h) in &headers[..keep] {
        let _ = epochs.assign(h.partition_leader_epoch, h.base_offset);
        index.on_append(
            h.base_offset,
            h.last_offset(),
            *p,
            h.size as u64,
            h.max_timestamp,
            gregor_core::log::index::INDEX_INTERVAL_BYTES,
        );
        producers.record(h);
    }
    let covers = headers
        .get(keep)
        .map(|(p, _)| *p)
        .unwrap_or(truth.valid_len);
    let next = headers
        .get(keep)
        .map(|(_, h)| h.base_offset)
        .unwrap_or(truth.next_offset);
    let (o, t) = encode_indexes(&index, covers, next);
    let mut ours = Files::from([
        (log_name, segment.to_vec()),
        (index_name, o.to_vec()),
        (time_name, t.to_vec()),
    ]);
    ours.insert(
        format!("{next:020}.snapshot"),
        encode_snapshot_with_epochs(&producers, epochs.entries(), next).to_vec(),
    );
    let (rp, read) = recover(&ours);
    let s = &rp.segments[0];
    assert_eq!(
        (s.valid_len, s.next_offset),
        (truth.valid_len, truth.next_offset)
    );
    assert_eq!(
        s.index, truth.index,
        "a loaded index extended by the walk is the one a walk builds"
    );
    assert_eq!(s.indexed_len, covers);
    // The tail past the index is walked, and the producer replay walks from the index entry
    // at or below the snapshot's offset: nothing before those is read.
    let len = segment.len() as u64;
    let replay_from = index.floor(next).1;
    assert!(
        read <= (len - covers) + (len - replay_from),
        "only the tail is read"
    );
    assert_eq!(rp.snapshot, Some(next));
    assert!(
        same_state(&rp.producers, &full.producers),
        "snapshot plus replay equals a full replay"
    );
    assert_eq!(
        rp.epochs, full.epochs,
        "the leader epochs of a snapshot plus a replay equal a full replay's"
    );
});
