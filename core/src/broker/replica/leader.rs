//! The leader's side of replication: follower progress from their fetches, the high watermark
//! over the maximal ISR, what each acks value waits for, and ISR changes through the
//! controller (AlterPartition, KIP-497).

use super::*;
use crate::cluster::{BrokerEpoch, ControllerError, Reply, Request as ControllerRequest};
use crate::replication::{isr_change, leader_high_watermark, UNKNOWN_END};

impl Broker {
    fn me(&self) -> NodeId {
        NodeId(self.config.broker_id.0)
    }

    /// The image's registration of `name`-`index` and its `min.insync.replicas`.
    fn registration(
        &self,
        name: &str,
        index: i32,
    ) -> Option<(&crate::cluster::PartitionRegistration, usize)> {
        let image = self.kraft.image.as_deref()?;
        let id = image.topic_id(name)?;
        let reg = image.partition(id, index)?;
        let min = crate::cluster::replication::min_insync_replicas(
            image,
            id,
            index,
            self.config.min_insync_replicas,
        )?;
        Some((reg, min))
    }

    /// The maximal ISR (KIP-497) of a partition led here: the committed ISR plus the members a
    /// pending expansion adds (a pending shrink still counts the old, larger ISR).
    fn maximal_isr(&self, key: &(String, i32)) -> Vec<NodeId> {
        let Some((reg, _)) = self.registration(&key.0, key.1) else {
            return Vec::new();
        };
        let mut isr = reg.isr.clone();
        if let Some(a) = self.replica.leading.get(key).and_then(|l| l.alter.as_ref()) {
            isr.extend(a.isr.iter().filter(|b| !reg.isr.contains(b)));
        }
        isr
    }

    /// The high watermark `p` (`name`-`index` here) moves to in this step. Leader: the lowest
    /// end over its own acknowledged end and the maximal ISR, forward only, frozen while the ISR
    /// is below `min.insync.replicas`. Follower: the leader's, capped by its own acknowledged
    /// end (it may go back after a truncation or under a new leader, as Kafka's does).
    /// Standalone (or before the first image): the acknowledged end.
    pub(in crate::broker) fn next_high_watermark(&self, key: &(String, i32), p: &Partition) -> i64 {
        let own = p.ack_end(self.config.durability);
        if let Some(f) = self.replica.following.get(key) {
            let hw = f.leader_hw.min(own);
            assert!(
                hw <= p.log.log_end_offset(),
                "a follower's HW within its log"
            );
            return hw;
        }
        let (Some(led), Some((reg, min_isr))) = (
            self.replica.leading.get(key),
            self.registration(&key.0, key.1),
        ) else {
            if self.config.kraft {
                // Hosted here with no leader, not yet followed, or (before the first image)
                // with nothing known of the partition's ISR: it holds. A restarted replica's
                // log end is not a high watermark: its tail may never have been committed
                // (found by the simulator, seed 4: a broker back from a power loss exposed its
                // whole recovered log before its first image, records no other replica had).
                return p.high_watermark.min(own.max(p.log.log_start_offset()));
            }
            return own.max(p.high_watermark);
        };
        if led.probe.is_some() {
            // A probing leader may yet hand over: nothing new is committed (`probe.rs`).
            return p.high_watermark;
        }
        let me = self.me();
        let ends: Vec<i64> = (self.maximal_isr(key).into_iter())
            .filter(|b| *b != me)
            .map(|b| led.followers.get(&b).map_or(UNKNOWN_END, |f| f.log_end))
            .collect();
        let hw = leader_high_watermark(p.high_watermark, own, ends.clone(), reg.isr.len(), min_isr);
        // Moving up, it stays within every maximal-ISR member's end.
        assert!(hw == p.high_watermark || ends.iter().all(|e| hw <= *e));
        hw
    }

    /// A follower's fetch of `key` from `fetch_offset` was accepted (Kafka's
    /// `updateFollowerFetchState`): its progress moves, the high watermark may follow, and it
    /// may now be caught up enough to join the ISR.
    pub(in crate::broker) fn follower_fetched(
        &mut self,
        key: &(String, i32),
        replica: NodeId,
        fetch_offset: i64,
    ) {
        let now = self.now;
        let Some(end) = self
            .partition(&key.0, key.1)
            .map(|p| p.log.log_end_offset())
        else {
            return;
        };
        let Some(progress) = self
            .replica
            .leading
            .get_mut(key)
            .and_then(|l| l.followers.get_mut(&replica))
        else {
            return;
        };
        progress.on_fetch(fetch_offset, end, now);
        assert_eq!(progress.log_end, fetch_offset);
        self.touched.insert(key.clone());
        // The answer carries the high watermark this fetch allows (Kafka moves it first).
        self.settle_high_watermark(key);
        if !self.maximal_isr(key).contains(&replica) {
            self.check_isr(key);
        }
    }

    /// Move `key`'s high watermark to [`Broker::next_high_watermark`].
    pub(in crate::broker) fn settle_high_watermark(&mut self, key: &(String, i32)) {
        let Some(p) = self
            .partition(&key.0, key.1)
            .filter(|p| p.offline.is_none())
        else {
            return;
        };
        let hw = self.next_high_watermark(key, p);
        let leading = self.replica.leading.contains_key(key);
        let p = self.partition_by_key_mut(key);
        assert!(
            !leading || hw >= p.high_watermark,
            "a leader's HW never moves back"
        );
        p.high_watermark = hw;
        assert!(p.high_watermark <= p.written_end.max(p.log.log_start_offset()));
    }

    pub(super) fn partition_by_key_mut(&mut self, key: &(String, i32)) -> &mut Partition {
        let t = self.topics.get_mut(&key.0).expect("a held topic");
        &mut t.partitions[key.1 as usize]
    }

    /// The acks check made before a produce appends (Kafka's `Partition.appendRecordsToLeader`):
    /// acks=all needs the ISR at `min.insync.replicas` (NOT_ENOUGH_REPLICAS, nothing appended);
    /// acks=N needs N replicas to exist (INVALID_REQUIRED_ACKS) and N of them in the ISR
    /// (NOT_ENOUGH_REPLICAS, nothing appended: with fewer in step, N copies could only come
    /// from replicas the leader has given up on).
    pub(in crate::broker) fn acks_check(
        &self,
        name: &str,
        index: i32,
        acks: i16,
    ) -> Result<(), ClientError> {
        let (replicas, isr, min_isr) = match self.registration(name, index) {
            Some((reg, min)) if self.config.kraft => (reg.replicas.len(), reg.isr.len(), min),
            _ => (1, 1, 1),
        };
        assert!(acks >= -1, "refused before the partitions are looked at");
        if acks > 1 && acks as usize > replicas {
            return Err(ClientError::new(
                ErrorCode::INVALID_REQUIRED_ACKS,
                format!("acks={acks} but {name}-{index} has {replicas} replica(s)"),
            ));
        }
        if acks > 1 && (acks as usize) > isr {
            return Err(ClientError::new(
                ErrorCode::NOT_ENOUGH_REPLICAS,
                format!("acks={acks} but {name}-{index} has {isr} replica(s) in its ISR"),
            ));
        }
        if acks == -1 && isr < min_isr {
            return Err(ClientError::new(
                ErrorCode::NOT_ENOUGH_REPLICAS,
                format!("{name}-{index}: ISR of {isr} below min.insync.replicas {min_isr}"),
            ));
        }
        Ok(())
    }

    /// Whether produce wait `w` still waits (`Ok(true)`), is acknowledged (`Ok(false)`), or
    /// failed with an error for the client.
    pub(in crate::broker) fn produce_wait_state(
        &self,
        w: &ProduceWait,
    ) -> Result<bool, ClientError> {
        let err = |code, m: &str| Err(ClientError::new(code, m.to_string()));
        let hosted = (self.topics.get(&w.name))
            .filter(|t| TopicId(t.id) == w.topic_id)
            .map(|t| &t.partitions[w.index as usize])
            .filter(|p| p.offline.as_deref() != Some(crate::broker::cluster::NOT_HOSTED));
        let Some(p) = hosted else {
            // Reference: KIP-455. A partition moved off this broker while the produce waited
            // (its copy deleted, or the whole topic with its last partition here) is a
            // leadership that moved: the records may be on the new replicas, so the outcome
            // is unknown, answered NOT_LEADER_OR_FOLLOWER as Kafka's
            // `ReplicaManager.getPartitionOrError` answers a partition it does not host but
            // its metadata has (simulator, `--cluster 3 --replication` seeds 21, 32 and 66:
            // UNKNOWN_TOPIC_OR_PARTITION, a definite refusal, for appended records). Only a
            // topic gone from the metadata is UNKNOWN_TOPIC_OR_PARTITION.
            let in_metadata = (self.kraft.image.as_deref())
                .and_then(|im| im.topic_id(&w.name))
                .is_some_and(|id| id.0 == w.topic_id.0);
            return if in_metadata {
                err(
                    ErrorCode::NOT_LEADER_OR_FOLLOWER,
                    "the partition moved off this broker while the produce waited",
                )
            } else {
                err(
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    "topic deleted while the produce was pending",
                )
            };
        };
        if let Some(why) = &p.offline {
            return err(
                ErrorCode::KAFKA_STORAGE_ERROR,
                &format!("partition offline: {why}"),
            );
        }
        if p.log.log_end_offset() < w.end {
            return err(ErrorCode::KAFKA_STORAGE_ERROR, "write to storage failed");
        }
        let key = (w.name.clone(), w.index);
        if self.config.kraft && !self.replica.leading.contains_key(&key) {
            return err(
                ErrorCode::NOT_LEADER_OR_FOLLOWER,
                "leadership moved while the produce waited for replication",
            );
        }
        let own = p.ack_end(self.config.durability);
        match w.acks {
            1 => Ok(own < w.end),
            -1 if p.high_watermark >= w.end => Ok(false),
            -1 => match self.registration(&w.name, w.index) {
                Some((reg, min)) if reg.isr.len() < min => err(
                    ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                    "the ISR shrank below min.insync.replicas while the produce waited",
                ),
                _ => Ok(true),
            },
            n => {
                // acks=N counts the leader and followers in the ISR only, as Kafka 0.8's
                // acks>1 did (`Partition.checkEnoughReplicasReachOffset`): a follower outside
                // it (catching up, or joining by a change not yet committed) is no clean
                // successor, so a record it holds is kept only while some ISR member holds it
                // too (simulator, `--cluster 5 --replication` seed 85: acks=3 counted a
                // joining follower the controller then refused, and the record was lost).
                assert!(n >= 2, "acks 0 never waits");
                let isr = self.registration(&w.name, w.index).map(|(r, _)| &r.isr);
                let led = self.replica.leading.get(&key);
                let others = led.zip(isr).map_or(0, |(l, isr)| {
                    (l.followers.iter())
                        .filter(|(b, f)| isr.contains(b) && f.log_end >= w.end)
                        .count()
                });
                Ok(own < w.end || others + 1 < n as usize)
            }
        }
    }

    /// The periodic ISR check of every partition led here.
    pub(super) fn check_isr_all(&mut self) {
        let keys: Vec<(String, i32)> = self.replica.leading.keys().cloned().collect();
        for key in keys {
            self.check_isr(&key);
        }
    }

    /// Ask the controller for the ISR `key` should have, if it differs from the image's and no
    /// change is out yet (one at a time per partition).
    fn check_isr(&mut self, key: &(String, i32)) {
        let Some(led) = self.replica.leading.get(key) else {
            return;
        };
        if led.alter.is_some() || led.probe.is_some() {
            return;
        }
        let (Some((reg, _)), Some(image), Some(p)) = (
            self.registration(&key.0, key.1),
            self.kraft.image.as_deref(),
            self.partition(&key.0, key.1),
        ) else {
            return;
        };
        let followers: Vec<(NodeId, ReplicaProgress, bool)> = (led.followers.iter())
            .map(|(b, f)| (*b, *f, image.broker(*b).is_some_and(|r| !r.fenced)))
            .collect();
        let lag = Duration::from_ms(self.config.replica_lag_time_max_ms);
        let me = self.me();
        let hw = p.high_watermark;
        let Some(new_isr) =
            isr_change(me, &reg.isr, &followers, hw, led.epoch_start, self.now, lag)
        else {
            return;
        };
        // Only replicas join, and the leader stays.
        assert!(new_isr.iter().all(|b| reg.replicas.contains(b)) && new_isr.contains(&me));
        let epoch_of = |b: NodeId| image.broker(b).map_or(BrokerEpoch(-1), |r| r.broker_epoch);
        let Some(topic_id) = image.topic_id(&key.0) else {
            return;
        };
        let request = ControllerRequest::AlterPartition {
            broker_id: me,
            broker_epoch: epoch_of(me),
            topic_id,
            partition: key.1,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            new_isr: new_isr.iter().map(|b| (*b, epoch_of(*b))).collect(),
            successor: None,
        };
        let partition_epoch = reg.partition_epoch;
        let what = format!(
            "{}-{}: asking the controller to change the ISR {:?} to {:?}",
            key.0,
            key.1,
            reg.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
            new_isr.iter().map(|b| b.0).collect::<Vec<_>>()
        );
        self.log(LogLevel::Info, what);
        let id = self.ask_alter_partition(request, key.clone());
        let led = self.replica.leading.get_mut(key).expect("looked up above");
        led.alter = Some(AlterOut {
            id,
            partition_epoch,
            isr: new_isr,
            answered: false,
        });
    }

    /// The controller answered an AlterPartition. On success the image brings the new ISR (it
    /// is the state; the reply is not used); FENCED_LEADER_EPOCH and INVALID_UPDATE_VERSION wait
    /// for a newer image; any other error is logged and the next check asks again.
    pub(in crate::broker) fn alter_partition_answer(
        &mut self,
        key: (String, i32),
        id: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
        let Some(led) = self.replica.leading.get_mut(&key) else {
            return;
        };
        let Some(a) = led.alter.as_mut().filter(|a| a.id == id) else {
            return;
        };
        assert_eq!(a.id, id);
        match &result {
            // NEW_LEADER_ELECTED (a handover, or a change that moved the leadership): the
            // image brings the new leader.
            Ok(_)
            | Err(ControllerError::FencedLeaderEpoch { .. })
            | Err(ControllerError::InvalidUpdateVersion { .. })
            | Err(ControllerError::NewLeaderElected(_)) => a.answered = true,
            Err(_) => led.alter = None,
        }
        if let Err(e) = result {
            let level = match e {
                ControllerError::NewLeaderElected(_) => LogLevel::Info,
                _ => LogLevel::Warn,
            };
            self.log(
                level,
                format!("{}-{}: AlterPartition answered: {e:?}", key.0, key.1),
            );
        }
        // A probing leader's handover was answered: it decides again (`probe.rs`).
        self.probes_advance();
    }
}

impl Broker {
    /// Whether broker `replica` holds a replica of `topic`-`partition` (the image's replicas).
    pub(in crate::broker) fn is_replica(&self, topic: &str, partition: i32, replica: i32) -> bool {
        self.registration(topic, partition)
            .is_some_and(|(reg, _)| reg.replicas.contains(&NodeId(replica)))
    }

    /// A Fetch arrived: the partitions a follower asks for move its progress (when the leader
    /// serves them and the fetch offset is within the log); one from a broker that is no
    /// replica is refused (in `fetch_check`) with a log line here.
    pub(in crate::broker) fn note_follower_fetches(&mut self, parts: &[FetchPart]) {
        for part in parts {
            let Some(replica) = part.replica else {
                continue;
            };
            let key = (part.topic.clone(), part.partition);
            if !self.replica.leading.contains_key(&key) {
                continue;
            }
            if !self.is_replica(&part.topic, part.partition, replica) {
                let what = format!(
                    "{}-{}: fetch from broker {replica}, which holds no replica of it",
                    part.topic, part.partition
                );
                self.log(LogLevel::Warn, what);
                continue;
            }
            let position = (part.last_fetched_epoch, part.fetch_offset);
            let (epoch, who) = (part.current_leader_epoch, NodeId(replica));
            if self.probe_heard(&key, who, epoch, position) {
                continue;
            }
            let accepted = matches!(self.fetch_check(part), Ok((_, None)));
            if accepted {
                self.follower_fetched(&key, NodeId(replica), part.fetch_offset);
            }
        }
    }
}

impl Broker {
    /// Whether `topic`-`partition` is led here in an epoch whose start its high watermark has
    /// not reached yet: until then ListOffsets latest answers OFFSET_NOT_AVAILABLE.
    pub(in crate::broker) fn epoch_not_committed(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        let (Some(led), Some(p)) = (
            self.replica.leading.get(&key),
            self.partition(topic, partition),
        ) else {
            return false;
        };
        assert!(p.high_watermark <= p.log.log_end_offset() && led.epoch >= 0);
        p.high_watermark < led.epoch_start
    }
}
