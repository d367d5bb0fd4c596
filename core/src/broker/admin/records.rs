//! DeleteRecords (KIP-107): move a partition's log start offset up.
//!
//! Kafka deletes records only from the front of a log. DeleteRecords asks for "everything
//! below offset N to go": the partition's **log start offset** (the *low watermark*) becomes
//! N, consumers asking for anything below it get OFFSET_OUT_OF_RANGE (and reset by their
//! `auto.offset.reset`), ListOffsets EARLIEST answers N, and every segment wholly below N is
//! deleted. A segment holding N stays on storage, its records below N unreachable.
//!
//! Rules, as Kafka's `ReplicaManager.deleteRecords` has them:
//! * offset −1 means "up to the high watermark" (everything consumers can see);
//! * an offset above the high watermark, or any other negative one, is OFFSET_OUT_OF_RANGE
//!   (records not yet acknowledged are not the client's to delete);
//! * an offset at or below the current start changes nothing and answers the current start;
//! * internal topics (`__consumer_offsets`) are refused with INVALID_TOPIC_EXCEPTION.
//!
//! Kafka checkpoints log start offsets to `log-start-offset-checkpoint` every minute, so a
//! crash can undo a DeleteRecords it acknowledged. gregor writes the new start into the
//! partition's `partition.meta` and answers only once that write is durable: an acknowledged
//! DeleteRecords survives any crash, and recovery deletes the segments below the start that
//! a crash kept.

use super::*;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};

impl Broker {
    pub(in crate::broker) fn delete_records(&mut self, to: ReplyTo, r: DeleteRecordsRequest) {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut resp = DeleteRecordsResponse::default();
        let mut outstanding: BTreeMap<String, usize> = BTreeMap::new();
        for t in &r.topics {
            let name = name_of(&t.name.0);
            let mut tr = DeleteRecordsTopicResult::default().with_name(t.name.clone());
            for p in &t.partitions {
                let mut pr =
                    DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                match self.delete_records_in(&name, p.partition_index, p.offset, id) {
                    Ok((low_watermark, wrote)) => {
                        pr.low_watermark = low_watermark;
                        if wrote {
                            *outstanding.entry(name.clone()).or_default() += 1;
                        }
                    }
                    Err(e) => {
                        self.log(
                            LogLevel::Info,
                            format!(
                                "DeleteRecords {name}-{} to {} refused: {}",
                                p.partition_index, p.offset, e.message
                            ),
                        );
                        pr.error_code = e.code.into();
                        pr.low_watermark = -1;
                    }
                }
                tr.partitions.push(pr);
            }
            assert_eq!(tr.partitions.len(), t.partitions.len());
            resp.topics.push(tr);
        }
        assert_eq!(resp.topics.len(), r.topics.len(), "every topic is answered");
        self.answer_when_durable(id, to, ResponseKind::DeleteRecords(resp), outstanding);
    }

    /// Move the start of `name`-`index` to `offset` (−1: the high watermark). Returns the new
    /// low watermark and whether a write of `partition.meta` was issued for `waiter`.
    fn delete_records_in(
        &mut self,
        name: &str,
        index: i32,
        offset: i64,
        waiter: u64,
    ) -> Result<(i64, bool), ClientError> {
        let unknown = || {
            ClientError::new(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown partition {name}-{index}"),
            )
        };
        self.serve_check(name, index, Serve::Read)?;
        let t = self.topics.get(name).ok_or_else(unknown)?;
        if t.internal {
            return Err(ClientError::new(
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                format!("records of internal topic {name} cannot be deleted"),
            ));
        }
        let p = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or_else(unknown)?;
        if let Some(why) = &p.offline {
            return Err(ClientError::new(
                ErrorCode::KAFKA_STORAGE_ERROR,
                format!("partition {name}-{index} is offline: {why}"),
            ));
        }
        let (start, hw) = (p.log.log_start_offset(), p.high_watermark);
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(ClientError::new(
                ErrorCode::OFFSET_OUT_OF_RANGE,
                format!("offset {offset} is not within 0..={hw} (the high watermark)"),
            ));
        }
        if target <= start {
            return Ok((start, false));
        }
        let i = index as usize;
        let deletions = self.topics.get_mut(name).unwrap().partitions[i]
            .log
            .advance_log_start(target);
        // The new start is made durable first; the segment deletions follow it (storage
        // carries requests out in order), so a crash never leaves segments gone while the
        // start on storage has not moved.
        let meta = self.partition_meta_now(name, i);
        assert_eq!(meta.log_start_offset, target);
        self.write_partition_meta(&meta, Some(waiter));
        let segments = deletions.len();
        for d in deletions {
            self.storage(
                d,
                OpPurpose::Other {
                    what: format!("DeleteRecords {name}-{index}"),
                },
            );
        }
        self.log(
            LogLevel::Info,
            format!(
                "DeleteRecords: {name}-{index} now starts at offset {target} \
                 ({segments} segment(s) deleted)"
            ),
        );
        // Postcondition: what consumers could see at or above the new start is all still
        // there; nothing below it can be read.
        let p = &self.topics[name].partitions[i];
        assert_eq!(p.log.log_start_offset(), target);
        assert!(p.high_watermark >= target);
        Ok((target, true))
    }
}
