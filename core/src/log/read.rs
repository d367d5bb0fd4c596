//! Reads through a sparse index: plan a read from the nearest index entry, then walk batch
//! headers in what comes back (Kafka's `LogSegment.translateOffset` and `read`).
//!
//! The core does no I/O, so the scan is a conversation with the driver: [`ReadPlan`] is a
//! storage read, and [`advance`] looks at the bytes that came back and either has the answer
//! ([`ReadStep::Done`]) or needs another read further on ([`ReadStep::More`]). Every `More`
//! starts past the previous read's start or asks for exactly the one batch the answer needs, so
//! a scan ends after a bounded number of reads.
//!
//! Two goals use it: a fetch (the whole batches from a target offset, within a byte limit, the
//! first batch whole even if larger when KIP-74 allows) and ListOffsets by timestamp (the first
//! batch whose largest timestamp reaches the target, read whole so its records can be decoded).

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::io::SegmentFile;
use bytes::Bytes;

/// What a read is looking for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Whole batches from the one holding `offset`, at most `max_bytes` in all, except that the
    /// first goes out whole when `whole_first` (KIP-74: the first partition of a response).
    Offset {
        offset: i64,
        max_bytes: u32,
        whole_first: bool,
    },
    /// The first batch whose largest timestamp is at least `timestamp` and that holds a record
    /// at or above `from` (the log start: a batch wholly below it was deleted by DeleteRecords).
    Timestamp { timestamp: i64, from: i64 },
}

/// One storage read of a scan, and what to look for in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    pub file: SegmentFile,
    pub position: u64,
    pub len: u32,
    /// The base offset of the batch that starts at `position` (a batch boundary, from the
    /// index or from an earlier read).
    pub scan_offset: i64,
    /// Nothing at or above this offset is returned (the high watermark, for consumers).
    pub upper: i64,
    /// The segment's length when the read was planned: no read goes past it.
    pub segment_end: u64,
    pub goal: Goal,
    /// An upper bound on the bytes the answer will hold (for KIP-74's response budget and
    /// for a fetch's `min_bytes`), known from the index without reading.
    pub bytes_bound: u64,
}

/// The outcome of one read of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadStep {
    /// The answer: whole batches (empty if nothing qualifies below `upper`), their first and
    /// next offsets, and the largest timestamp of the first one.
    Done {
        bytes: Bytes,
        first_offset: i64,
        next_offset: i64,
        max_timestamp: i64,
    },
    /// Read further.
    More(ReadPlan),
}

fn empty(at: i64) -> ReadStep {
    ReadStep::Done {
        bytes: Bytes::new(),
        first_offset: at,
        next_offset: at,
        max_timestamp: -1,
    }
}

/// Walk the batch headers in `bytes`, the result of reading `plan`. An error means the
/// segment does not hold what the log believes (damage while running): the caller answers
/// KAFKA_STORAGE_ERROR.
pub fn advance(plan: &ReadPlan, bytes: Bytes) -> Result<ReadStep, String> {
    assert!(
        plan.position + plan.len as u64 <= plan.segment_end,
        "reads stay in the segment"
    );
    if bytes.len() as u64 > plan.len as u64 {
        return Err(format!(
            "read of {} bytes returned {}",
            plan.len,
            bytes.len()
        ));
    }
    let mut at = 0usize;
    let mut expected = plan.scan_offset;
    loop {
        let position = plan.position + at as u64;
        if position >= plan.segment_end {
            // The segment ends before anything qualified.
            return Ok(empty(expected));
        }
        // A skipped batch may end past the bytes read: then nothing of the next one is here.
        let rest = bytes.get(at..).unwrap_or_default();
        if rest.len() < HEADER_BYTES {
            return more(
                plan,
                position,
                expected,
                None,
                bytes.len() < plan.len as usize,
            );
        }
        let h = BatchHeader::parse(rest).map_err(|e| format!("at byte {position}: {e}"))?;
        if h.base_offset != expected {
            return Err(format!(
                "at byte {position}: batch {} where {expected} was expected",
                h.base_offset
            ));
        }
        if h.last_offset() >= plan.upper {
            return Ok(empty(h.base_offset));
        }
        let wanted = match plan.goal {
            Goal::Offset { offset, .. } => h.last_offset() >= offset,
            Goal::Timestamp { timestamp, from } => {
                h.max_timestamp >= timestamp && h.last_offset() >= from
            }
        };
        if !wanted {
            // Skip it by its length, whether or not its bytes are all here.
            at += h.size;
            expected = h.next_offset();
            continue;
        }
        if rest.len() < h.size {
            return more(
                plan,
                position,
                expected,
                Some(h.size),
                bytes.len() < plan.len as usize,
            );
        }
        return Ok(take(plan, &bytes, at, &h));
    }
}

/// The answer starts with the batch `h` at `at`, wholly in `bytes`.
fn take(plan: &ReadPlan, bytes: &Bytes, at: usize, h: &BatchHeader) -> ReadStep {
    let (max_bytes, whole_first) = match plan.goal {
        Goal::Timestamp { .. } => (h.size as u32, true),
        Goal::Offset {
            max_bytes,
            whole_first,
            ..
        } => (max_bytes, whole_first),
    };
    if h.size > max_bytes as usize && !whole_first {
        return empty(h.base_offset);
    }
    let mut end = at + h.size;
    let mut next = h.next_offset();
    if matches!(plan.goal, Goal::Offset { .. }) {
        while bytes.len() - end >= HEADER_BYTES {
            let Ok(n) = BatchHeader::parse(&bytes[end..]) else {
                break;
            };
            let fits = (end - at + n.size) as u64 <= max_bytes as u64;
            if n.base_offset != next
                || n.last_offset() >= plan.upper
                || !fits
                || bytes.len() - end < n.size
            {
                break;
            }
            end += n.size;
            next = n.next_offset();
        }
    }
    // The answer holds whole batches below `upper`, within the limit but for a lone first.
    assert!(next <= plan.upper && next > h.base_offset);
    assert!(end - at == h.size || (end - at) as u64 <= max_bytes as u64);
    ReadStep::Done {
        bytes: bytes.slice(at..end),
        first_offset: h.base_offset,
        next_offset: next,
        max_timestamp: h.max_timestamp,
    }
}

/// Plan the next read from `position` (a batch boundary at `expected`). `need` is the size of
/// the batch that starts there when it is the answer; `short` says the last read returned
/// fewer bytes than asked (the file is shorter than the log believes).
fn more(
    plan: &ReadPlan,
    position: u64,
    expected: i64,
    need: Option<usize>,
    short: bool,
) -> Result<ReadStep, String> {
    if short {
        return Err(format!(
            "segment ends at byte {position}, before the log does"
        ));
    }
    let room = plan.segment_end - position;
    if room < HEADER_BYTES as u64 {
        return Err(format!(
            "segment ends {room} bytes after byte {position}, inside a batch"
        ));
    }
    let want = match (need, plan.goal) {
        (Some(size), Goal::Offset { max_bytes, .. }) => (size as u64).max(max_bytes as u64),
        (Some(size), Goal::Timestamp { .. }) => size as u64,
        (None, Goal::Offset { max_bytes, .. }) => {
            super::index::INDEX_INTERVAL_BYTES * 2 + max_bytes as u64
        }
        (None, Goal::Timestamp { .. }) => super::index::INDEX_INTERVAL_BYTES * 16,
    };
    let len = want.min(room).min(u32::MAX as u64) as u32;
    if need.is_some_and(|n| n as u64 > room) {
        return Err(format!(
            "batch at byte {position} runs past the segment's end"
        ));
    }
    // Progress: the next read starts further on, or asks for the whole answer batch.
    assert!(position > plan.position || need.is_some_and(|n| n as u64 <= len as u64));
    assert!(len > 0);
    Ok(ReadStep::More(ReadPlan {
        position,
        len,
        scan_offset: expected,
        ..plan.clone()
    }))
}
