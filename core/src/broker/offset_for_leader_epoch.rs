//! OffsetForLeaderEpoch (API key 23; KIP-101, KIP-320): "where does leader epoch `e` end in
//! your log?"
//!
//! Each partition of the request names `leader_epoch`, the epoch of the last record the asker
//! holds, and the answer is this log's [`crate::log::LeaderEpochCache::end_offset_for`] it:
//! the largest epoch at or below it that this log knows and the offset where that epoch's
//! writes end here (the log end for the current epoch). Kafka's followers used it before
//! Fetch v12 to find where to truncate (KIP-101); today consumers use it (KIP-320): after a
//! leader change, or when they resume from a committed offset that carries a leader epoch, they
//! ask, and an end offset below their position means the log was truncated under them (an
//! unclean election), so they reset instead of silently skipping or re-reading. An epoch this
//! log cannot place answers `(-1, -1)` without an error, as Kafka does.
//!
//! Checks, per partition, as Kafka's `Partition.lastOffsetForLeaderEpoch`: the partition exists
//! (UNKNOWN_TOPIC_OR_PARTITION), this broker leads it (NOT_LEADER_OR_FOLLOWER, the one
//! leadership check of `cluster/`), its storage is online (KAFKA_STORAGE_ERROR), and v2+'s
//! `current_leader_epoch` matches (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH, `epochs.rs`).
//! v3+ carries `replica_id`: -1 for a consumer, -2 for a debugging tool, a broker id for a
//! follower. Only the leader answers either way (Kafka sets `fetchOnlyFromLeader` for all of
//! them); gregor has no followers yet, so a follower's request is answered like a consumer's.

use super::*;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};

impl Broker {
    pub(super) fn offset_for_leader_epoch(&mut self, to: ReplyTo, r: OffsetForLeaderEpochRequest) {
        let mut resp = OffsetForLeaderEpochResponse::default();
        for t in &r.topics {
            let name = name_of(&t.topic.0);
            let mut tr = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
            for p in &t.partitions {
                let answer = self.end_offset_for_epoch(&name, p.partition, p);
                let mut ep = EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                match answer {
                    Ok(Some((epoch, end))) => (ep.leader_epoch, ep.end_offset) = (epoch, end),
                    Ok(None) => {}
                    Err(e) => ep.error_code = e.code.into(),
                }
                assert!(ep.error_code == 0 || (ep.leader_epoch, ep.end_offset) == (-1, -1));
                tr.partitions.push(ep);
            }
            resp.topics.push(tr);
        }
        self.respond(to, Some(ResponseKind::OffsetForLeaderEpoch(resp)));
    }

    /// One partition's answer: `Some((epoch, end offset))`, or `None` for Kafka's `(-1, -1)`.
    fn end_offset_for_epoch(
        &self,
        topic: &str,
        partition: i32,
        p: &offset_for_leader_epoch_request::OffsetForLeaderPartition,
    ) -> Result<Option<(i32, i64)>, ClientError> {
        self.serve_check(topic, partition, Serve::Read)?;
        let part = self.partition(topic, partition).ok_or_else(|| {
            ClientError::new(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no partition {topic}-{partition}"),
            )
        })?;
        if let Some(why) = &part.offline {
            return Err(ClientError::new(
                ErrorCode::KAFKA_STORAGE_ERROR,
                format!("{topic}-{partition} is offline: {why}"),
            ));
        }
        self.fence_leader_epoch(topic, partition, p.current_leader_epoch)?;
        let end = part.log.log_end_offset();
        let found = part.log.epochs().end_offset_for(p.leader_epoch, end);
        assert!(found.is_none_or(|(e, o)| e <= p.leader_epoch && o <= end));
        Ok(found)
    }
}
