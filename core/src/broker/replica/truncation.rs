//! A follower's truncation that reads its log first (issue 10): the cut's byte position, and
//! the idempotent producers' state as it stood at the cut.
//!
//! When the leader answers a follower's fetch with a diverging epoch (KIP-320), the follower
//! cuts its log back to where the two agree. Two things about that cut are not in memory:
//!
//! * **Where it lies in the segment file.** The log keeps a sparse index (an entry per 4 KiB)
//!   and the exact positions of its unsettled tail only; a cut between index entries of
//!   settled data needs the batch headers read from the entry below it.
//! * **The producer state after it.** Each producer's memory holds its last five batches
//!   (`producer.rs`); cutting the newest ones off leaves it with fewer than the log below the
//!   cut would give, and a producer whose five were all cut would be forgotten, so a retry of
//!   a batch still in the log would be appended a second time. Kafka rebuilds the state after
//!   every truncation (`UnifiedLog.truncateTo` → `rebuildProducerState`): the latest snapshot
//!   at or below the cut, then every batch after it replayed.
//!
//! Both come from one scan. It starts at the partition's producer base (the state a snapshot
//! on storage holds, kept in memory with its byte position: `Partition::producer_base`), or at
//! the log's first segment with no producers when that base lies above the cut, and walks batch
//! headers forward, segment by segment, replaying each batch wholly below the cut exactly as a
//! live append records it. It stops at the batch holding the cut: the cut moves down to that
//! batch's start if it falls inside it (Kafka's `LogSegment.truncateTo` cuts at the batch
//! that holds the offset too). While the scan runs the partition is not fetched; if anything
//! moves under it (leader, epoch, log ends, a failed write's cut) it is dropped and the next
//! fetch decides again.

use super::*;
use crate::batch::HEADER_BYTES;
use crate::files::SEGMENT_HEADER_BYTES;
use crate::log::index::MaxTimestamp;

/// The most one read of a scan asks for: batch headers are walked, batches bigger than what
/// is left of a read are skipped over without being read.
const SCAN_READ_BYTES: u64 = 256 * 1024;

/// A truncation waiting for its scan.
#[derive(Debug)]
pub(in crate::broker) struct Truncation {
    job: u64,
    /// What it was decided under: leader, epoch, log start and end, and cut epoch.
    leader: NodeId,
    epoch: i32,
    log_start: i64,
    log_end: i64,
    cut_epoch: u64,
    /// Where the log is cut (lowered to a batch start if it falls inside one).
    cut: i64,
    /// The next batch to walk: its segment, byte position and offset.
    segment: i64,
    position: u64,
    offset: i64,
    /// The producer state replayed so far: after every batch below `offset`.
    producers: ProducerStates,
    /// The largest timestamp over the batches walked in `segment`.
    scanned: MaxTimestamp,
}

impl Broker {
    /// Cut `key` back to `cut` (below its log end) once a scan found the position and rebuilt
    /// the producer state.
    pub(super) fn start_truncation(&mut self, key: &(String, i32), cut: i64) {
        let job = self.replica.next_truncation_job;
        self.replica.next_truncation_job += 1;
        let (Some(f), Some(p)) = (
            self.replica.following.get(key),
            self.partition(&key.0, key.1),
        ) else {
            return;
        };
        assert!(cut < p.log.log_end_offset() && cut >= p.log.log_start_offset());
        let first = p.log.segments()[0].base_offset;
        let held = |b: &&crate::partition::ProducerBase| {
            b.offset <= cut
                && b.offset >= p.log.log_start_offset()
                && p.log.segments().iter().any(|s| s.base_offset == b.segment)
        };
        let (segment, position, offset, producers) = match p.producer_base.as_ref().filter(held) {
            Some(b) => (b.segment, b.position, b.offset, b.states.clone()),
            None => (
                first,
                SEGMENT_HEADER_BYTES,
                first,
                ProducerStates::default(),
            ),
        };
        let t = Truncation {
            job,
            leader: f.leader,
            epoch: f.epoch,
            log_start: p.log.log_start_offset(),
            log_end: p.log.log_end_offset(),
            cut_epoch: p.cut_epoch,
            cut,
            segment,
            position,
            offset,
            producers,
            scanned: MaxTimestamp::NONE,
        };
        assert!(t.offset <= t.cut, "the scan starts at or below the cut");
        self.replica.truncating.insert(key.clone(), t);
        self.scan_on(key);
    }

    /// The scan's next step: finish at the cut, move to the next segment, or read.
    fn scan_on(&mut self, key: &(String, i32)) {
        loop {
            let (Some(t), Some(p)) = (
                self.replica.truncating.get_mut(key),
                self.topics
                    .get(&key.0)
                    .and_then(|x| x.partitions.get(key.1 as usize)),
            ) else {
                return;
            };
            if t.offset == t.cut {
                return self.finish_truncation(key);
            }
            let segments = p.log.segments();
            let Some(i) = segments.iter().position(|s| s.base_offset == t.segment) else {
                return self.abandon_truncation(key, "its segment is gone".into());
            };
            let seg = &segments[i];
            if t.position < seg.size {
                let len = (seg.size - t.position).min(SCAN_READ_BYTES) as u32;
                let request = StorageRequest::Read {
                    file: p.log.file_of(t.segment),
                    position: t.position,
                    len,
                };
                let purpose = OpPurpose::TruncationScan {
                    topic: key.0.clone(),
                    partition: key.1,
                    job: t.job,
                };
                self.storage(request, purpose);
                return;
            }
            // The segment is walked: the next one starts where it ended.
            match segments.get(i + 1) {
                Some(next) if next.base_offset == t.offset => {
                    (t.segment, t.position) = (next.base_offset, SEGMENT_HEADER_BYTES);
                    t.scanned = MaxTimestamp::NONE;
                }
                _ => {
                    let why = format!("segment {} ends before offset {}", t.segment, t.cut);
                    return self.abandon_truncation(key, why);
                }
            }
        }
    }

    /// A read of truncation scan `job` for `topic`-`partition` came back.
    pub(in crate::broker) fn truncation_scan_done(
        &mut self,
        topic: String,
        partition: i32,
        job: u64,
        result: Result<StorageReply, StorageFault>,
    ) {
        let key = (topic, partition);
        let Some(t) = self.replica.truncating.get(&key).filter(|t| t.job == job) else {
            return;
        };
        let followed = self.replica.following.get(&key);
        let p = self
            .partition(&key.0, key.1)
            .filter(|p| p.offline.is_none());
        let still = followed.is_some_and(|f| f.leader == t.leader && f.epoch == t.epoch)
            && p.is_some_and(|p| {
                p.cut_epoch == t.cut_epoch
                    && p.log.log_end_offset() == t.log_end
                    && p.log.log_start_offset() == t.log_start
            });
        if !still {
            return self.abandon_truncation(&key, "the partition moved on".into());
        }
        let bytes = match result {
            Ok(StorageReply::Read(bytes)) => bytes,
            Ok(StorageReply::Done) => panic!("driver answered a read with Done"),
            Err(fault) => return self.abandon_truncation(&key, format!("read failed: {fault}")),
        };
        if bytes.len() < HEADER_BYTES {
            return self.abandon_truncation(&key, "the segment is shorter than the log".into());
        }
        let producers_max = self.config.producers_per_partition_max;
        let t = self.replica.truncating.get_mut(&key).expect("looked up");
        let mut at = 0usize;
        while t.offset < t.cut && at + HEADER_BYTES <= bytes.len() {
            let h = match BatchHeader::parse(&bytes[at..]) {
                Ok(h) if h.base_offset == t.offset => h,
                Ok(h) => {
                    let why = format!("batch at {} where {} was due", h.base_offset, t.offset);
                    return self.abandon_truncation(&key, why);
                }
                Err(e) => return self.abandon_truncation(&key, format!("a batch: {e}")),
            };
            if h.next_offset() > t.cut {
                // The cut falls inside this batch: cut at its start.
                assert!(h.base_offset < t.cut);
                t.cut = h.base_offset;
                break;
            }
            t.producers.record(&h);
            t.producers.evict_beyond(producers_max);
            t.scanned
                .fold(h.max_timestamp, h.base_offset, h.last_offset());
            (t.position, t.offset) = (t.position + h.size as u64, h.next_offset());
            at += h.size;
        }
        assert!(t.offset <= t.cut, "nothing at or past the cut is replayed");
        self.scan_on(&key);
    }

    fn abandon_truncation(&mut self, key: &(String, i32), why: String) {
        let t = self.replica.truncating.remove(key);
        assert!(t.is_some(), "a truncation to abandon");
        let what = format!(
            "{}-{}: truncation abandoned ({why}); fetching again",
            key.0, key.1
        );
        self.log(LogLevel::Warn, what);
        let backoff = Duration::from_ms(self.config.replica_fetch_backoff_ms);
        self.retry_later(key, backoff);
    }

    /// The scan reached the cut: cut the log there and install the rebuilt producer state.
    fn finish_truncation(&mut self, key: &(String, i32)) {
        let t = self
            .replica
            .truncating
            .remove(key)
            .expect("a scan to finish");
        assert_eq!(t.offset, t.cut, "the scan walked to the cut");
        let (name, index) = (key.0.as_str(), key.1);
        let leader_hw = self.replica.following.get(key).map_or(-1, |f| f.leader_hw);
        if t.cut < leader_hw {
            let what = format!(
                "{name}-{index}: cut at {} below the leader's high watermark {leader_hw} \
                 (a batch of this log straddles where the leader's log diverges)",
                t.cut
            );
            self.log(LogLevel::Warn, what);
        }
        let cuts_max = self.config.partition_cuts_max;
        let p = self.partition_by_key_mut(key);
        let rebuilt = t.producers;
        match p.truncate_rebuilt(t.cut, t.position, t.scanned, rebuilt, cuts_max) {
            Ok(reqs) => {
                assert_eq!(p.log.log_end_offset(), t.cut, "cut where the scan ended");
                let what = format!(
                    "{name}-{index}: truncated to {} (diverged); {} producer(s) rebuilt",
                    t.cut,
                    p.producers.len()
                );
                self.log(LogLevel::Info, what);
                for r in reqs {
                    let what = format!("truncate {name}-{index}");
                    self.storage(r, OpPurpose::Other { what });
                }
                self.touched.insert(key.clone());
                self.produce_waits.touch(key);
            }
            Err(why) => {
                let what = format!("{name}-{index}: cannot truncate to {}: {why}", t.cut);
                self.log(LogLevel::Error, what);
                let backoff = Duration::from_ms(self.config.replica_fetch_backoff_ms);
                self.retry_later(key, backoff);
            }
        }
    }
}
