//! The active controller's decision on one request (Kafka's `QuorumController` hands each
//! request to the manager that owns its concept: cluster control, replication control,
//! producer ids): the answer, and the records to write. Deciding reads only the working image
//! and writes nothing itself; the quorum controller proposes the records and answers once
//! they commit.

use super::*;
use crate::cluster::controller::{Controller, ControllerError};
use crate::cluster::{reassign, replication, MetadataImage, PRODUCER_ID_BLOCK};
use crate::time::Instant;

/// The active controller's decision on one request: the answer, and the records to write (an
/// error writes none, except NEW_LEADER_ELECTED: a change made that moved the leadership).
pub(super) fn decide(
    controller: &mut Controller,
    now: Instant,
    working: &MetadataImage,
    next_offset: i64,
    request: &Request,
) -> (Result<Reply, ControllerError>, Vec<MetadataRecord>) {
    if let Request::AlterPartition {
        broker_id,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch,
        partition_epoch,
        new_isr,
        successor,
    } = request
    {
        let altered = replication::alter_partition(
            working,
            &replication::AlterPartition {
                broker_id: *broker_id,
                broker_epoch: *broker_epoch,
                topic_id: *topic_id,
                partition: *partition,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                new_isr: new_isr.clone(),
                successor: *successor,
            },
        );
        // An ISR grown to hold every replica a reassignment adds completes it (KIP-455): the
        // answer is the partition as the whole change leaves it.
        let n = altered.records.len();
        let records = reassign::then_complete(working, altered.records);
        let result = match altered.result {
            Ok(_) if records.len() > n => {
                let mut after = working.clone();
                after.stage(&records);
                let p = after.partition(*topic_id, *partition).expect("still there");
                if p.leader == Some(*broker_id) {
                    Ok(p.clone())
                } else {
                    Err(ControllerError::NewLeaderElected(*broker_id))
                }
            }
            other => other,
        };
        let reply = result.map(|p| Reply::AlterPartition {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr,
        });
        return (reply, records);
    }
    match decide_others(controller, now, working, next_offset, request) {
        Ok((reply, records)) => (Ok(reply), reassign::then_complete(working, records)),
        Err(e) => (Err(e), Vec::new()),
    }
}

fn decide_others(
    controller: &mut Controller,
    now: Instant,
    working: &MetadataImage,
    next_offset: i64,
    request: &Request,
) -> Result<(Reply, Vec<MetadataRecord>), ControllerError> {
    match request {
        Request::BrokerRegistration(reg) => {
            let (broker_epoch, records) = controller.register(now, working, next_offset, reg)?;
            Ok((Reply::BrokerRegistration { broker_epoch }, records))
        }
        Request::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
            want_shut_down,
        } => {
            if *want_shut_down {
                let (fenced, should_shut_down, records) =
                    controller.shutdown_heartbeat(now, working, *broker_id, *broker_epoch)?;
                let reply = Reply::BrokerHeartbeat {
                    fenced,
                    should_shut_down,
                };
                return Ok((reply, records));
            }
            let (fenced, records) =
                controller.heartbeat(now, working, *broker_id, *broker_epoch, *metadata_offset)?;
            let reply = Reply::BrokerHeartbeat {
                fenced,
                should_shut_down: false,
            };
            Ok((reply, records))
        }
        Request::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            crate::ids::validate_topic_name(name).map_err(ControllerError::InvalidTopic)?;
            let records = controller.create_topic_with_configs(
                working,
                name,
                *partitions,
                *replication_factor,
                configs,
            )?;
            let topic_id = match records.first() {
                Some(MetadataRecord::Topic { topic_id, .. }) => *topic_id,
                other => unreachable!("a new topic starts with its TopicRecord, not {other:?}"),
            };
            Ok((Reply::CreateTopic { topic_id }, records))
        }
        Request::DeleteTopic { name } => {
            let records = controller.delete_topic(working, name)?;
            Ok((Reply::DeleteTopic, records))
        }
        Request::CreatePartitions { name, count } => {
            let records = controller.create_partitions(working, name, *count)?;
            assert!(
                !records.is_empty(),
                "a topic grows by at least one partition"
            );
            Ok((Reply::CreatePartitions, records))
        }
        Request::AllocateProducerIds {
            broker_id,
            broker_epoch,
        } => {
            let (first, record) =
                controller.allocate_producer_ids(working, *broker_id, *broker_epoch)?;
            let reply = Reply::AllocateProducerIds {
                first,
                count: PRODUCER_ID_BLOCK,
            };
            Ok((reply, vec![record]))
        }
        Request::AlterConfigs { name, changes } => {
            let records = crate::cluster::topic_configs::alter(working, name, changes)?;
            Ok((Reply::AlterConfigs, records))
        }
        Request::ElectLeader {
            topic,
            partition,
            kind,
        } => {
            let records =
                crate::cluster::elect_leaders::elect_leader(working, topic, *partition, *kind)?;
            Ok((Reply::ElectLeader, records))
        }
        Request::AlterReassignment {
            topic,
            partition,
            target,
        } => {
            let records = reassign::alter(working, topic, *partition, target.as_deref())?;
            Ok((Reply::AlterReassignment, records))
        }
        Request::CreateAcl(binding) => {
            let records = crate::cluster::acl_control::create_acl(working, binding, || {
                controller.fresh_id()
            })?;
            Ok((Reply::CreateAcl, records))
        }
        Request::DeleteAcls(filter) => {
            let (gone, records) = crate::cluster::acl_control::delete_acls(working, filter);
            Ok((Reply::DeleteAcls(gone), records))
        }
        Request::AlterScram { user, change } => {
            let record = crate::cluster::scram::decide(working.scram(), user, change)?;
            use crate::cluster::records::MetadataRecord as R;
            assert!(
                matches!(&record, R::UserScramCredential { name, .. }
                    | R::RemoveUserScramCredential { name, .. } if name == user),
                "the record is about the user asked for"
            );
            Ok((Reply::AlterScram, vec![record]))
        }
        Request::AlterPartition { .. } => unreachable!("decided above"),
        Request::DescribeQuorum => unreachable!("DescribeQuorum is answered without deciding"),
    }
}
