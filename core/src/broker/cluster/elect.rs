//! ElectLeaders (key 43, KIP-460) through a KRaft broker: the operator's tool
//! (`kafka-leader-election.sh`, `AdminClient.electLeaders`, `gregor leaders elect`) asks any
//! broker; the broker names the partitions (every partition of every topic in its image when
//! the request says "all"), answers UNKNOWN_TOPIC_OR_PARTITION itself for those its image does
//! not have, and forwards one election per partition to the active controller, which decides
//! (`crate::cluster::elect_leaders`). The response waits for every answer, or the request's
//! timeout.

use super::*;
use crate::cluster::elect_leaders::ElectionType;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};

impl Broker {
    pub(in crate::broker) fn kraft_elect_leaders(
        &mut self,
        to: ReplyTo,
        version: i16,
        r: ElectLeadersRequest,
    ) {
        // v0 has no election type: preferred.
        let kind = if version == 0 {
            Some(ElectionType::Preferred)
        } else {
            ElectionType::from_wire(r.election_type)
        };
        let asked: Vec<(String, Vec<i32>)> = match &r.topic_partitions {
            Some(tps) => tps
                .iter()
                .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
                .collect(),
            None => self.kraft_image().map_or_else(Vec::new, |image| {
                image
                    .topics()
                    .values()
                    .map(|t| (t.name.clone(), t.partitions.keys().copied().collect()))
                    .collect()
            }),
        };
        let mut response = ElectLeadersResponse::default();
        let mut asks = Vec::new();
        let mut slot = 0;
        for (topic, partitions) in &asked {
            let mut results = Vec::new();
            for p in partitions {
                let known = self.kraft_image().is_some_and(|i| {
                    i.topic_id(topic)
                        .is_some_and(|id| i.topics()[&id].partitions.contains_key(p))
                });
                let mut res = PartitionResult::default().with_partition_id(*p);
                match (kind, known) {
                    (None, _) => {
                        res.error_code = ErrorCode::INVALID_REQUEST.into();
                        res.error_message = Some(sb(format!(
                            "election type {} is neither preferred (0) nor unclean (1)",
                            r.election_type
                        )));
                    }
                    (Some(_), false) => {
                        res.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into();
                        res.error_message = Some(sb(format!("no partition {topic}-{p}")));
                    }
                    (Some(kind), true) => asks.push((
                        slot,
                        ControllerRequest::ElectLeader {
                            topic: topic.clone(),
                            partition: *p,
                            kind,
                        },
                    )),
                }
                results.push(res);
                slot += 1;
            }
            response.replica_election_results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(sb(topic.clone())))
                    .with_partition_result(results),
            );
        }
        assert_eq!(
            slot,
            asked.iter().map(|(_, ps)| ps.len()).sum::<usize>(),
            "one result per partition"
        );
        let names: Vec<String> = asks
            .iter()
            .map(|(_, r)| match r {
                ControllerRequest::ElectLeader {
                    topic, partition, ..
                } => format!("{topic}-{partition}"),
                _ => unreachable!("only elections are asked"),
            })
            .collect();
        if !names.is_empty() {
            self.log(
                LogLevel::Info,
                format!("forwarding a {kind:?} leader election of {names:?} to the controller"),
            );
        }
        self.forward_admin(to, ResponseKind::ElectLeaders(response), asks, r.timeout_ms);
    }
}

/// How many partition results an ElectLeaders response holds (its slots).
pub(super) fn elect_slots(r: &ElectLeadersResponse) -> usize {
    r.replica_election_results
        .iter()
        .map(|t| t.partition_result.len())
        .sum()
}

/// Set the error of partition result `slot` (counted across topics, in order).
pub(super) fn set_elect_error(
    r: &mut ElectLeadersResponse,
    slot: usize,
    code: i16,
    message: Option<StrBytes>,
) {
    assert!(slot < elect_slots(r), "slot {slot} is a partition asked");
    let p = r
        .replica_election_results
        .iter_mut()
        .flat_map(|t| t.partition_result.iter_mut())
        .nth(slot)
        .expect("checked above");
    p.error_code = code;
    p.error_message = message;
}
