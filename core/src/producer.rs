//! The idempotent producer (KIP-98): exactly-once appends per producer and partition.
//!
//! A producer gets an id and epoch from InitProducerId and numbers its batches per partition:
//! the first record of the first batch has sequence 0, and each batch's `baseSequence` follows
//! the previous batch's last. The partition leader remembers, per producer id, the epoch and the
//! last five batches it appended ([`BATCHES_REMEMBERED`], as Kafka does, because a producer has at
//! most five requests in flight). That lets it:
//! * answer a **retried** batch (same sequences as one remembered) with the offset it was first
//!   given, instead of appending it twice;
//! * refuse a batch whose sequence does not follow (OUT_OF_ORDER_SEQUENCE_NUMBER): a gap means a
//!   batch was lost, and appending would reorder the producer's records;
//! * refuse a **zombie** with an older epoch (INVALID_PRODUCER_EPOCH).
//!
//! The state survives a restart, so a restart does not turn a retry into a duplicate. As in
//! Kafka's `ProducerStateManager`, it is snapshotted to `<offset>.snapshot` files
//! ([`encode_snapshot`]) when a segment rolls, at each index checkpoint and at clean shutdown;
//! at start the latest valid snapshot is loaded and only the batches after it are replayed
//! ([`ProducerStates::record`], the same path as a live append).

use crate::batch::BatchHeader;
use crate::files::{encode_file, FileError, PRODUCER_SNAPSHOT_MAGIC};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many appended batches are remembered per producer and partition.
pub const BATCHES_REMEMBERED: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RememberedBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Clone, Debug, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<RememberedBatch>,
}

/// The verdict on a batch from an idempotent producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended: answer with this batch's original offsets.
    Duplicate(RememberedBatch),
    /// Sequence does not follow the last one appended.
    OutOfOrder { expected: i32 },
    /// The epoch is older than the producer's current one: a fenced zombie.
    StaleEpoch { current: i16 },
}

#[derive(Clone, Debug, Default)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
}

fn follows(last: i32, first: i32) -> bool {
    first == last.wrapping_add(1) || (last == i32::MAX && first == 0)
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    /// Every producer remembered, by id (DescribeProducers lists them).
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> + '_ {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Decide what to do with a batch (Kafka's `ProducerAppendInfo.checkSequence`).
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        assert!(h.has_producer_id());
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // No state: a new producer, or one whose state expired. Kafka accepts it as is.
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::StaleEpoch {
                current: entry.epoch,
            };
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch restarts sequences at 0.
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder { expected: 0 }
            };
        }
        let last_seq = h.last_sequence();
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*b);
        }
        match entry.batches.back() {
            Some(last) if !follows(last.last_seq, h.base_sequence) => SequenceCheck::OutOfOrder {
                expected: last.last_seq.wrapping_add(1),
            },
            _ => SequenceCheck::Append,
        }
    }

    /// Record an appended batch (live, or replayed from the log at start).
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(RememberedBatch {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while entry.batches.len() > BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
    }

    /// Forget batches at or above `offset` (the log was truncated there) and producers left with
    /// nothing. A producer whose batches were cut will be told OUT_OF_ORDER or accepted afresh,
    /// never answered with an offset that no longer holds its batch.
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// The largest offset any remembered batch ends at.
    pub fn max_last_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.batches.back())
            .map(|b| b.last_offset)
            .max()
    }

    /// The largest producer id seen, to keep new ids above it.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().next_back().copied()
    }

    /// Drop the least recently written producers beyond `max` (bounded memory).
    pub fn evict_beyond(&mut self, max: usize) {
        while self.producers.len() > max {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, e)| e.batches.back().map(|b| b.last_offset).unwrap_or(-1))
                .map(|(pid, _)| *pid)
                .expect("non-empty");
            self.producers.remove(&oldest);
        }
    }
}

/// One producer in a snapshot: id, epoch, and its remembered batches as (first sequence, last
/// sequence, base offset, last offset).
type SnapshotProducer = (i64, i16, Vec<(i32, i32, i64, i64)>);

/// A snapshot file's contents, format 1: the state after every batch below `offset`.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    offset: i64,
    producers: Vec<SnapshotProducer>,
}

/// Format 2 adds the partition's leader-epoch cache as of `offset` (`(epoch, start offset)`
/// entries, strictly increasing: the log's `LeaderEpochCache`): recovery starts the cache from it and adds the epochs of
/// the batches it replays after it.
#[derive(Serialize, Deserialize)]
struct SnapshotV2 {
    offset: i64,
    producers: Vec<SnapshotProducer>,
    epochs: Vec<(i32, i64)>,
}

/// The snapshot format [`encode_snapshot`] writes (format 1 has no epochs).
const SNAPSHOT_FORMAT_EPOCHS: u16 = 2;

fn snapshot_producers(states: &ProducerStates, offset: i64) -> Vec<SnapshotProducer> {
    let producers = states.producers.iter().map(|(pid, e)| {
        assert!(e.batches.len() <= BATCHES_REMEMBERED);
        let batches = e
            .batches
            .iter()
            .map(|b| (b.first_seq, b.last_seq, b.base_offset, b.last_offset));
        (*pid, e.epoch, batches.collect::<Vec<_>>())
    });
    let producers: Vec<SnapshotProducer> = producers.collect();
    assert!(producers.iter().flat_map(|p| &p.2).all(|b| b.3 < offset));
    producers
}

/// Encode `states`, the state after every batch below `offset`, as a snapshot file (format 1,
/// without leader epochs: recovery then rebuilds the epochs by replaying the whole log).
pub fn encode_snapshot(states: &ProducerStates, offset: i64) -> Bytes {
    let snapshot = Snapshot {
        offset,
        producers: snapshot_producers(states, offset),
    };
    encode_file(PRODUCER_SNAPSHOT_MAGIC, &snapshot)
}

/// Encode `states` and the leader-epoch cache `epochs`, both as of `offset` (the log end), as a
/// snapshot file (format 2). What the broker writes.
pub fn encode_snapshot_with_epochs(
    states: &ProducerStates,
    epochs: &[(i32, i64)],
    offset: i64,
) -> Bytes {
    assert!(
        epochs.iter().all(|(_, s)| *s <= offset),
        "a snapshot's epochs start within what it covers"
    );
    let snapshot = SnapshotV2 {
        offset,
        producers: snapshot_producers(states, offset),
        epochs: epochs.to_vec(),
    };
    crate::files::encode_file_at(PRODUCER_SNAPSHOT_MAGIC, SNAPSHOT_FORMAT_EPOCHS, &snapshot)
}

/// Decode a snapshot file that should describe the state below `expected_offset` (from its
/// name). Refuses damage, another format, and contents that cannot be true (a batch at or
/// above the offset, more batches than remembered, batches out of order).
pub fn decode_snapshot(bytes: &[u8], expected_offset: i64) -> Result<ProducerStates, FileError> {
    decode_snapshot_with_epochs(bytes, expected_offset).map(|(states, _)| states)
}

/// [`decode_snapshot`], and the leader-epoch entries the snapshot carries (`None` for a
/// format-1 snapshot, which has none). Refuses epochs that do not strictly increase or start
/// past the snapshot's offset.
#[allow(clippy::type_complexity)]
pub fn decode_snapshot_with_epochs(
    bytes: &[u8],
    expected_offset: i64,
) -> Result<(ProducerStates, Option<Vec<(i32, i64)>>), FileError> {
    let accepted = [crate::files::FORMAT_VERSION, SNAPSHOT_FORMAT_EPOCHS];
    let (version, payload) = crate::files::file_payload(PRODUCER_SNAPSHOT_MAGIC, bytes, &accepted)?;
    let (offset, producers, epochs) = if version == SNAPSHOT_FORMAT_EPOCHS {
        let s: SnapshotV2 = crate::files::decode_payload(payload)?;
        (s.offset, s.producers, Some(s.epochs))
    } else {
        let s: Snapshot = crate::files::decode_payload(payload)?;
        (s.offset, s.producers, None)
    };
    if offset != expected_offset {
        return Err(FileError::Decode(format!(
            "snapshot of offset {offset} in the file of {expected_offset}"
        )));
    }
    if let Some(entries) = &epochs {
        let increasing = entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let sane = entries
            .iter()
            .all(|(e, s)| *e >= 0 && *s >= 0 && *s <= offset);
        if !increasing || !sane {
            return Err(FileError::Decode("impossible leader epochs".into()));
        }
    }
    let mut states = ProducerStates::default();
    for (pid, epoch, batches) in producers {
        let ordered = batches.windows(2).all(|w| w[0].3 < w[1].2);
        let sane = batches.iter().all(|b| b.2 <= b.3 && b.3 < offset);
        if pid < 0 || batches.is_empty() || batches.len() > BATCHES_REMEMBERED || !ordered || !sane
        {
            return Err(FileError::Decode(format!(
                "producer {pid}: impossible batches"
            )));
        }
        let batches = batches
            .into_iter()
            .map(
                |(first_seq, last_seq, base_offset, last_offset)| RememberedBatch {
                    first_seq,
                    last_seq,
                    base_offset,
                    last_offset,
                },
            );
        let entry = ProducerEntry {
            epoch,
            batches: batches.collect(),
        };
        if states.producers.insert(pid, entry).is_some() {
            return Err(FileError::Decode(format!("producer {pid} twice")));
        }
    }
    Ok((states, epochs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign, tests::make_batch, BatchHeader};

    fn hdr(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchHeader {
        let mut b = make_batch(count, Some((pid, epoch, seq)), 0);
        assign(&mut b, offset, 0);
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn sequences_duplicates_and_zombies() {
        let mut s = ProducerStates::default();
        let a = hdr(1, 0, 0, 2, 0);
        assert_eq!(s.check(&a), SequenceCheck::Append);
        s.record(&a);
        // A retry of the same batch is a duplicate with its original offsets.
        assert!(
            matches!(s.check(&hdr(1, 0, 0, 2, 99)), SequenceCheck::Duplicate(b) if b.base_offset == 0)
        );
        // A gap is refused.
        assert_eq!(
            s.check(&hdr(1, 0, 3, 1, 2)),
            SequenceCheck::OutOfOrder { expected: 2 }
        );
        let b = hdr(1, 0, 2, 1, 2);
        assert_eq!(s.check(&b), SequenceCheck::Append);
        s.record(&b);
        // A new epoch restarts at 0; the old epoch is then fenced.
        let c = hdr(1, 1, 0, 1, 3);
        assert_eq!(s.check(&c), SequenceCheck::Append);
        s.record(&c);
        assert_eq!(
            s.check(&hdr(1, 0, 3, 1, 4)),
            SequenceCheck::StaleEpoch { current: 1 }
        );
        // Truncation forgets what was cut.
        s.truncate_to(3);
        assert!(s.get(1).is_none());
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&hdr(9, 0, i, 1, i as i64));
        }
        s.record(&hdr(4, 2, 0, 3, 7));
        let snap = encode_snapshot(&s, 10);
        let back = decode_snapshot(&snap, 10).unwrap();
        assert_eq!(back.producers.len(), 2);
        assert_eq!(back.get(9).unwrap().batches, s.get(9).unwrap().batches);
        assert_eq!(back.get(4).unwrap().epoch, 2);
        assert!(
            decode_snapshot(&snap, 11).is_err(),
            "the name and the contents disagree"
        );
        let mut bad = snap.to_vec();
        bad[20] ^= 1;
        assert!(decode_snapshot(&bad, 10).is_err());
    }

    #[test]
    fn snapshots_carry_leader_epochs_and_refuse_impossible_ones() {
        let mut s = ProducerStates::default();
        s.record(&hdr(9, 0, 0, 2, 3));
        let snap = encode_snapshot_with_epochs(&s, &[(0, 0), (4, 3)], 5);
        let (back, epochs) = decode_snapshot_with_epochs(&snap, 5).unwrap();
        assert_eq!(back.get(9).unwrap().batches, s.get(9).unwrap().batches);
        assert_eq!(epochs, Some(vec![(0, 0), (4, 3)]));
        // Format 1 still reads, without epochs.
        let old = encode_snapshot(&s, 5);
        assert_eq!(decode_snapshot_with_epochs(&old, 5).unwrap().1, None);
        for bad in [vec![(4, 0), (4, 3)], vec![(0, 3), (4, 3)], vec![(-1, 0)]] {
            let snap = encode_snapshot_with_epochs(&ProducerStates::default(), &bad, 6);
            assert!(decode_snapshot_with_epochs(&snap, 6).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&hdr(9, 0, i, 1, i as i64));
        }
        assert_eq!(s.get(9).unwrap().batches.len(), BATCHES_REMEMBERED);
        assert_eq!(s.check(&hdr(9, 0, 7, 1, 7)), SequenceCheck::Append);
    }
}
