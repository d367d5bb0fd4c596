//! Recovery at start (Kafka's `LogLoader` and `ProducerStateManager` loading): from the files
//! of a partition directory to a [`PartitionLog`] and the idempotent producers' state.
//!
//! ## What is read
//! * A segment whose `.index` and `.timeindex` are valid and agree is not read, except for the
//!   bytes past what they cover (the tail a crash left unindexed; none after a clean
//!   shutdown), which are walked batch by batch. Any doubt (a file missing, damaged, from
//!   another format, or an index whose next offset does not meet the next segment's base) and
//!   the segment is walked whole, in chunks of [`SCAN_CHUNK_BYTES`].
//! * Producer state comes from the newest snapshot that is valid, not past the recovered log
//!   end, and names a batch boundary; then the batches from its offset to the log end are
//!   replayed. With no usable snapshot, every batch is replayed.
//!
//! Everything goes through the driver's `read(file name, from, to)`, so the simulator, the
//! tests and the real binary recover with this same code.

use super::epochs::LeaderEpochCache;
use super::index::{decode_indexes, time_index_file_name, MaxTimestamp, SparseIndex};
use super::{PartitionLog, Segment, INDEX_CHECKPOINT_BYTES};
use crate::batch::BatchHeader;
use crate::files::{
    check_segment_header, parse_segment_file_name, segment_header, walk_batches, WalkStop,
    SEGMENT_HEADER_BYTES,
};
use crate::io::{PartitionDir, SegmentFile, StorageRequest};
use crate::producer::{decode_snapshot_with_epochs, ProducerStates};
use crate::time::Instant;
use bytes::Bytes;

/// Bytes read at a time when a segment is walked.
pub const SCAN_CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// What the driver found on storage at start, handed to [`crate::Broker::new`].
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The clean-shutdown marker was found (and removed): the last run ended cleanly.
    pub clean_shutdown: bool,
    /// Contents of `broker.meta`, if it exists.
    pub broker_meta: Option<Bytes>,
    pub partitions: Vec<RecoveredPartition>,
}

/// One partition directory found at start, recovered by [`recover_partition`].
#[derive(Clone, Debug)]
pub struct RecoveredPartition {
    /// The directory name, for messages.
    pub dir_name: String,
    /// Contents of `partition.meta` (None if missing).
    pub meta: Option<Bytes>,
    /// Every segment file, summarised, in offset order.
    pub segments: Vec<SegmentSummary>,
    /// The idempotent producers' state: the snapshot used, plus the batches replayed after it.
    pub producers: ProducerStates,
    /// The offset of the producer snapshot used, if one was valid.
    pub snapshot: Option<i64>,
    /// The leader-epoch cache: the one the snapshot used carried, plus the epochs of the
    /// batches replayed after it (all of them when no snapshot was used). Not yet clamped to
    /// the recovered log's bounds ([`PartitionLog::set_recovered_epochs`] does that).
    pub epochs: LeaderEpochCache,
    /// Lines for the operator's log (damaged indexes or snapshots, what was rebuilt).
    pub notes: Vec<String>,
    /// Segment bytes read (index files vouched for the rest).
    pub segment_bytes_read: u64,
    /// Where each leader epoch the replay found starts: the cuts that can take an epoch no
    /// controller ever gave back out once the metadata image names the partition's real epoch.
    pub epoch_starts: Vec<EpochCut>,
    /// The first replayed batch whose leader epoch is below an earlier batch's: a damaged
    /// header (see [`EpochCut`]). Kafka's epoch cache never goes back; the log is cut there.
    pub epoch_regress: Option<EpochCut>,
}

/// A batch boundary of the replayed part of a log, with everything a cut there needs without
/// reading the log again ([`crate::partition::Partition::truncate_rebuilt`]).
///
/// Why: a batch's `partitionLeaderEpoch` lies outside its CRC (as in Kafka), so a torn write
/// of a power loss can flip a bit of it unseen and recovery keeps the batch. An epoch raised
/// that way is one no controller gave; one lowered goes back. Either would make the replica's
/// next append in its real epoch refused by the leader-epoch cache. Such bytes were never
/// synced (a torn write is past the last sync), so they were never under a high watermark,
/// and cutting them loses nothing acknowledged under group commit.
#[derive(Clone, Debug)]
pub struct EpochCut {
    /// The epoch the batch at `offset` carries.
    pub epoch: i32,
    /// The batch's base offset, and where it lies: segment base and byte position.
    pub offset: i64,
    pub segment: i64,
    pub position: u64,
    /// The largest timestamp over the batches of that segment the replay walked below it.
    pub scanned: MaxTimestamp,
    /// The idempotent producers' state after every batch below `offset`.
    pub producers: ProducerStates,
}

/// What recovery learned about one segment file, without keeping anything per batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    pub base_offset: i64,
    /// Length of the valid prefix of the file; anything after it is a torn or corrupt tail.
    pub valid_len: u64,
    pub file_len: u64,
    /// The offset after the last valid batch.
    pub next_offset: i64,
    /// The sparse indexes over the valid prefix (loaded, extended by the walk, or rebuilt).
    pub index: SparseIndex,
    /// How many bytes the index files on storage vouched for (0: none were used).
    pub indexed_len: u64,
    /// Why the walk stopped before the end of the file, if it did.
    pub tail_problem: Option<String>,
    /// Why index files that were present were not used.
    pub index_problem: Option<String>,
    /// The segment's data was read from `<base>.log.swap`: a clean finished its output but
    /// not its rename (see [`crate::log::cleaner`]); the repair renames it into place.
    pub swap: bool,
    /// A `<base>.log.cleaned` file lies beside the segment: a clean stopped before its swap;
    /// the old segment is whole, the repair deletes the leftover.
    pub cleaned_leftover: bool,
}

/// A file in a partition directory, as the driver lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub len: u64,
}

/// Walk the batches of a segment file from `from` (a batch boundary at `next`) to `file_len`,
/// reading it in chunks; `visit` sees each valid batch. Returns (valid length, next offset,
/// problem, bytes read).
fn walk_file<E>(
    name: &str,
    from: u64,
    mut next: i64,
    file_len: u64,
    read: &mut impl FnMut(&str, u64, u64) -> Result<Vec<u8>, E>,
    mut visit: impl FnMut(u64, &BatchHeader),
) -> Result<(u64, i64, Option<String>, u64), E> {
    let (mut pos, mut need, mut read_bytes) = (from, 0u64, 0u64);
    while pos < file_len {
        let to = file_len.min(pos + SCAN_CHUNK_BYTES.max(need));
        let bytes = read(name, pos, to)?;
        assert_eq!(bytes.len() as u64, to - pos, "reads return what was asked");
        read_bytes += bytes.len() as u64;
        let (valid, n, stop) = walk_batches(&bytes, pos, next, |p, h, _| visit(p, h));
        assert!(valid >= pos && valid <= to);
        next = n;
        match stop {
            WalkStop::End => pos = valid,
            WalkStop::Incomplete { need: n } if to < file_len => {
                // Read on from the batch the chunk cut, at least all of it.
                need = n as u64;
                pos = valid;
            }
            WalkStop::Incomplete { need: n } => {
                let problem = format!(
                    "at byte {valid}: torn batch, {} of {n} bytes present",
                    to - valid
                );
                return Ok((valid, next, Some(problem), read_bytes));
            }
            WalkStop::Bad(problem) => return Ok((valid, next, Some(problem), read_bytes)),
        }
    }
    assert!(pos == file_len.max(from) || pos == from);
    Ok((pos, next, None, read_bytes))
}

/// Summarise one segment from its index files where they are valid, walking only what they
/// do not cover; else walking it whole. What is walked is indexed every
/// `index_interval_bytes` (the topic's `index.interval.bytes`).
pub fn summarize_segment<E>(
    base: i64,
    file_len: u64,
    offset_index: Option<&[u8]>,
    time_index: Option<&[u8]>,
    index_interval_bytes: u64,
    read: &mut impl FnMut(&str, u64, u64) -> Result<Vec<u8>, E>,
) -> Result<(SegmentSummary, u64), E> {
    let name = format!("{base:020}.log");
    let decoded = match (offset_index, time_index) {
        (Some(o), Some(t)) => Some(decode_indexes(base, o, t, file_len)),
        (None, None) => None,
        _ => Some(Err("one of the two index files is missing".to_string())),
    };
    let (mut index, from, next, indexed_len, index_problem) = match decoded {
        Some(Ok(d)) => (d.index, d.covers, d.next_offset, d.covers, None),
        other => {
            let problem = other.and_then(|r| r.err());
            let header = read(&name, 0, file_len.min(SEGMENT_HEADER_BYTES))?;
            let header_problem = match check_segment_header(&header) {
                Ok(b) if b == base => None,
                Ok(b) => Some(format!("header base offset {b} != file name {base}")),
                Err(e) => Some(format!("segment header: {e}")),
            };
            if let Some(p) = header_problem {
                let summary = SegmentSummary {
                    base_offset: base,
                    valid_len: 0,
                    file_len,
                    next_offset: base,
                    index: SparseIndex::new(base),
                    indexed_len: 0,
                    tail_problem: Some(p),
                    index_problem: problem,
                    swap: false,
                    cleaned_leftover: false,
                };
                return Ok((summary, header.len() as u64));
            }
            (
                SparseIndex::new(base),
                SEGMENT_HEADER_BYTES,
                base,
                0,
                problem,
            )
        }
    };
    let (valid_len, next_offset, tail_problem, read_bytes) =
        walk_file(&name, from, next, file_len, read, |p, h| {
            index.on_append(
                h.base_offset,
                h.last_offset(),
                p,
                h.size as u64,
                h.max_timestamp,
                index_interval_bytes,
            )
        })?;
    let summary = SegmentSummary {
        base_offset: base,
        valid_len,
        file_len,
        next_offset,
        index,
        indexed_len,
        tail_problem,
        index_problem,
        swap: false,
        cleaned_leftover: false,
    };
    assert!(summary.indexed_len <= summary.valid_len && summary.valid_len <= summary.file_len);
    summary.index.check(summary.valid_len, summary.next_offset);
    Ok((
        summary,
        read_bytes
            + if indexed_len == 0 {
                SEGMENT_HEADER_BYTES.min(file_len)
            } else {
                0
            },
    ))
}

/// The base offsets of the directory's files named `<base:020>.log<suffix>`.
fn bases_with_suffix(entries: &[DirEntry], suffix: &str) -> Vec<(i64, u64)> {
    entries
        .iter()
        .filter_map(|e| {
            let log = e.name.strip_suffix(suffix)?;
            parse_segment_file_name(log).map(|b| (b, e.len))
        })
        .collect()
}

/// Recover one partition directory: summarise its segments and rebuild its producers' state
/// (see the module docs). `entries` lists the directory; `read(name, from, to)` must return
/// bytes `from..to` of a listed file.
///
/// An interrupted clean (log compaction, [`crate::log::cleaner`]) is settled here: a segment
/// with a `<base>.log.swap` beside it is read from the swap file (complete and durable before
/// it got that name), and its index files are ignored (they may describe the old bytes); a
/// `<base>.log.cleaned` file is ignored. [`PartitionLog::recover`] emits the repairs that
/// rename the swap into place and delete the leftover.
pub fn recover_partition<E>(
    dir_name: String,
    meta: Option<Bytes>,
    entries: &[DirEntry],
    mut raw_read: impl FnMut(&str, u64, u64) -> Result<Vec<u8>, E>,
) -> Result<RecoveredPartition, E> {
    let len_of = |name: &str| entries.iter().find(|e| e.name == name).map(|e| e.len);
    let swaps = bases_with_suffix(entries, ".swap");
    let cleaned = bases_with_suffix(entries, ".cleaned");
    let is_swap = |base: i64| swaps.iter().any(|(b, _)| *b == base);
    // Reads of a swapped segment go to its swap file.
    let mut read = |name: &str, from: u64, to: u64| match parse_segment_file_name(name) {
        Some(base) if is_swap(base) => raw_read(&format!("{name}.swap"), from, to),
        _ => raw_read(name, from, to),
    };
    let mut bases: Vec<(i64, u64)> = entries
        .iter()
        .filter_map(|e| parse_segment_file_name(&e.name).map(|b| (b, e.len)))
        .filter(|(b, _)| !is_swap(*b))
        .chain(swaps.iter().copied())
        .collect();
    bases.sort();
    // What recovery walks is indexed at the topic's `index.interval.bytes`, as its appends
    // were (a partition without a readable `partition.meta` gets Kafka's default; the broker
    // reports the missing file).
    let index_interval_bytes = meta
        .as_deref()
        .and_then(|m| crate::files::PartitionMeta::decode(m).ok())
        .map_or(super::index::INDEX_INTERVAL_BYTES, |m| {
            m.settings.index_interval_bytes as u64
        });
    let mut notes = Vec::new();
    let mut segment_bytes_read = 0u64;
    let mut summaries: Vec<SegmentSummary> = Vec::new();
    for &(base, file_len) in &bases {
        let (o_name, t_name) = (format!("{base:020}.index"), time_index_file_name(base));
        let indexed = !is_swap(base);
        let o = len_of(&o_name)
            .filter(|_| indexed)
            .map(|len| read(&o_name, 0, len))
            .transpose()?;
        let t = len_of(&t_name)
            .filter(|_| indexed)
            .map(|len| read(&t_name, 0, len))
            .transpose()?;
        let (s, n) = summarize_segment(
            base,
            file_len,
            o.as_deref(),
            t.as_deref(),
            index_interval_bytes,
            &mut read,
        )?;
        segment_bytes_read += n;
        summaries.push(s);
    }
    assert_eq!(summaries.len(), bases.len(), "a summary per segment");
    for s in summaries.iter_mut() {
        s.swap = is_swap(s.base_offset);
        s.cleaned_leftover = cleaned.iter().any(|(b, _)| *b == s.base_offset);
        if s.swap {
            notes.push(format!(
                "{dir_name}: a clean of segment {:020}.log was interrupted after its output \
                 was complete; finishing the swap",
                s.base_offset
            ));
        }
    }
    assert_eq!(summaries.iter().filter(|s| s.swap).count(), swaps.len());
    // An index whose end does not meet the next segment's base is not trusted: walk the
    // segment instead, before anything is dropped for a gap.
    for i in 0..summaries.len().saturating_sub(1) {
        let (s, next_base) = (&summaries[i], summaries[i + 1].base_offset);
        if s.indexed_len > 0 && s.next_offset != next_base {
            let (base, file_len) = (s.base_offset, s.file_len);
            let (mut fresh, n) =
                summarize_segment(base, file_len, None, None, index_interval_bytes, &mut read)?;
            fresh.index_problem = Some(format!(
                "index ends at offset {} but the next segment starts at {next_base}",
                s.next_offset
            ));
            segment_bytes_read += n;
            fresh.swap = summaries[i].swap;
            fresh.cleaned_leftover = summaries[i].cleaned_leftover;
            summaries[i] = fresh;
        }
    }
    // The contiguous chain that PartitionLog::recover keeps.
    let mut chain: Vec<&SegmentSummary> = Vec::new();
    for s in &summaries {
        let expected = chain.last().map(|c| c.next_offset);
        let after_damage = chain
            .last()
            .is_some_and(|c| c.valid_len < c.file_len || c.valid_len < SEGMENT_HEADER_BYTES);
        if after_damage || expected.is_some_and(|e| e != s.base_offset) {
            break;
        }
        chain.push(s);
    }
    let (log_start, log_end) = match (chain.first(), chain.last()) {
        (Some(f), Some(l)) => (f.base_offset, l.next_offset),
        _ => (0, 0),
    };
    assert!(
        chain
            .windows(2)
            .all(|w| w[0].next_offset == w[1].base_offset),
        "the chain is contiguous"
    );
    assert!(log_start <= log_end);
    // Producer snapshots, newest first: the first that is valid and consistent is used.
    let mut snapshots: Vec<(i64, String)> = entries
        .iter()
        .filter_map(|e| {
            let stem = e.name.strip_suffix(".snapshot")?;
            let digits = stem.len() == 20 && stem.bytes().all(|c| c.is_ascii_digit());
            Some((stem.parse().ok().filter(|_| digits)?, e.name.clone()))
        })
        .collect();
    snapshots.sort_by(|a, b| b.cmp(a));
    let mut producers = None;
    for (offset, name) in &snapshots {
        if *offset > log_end {
            notes.push(format!(
                "{dir_name}: snapshot {name} is past the log end {log_end}; not used"
            ));
            continue;
        }
        let bytes = read(name, 0, len_of(name).unwrap_or(0))?;
        let decoded = decode_snapshot_with_epochs(&bytes, *offset).and_then(|(s, e)| {
            let cache = e.map(LeaderEpochCache::from_entries).transpose();
            Ok((s, cache.map_err(crate::files::FileError::Decode)?))
        });
        let (states, epochs) = match decoded {
            Ok((s, Some(e))) => (s, e),
            Ok((_, None)) => {
                // Written before snapshots carried leader epochs: the cache needs the whole
                // log's batch headers, which the full replay below reads.
                notes.push(format!(
                    "{dir_name}: snapshot {name} has no leader epochs (format 1); not used"
                ));
                continue;
            }
            Err(e) => {
                notes.push(format!(
                    "{dir_name}: snapshot {name} unreadable ({e}); not used"
                ));
                continue;
            }
        };
        let from = (*offset).max(log_start);
        match replay(&chain, from, (states, epochs), &mut read)? {
            (Some(replayed), n) => {
                segment_bytes_read += n;
                producers = Some((replayed, *offset));
                break;
            }
            (None, n) => {
                segment_bytes_read += n;
                notes.push(format!(
                    "{dir_name}: snapshot {name} names no batch boundary; not used"
                ));
            }
        }
    }
    let (replayed, snapshot) = match producers {
        Some((p, o)) => (p, Some(o)),
        None => {
            if !chain.is_empty() && log_end > log_start {
                notes.push(format!(
                    "{dir_name}: no usable producer snapshot; replaying the whole log"
                ));
            }
            let fresh = (ProducerStates::default(), LeaderEpochCache::default());
            let (p, n) = replay(&chain, log_start, fresh, &mut read)?;
            segment_bytes_read += n;
            (p.expect("the log start is a batch boundary"), None)
        }
    };
    let Replayed {
        states: producers,
        epochs,
        problems,
        starts: epoch_starts,
        regress: epoch_regress,
    } = replayed;
    for note in problems {
        notes.push(format!("{dir_name}: {note}"));
    }
    assert!(epoch_starts.windows(2).all(|w| w[0].epoch < w[1].epoch));
    assert!(epoch_starts
        .iter()
        .chain(&epoch_regress)
        .all(|c| c.offset < log_end));
    // The state describes only batches that are in the log.
    assert!(producers.max_last_offset().is_none_or(|o| o < log_end));
    assert!(snapshot.is_none_or(|s| s <= log_end));
    Ok(RecoveredPartition {
        dir_name,
        meta,
        segments: summaries,
        producers,
        snapshot,
        epochs,
        notes,
        segment_bytes_read,
        epoch_starts,
        epoch_regress,
    })
}

/// What a replay rebuilt: producer state, leader-epoch cache, and where epochs change.
struct Replayed {
    states: ProducerStates,
    epochs: LeaderEpochCache,
    /// Batches whose epoch the cache refused (for the operator's log; at most 8).
    problems: Vec<String>,
    /// A cut before each batch that started a new (higher) epoch.
    starts: Vec<EpochCut>,
    /// A cut before the first batch whose epoch went back.
    regress: Option<EpochCut>,
}

/// Replay into `states` (producer state and leader-epoch cache) every batch of `chain` from
/// offset `from`; None if `from` is not a batch boundary (the snapshot does not fit this log).
/// A batch whose epoch would take the cache back is noted, not applied, and the first is
/// remembered as where the log must be cut.
fn replay<E>(
    chain: &[&SegmentSummary],
    from: i64,
    (states, epochs): (ProducerStates, LeaderEpochCache),
    read: &mut impl FnMut(&str, u64, u64) -> Result<Vec<u8>, E>,
) -> Result<(Option<Replayed>, u64), E> {
    let mut r = Replayed {
        states,
        epochs,
        problems: Vec::new(),
        starts: Vec::new(),
        regress: None,
    };
    let mut read_bytes = 0;
    let mut found = chain.last().is_none_or(|l| l.next_offset == from);
    for s in chain.iter().filter(|s| s.next_offset > from) {
        let start = from.max(s.base_offset);
        let (scan_offset, position) = s.index.floor(start);
        let name = format!("{:020}.log", s.base_offset);
        let mut ok = true;
        let mut scanned = MaxTimestamp::NONE;
        let (_, _, _, n) = walk_file(&name, position, scan_offset, s.valid_len, read, |p, h| {
            if h.base_offset == start {
                found = true;
            }
            if h.base_offset >= start {
                ok &= found;
                let (epoch, latest) = (h.partition_leader_epoch, r.epochs.latest_epoch());
                if epoch != latest && (epoch > latest || r.regress.is_none()) {
                    let cut = EpochCut {
                        epoch,
                        offset: h.base_offset,
                        segment: s.base_offset,
                        position: p,
                        scanned,
                        producers: r.states.clone(),
                    };
                    assert!(
                        cut.scanned.base_offset < cut.offset,
                        "scanned below the cut"
                    );
                    match epoch > latest {
                        true => r.starts.push(cut),
                        false => r.regress = Some(cut),
                    }
                }
                r.states.record(h);
                if let Err(refused) = r.epochs.assign(epoch, h.base_offset) {
                    r.problems
                        .push(format!("batch {}: {refused}", h.base_offset));
                }
            }
            scanned.fold(h.max_timestamp, h.base_offset, h.last_offset());
        })?;
        read_bytes += n;
        if !ok || !found {
            return Ok((None, read_bytes));
        }
    }
    r.problems.truncate(8);
    Ok((found.then_some(r), read_bytes))
}

impl PartitionLog {
    /// Rebuild a log from recovered segments. Returns the log, the storage requests that
    /// repair it (cut a torn tail, drop segments after a gap, recreate a missing first segment,
    /// rewrite missing or damaged index files) and a line for each repair, for the operator's
    /// log. `snapshot` is the producer snapshot recovery used.
    pub fn recover(
        dir: PartitionDir,
        mut scans: Vec<SegmentSummary>,
        snapshot: Option<i64>,
        now: Instant,
    ) -> (PartitionLog, Vec<StorageRequest>, Vec<String>) {
        scans.sort_by_key(|s| s.base_offset);
        let mut repairs = Vec::new();
        let mut notes = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        let mut broken = false;
        for scan in scans {
            let file = SegmentFile {
                dir: dir.clone(),
                base_offset: scan.base_offset,
            };
            // An interrupted clean first: the swap goes into place (the summary describes its
            // bytes), a leftover `.cleaned` file goes. Later repairs act on `<base>.log`.
            if scan.swap {
                repairs.push(StorageRequest::CompleteSegmentSwap { file: file.clone() });
            }
            if scan.cleaned_leftover {
                notes.push(format!(
                    "{}: discarding {} (a clean interrupted before its swap)",
                    dir.dir_name(),
                    file.cleaned_file_name()
                ));
                repairs.push(StorageRequest::DiscardCleanedSegment { file: file.clone() });
            }
            let expected = segments.last().map(|s| s.next_offset);
            if broken || expected.is_some_and(|e| e != scan.base_offset) {
                // A segment after a damaged one, or after a gap, cannot be trusted to continue
                // the offsets: drop it. (It was never acknowledged: the damage before it was.)
                notes.push(format!(
                    "{}: dropping segment {} after a damaged tail",
                    dir.dir_name(),
                    file.file_name()
                ));
                repairs.push(StorageRequest::DeleteSegment { file });
                continue;
            }
            if scan.valid_len < SEGMENT_HEADER_BYTES {
                notes.push(format!(
                    "{}: segment {} has an unreadable header ({}); rewriting it empty",
                    dir.dir_name(),
                    file.file_name(),
                    scan.tail_problem.as_deref().unwrap_or("?")
                ));
                repairs.push(StorageRequest::DeleteSegment { file: file.clone() });
                repairs.push(StorageRequest::CreateSegment {
                    file,
                    header: segment_header(scan.base_offset),
                });
                segments.push(Segment::new(scan.base_offset, now));
                broken = true;
                continue;
            }
            if let Some(problem) = &scan.index_problem {
                notes.push(format!(
                    "{}: index of {} not used ({problem}); scanned the segment",
                    dir.dir_name(),
                    file.file_name()
                ));
            }
            if scan.valid_len < scan.file_len {
                notes.push(format!(
                    "{}: cutting {} bytes of torn or corrupt tail from {} ({})",
                    dir.dir_name(),
                    scan.file_len - scan.valid_len,
                    file.file_name(),
                    scan.tail_problem.as_deref().unwrap_or("?")
                ));
                repairs.push(StorageRequest::DeleteSegmentIndex { file: file.clone() });
                repairs.push(StorageRequest::Truncate {
                    file,
                    len: scan.valid_len,
                });
                broken = true;
            }
            let cut = scan.valid_len < scan.file_len;
            segments.push(Segment {
                base_offset: scan.base_offset,
                size: scan.valid_len,
                created: now,
                next_offset: scan.next_offset,
                settled_max: scan.index.max,
                index: scan.index,
                // A cut tail's index files were deleted above.
                indexed_len: if cut { 0 } else { scan.indexed_len },
            });
        }
        if segments.is_empty() {
            let (log, req) = PartitionLog::create(dir, now);
            return (log, vec![req], notes);
        }
        // Closed segments whose index files were missing, damaged or short get new ones (the
        // request makes the scanned bytes durable first). The active segment's are written
        // when due.
        let last = segments.len() - 1;
        for (i, seg) in segments.iter_mut().enumerate() {
            let file = SegmentFile {
                dir: dir.clone(),
                base_offset: seg.base_offset,
            };
            if i < last {
                seg.index.add_time_entry();
            }
            if i < last || seg.size - seg.indexed_len >= INDEX_CHECKPOINT_BYTES {
                repairs.extend(seg.index_request(file));
            }
        }
        let mut log = PartitionLog::from_segments(dir, segments);
        log.last_snapshot = snapshot.filter(|s| *s <= log.log_end_offset);
        // A snapshot at the log end saves the next start a replay.
        log.snapshot_due = log.last_snapshot != Some(log.log_end_offset);
        log.invariants();
        (log, repairs, notes)
    }
}
