//! The broker as the coordinator runtime's host: the one door through which the group
//! coordinator writes and reads `__consumer_offsets` and answers clients
//! (see [`crate::coordinator`]). The group code sees only the [`Host`] trait, never `Broker`.

use super::*;
use crate::coordinator::{Host, PendingWrite, WriteMark};
use crate::group::GroupRecord;
use crate::ids::{Offset, PartitionIndex, TopicId, TopicPartition};

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

    /// This broker became the coordinator of `__consumer_offsets` partition `p` (Kafka's
    /// `GroupCoordinator.onElection`): the partition is read back, and its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until the reads complete. One step, as an input is: drain
    /// [`Broker::poll_output`] after it. A standalone broker gains every partition at start; a
    /// broker in a cluster is told as the metadata image moves.
    pub fn offsets_partition_gained(&mut self, now: Instant, p: PartitionIndex) {
        self.now = self.now.max(now);
        self.gain_offsets_partition(p);
        self.handle(Input::Tick { now: self.now });
    }

    /// [`Broker::offsets_partition_gained`] inside a step already running (the image's).
    pub(super) fn gain_offsets_partition(&mut self, p: PartitionIndex) {
        self.with_groups(|c, host| crate::group::partition_gained(c, host, p));
    }

    /// [`Broker::offsets_partition_lost`] inside a step already running (the image's).
    pub(super) fn lose_offsets_partition(&mut self, p: PartitionIndex) {
        let waits = self
            .internal_waits
            .take_partition(&TopicPartition::new(crate::group::OFFSETS_TOPIC, p));
        self.with_groups(|c, host| crate::group::partition_lost(c, host, p, waits));
    }

    /// This broker is no longer the coordinator of `__consumer_offsets` partition `p` (Kafka's
    /// `onResignation`): its groups and committed offsets leave memory, and everything waiting
    /// on them (parked joins and syncs, writes waiting to be durable) is answered
    /// NOT_COORDINATOR. A load in progress is abandoned. One step, as an input is.
    pub fn offsets_partition_lost(&mut self, now: Instant, p: PartitionIndex) {
        self.now = self.now.max(now);
        self.lose_offsets_partition(p);
        self.handle(Input::Tick { now: self.now });
    }

    fn online_partition(&self, topic: &str, p: PartitionIndex) -> Option<&Partition> {
        self.partition(topic, p.0).filter(|p| p.offline.is_none())
    }

    fn partition_mut_at(&mut self, topic: &str, p: PartitionIndex) -> Option<&mut Partition> {
        let index = usize::try_from(p.0).ok()?;
        self.topics.get_mut(topic)?.partitions.get_mut(index)
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
        partition: PartitionIndex,
        batch: Bytes,
    ) -> Result<WriteMark, ClientError> {
        assert!(
            self.coordinator_lent,
            "internal writes come from the coordinator"
        );
        assert!(self.topics.get(topic).is_none_or(|t| t.internal));
        // The coordinator writes with acks=all (Kafka's `CoordinatorPartitionWriter`): with the
        // ISR below `min.insync.replicas` nothing is appended, and the client is told
        // COORDINATOR_NOT_AVAILABLE, which it retries (Kafka's mapping of NOT_ENOUGH_REPLICAS
        // for offset commits), instead of an error it would not expect from a coordinator.
        if let Err(probing) = self.probe_refusal(topic, partition.0) {
            // A new leader still probing its followers (acks=N, `replica/probe.rs`).
            return Err(ClientError::new(
                ErrorCode::COORDINATOR_NOT_AVAILABLE,
                probing.message,
            ));
        }
        if let Err(short) = self.acks_check(topic, partition.0, -1) {
            assert_eq!(short.code, ErrorCode::NOT_ENOUGH_REPLICAS);
            return Err(ClientError::new(
                ErrorCode::COORDINATOR_NOT_AVAILABLE,
                short.message,
            ));
        }
        let wait = self.append_one(topic, partition.0, Some(batch), true)?.wait;
        let w = wait.expect("an append always waits");
        let p = &self.topics[topic].partitions[partition.0 as usize];
        assert_eq!(p.log.log_end_offset(), w.end, "the append is the log's end");
        assert!(
            p.high_watermark < w.end,
            "an append is not acknowledged yet"
        );
        Ok(WriteMark {
            partition: TopicPartition::new(topic, partition),
            topic_id: w.topic_id,
            end: Offset(w.end),
            cut_epoch: p.cut_epoch,
        })
    }

    fn end_mark(&self, topic: &str, partition: PartitionIndex) -> Option<WriteMark> {
        let t = self.topics.get(topic)?;
        let p = t.partitions.get(usize::try_from(partition.0).ok()?)?;
        Some(WriteMark {
            partition: TopicPartition::new(topic, partition),
            topic_id: TopicId(t.id),
            end: Offset(p.log.log_end_offset()),
            cut_epoch: p.cut_epoch,
        })
    }

    fn high_watermark(&self, topic: &str, partition: PartitionIndex) -> Option<Offset> {
        self.online_partition(topic, partition)
            .map(|p| Offset(p.high_watermark))
    }

    fn size_bytes(&self, topic: &str, partition: PartitionIndex) -> u64 {
        self.online_partition(topic, partition)
            .map(|p| p.log.size_bytes())
            .unwrap_or(0)
    }

    fn append_in_new_segment(
        &mut self,
        topic: &str,
        partition: PartitionIndex,
        batch: Bytes,
    ) -> Option<Offset> {
        let now = self.now;
        let part = self.partition_mut_at(topic, partition)?;
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
        let part = &self.topics[topic].partitions[partition.0 as usize];
        let end = part.log.log_end_offset();
        assert_eq!(
            written.is_ok(),
            end > base,
            "a snapshot is written or not at all"
        );
        // Postcondition: a written snapshot is the first batch of the active segment.
        assert!(
            written.is_err()
                || part
                    .log
                    .segments()
                    .last()
                    .is_some_and(|s| s.base_offset == base)
        );
        (end > base).then_some(Offset(base))
    }

    fn delete_before(&mut self, topic: &str, partition: PartitionIndex, base: Offset) {
        let base = base.0;
        let Some(part) = self.partition_mut_at(topic, partition) else {
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
        let end_before = part.log.log_end_offset();
        let requests = part.log.delete_before(base);
        // Compaction removes segments from the front only: the log's end is untouched, and it
        // now starts at the snapshot.
        assert_eq!(part.log.log_end_offset(), end_before);
        assert_eq!(part.log.log_start_offset(), base);
        for r in requests {
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
                .get(&write.mark.partition.topic)
                .is_some_and(|t| TopicId(t.id) == write.mark.topic_id),
            "a write waits on a partition that exists"
        );
        assert!(!self.internal_waits.is_full(), "park only below the limit");
        let timeout = Duration::from_ms(self.config.offsets_commit_timeout_ms);
        self.internal_waits.push(write, self.now + timeout);
    }

    fn default_settings(&self) -> TopicSettings {
        Broker::default_settings(self)
    }

    fn partitions_of(&self, topic: &str) -> Option<i32> {
        let local = self.topics.get(topic).map(|t| t.partitions.len() as i32);
        // In a cluster a broker holds logs only for the topics with a replica here, but the
        // coordinator takes commits for any partition of the cluster (Kafka checks its metadata
        // cache): the image's count, which a local topic matches once the image is applied.
        let Some(image) = self.kraft.image.as_deref() else {
            return local;
        };
        let id = image.topic_id(topic)?;
        let n = image.topics()[&id].partitions.len() as i32;
        assert!(n >= 1, "{topic}: a topic in the image has partitions");
        Some(n)
    }

    fn create_topic(&mut self, topic: &str, partitions: i32, settings: TopicSettings) {
        assert!(!self.topics.contains_key(topic), "{topic} created twice");
        Broker::create_topic(self, topic, partitions, settings, None);
    }

    fn load_reads(&self, topic: &str, partition: PartitionIndex) -> Vec<StorageRequest> {
        self.online_partition(topic, partition)
            .map(|p| p.log.data_reads())
            .unwrap_or_default()
    }

    fn read_for_load(&mut self, request: StorageRequest, slot: usize) {
        assert!(matches!(request, StorageRequest::Read { len, .. } if len > 0));
        self.storage(request, OpPurpose::GroupLoad { slot });
    }
}
