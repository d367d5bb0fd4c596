//! The broker as the coordinator runtime's host: the one door through which the group
//! coordinator writes and reads `__consumer_offsets` and answers clients
//! (see [`crate::coordinator`]). The group code sees only the [`Host`] trait, never `Broker`.

use super::*;
use crate::coordinator::{Host, PendingWrite, WriteMark, WriteRefused};
use crate::group::GroupRecord;

impl Broker {
    /// Run group code with the broker as its host. The coordinator is lent out for the call, so
    /// the group code holds its state (`&mut Coordinator`) and the host (`&mut dyn Host`) side by
    /// side; no host method touches the coordinator, which is asserted.
    pub(super) fn with_groups<T>(
        &mut self,
        f: impl FnOnce(&mut Coordinator, &mut (dyn Host<GroupRecord> + 'static)) -> T,
    ) -> T {
        assert!(
            !self.coordinator_lent,
            "group code re-entered through the broker"
        );
        let placeholder = Coordinator::new(&self.config);
        let mut coordinator = std::mem::replace(&mut self.coordinator, placeholder);
        self.coordinator_lent = true;
        let result = f(&mut coordinator, self);
        assert!(self.coordinator_lent);
        self.coordinator_lent = false;
        self.coordinator = coordinator;
        result
    }

    fn online_partition(&self, topic: &str, p: i32) -> Option<&Partition> {
        self.partition(topic, p).filter(|p| p.offline.is_none())
    }
}

impl Host<GroupRecord> for Broker {
    fn now(&self) -> Instant {
        self.now
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn respond(&mut self, to: ReplyTo, body: Option<ResponseKind>) {
        Broker::respond(self, to, body);
    }
    fn log(&mut self, level: LogLevel, message: String) {
        Broker::log(self, level, message);
    }
    fn random_suffix(&mut self) -> String {
        Uuid::from_bytes(self.prng.uuid_bytes()).to_string()
    }
    fn client_id_of(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map(|c| c.client_id.clone())
            .unwrap_or_default()
    }

    fn append(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> Result<WriteMark, WriteRefused> {
        assert!(
            self.coordinator_lent,
            "internal writes come from the coordinator"
        );
        assert!(self.topics.get(topic).is_none_or(|t| t.internal));
        match self.append_one(topic, partition, Some(batch), true) {
            Ok((_, _, wait)) => {
                let w = wait.expect("an append always waits");
                let p = &self.topics[topic].partitions[partition as usize];
                assert_eq!(p.log.log_end_offset(), w.end, "the append is the log's end");
                Ok(WriteMark {
                    topic: topic.to_string(),
                    topic_id: w.topic_id,
                    partition,
                    end: w.end,
                    cut_epoch: p.cut_epoch,
                })
            }
            Err((code, message)) => Err(WriteRefused { code, message }),
        }
    }

    fn end_mark(&self, topic: &str, partition: i32) -> Option<WriteMark> {
        let t = self.topics.get(topic)?;
        let p = t.partitions.get(usize::try_from(partition).ok()?)?;
        Some(WriteMark {
            topic: topic.to_string(),
            topic_id: t.id,
            partition,
            end: p.log.log_end_offset(),
            cut_epoch: p.cut_epoch,
        })
    }

    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.online_partition(topic, partition)
            .map(|p| p.high_watermark)
    }

    fn size_bytes(&self, topic: &str, partition: i32) -> u64 {
        self.online_partition(topic, partition)
            .map(|p| p.log.size_bytes())
            .unwrap_or(0)
    }

    fn append_in_new_segment(&mut self, topic: &str, partition: i32, batch: Bytes) -> Option<i64> {
        let now = self.now;
        let part = self
            .topics
            .get_mut(topic)?
            .partitions
            .get_mut(partition as usize)?;
        let base = part.log.log_end_offset();
        for r in part.log.roll(now) {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("roll {topic}-{partition} for a snapshot"),
                },
            );
        }
        // A snapshot releases no answer: nothing waits on it but the compaction that checks
        // the high watermark itself.
        let written = crate::coordinator::runtime::write(
            self,
            topic,
            partition,
            batch,
            Vec::new(),
            None,
            None,
        );
        let part = &self.topics[topic].partitions[partition as usize];
        let end = part.log.log_end_offset();
        assert_eq!(
            written.is_ok(),
            end > base,
            "a snapshot is written or not at all"
        );
        (end > base).then_some(base)
    }

    fn delete_before(&mut self, topic: &str, partition: i32, base: i64) {
        let Some(part) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        else {
            return;
        };
        if part.log.log_start_offset() >= base
            || !part.log.segments().iter().any(|s| s.base_offset == base)
        {
            return;
        }
        // Only what the high watermark covers may go: the snapshot at `base` is durable.
        assert!(
            part.high_watermark > base,
            "compaction below a durable snapshot only"
        );
        for r in part.log.delete_before(base) {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("compact {topic}-{partition}"),
                },
            );
        }
    }

    fn parking_full(&self) -> bool {
        self.internal_waits.is_full()
    }

    fn park(&mut self, write: PendingWrite<GroupRecord>) {
        assert!(
            self.topics
                .get(&write.mark.topic)
                .is_some_and(|t| t.id == write.mark.topic_id),
            "a write waits on a partition that exists"
        );
        self.internal_waits.push(write);
    }

    fn default_settings(&self) -> TopicSettings {
        Broker::default_settings(self)
    }

    fn partitions_of(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|t| t.partitions.len() as i32)
    }

    fn create_topic(&mut self, topic: &str, partitions: i32, settings: TopicSettings) {
        assert!(!self.topics.contains_key(topic), "{topic} created twice");
        Broker::create_topic(self, topic, partitions, settings, None);
    }

    fn load_reads(&self, topic: &str) -> Vec<StorageRequest> {
        let mut reads = Vec::new();
        if let Some(t) = self.topics.get(topic) {
            for p in &t.partitions {
                if p.offline.is_some() {
                    continue;
                }
                reads.extend(p.log.data_reads());
            }
        }
        reads
    }

    fn read_for_load(&mut self, request: StorageRequest, slot: usize) {
        assert!(matches!(request, StorageRequest::Read { .. }));
        self.storage(request, OpPurpose::GroupLoad { slot });
    }
}
