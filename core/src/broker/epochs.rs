//! Leader epochs at the broker: recording an epoch when leadership starts (KIP-279), and the
//! KIP-320 checks every partition read makes against the epoch a client believes in.
//!
//! A partition's **leader epoch** is a number the controller bumps each time the partition's
//! leadership moves (KRaft's `PartitionRecord.leaderEpoch`); a standalone broker leads every
//! partition in epoch 0 forever. The broker
//! * records `(epoch, log end)` in the partition's leader-epoch cache the moment it becomes
//!   leader in a new epoch, before it appends anything in it ([`Broker::leader_epoch_started`]),
//!   and stamps the epoch into every batch it appends (`produce.rs`);
//! * fences clients by it (KIP-320, [`Broker::fence_leader_epoch`]): Fetch v9+, ListOffsets v4+
//!   and OffsetForLeaderEpoch v2+ carry `current_leader_epoch`, the epoch the client's metadata
//!   names. Older than the partition's: FENCED_LEADER_EPOCH (74), the client's metadata is stale
//!   and it refreshes it. Newer: UNKNOWN_LEADER_EPOCH (76), this broker has not seen the change
//!   yet and the client retries. -1: no check;
//! * tells a fetcher whose log diverged from this one where (Fetch v12+, [`diverging_epoch`]):
//!   a follower sends the epoch of the last batch it holds (`last_fetched_epoch`) with its fetch
//!   offset; if this log's end for that epoch is below the fetch offset, or this log does not
//!   know that epoch, the two logs differ from there on, and the answer is `DivergingEpoch`
//!   (this log's `end_offset_for` that epoch) with no records, so the follower truncates to it
//!   and fetches again (KIP-595's validation, Kafka 2.7+; REPLICATION.md §1.3).

use super::*;
use crate::log::epochs::NO_EPOCH;

/// The leader epoch of every partition of a standalone broker.
pub(super) const STANDALONE_LEADER_EPOCH: i32 = 0;

impl Broker {
    /// This broker now leads `topic`-`partition` in `epoch` (KIP-279): the epoch starts at the
    /// log end. A no-op if it is already the latest epoch there, or the partition is not held
    /// here; an epoch older than the cache's latest is refused with an error line (the image
    /// never moves an epoch back, so that would be a bug elsewhere, not a reason to crash).
    pub(super) fn leader_epoch_started(&mut self, topic: &str, partition: i32, epoch: i32) {
        assert!(epoch >= 0, "a leader has an epoch");
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
        else {
            return;
        };
        if p.offline.is_some() {
            return;
        }
        let end = p.log.log_end_offset();
        match p.log.assign_epoch(epoch) {
            Ok(added) => {
                assert_eq!(p.log.epochs().latest_epoch(), epoch);
                if added {
                    self.log(
                        LogLevel::Info,
                        format!("{topic}-{partition}: leader epoch {epoch} starts at offset {end}"),
                    );
                }
            }
            Err(refused) => self.log(
                LogLevel::Error,
                format!("{topic}-{partition}: not recording leadership: {refused}"),
            ),
        }
    }

    /// The first image that names a hosted partition's leader epoch, after this run is
    /// registered: the controller bumps the epoch at every leadership change, so no batch on
    /// this replica can carry a higher one. A batch that does has a header a torn write
    /// damaged (`partitionLeaderEpoch` is outside the batch CRC, as in Kafka; cluster simulator
    /// seed 477, where the next append in the real epoch was refused by the cache and
    /// panicked). Such bytes were written after the last sync, so never under a high
    /// watermark: the log is cut before them, where recovery saw that epoch start, and the
    /// producer state recovery had there is installed. Each partition is checked once.
    pub(super) fn cut_epochs_above_the_image(&mut self, image: &crate::cluster::MetadataImage) {
        let cuts_max = self.config.partition_cuts_max;
        let producers_max = self.config.producers_per_partition_max;
        let mut lines = Vec::new();
        let mut requests = Vec::new();
        for (name, t) in self.topics.iter_mut() {
            let Some(parts) = image
                .topic_id(name)
                .map(|id| &image.topics()[&id].partitions)
            else {
                continue;
            };
            for (i, p) in t.partitions.iter_mut().enumerate() {
                let Some(reg) = parts.get(&(i as i32)) else {
                    continue;
                };
                let starts = std::mem::take(&mut p.recovered_epoch_starts);
                let real = reg.leader_epoch;
                if p.offline.is_some() || p.log.epochs().latest_epoch() <= real {
                    continue;
                }
                let (start, end) = (p.log.log_start_offset(), p.log.log_end_offset());
                // The recorded starts describe the log as recovered: only if nothing cut it
                // since (the cut epoch counts cuts) and the segment is still there.
                let usable = |c: &&crate::log::recover::EpochCut| {
                    c.epoch > real
                        && p.cut_epoch <= 1
                        && c.offset >= start
                        && c.offset < end
                        && p.log
                            .segments()
                            .iter()
                            .any(|s| s.base_offset == c.segment && c.position <= s.size)
                };
                let what = format!(
                    "{name}-{i}: leader epochs {:?} above the controller's {real} \
                     (damaged batch headers: the field is outside the batch CRC)",
                    p.log.epochs().entries()
                );
                let Some(cut) = starts.iter().find(usable).cloned() else {
                    // The epoch came from a snapshot (synced, so not torn) or the log moved:
                    // no safe cut is known. Appending would be refused; take it offline.
                    p.offline = Some(format!("{what}; no known cut"));
                    lines.push(format!("{what}; no known cut, partition offline"));
                    continue;
                };
                let mut producers = cut.producers;
                producers.evict_beyond(producers_max);
                match p.truncate_rebuilt(cut.offset, cut.position, cut.scanned, producers, cuts_max)
                {
                    Ok(reqs) => {
                        assert_eq!(p.log.log_end_offset(), cut.offset);
                        assert!(
                            p.log.epochs().latest_epoch() <= real,
                            "no epoch above it left"
                        );
                        lines.push(format!(
                            "{what}; log cut at offset {}, {} record(s) dropped",
                            cut.offset,
                            end - cut.offset
                        ));
                        let dir = format!("{name}-{i}");
                        requests.extend(reqs.into_iter().map(|r| (dir.clone(), r)));
                    }
                    Err(why) => {
                        p.offline = Some(format!("{what}; cannot cut: {why}"));
                        lines.push(format!("{what}; cannot cut ({why}), partition offline"));
                    }
                }
            }
        }
        for line in lines {
            self.log(LogLevel::Error, line);
        }
        for (dir, r) in requests {
            let what = format!("cut {dir} at a leader epoch above the controller's");
            self.storage(r, OpPurpose::Other { what });
        }
    }

    /// After a cut below the start of the current epoch (a failed write cut what the epoch
    /// had appended), the leader still leads in it: record the epoch again at the log end.
    pub(super) fn leader_epoch_goes_on(&mut self, topic: &str, partition: i32) {
        if self.serve_check(topic, partition, Serve::Produce).is_ok() {
            let epoch = self.leader_epoch_of(topic, partition);
            self.leader_epoch_started(topic, partition, epoch);
        }
    }

    /// KIP-320's check of the epoch a client believes the partition's leader has
    /// (`current_leader_epoch`; -1 skips it) against the partition's own.
    pub(super) fn fence_leader_epoch(
        &self,
        topic: &str,
        partition: i32,
        current: i32,
    ) -> Result<(), ClientError> {
        if current == NO_EPOCH {
            return Ok(());
        }
        let ours = self.leader_epoch_of(topic, partition);
        assert!(ours >= 0, "a partition's leader epoch is never negative");
        match current.cmp(&ours) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(ClientError::new(
                ErrorCode::FENCED_LEADER_EPOCH,
                format!(
                    "{topic}-{partition}: leader epoch {current} is older than the current {ours}"
                ),
            )),
            std::cmp::Ordering::Greater => Err(ClientError::new(
                ErrorCode::UNKNOWN_LEADER_EPOCH,
                format!(
                    "{topic}-{partition}: leader epoch {current} is newer than this broker's {ours}"
                ),
            )),
        }
    }
}

/// Fetch v12+'s divergence check (see the module docs), as Kafka's `Partition.readRecords`
/// makes it: `Ok(Some((epoch, end offset)))` to answer as `DivergingEpoch` with no records when
/// a fetcher whose last batch was written in `last_fetched_epoch` fetches at `fetch_offset` and
/// this log disagrees; `Ok(None)` when the fetch goes on (or carries no epoch, as consumers'
/// fetches do); OFFSET_OUT_OF_RANGE when this log cannot place that epoch at all (it is above
/// every epoch here, or the cache is empty) or the fetch offset is below the log start.
pub(super) fn diverging_epoch(
    p: &Partition,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Result<Option<(i32, i64)>, i16> {
    if last_fetched_epoch < 0 {
        return Ok(None);
    }
    let end = p.log.log_end_offset();
    let Some((epoch, end_offset)) = p.log.epochs().end_offset_for(last_fetched_epoch, end) else {
        return Err(OFFSET_OUT_OF_RANGE);
    };
    if fetch_offset < p.log.log_start_offset() {
        return Err(OFFSET_OUT_OF_RANGE);
    }
    assert!(epoch <= last_fetched_epoch && end_offset <= end);
    let diverged = epoch < last_fetched_epoch || end_offset < fetch_offset;
    // Not diverged: the fetcher's last epoch is this log's, and it fetches within it.
    assert!(diverged || (epoch == last_fetched_epoch && fetch_offset <= end_offset));
    Ok(diverged.then_some((epoch, end_offset)))
}
