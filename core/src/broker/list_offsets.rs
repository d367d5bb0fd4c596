//! ListOffsets (API key 2): which offset answers "earliest", "latest", "the largest timestamp"
//! (KIP-734) or "the first record at or after this time".
//!
//! Earliest (−2), latest (−1, the high watermark: a consumer sees nothing above it) and
//! max-timestamp (−3) are answered from memory at once. A timestamp (≥ 0) is answered at record
//! granularity, as Kafka's `LogSegment.findOffsetByTimestamp` does: the sparse time index names
//! where to start, the broker reads forward through batch headers (`StorageRequest::Read`,
//! [`crate::log::advance`]) to the first batch whose largest timestamp reaches the target, and
//! decodes that batch's records, decompressing them if needed
//! ([`crate::batch::first_record_at_or_after`]). The request is parked until its reads return;
//! its response still goes out in request order for its connection.
//!
//! Each answer carries the leader epoch of the offset it names (KIP-320, v4+: the latest epoch
//! for latest, else the epoch that wrote the batch found, from the leader-epoch cache), and a
//! request whose `current_leader_epoch` does not match the partition's is fenced
//! (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH, `epochs.rs`).
//!
//! ## Safety properties
//! * Every answer is below the high watermark: the batch chosen ends below it, and the record
//!   found lies inside that batch (asserted).
//! * A read that fails answers KAFKA_STORAGE_ERROR for its partition; a batch that cannot be
//!   decoded answers with the batch's first offset, which is at or before the exact record, so
//!   a consumer seeking there misses nothing.

use super::*;
use crate::batch::first_record_at_or_after;
use crate::log::{advance, Goal, ReadStep};

/// A ListOffsets request waiting for the batches it decodes.
#[derive(Debug)]
pub(super) struct PendingListOffsets {
    reply: ReplyTo,
    response: ListOffsetsResponse,
    /// Per read: (topic index, partition index) in the response, the target timestamp and the
    /// batch read, so its first offset and largest timestamp are the fallback answer.
    slots: Vec<TimestampSlot>,
    pub(super) outstanding: usize,
}

#[derive(Debug)]
struct TimestampSlot {
    topic: usize,
    partition: usize,
    target: i64,
    /// The read in flight (the scan moves it forward).
    plan: ReadPlan,
}

impl PendingListOffsets {
    pub(super) fn invariants(&self) {
        assert!(
            self.outstanding > 0,
            "parked only while reads are in flight"
        );
        assert!(self.outstanding <= self.slots.len());
        for s in &self.slots {
            assert!(s.topic < self.response.topics.len());
            assert!(s.partition < self.response.topics[s.topic].partitions.len());
            assert!(
                matches!(s.plan.goal, Goal::Timestamp { timestamp, .. } if timestamp == s.target)
            );
            assert!(s.plan.scan_offset < s.plan.upper);
        }
    }
}

impl Broker {
    pub(super) fn list_offsets(&mut self, to: ReplyTo, r: ListOffsetsRequest) {
        let mut resp = ListOffsetsResponse::default();
        let mut slots = Vec::new();
        for t in r.topics {
            let name = name_of(&t.name.0);
            let mut tr = ListOffsetsTopicResponse::default().with_name(t.name.clone());
            for p in t.partitions {
                let mut pr = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                let refused = self.serve_check(&name, p.partition_index, Serve::Read);
                let fenced =
                    self.fence_leader_epoch(&name, p.partition_index, p.current_leader_epoch);
                match self.partition(&name, p.partition_index) {
                    _ if refused.is_err() => pr.error_code = refused.unwrap_err().code.into(),
                    None => pr.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                    Some(part) if part.offline.is_some() => pr.error_code = KAFKA_STORAGE_ERROR,
                    Some(_) if fenced.is_err() => pr.error_code = fenced.unwrap_err().code.into(),
                    Some(_)
                        if p.timestamp == -1
                            && self.epoch_not_committed(&name, p.partition_index) =>
                    {
                        // A new leader's high watermark is still below the start of its epoch:
                        // "latest" would name an offset older followers may not agree on yet
                        // (Kafka's `fetchOffsetForTimestamp`, KIP-207/KIP-392 era).
                        pr.error_code = OFFSET_NOT_AVAILABLE;
                    }
                    Some(part) => {
                        let hw = part.high_watermark;
                        let epochs = part.log.epochs();
                        match p.timestamp {
                            // KIP-320: latest answers the latest epoch, the others the epoch
                            // of the batch holding the offset found.
                            -1 => (pr.offset, pr.leader_epoch) = (hw, epochs.latest_epoch()),
                            -2 => {
                                let start = part.log.log_start_offset();
                                pr.offset = start;
                                pr.leader_epoch = epochs.epoch_for_offset(start).unwrap_or(-1);
                            }
                            -3 => {
                                if let Some((o, ts)) = part.log.max_timestamp_offset(hw) {
                                    assert!(o < hw, "KIP-734 answers below the high watermark");
                                    pr.offset = o;
                                    pr.timestamp = ts;
                                    pr.leader_epoch = epochs.epoch_for_offset(o).unwrap_or(-1);
                                }
                            }
                            ts if ts >= 0 => {
                                if let Some(plan) = part.log.offset_for_timestamp(ts, hw) {
                                    assert!(plan.scan_offset < hw && plan.upper == hw);
                                    slots.push(TimestampSlot {
                                        topic: resp.topics.len(),
                                        partition: tr.partitions.len(),
                                        target: ts,
                                        plan,
                                    });
                                }
                            }
                            _ => pr.error_code = INVALID_REQUEST,
                        }
                    }
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        if slots.is_empty() {
            answer(&mut resp, to.api_version);
            self.respond(to, Some(ResponseKind::ListOffsets(resp)));
            return;
        }
        let id = self.next_pending;
        self.next_pending += 1;
        let reads: Vec<ReadPlan> = slots.iter().map(|s| s.plan.clone()).collect();
        self.list_offsets.insert(
            id,
            PendingListOffsets {
                reply: to,
                response: resp,
                outstanding: slots.len(),
                slots,
            },
        );
        for (slot, plan) in reads.into_iter().enumerate() {
            let request = super::fetch::read_of(&plan);
            self.storage(request, OpPurpose::TimestampRead { list: id, slot });
        }
    }

    /// A batch read for a ListOffsets by timestamp returned: find the record, answer when the
    /// last read is in.
    pub(super) fn timestamp_read_done(
        &mut self,
        id: u64,
        slot: usize,
        result: Result<StorageReply, StorageFault>,
    ) {
        // Where the search would go on if this segment holds no answer: the next segment that
        // reaches the target (its answers all lay below a log start DeleteRecords moved).
        let (next_segment, epochs) = {
            let s = &self.list_offsets[&id].slots[slot];
            let dir = &s.plan.file.dir;
            let part = self
                .topics
                .get(&dir.topic)
                .and_then(|t| t.partitions.get(dir.partition as usize));
            let next = part.and_then(|p| {
                let after = s.plan.file.base_offset;
                p.log
                    .offset_for_timestamp_after(s.target, s.plan.upper, after)
            });
            (next, part.map(|p| p.log.epochs().clone()))
        };
        let l = self
            .list_offsets
            .get_mut(&id)
            .expect("a ListOffsets stays parked until its reads return");
        let s = &mut l.slots[slot];
        let pr = &mut l.response.topics[s.topic].partitions[s.partition];
        assert_eq!(pr.offset, -1, "one read per partition answer");
        let step = match result {
            Ok(StorageReply::Read(bytes)) => advance(&s.plan, bytes),
            Ok(StorageReply::Done) => panic!("driver answered a read with Done"),
            Err(fault) => Err(format!("ListOffsets read failed: {fault}")),
        };
        let mut note = None;
        match step {
            Ok(ReadStep::More(next)) => {
                // The scan goes on: the same slot, one more read.
                s.plan = next;
                let request = super::fetch::read_of(&s.plan);
                self.storage(request, OpPurpose::TimestampRead { list: id, slot });
                return;
            }
            Ok(ReadStep::Done { bytes, .. }) if bytes.is_empty() && next_segment.is_some() => {
                let next = next_segment.expect("checked");
                assert!(
                    next.file.base_offset > s.plan.file.base_offset,
                    "the search moves on"
                );
                s.plan = next;
                let request = super::fetch::read_of(&s.plan);
                self.storage(request, OpPurpose::TimestampRead { list: id, slot });
                return;
            }
            // Nothing below the high watermark reaches the target: no answer (-1).
            Ok(ReadStep::Done { bytes, .. }) if bytes.is_empty() => {}
            Ok(ReadStep::Done {
                bytes,
                first_offset,
                next_offset,
                max_timestamp,
            }) => {
                assert!(max_timestamp >= s.target, "the batch reaches the target");
                let Goal::Timestamp { from, .. } = s.plan.goal else {
                    unreachable!("a timestamp slot reads for a timestamp")
                };
                // The first record at or after the target, and not below the log start.
                let first_offset = first_offset.max(from);
                let (offset, timestamp) = match first_record_at_or_after(&bytes, s.target, from) {
                    Ok(Some(hit)) => hit,
                    Ok(None) => {
                        note = Some(format!(
                            "ListOffsets: batch {first_offset} has no record at or after {} though \
                             its maxTimestamp is {max_timestamp}; answering with its first offset",
                            s.target
                        ));
                        (first_offset, max_timestamp)
                    }
                    Err(e) => {
                        note = Some(format!(
                            "ListOffsets: {e}; answering with the batch's first offset"
                        ));
                        (first_offset, max_timestamp)
                    }
                };
                assert!(
                    offset >= first_offset && offset < next_offset,
                    "the answer lies inside the batch read"
                );
                assert!(
                    next_offset <= s.plan.upper,
                    "the answer is below the high watermark"
                );
                pr.offset = offset;
                pr.timestamp = timestamp;
                pr.leader_epoch = epochs
                    .and_then(|e| e.epoch_for_offset(offset))
                    .unwrap_or(-1);
            }
            Err(problem) => {
                pr.error_code = KAFKA_STORAGE_ERROR;
                note = Some(problem);
            }
        }
        l.outstanding -= 1;
        let finished = l.outstanding == 0;
        if let Some(n) = note {
            self.log(LogLevel::Warn, n);
        }
        if finished {
            let mut l = self.list_offsets.remove(&id).unwrap();
            answer(&mut l.response, l.reply.api_version);
            self.respond(l.reply, Some(ResponseKind::ListOffsets(l.response)));
        }
    }
}

/// Fit a ListOffsets answer to the version asked: `leader_epoch` exists from v4 on (KIP-320),
/// and an older client (librdkafka's ListOffsets v2, say) gets the answer without it. Sending
/// it anyway is not possible: the encoder refuses a field the version lacks, and the client
/// would lose its connection instead of getting an answer.
fn answer(resp: &mut ListOffsetsResponse, version: i16) {
    if version >= 4 {
        return;
    }
    for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        p.leader_epoch = -1;
    }
    assert!(resp
        .topics
        .iter()
        .all(|t| t.partitions.iter().all(|p| p.leader_epoch == -1)));
}

#[cfg(test)]
mod tests {
    use crate::io::{StorageFault, StorageReply, StorageRequest};
    use crate::kafka_protocol::messages::*;
    use crate::kafka_protocol::protocol::StrBytes;
    use crate::kafka_protocol::records::Compression;
    use crate::prng::Prng;
    use crate::testkit::{batch, Pair, Rec, Storage};
    use crate::{Config, Recovered};
    use std::collections::BTreeMap;

    /// Segment files in memory; everything else succeeds and is forgotten.
    #[derive(Default)]
    struct Segments(BTreeMap<String, Vec<u8>>);

    impl Storage for Segments {
        fn exec(&mut self, r: &StorageRequest, _: &mut Prng) -> Result<StorageReply, StorageFault> {
            match r {
                StorageRequest::CreateSegment { file, header } => {
                    self.0.insert(format!("{file:?}"), header.to_vec());
                }
                StorageRequest::Append {
                    file,
                    position,
                    data,
                } => {
                    let f = self.0.get_mut(&format!("{file:?}")).unwrap();
                    assert_eq!(f.len() as u64, *position);
                    f.extend_from_slice(data);
                }
                StorageRequest::Read {
                    file,
                    position,
                    len,
                } => {
                    let f = &self.0[&format!("{file:?}")];
                    let start = *position as usize;
                    let end = (start + *len as usize).min(f.len());
                    return Ok(StorageReply::Read(bytes::Bytes::copy_from_slice(
                        &f[start..end],
                    )));
                }
                _ => {}
            }
            Ok(StorageReply::Done)
        }
    }

    fn name() -> TopicName {
        TopicName(StrBytes::from_static_str("t"))
    }

    fn list(h: &mut Pair<Segments>, ts: i64) -> (i64, i64) {
        let req = ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name())
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)]),
        ]);
        let c = h.send(1, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req));
        let Some(ResponseKind::ListOffsets(r)) = h.take(c) else {
            panic!("no ListOffsets response")
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp)
    }

    /// Two compressed batches (gzip, zstd; offsets 0-2 at t 100/110/120, 3-5 at t 200/210/220): a timestamp
    /// answers with the exact record, not its batch's first offset; the special timestamps
    /// still answer from memory.
    #[test]
    fn a_timestamp_answers_with_the_first_record_at_or_after_it() {
        let mut h = Pair::new(Config::default(), Recovered::default(), Segments::default());
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(name()))]))
            .with_allow_auto_topic_creation(true);
        let c = h.send(1, ApiKey::Metadata, 9, RequestKind::Metadata(req));
        assert!(h.take(c).is_some());
        for (base, c) in [(100, Compression::Gzip), (200, Compression::Zstd)] {
            let recs: Vec<Rec> = (0..3)
                .map(|i| Rec {
                    value: Some(bytes::Bytes::from_static(b"value")),
                    timestamp_ms: base + 10 * i,
                    ..Rec::default()
                })
                .collect();
            let req = ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(name())
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&recs, None, c))),
                    ])]);
            let corr = h.send(1, ApiKey::Produce, 9, RequestKind::Produce(req));
            let Some(ResponseKind::Produce(r)) = h.take(corr) else {
                panic!("no Produce response")
            };
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
        for (ts, want) in [
            (0, (0, 100)),
            (100, (0, 100)),
            (105, (1, 110)),
            (120, (2, 120)),
            (121, (3, 200)),
            (215, (5, 220)),
            (221, (-1, -1)),
            (-1, (6, -1)),
            (-2, (0, -1)),
            (-3, (5, 220)),
        ] {
            assert_eq!(list(&mut h, ts), want, "timestamp {ts}");
        }
    }
}
