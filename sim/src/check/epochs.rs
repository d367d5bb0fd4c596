//! `epoch-cache`: after every restart, each partition's leader-epoch cache (KIP-101; built by
//! recovery from the newest producer snapshot plus the batches replayed after it) equals the
//! cache the batch headers on the simulated disk give, read independently here: for each batch
//! below the recovered log end, in offset order, a higher `partitionLeaderEpoch` than the last
//! starts an epoch at its base offset; clamped to the log start. An entry the broker holds at
//! exactly the log end is an election with no batch yet (KIP-279) and is not compared.
//!
//! The world calls [`check_partition`] at each broker start with plain data (the checker does
//! not depend on the world); a mismatch is a per-step failure with the seed to replay.

use gregor_core::files::{walk_batches, SEGMENT_HEADER_BYTES};

/// `(base offset, leader epoch)` of every whole batch of the segments (oldest first, each as
/// (base offset, file bytes)) below `end`.
pub fn batches_below(segments: &[(i64, &[u8])], end: i64) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    for (base, bytes) in segments {
        if *base >= end || bytes.len() < SEGMENT_HEADER_BYTES as usize {
            continue;
        }
        let body = &bytes[SEGMENT_HEADER_BYTES as usize..];
        // A torn or corrupt tail ends the walk, as recovery's cut ended the log there.
        walk_batches(body, SEGMENT_HEADER_BYTES, *base, |_, h, _| {
            if h.base_offset < end {
                out.push((h.base_offset, h.partition_leader_epoch));
            }
        });
    }
    out
}

/// The cache the batches give, clamped to `[start, end]` (see the module docs).
pub fn rebuild(batches: &[(i64, i32)], start: i64, end: i64) -> Vec<(i32, i64)> {
    let mut entries: Vec<(i32, i64)> = Vec::new();
    for &(base, epoch) in batches {
        if epoch >= 0 && entries.last().is_none_or(|(e, _)| epoch > *e) {
            entries.push((epoch, base));
        }
    }
    // Kafka's truncateFromStart: the epoch covering the start now starts there.
    let covering = entries.partition_point(|(_, s)| *s <= start);
    if let Some(i) = covering.checked_sub(1) {
        entries.drain(..i);
        entries[0].1 = start;
    }
    entries.retain(|(_, s)| *s < end);
    entries
}

/// The anomaly, if `cache` (the broker's, for `name`, a log `[start, end)`) is not the one
/// the `batches` on disk give.
///
/// `standalone`: the broker leads every partition in this one epoch, so a batch naming another
/// has a damaged header (its `partitionLeaderEpoch` is outside the batch CRC, and a torn write
/// can flip it unseen) and counts as written in this epoch, as the broker counts it.
pub fn check_partition(
    name: &str,
    cache: &[(i32, i64)],
    batches: &[(i64, i32)],
    start: i64,
    end: i64,
    standalone: Option<i32>,
) -> Option<String> {
    let ours: Vec<(i32, i64)> = cache.iter().copied().filter(|(_, s)| *s < end).collect();
    let batches: Vec<(i64, i32)> = match standalone {
        Some(epoch) => batches.iter().map(|(b, _)| (*b, epoch)).collect(),
        None => batches.to_vec(),
    };
    let want = rebuild(&batches, start, end);
    (ours != want).then(|| {
        format!(
            "epoch-cache: {name} recovered leader epochs {ours:?}, but its batches give {want:?} \
             (log [{start}, {end}))"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_the_batches_give() {
        let batches = [(0, 0), (3, 0), (5, 2), (9, 2), (12, 4)];
        assert_eq!(rebuild(&batches, 0, 15), vec![(0, 0), (2, 5), (4, 12)]);
        assert_eq!(rebuild(&batches, 6, 15), vec![(2, 6), (4, 12)]);
        assert_eq!(rebuild(&batches, 0, 9), vec![(0, 0), (2, 5)]);
        let good = [(0, 0), (2, 5), (4, 12), (5, 15)];
        assert_eq!(check_partition("t-0", &good, &batches, 0, 15, None), None);
        // Standalone: every batch counts as epoch 0, whatever its (damaged) header says.
        assert_eq!(
            check_partition("t-0", &[(0, 0)], &batches, 0, 15, Some(0)),
            None
        );
    }

    /// Planted bad histories: a cache that kept an epoch a power loss took, one that lost an
    /// epoch, one with a wrong start. Each is caught.
    #[test]
    fn a_wrong_cache_is_caught() {
        let batches = [(0, 0), (3, 0), (5, 2)];
        for bad in [
            // Epoch 4 from offset 6, below the log end 7, with no batch of it there. (An
            // entry at the log end itself is an election with no batch yet: not compared.)
            vec![(0, 0), (2, 5), (4, 6)],
            vec![(0, 0)],
            vec![(0, 0), (2, 4)],
        ] {
            let found = check_partition("t-0", &bad, &batches, 0, 7, None);
            assert!(
                found.is_some_and(|a| a.starts_with("epoch-cache")),
                "{bad:?}"
            );
        }
    }
}
