//! Services the broker offers the group coordinator (internal topic writes and reads).

use super::*;

impl Broker {
    pub(crate) fn default_settings_pub(&self) -> TopicSettings {
        self.default_settings()
    }
    pub(crate) fn log_line(&mut self, level: LogLevel, message: String) {
        self.log(level, message);
    }
    pub(crate) fn respond_pub(&mut self, to: ReplyTo, body: Option<ResponseKind>) {
        self.respond(to, body);
    }
    /// A short random id suffix (member ids).
    pub(crate) fn random_suffix(&mut self) -> String {
        Uuid::from_bytes(self.prng.uuid_bytes()).to_string()
    }
    pub(crate) fn client_id_of(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map(|c| c.client_id.clone())
            .unwrap_or_default()
    }
    pub(crate) fn storage_for_group(&mut self, request: StorageRequest, slot: usize) {
        self.storage(request, OpPurpose::GroupLoad { slot });
    }
    /// Reads that bring back everything stored in `__consumer_offsets`, in log order.
    pub(crate) fn offsets_log_reads(&self) -> Vec<StorageRequest> {
        let mut reads = Vec::new();
        if let Some(t) = self.topics.get(crate::group::OFFSETS_TOPIC) {
            for p in &t.partitions {
                if p.offline.is_some() {
                    continue;
                }
                for seg in p.log.segments() {
                    if let (Some(first), Some(last)) = (seg.batches.first(), seg.batches.last()) {
                        let len = last.position + last.size as u64 - first.position;
                        reads.push(StorageRequest::Read {
                            file: p.log.file_of(seg.base_offset),
                            position: first.position,
                            len: len as u32,
                        });
                    }
                }
            }
        }
        reads
    }

    /// Append a batch the broker built itself to an internal topic, through the same path as a
    /// produce. `reply` = (where, response when durable, response if the write fails).
    pub(crate) fn append_internal(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        reply: Option<(ReplyTo, ResponseKind, ResponseKind)>,
        apply: Vec<crate::group::GroupRecord>,
        group: Option<(String, i32)>,
    ) {
        match self.append_one(topic, partition, Some(batch), true) {
            Ok((_, _, wait)) => {
                let w = wait.expect("an append always waits");
                let cut_epoch = self.topics[topic].partitions[partition as usize].cut_epoch;
                self.last_internal =
                    Some((topic.to_string(), w.topic_id, partition, w.end, cut_epoch));
                if reply.is_some() || !apply.is_empty() || group.is_some() {
                    self.internal_waits.push(InternalWait {
                        reply,
                        apply,
                        group,
                        topic: topic.to_string(),
                        topic_id: w.topic_id,
                        partition,
                        end: w.end,
                        cut_epoch,
                    });
                }
            }
            Err((code, msg)) => {
                self.log(
                    LogLevel::Error,
                    format!("writing to {topic}-{partition} failed ({code}): {msg}"),
                );
                if let Some((to, _, err)) = reply {
                    self.respond(to, Some(err));
                }
                if let Some((g, generation)) = group {
                    crate::group::membership_write_failed(self, &g, generation);
                }
            }
        }
    }

    pub(super) fn offsets_partition(&self, p: i32) -> Option<&Partition> {
        self.topics
            .get(crate::group::OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(p as usize))
            .filter(|p| p.offline.is_none())
    }
    pub(crate) fn offsets_partition_hw(&self, p: i32) -> Option<i64> {
        self.offsets_partition(p).map(|p| p.high_watermark)
    }
    pub(crate) fn offsets_partition_bytes(&self, p: i32) -> u64 {
        self.offsets_partition(p)
            .map(|p| p.log.size_bytes())
            .unwrap_or(0)
    }
    /// Roll the offsets partition and append `batch` as the first batch of the new segment.
    /// Returns the batch's offset.
    pub(crate) fn offsets_snapshot(&mut self, p: i32, batch: Bytes) -> Option<i64> {
        let now = self.now;
        let name = crate::group::OFFSETS_TOPIC;
        let part = self.topics.get_mut(name)?.partitions.get_mut(p as usize)?;
        let base = part.log.log_end_offset();
        for r in part.log.roll(now) {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("roll {name}-{p} for a snapshot"),
                },
            );
        }
        self.append_internal(name, p, batch, None, Vec::new(), None);
        let part = &self.topics[name].partitions[p as usize];
        (part.log.log_end_offset() > base).then_some(base)
    }
    /// Delete every segment of an offsets partition below `base` (a snapshot's offset).
    pub(crate) fn offsets_delete_before(&mut self, p: i32, base: i64) {
        let name = crate::group::OFFSETS_TOPIC;
        let Some(part) = self
            .topics
            .get_mut(name)
            .and_then(|t| t.partitions.get_mut(p as usize))
        else {
            return;
        };
        if part.log.log_start_offset() >= base
            || !part.log.segments().iter().any(|s| s.base_offset == base)
        {
            return;
        }
        for r in part.log.delete_before(base) {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("compact {name}-{p}"),
                },
            );
        }
    }

    /// The most recent internal append: (topic, topic id, partition, end offset).
    pub(crate) fn last_internal_write(&self) -> Option<WriteMark> {
        self.last_internal.clone()
    }

    /// A mark at the current end of an internal partition (what is there now, durable or not).
    pub(crate) fn end_mark(&self, topic: &str, partition: i32) -> Option<WriteMark> {
        let t = self.topics.get(topic)?;
        let p = t.partitions.get(partition as usize)?;
        Some((
            topic.to_string(),
            t.id,
            partition,
            p.log.log_end_offset(),
            p.cut_epoch,
        ))
    }

    /// Send `ok` once the write `mark` is durable under the policy (`err` if its partition
    /// fails first); at once if there is nothing to wait for.
    pub(crate) fn respond_after(
        &mut self,
        to: ReplyTo,
        ok: ResponseKind,
        err: ResponseKind,
        mark: Option<WriteMark>,
    ) {
        match mark {
            // The cut epoch is the partition's when the write was made: if a failed write cut
            // the partition since, this write may be gone even though the log grew past it.
            Some((topic, topic_id, partition, end, cut_epoch)) => {
                self.internal_waits.push(InternalWait {
                    reply: Some((to, ok, err)),
                    apply: Vec::new(),
                    group: None,
                    topic,
                    topic_id,
                    partition,
                    end,
                    cut_epoch,
                })
            }
            None => self.respond(to, Some(ok)),
        }
    }
}
