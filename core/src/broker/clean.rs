//! The log cleaner's driver (log compaction: [`crate::log::cleaner`] has the rules and the
//! guarantee). One partition is cleaned at a time, as Kafka's single cleaner thread does
//! (`log.cleaner.threads=1`), and a clean is a conversation with storage: one read of at most
//! [`CLEAN_CHUNK_BYTES`] in flight, the next issued when it completes, so no step does more
//! than a chunk's work and produce latency does not spike.
//!
//! Every `log_cleaner_backoff_ms` (Kafka `log.cleaner.backoff.ms`), while a compacted topic
//! exists, the cleaner picks the partition whose closed segments below the high watermark are
//! the dirtiest (bytes written since its last clean, over all of them), if that share reaches
//! the topic's `min.cleanable.dirty.ratio`. Where the last clean stopped (the clean point) is
//! kept in memory only: after a restart the whole log counts as dirty, and the first clean
//! redoes the work (Kafka checkpoints it in `cleaner-offset-checkpoint`).
//!
//! A clean that finds its segment changed (retention or DeleteRecords deleted it), a write
//! that fails, or bytes that do not parse, is abandoned: its `.cleaned` file is deleted and
//! the log is as before. Only a failed rename of a complete swap takes the partition offline
//! (the log in memory already describes the new segment), and a restart finishes the swap.

use super::*;
use crate::io::SegmentFile;
use crate::log::cleaner::{
    whole_batches, CleanRules, CleanStats, OffsetMap, SegmentRewriter, CLEAN_CHUNK_BYTES,
    OFFSET_MAP_BYTES_MAX,
};
use crate::log::Segment;

/// The cleaner's state in the broker.
#[derive(Debug, Default)]
pub(super) struct Cleaner {
    job: Option<Job>,
    /// Where the last clean of each partition stopped: offsets below were cleaned.
    clean_points: BTreeMap<(String, i32), i64>,
    next_check: Option<Instant>,
    next_job: u64,
}

/// What a storage request of a clean was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CleanOp {
    Read,
    Write,
    Swap,
    Complete,
}

#[derive(Debug)]
struct Job {
    id: u64,
    topic: String,
    topic_id: [u8; 16],
    partition: i32,
    /// The closed segments the clean may touch, as (base, size, next offset) when it began.
    segments: Vec<(i64, u64, i64)>,
    map: OffsetMap,
    /// The map covers the dirty records below this offset (set when mapping ends).
    map_end: Option<i64>,
    forced: BTreeSet<Bytes>,
    rules: CleanRules,
    stage: Stage,
    /// Writes to the `.cleaned` file not yet completed, and whether one failed.
    writes: usize,
    /// The length of the segment's `.cleaned` file, counting writes in flight.
    cleaned_len: u64,
    /// The length of the read in flight (a shorter answer means a short file).
    read_len: u64,
    failed: Option<String>,
    stats: CleanStats,
    started: Instant,
}

#[derive(Debug)]
enum Stage {
    /// Reading segment `seg` from byte `position` into the map.
    Map { seg: usize, position: u64 },
    /// Reading segment `seg` from `position` into its cleaned copy.
    Rewrite {
        seg: usize,
        position: u64,
        out: Box<SegmentRewriter>,
    },
    /// Every byte of the cleaned copy of `seg` is written or in flight; the swap follows.
    Written { seg: usize, cleaned: Box<Segment> },
    /// The swap (fsync, rename to `.swap`) is in flight.
    Swapping { seg: usize, cleaned: Box<Segment> },
    /// Between two stages.
    Idle,
}

impl Cleaner {
    /// Whether a clean of partition `partition` of `topic` is under way (its files in use).
    pub(super) fn cleaning(&self, topic: &str, partition: i32) -> bool {
        self.job
            .as_ref()
            .is_some_and(|j| j.topic == topic && j.partition == partition)
    }
}

impl Broker {
    /// When the cleaner next looks for work: only while a compacted topic exists, so a broker
    /// without one keeps the deadlines it had.
    pub(super) fn cleaner_deadline(&self) -> Option<Instant> {
        let compacted = self
            .topics
            .values()
            .any(|t| !t.internal && t.settings.compaction.policy.compacts());
        if !compacted || self.cleaner.job.is_some() {
            return None;
        }
        Some(self.cleaner.next_check.unwrap_or(self.now))
    }

    /// At a step's time checks: start a clean if one is due.
    pub(super) fn cleaner_tick(&mut self) {
        let Some(due) = self.cleaner_deadline() else {
            return;
        };
        if self.now < due {
            return;
        }
        self.cleaner.next_check =
            Some(self.now + Duration::from_ms(self.config.log_cleaner_backoff_ms));
        if let Some(job) = self.pick_clean() {
            self.log(
                LogLevel::Info,
                format!(
                    "log cleaner: cleaning {}-{} ({} closed segments)",
                    job.topic,
                    job.partition,
                    job.segments.len()
                ),
            );
            self.cleaner.job = Some(job);
            if let Err(why) = self.clean_read_next(0) {
                self.abandon_clean(why);
            }
        }
    }

    /// The dirtiest compacted partition whose dirty share reaches its topic's threshold.
    fn pick_clean(&mut self) -> Option<Job> {
        let now_ms = self.now.unix_ms();
        let mut best: Option<(u64, Job)> = None;
        for (name, t) in &self.topics {
            let c = t.settings.compaction;
            if t.internal || !c.policy.compacts() {
                continue;
            }
            for (i, p) in t.partitions.iter().enumerate() {
                if p.offline.is_some() {
                    continue;
                }
                let segs = p.log.segments();
                let closed = &segs[..segs.len() - 1];
                let limit = p.high_watermark.min(p.written_end);
                let lag = c.min_compaction_lag_ms;
                let cleanable: Vec<(i64, u64, i64)> = closed
                    .iter()
                    .take_while(|s| s.next_offset() <= limit)
                    .take_while(|s| lag <= 0 || s.max_timestamp() <= now_ms - lag)
                    .map(|s| (s.base_offset, s.size, s.next_offset()))
                    .collect();
                assert!(
                    cleanable.windows(2).all(|w| w[0].2 == w[1].0),
                    "closed segments are contiguous"
                );
                assert!(cleanable.iter().all(|s| s.0 < s.2 && s.2 <= limit));
                let start = p.log.log_start_offset();
                let point = self
                    .cleaner
                    .clean_points
                    .get(&(name.clone(), i as i32))
                    .copied()
                    .unwrap_or(start)
                    .max(start);
                let total: u64 = cleanable.iter().map(|s| s.1).sum();
                let dirty: u64 = cleanable.iter().filter(|s| s.2 > point).map(|s| s.1).sum();
                assert!(dirty <= total, "the dirty part is part of the whole");
                let ratio_met = dirty * 1000 >= c.min_cleanable_dirty_ratio_permille as u64 * total;
                if dirty == 0 || !ratio_met {
                    continue;
                }
                // The share, in millionths, to compare partitions.
                let share = dirty * 1_000_000 / total.max(1);
                if best.as_ref().is_some_and(|(b, _)| *b >= share) {
                    continue;
                }
                let first = cleanable.iter().position(|s| s.2 > point).unwrap();
                assert!(first < cleanable.len() && cleanable[first].2 > point);
                let job = Job {
                    id: 0,
                    topic: name.clone(),
                    topic_id: t.id,
                    partition: i as i32,
                    segments: cleanable,
                    map: OffsetMap::default(),
                    map_end: None,
                    forced: BTreeSet::new(),
                    rules: CleanRules {
                        now_ms,
                        delete_retention_ms: c.delete_retention_ms,
                    },
                    stage: Stage::Map {
                        seg: first,
                        position: crate::files::SEGMENT_HEADER_BYTES,
                    },
                    writes: 0,
                    cleaned_len: 0,
                    read_len: 0,
                    failed: None,
                    stats: CleanStats::default(),
                    started: self.now,
                };
                best = Some((share, job));
            }
        }
        let (_, mut job) = best?;
        assert!(!job.segments.is_empty() && job.map.is_empty() && job.map_end.is_none());
        job.id = self.cleaner.next_job;
        self.cleaner.next_job += 1;
        Some(job)
    }

    /// The job's partition, if it is still the one the job began on and online.
    fn clean_partition(&mut self) -> Option<&mut Partition> {
        let job = self.cleaner.job.as_ref()?;
        let (topic, id, index) = (job.topic.clone(), job.topic_id, job.partition);
        self.partition_mut(&topic, id, index)
            .filter(|p| p.offline.is_none())
    }

    /// Abandon the clean in progress, deleting its `.cleaned` file.
    fn abandon_clean(&mut self, why: String) {
        let Some(job) = self.cleaner.job.take() else {
            return;
        };
        assert!(self.cleaner.job.is_none(), "an abandoned clean is gone");
        let seg = match &job.stage {
            Stage::Map { .. } | Stage::Idle => None,
            Stage::Rewrite { seg, .. }
            | Stage::Written { seg, .. }
            | Stage::Swapping { seg, .. } => Some(*seg),
        };
        self.log(
            LogLevel::Warn,
            format!(
                "log cleaner: abandoned the clean of {}-{}: {why}",
                job.topic, job.partition
            ),
        );
        if let Some(seg) = seg {
            let file = SegmentFile {
                dir: PartitionDir {
                    topic: job.topic.clone(),
                    partition: job.partition,
                },
                base_offset: job.segments[seg].0,
            };
            let what = format!("discard a clean of {}-{}", job.topic, job.partition);
            self.storage(
                StorageRequest::DiscardCleanedSegment { file },
                OpPurpose::Other { what },
            );
        }
    }

    fn clean_file(&self, seg: usize) -> SegmentFile {
        let job = self.cleaner.job.as_ref().unwrap();
        assert!(seg < job.segments.len(), "a segment of the clean");
        SegmentFile {
            dir: PartitionDir {
                topic: job.topic.clone(),
                partition: job.partition,
            },
            base_offset: job.segments[seg].0,
        }
    }

    fn clean_op(&mut self, request: StorageRequest, op: CleanOp) {
        let job = self.cleaner.job.as_mut().unwrap();
        if op == CleanOp::Write {
            job.writes += 1;
        }
        assert!(
            op != CleanOp::Swap || job.writes == 0,
            "a swap follows every write of its file"
        );
        let id = job.id;
        self.storage(request, OpPurpose::Clean { job: id, op });
    }

    /// Issue the job's next read: a chunk from where it stands, or at least `need` bytes (a
    /// batch larger than a chunk).
    fn clean_read_next(&mut self, need: u64) -> Result<(), String> {
        let Some(job) = self.cleaner.job.as_ref() else {
            return Ok(());
        };
        let (seg, position) = match &job.stage {
            Stage::Map { seg, position } | Stage::Rewrite { seg, position, .. } => {
                (*seg, *position)
            }
            Stage::Written { .. } | Stage::Swapping { .. } | Stage::Idle => return Ok(()),
        };
        let (base, size, _) = job.segments[seg];
        let still = self
            .clean_partition()
            .is_some_and(|p| p.log.holds_closed_segment(base, size));
        if !still {
            self.abandon_clean(format!("segment {base} changed under the clean"));
            return Ok(());
        }
        if position + need > size {
            return Err(format!(
                "a batch at byte {position} of segment {base} runs past it"
            ));
        }
        let len = (size - position).min(CLEAN_CHUNK_BYTES.max(need));
        let len = u32::try_from(len).map_err(|_| "a batch over 4 GiB".to_string())?;
        assert!(len > 0, "a read past the segment's end");
        assert!(position >= crate::files::SEGMENT_HEADER_BYTES && position < size);
        assert!(
            position + len as u64 <= size,
            "a read stays inside its segment"
        );
        assert!(
            len as u64 >= need,
            "a read takes at least the batch it needs"
        );
        let file = self.clean_file(seg);
        self.cleaner.job.as_mut().unwrap().read_len = len as u64;
        self.clean_op(
            StorageRequest::Read {
                file,
                position,
                len,
            },
            CleanOp::Read,
        );
        Ok(())
    }

    /// A storage request of clean `id` completed.
    pub(super) fn clean_done(
        &mut self,
        id: u64,
        op: CleanOp,
        result: Result<StorageReply, StorageFault>,
    ) {
        if self.cleaner.job.as_ref().is_none_or(|j| j.id != id) {
            return; // an abandoned clean's
        }
        match (op, result) {
            (CleanOp::Read, Ok(StorageReply::Read(bytes))) => {
                if let Err(why) = self.clean_read(bytes) {
                    self.abandon_clean(why);
                }
            }
            (CleanOp::Read, other) => self.abandon_clean(format!("read failed: {other:?}")),
            (CleanOp::Write, result) => {
                let job = self.cleaner.job.as_mut().unwrap();
                assert!(job.writes > 0, "a write completes once");
                job.writes -= 1;
                if let Err(fault) = result {
                    job.failed = Some(format!("writing the cleaned segment failed: {fault}"));
                }
                if matches!(job.stage, Stage::Written { .. }) {
                    self.clean_swap();
                }
            }
            (CleanOp::Swap, Ok(_)) => self.clean_swapped(),
            (CleanOp::Swap, Err(fault)) => self.abandon_clean(format!("swap failed: {fault}")),
            (CleanOp::Complete, Ok(_)) => {}
            (CleanOp::Complete, Err(fault)) => {
                let job = self.cleaner.job.take().unwrap();
                let why = format!("renaming a cleaned segment into place failed: {fault}");
                if let Some(p) = self.partition_mut(&job.topic, job.topic_id, job.partition) {
                    p.offline = Some(why.clone());
                }
                self.log(
                    LogLevel::Error,
                    format!(
                        "{}-{}: {why}; partition offline until restart (which finishes the swap)",
                        job.topic, job.partition
                    ),
                );
                self.touched.insert((job.topic, job.partition));
            }
        }
    }

    /// A chunk of the segment came back: map it or rewrite it, then ask for the next.
    fn clean_read(&mut self, bytes: Bytes) -> Result<(), String> {
        let now = self.now;
        let job = self.cleaner.job.as_mut().unwrap();
        let (seg, position) = match &job.stage {
            Stage::Map { seg, position } | Stage::Rewrite { seg, position, .. } => {
                (*seg, *position)
            }
            _ => unreachable!("reads are issued while mapping or rewriting"),
        };
        let (base, size, next) = job.segments[seg];
        if (bytes.len() as u64) < job.read_len {
            return Err(format!(
                "segment {base} ends at byte {}, before the log does",
                position + bytes.len() as u64
            ));
        }
        job.stats.bytes_read += bytes.len() as u64;
        let mut appended = BytesMut::new();
        let (used, need) = match &mut job.stage {
            Stage::Map { .. } => {
                let map = &mut job.map;
                let map_end = &mut job.map_end;
                whole_batches(&bytes, |b| {
                    if map.add_batch(b, OFFSET_MAP_BYTES_MAX)? {
                        return Ok(true);
                    }
                    // The map is full: the dirty range ends before this batch.
                    let h = BatchHeader::parse(b).map_err(|e| e.to_string())?;
                    *map_end = Some(h.base_offset);
                    Ok(false)
                })?
            }
            Stage::Rewrite { out, .. } => {
                let (map, forced, rules) = (&job.map, &mut job.forced, job.rules);
                whole_batches(&bytes, |b| {
                    appended.extend_from_slice(&out.push(b, map, forced, rules)?);
                    Ok(true)
                })?
            }
            _ => unreachable!(),
        };
        assert!(used <= bytes.len(), "whole batches lie in what was read");
        assert!(need.is_none_or(|n| n > bytes.len() - used));
        let position = position + used as u64;
        if position > size {
            return Err(format!("segment {base} holds more than its {size} bytes"));
        }
        let done = position == size;
        let file = self.clean_file(seg);
        if !appended.is_empty() {
            self.clean_append(file.clone(), appended.freeze());
        }
        let job = self.cleaner.job.as_mut().unwrap();
        match &mut job.stage {
            Stage::Map {
                seg: s,
                position: p,
            } => {
                if job.map_end.is_some() || (done && *s + 1 == job.segments.len()) {
                    let end = *job.map_end.get_or_insert(next);
                    assert!(
                        end <= job.segments.last().unwrap().2,
                        "the map ends in range"
                    );
                    assert!(end > job.segments[0].0, "the map covers a batch at least");
                    self.clean_rewrite_from(0, end);
                    return Ok(());
                }
                if done {
                    *s += 1;
                    *p = crate::files::SEGMENT_HEADER_BYTES;
                } else {
                    *p = position;
                }
            }
            Stage::Rewrite { position: p, .. } => {
                if !done {
                    *p = position;
                } else {
                    let Stage::Rewrite { out, .. } = std::mem::replace(&mut job.stage, Stage::Idle)
                    else {
                        unreachable!()
                    };
                    let stats = out.stats;
                    let (last, cleaned) = out.finish(now);
                    assert_eq!(cleaned.base_offset, base, "a segment is cleaned in place");
                    assert_eq!(cleaned.next_offset(), next, "no offset moved");
                    job.stats.records_kept += stats.records_kept;
                    job.stats.records_removed += stats.records_removed;
                    job.stats.tombstones_removed += stats.tombstones_removed;
                    job.stats.batches_absorbed += stats.batches_absorbed;
                    job.stage = Stage::Written {
                        seg,
                        cleaned: Box::new(cleaned),
                    };
                    if !last.is_empty() {
                        self.clean_append(file, last);
                    }
                    self.clean_swap();
                    return Ok(());
                }
            }
            _ => unreachable!(),
        }
        self.clean_read_next(need.map_or(0, |n| n as u64))
    }

    /// Append cleaned bytes to the end of the segment's `.cleaned` file.
    fn clean_append(&mut self, file: SegmentFile, data: Bytes) {
        let job = self.cleaner.job.as_mut().unwrap();
        let position = job.cleaned_len;
        assert!(position >= crate::files::SEGMENT_HEADER_BYTES && !data.is_empty());
        job.cleaned_len += data.len() as u64;
        job.stats.bytes_written += data.len() as u64;
        self.clean_op(
            StorageRequest::AppendCleanedSegment {
                file,
                position,
                data,
            },
            CleanOp::Write,
        );
    }

    /// Start rewriting segment `seg` (mapping ended at `end`), or finish the job when no
    /// segment below `end` is left.
    fn clean_rewrite_from(&mut self, seg: usize, end: i64) {
        // The cleaned segment is indexed at the topic's `index.interval.bytes`, as appends are.
        let topic = &self.cleaner.job.as_ref().unwrap().topic;
        let index_interval_bytes = self
            .topics
            .get(topic)
            .map_or(crate::log::index::INDEX_INTERVAL_BYTES, |t| {
                t.settings.index_interval_bytes as u64
            });
        let job = self.cleaner.job.as_mut().unwrap();
        assert!(
            seg <= job.segments.len() && job.writes == 0,
            "segments are cleaned in turn"
        );
        let Some(&(base, _, _)) = job.segments.get(seg).filter(|s| s.0 < end) else {
            return self.finish_clean();
        };
        let (out, header) = SegmentRewriter::new(base, index_interval_bytes);
        job.cleaned_len = header.len() as u64;
        job.stage = Stage::Rewrite {
            seg,
            position: crate::files::SEGMENT_HEADER_BYTES,
            out: Box::new(out),
        };
        let file = self.clean_file(seg);
        self.clean_op(
            StorageRequest::CreateCleanedSegment { file, header },
            CleanOp::Write,
        );
        if let Err(why) = self.clean_read_next(0) {
            self.abandon_clean(why);
        }
    }

    /// Every write of the cleaned copy is done: swap it in (or give up if one failed).
    fn clean_swap(&mut self) {
        let job = self.cleaner.job.as_mut().unwrap();
        if job.writes > 0 {
            return;
        }
        if let Some(why) = job.failed.take() {
            return self.abandon_clean(why);
        }
        let Stage::Written { seg, .. } = job.stage else {
            unreachable!()
        };
        let (base, size, _) = job.segments[seg];
        let still = self
            .clean_partition()
            .is_some_and(|p| p.log.holds_closed_segment(base, size));
        if !still {
            return self.abandon_clean(format!("segment {base} changed under the clean"));
        }
        let job = self.cleaner.job.as_mut().unwrap();
        let Stage::Written { seg, cleaned } = std::mem::replace(&mut job.stage, Stage::Idle) else {
            unreachable!()
        };
        assert_eq!(
            cleaned.size, job.cleaned_len,
            "the file holds the cleaned segment"
        );
        assert_eq!(cleaned.base_offset, job.segments[seg].0);
        job.stage = Stage::Swapping { seg, cleaned };
        let file = self.clean_file(seg);
        self.clean_op(StorageRequest::SwapCleanedSegment { file }, CleanOp::Swap);
    }

    /// The cleaned copy is durable as `.swap`: put it in place, then go on with the next.
    fn clean_swapped(&mut self) {
        let job = self.cleaner.job.as_ref().unwrap();
        let Stage::Swapping { seg, .. } = job.stage else {
            unreachable!("a swap completes while swapping")
        };
        let (base, size, _) = job.segments[seg];
        let still = self
            .clean_partition()
            .is_some_and(|p| p.log.holds_closed_segment(base, size));
        if !still {
            // Deleted meanwhile: the deletion took the `.swap` file too.
            self.cleaner.job = None;
            return;
        }
        let job = self.cleaner.job.as_mut().unwrap();
        let Stage::Swapping { cleaned, .. } = std::mem::replace(&mut job.stage, Stage::Idle) else {
            unreachable!()
        };
        let size = cleaned.size;
        let p = self.clean_partition().unwrap();
        let reqs = p.log.install_cleaned(*cleaned);
        assert!(
            p.log.holds_closed_segment(base, size),
            "the cleaned segment is in place"
        );
        assert!(matches!(
            reqs.first(),
            Some(StorageRequest::CompleteSegmentSwap { .. })
        ));
        let mut reqs = reqs.into_iter();
        let complete = reqs.next().expect("the rename comes first");
        self.clean_op(complete, CleanOp::Complete);
        let job = self.cleaner.job.as_ref().unwrap();
        let what = format!("index a cleaned segment of {}-{}", job.topic, job.partition);
        let end = job.map_end.expect("rewriting follows mapping");
        for r in reqs {
            self.storage(r, OpPurpose::Other { what: what.clone() });
        }
        self.clean_rewrite_from(seg + 1, end);
    }

    /// Every segment below the map's end is clean: remember the clean point.
    fn finish_clean(&mut self) {
        let job = self.cleaner.job.take().unwrap();
        let end = job.map_end.expect("a clean finishes after mapping");
        assert_eq!(job.writes, 0, "a clean finishes with its writes done");
        assert!(end > job.segments[0].0, "a clean covers a batch at least");
        self.cleaner
            .clean_points
            .insert((job.topic.clone(), job.partition), end);
        let s = job.stats;
        let ms = self.now.saturating_since(job.started).0 / 1_000_000;
        self.log(
            LogLevel::Info,
            format!(
                "log cleaner: cleaned {}-{} below offset {end} in {ms} ms: read {} bytes, \
                 wrote {}, kept {} records, removed {} ({} tombstones), {} keys mapped",
                job.topic,
                job.partition,
                s.bytes_read,
                s.bytes_written,
                s.records_kept,
                s.records_removed,
                s.tombstones_removed,
                job.map.len()
            ),
        );
    }
}
