//! Partition reassignment (KIP-455) through a KRaft broker: the operator's tool
//! (`kafka-reassign-partitions.sh`, `AdminClient.alterPartitionReassignments`,
//! `gregor reassign`) asks any broker.
//!
//! * **AlterPartitionReassignments** (key 45): the broker answers UNKNOWN_TOPIC_OR_PARTITION
//!   itself for partitions its image does not have, and forwards one move (or cancel) per
//!   partition to the active controller, which decides (`crate::cluster::reassign`). The
//!   response waits for every answer, or the request's timeout.
//! * **ListPartitionReassignments** (key 46): answered from this broker's committed metadata
//!   image (every move in progress lives there, as ReassignmentChange records), so it names
//!   what the controller has committed up to the offset this broker has replayed. Kafka's
//!   brokers forward it to the controller instead; an image a few milliseconds behind says
//!   the same thing a moment later.

use super::*;
use crate::cluster::reassign;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};

impl Broker {
    pub(in crate::broker) fn kraft_alter_reassignments(
        &mut self,
        to: ReplyTo,
        r: AlterPartitionReassignmentsRequest,
    ) {
        let mut response = AlterPartitionReassignmentsResponse::default();
        let mut asks = Vec::new();
        let mut names = Vec::new();
        let mut slot = 0;
        for t in &r.topics {
            let topic = t.name.0.to_string();
            let mut results = Vec::new();
            for p in &t.partitions {
                let known = self.kraft_image().is_some_and(|i| {
                    i.topic_id(&topic)
                        .is_some_and(|id| i.partition(id, p.partition_index).is_some())
                });
                let mut res = ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index);
                if known {
                    let target = (p.replicas.as_ref())
                        .map(|rs| rs.iter().map(|b| NodeId(b.0)).collect::<Vec<_>>());
                    names.push(format!("{topic}-{} to {target:?}", p.partition_index));
                    asks.push((
                        slot,
                        ControllerRequest::AlterReassignment {
                            topic: topic.clone(),
                            partition: p.partition_index,
                            target,
                        },
                    ));
                } else {
                    res.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
                    res.error_message =
                        Some(sb(format!("no partition {topic}-{}", p.partition_index)));
                }
                results.push(res);
                slot += 1;
            }
            response.responses.push(
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(results),
            );
        }
        assert_eq!(slot, reassign_slots(&response), "one result per partition");
        if !names.is_empty() {
            self.log(
                LogLevel::Info,
                format!("forwarding the reassignment of {names:?} to the controller"),
            );
        }
        let kind = ResponseKind::AlterPartitionReassignments(response);
        self.forward_admin(to, kind, asks, r.timeout_ms);
    }

    pub(in crate::broker) fn kraft_list_reassignments(
        &mut self,
        to: ReplyTo,
        r: ListPartitionReassignmentsRequest,
    ) {
        let ongoing = self
            .kraft_image()
            .map(reassign::ongoing)
            .unwrap_or_default();
        // A null topic list asks for every move in progress; otherwise only those named.
        let asked = |topic: &str, p: i32| {
            r.topics.as_ref().is_none_or(|ts| {
                ts.iter()
                    .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&p))
            })
        };
        let ids = |bs: &[NodeId]| -> Vec<BrokerId> { bs.iter().map(|b| BrokerId(b.0)).collect() };
        let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
        for o in ongoing.iter().filter(|o| asked(&o.topic, o.partition)) {
            let p = OngoingPartitionReassignment::default()
                .with_partition_index(o.partition)
                .with_replicas(ids(&o.replicas))
                .with_adding_replicas(ids(&o.adding))
                .with_removing_replicas(ids(&o.removing));
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == o.topic => t.partitions.push(p),
                _ => topics.push(
                    OngoingTopicReassignment::default()
                        .with_name(TopicName(sb(o.topic.clone())))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let listed: usize = topics.iter().map(|t| t.partitions.len()).sum();
        assert!(listed <= ongoing.len(), "only moves in progress are listed");
        let response = ListPartitionReassignmentsResponse::default().with_topics(topics);
        self.respond(to, Some(ResponseKind::ListPartitionReassignments(response)));
    }
}

/// How many partition results an AlterPartitionReassignments response holds (its slots).
pub(super) fn reassign_slots(r: &AlterPartitionReassignmentsResponse) -> usize {
    r.responses.iter().map(|t| t.partitions.len()).sum()
}

/// Set the error of partition result `slot` (counted across topics, in order).
pub(super) fn set_reassign_error(
    r: &mut AlterPartitionReassignmentsResponse,
    slot: usize,
    code: i16,
    message: Option<StrBytes>,
) {
    assert!(slot < reassign_slots(r), "slot {slot} is a partition asked");
    let p = (r.responses.iter_mut())
        .flat_map(|t| t.partitions.iter_mut())
        .nth(slot)
        .expect("checked above");
    p.error_code = code;
    p.error_message = message;
}

impl Broker {
    /// Partitions of topics still hosted here whose replicas no longer name this broker (a
    /// reassignment moved them away, KIP-455): their local copy is deleted and a placeholder
    /// takes its index, as for a partition that never lived here. Replication stops following
    /// them with the same image. A partition with a storage operation in flight (an append,
    /// a sync, a truncation scan, a clean) keeps its files until a later image, so no
    /// completion ever lands on a placeholder or on a copy created again. A crash in between
    /// is safe: at the restart the first image finds the partition's files and deletes them.
    pub(super) fn drop_moved_partitions(&mut self, image: &MetadataImage) {
        let me = node(self.config.broker_id);
        let mut gone = Vec::new();
        for (name, t) in &self.topics {
            let Some(id) = image.topic_id(name).filter(|id| id.0 == t.id) else {
                continue;
            };
            for (i, p) in t.partitions.iter().enumerate() {
                let i = i as i32;
                let placed = image
                    .partition(id, i)
                    .is_some_and(|r| r.replicas.contains(&me));
                if !placed && p.offline.as_deref() != Some(NOT_HOSTED) {
                    gone.push((name.clone(), t.id, i));
                }
            }
        }
        for (name, id, i) in gone {
            if self.storage_busy(&name, id, i) {
                continue; // the next image tries again
            }
            self.storage(
                StorageRequest::DeletePartition {
                    dir: PartitionDir {
                        topic: name.clone(),
                        partition: i,
                    },
                },
                OpPurpose::Other {
                    what: format!("delete {name}-{i} (reassigned away)"),
                },
            );
            let placeholder = self.placeholder(&name, i);
            let t = self.topics.get_mut(&name).expect("listed above");
            t.partitions[i as usize] = placeholder;
            self.produce_waits.touch(&(name.clone(), i));
            self.touched.insert((name.clone(), i));
            self.log(
                LogLevel::Info,
                format!("{name}-{i}: no longer a replica here (reassigned); local copy deleted"),
            );
            let p = &self.topics[&name].partitions[i as usize];
            assert_eq!(p.offline.as_deref(), Some(NOT_HOSTED), "a placeholder now");
        }
    }

    /// Whether a storage operation on partition `partition` of `topic` (id `id`) is in flight.
    fn storage_busy(&self, topic: &str, id: [u8; 16], partition: i32) -> bool {
        let on = |t: &str, tid: Option<[u8; 16]>, p: i32| {
            t == topic && p == partition && tid.is_none_or(|x| x == id)
        };
        self.cleaner.cleaning(topic, partition)
            || self.ops.values().any(|op| match op {
                OpPurpose::Append {
                    topic,
                    topic_id,
                    partition,
                    ..
                }
                | OpPurpose::Sync {
                    topic,
                    topic_id,
                    partition,
                    ..
                } => on(topic, Some(*topic_id), *partition),
                OpPurpose::TruncationScan {
                    topic, partition, ..
                } => on(topic, None, *partition),
                _ => false,
            })
    }

    /// A partition of `name` that does not live on this broker: offline, [`NOT_HOSTED`].
    pub(super) fn placeholder(&self, name: &str, partition: i32) -> Partition {
        let dir = PartitionDir {
            topic: name.to_string(),
            partition,
        };
        let mut missing = Partition::new(
            PartitionLog::create(dir, self.now).0,
            ProducerStates::default(),
        );
        missing.offline = Some(NOT_HOSTED.into());
        missing
    }
}
