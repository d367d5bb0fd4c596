//! ElectLeaders (API 43, KIP-460) on the controller listener: a broker forwards an operator's
//! election to the active controller in Kafka's own encoding, one [`Request::ElectLeader`] per
//! partition named, and the answer is assembled back by topic in the request's order. The
//! broker expands "every partition" (a null `TopicPartitions`) from its image before it
//! forwards, so the controller always gets partitions by name. Versions 1–2 (v0 has no
//! `ElectionType`; a broker forwards at the highest version).

use super::*;
use crate::cluster::elect_leaders::ElectionType;
use elect_leaders_request::TopicPartitions;
use elect_leaders_response::{PartitionResult, ReplicaElectionResult};

/// One item per partition, in the request's order; the topic rides in [`Item::topic`], the
/// partition in [`Item::partitions`].
pub(super) fn elect_leaders_items(r: &ElectLeadersRequest) -> Vec<Item> {
    let kind = ElectionType::from_wire(r.election_type);
    let mut items = Vec::new();
    for t in r.topic_partitions.iter().flatten() {
        for p in &t.partitions {
            let request = match kind {
                Some(kind) => Ok(Request::ElectLeader {
                    topic: t.topic.to_string(),
                    partition: *p,
                    kind,
                }),
                None => Err(refuse(format!(
                    "election type {} is neither preferred (0) nor unclean (1)",
                    r.election_type
                ))),
            };
            items.push(Item {
                topic: Some(t.topic.to_string()),
                partitions: *p,
                replication_factor: -1,
                request,
            });
        }
    }
    let asked: usize = r
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| t.partitions.len())
        .sum();
    assert_eq!(items.len(), asked, "one item per partition");
    items
}

/// The response: each partition's error code and message, grouped by topic in request order.
pub(super) fn encode_elect_leaders_response(
    items: &[Item],
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for (i, a) in items.iter().zip(answers) {
        if let Ok(r) = a {
            assert_eq!(*r, Reply::ElectLeader, "ElectLeaders answered");
        }
        let (code, message) = code_of(a);
        let topic = i.topic.as_deref().unwrap_or("");
        let result = PartitionResult::default()
            .with_partition_id(i.partitions)
            .with_error_code(code)
            .with_error_message(message);
        match results.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partition_result.push(result),
            _ => results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    let n: usize = results.iter().map(|r| r.partition_result.len()).sum();
    assert_eq!(n, items.len(), "one result per partition");
    let body = ElectLeadersResponse::default().with_replica_election_results(results);
    frame(ApiKey::ElectLeaders, version, correlation_id, &body)
}

/// The request a broker sends for one partition.
pub(super) fn elect_leaders_request(
    topic: &str,
    partition: i32,
    kind: ElectionType,
) -> ElectLeadersRequest {
    let tp = TopicPartitions::default()
        .with_topic(TopicName(sb(topic)))
        .with_partitions(vec![partition]);
    ElectLeadersRequest::default()
        .with_election_type(kind.wire())
        .with_topic_partitions(Some(vec![tp]))
        .with_timeout_ms(30_000)
}

/// The answer in a response to [`elect_leaders_request`] (one partition).
pub(super) fn decode_elect_leaders_answer(
    r: ElectLeadersResponse,
) -> Result<Answer, ControllerWireError> {
    let key = ApiKey::ElectLeaders;
    if r.error_code != 0 {
        return Ok(Err(Refusal {
            code: r.error_code,
            message: String::new(),
        }));
    }
    let mut results = r
        .replica_election_results
        .into_iter()
        .flat_map(|t| t.partition_result);
    let (Some(p), None) = (results.next(), results.next()) else {
        return Err(malformed(key, "not one result for one partition"));
    };
    Ok(if p.error_code == 0 {
        Ok(Reply::ElectLeader)
    } else {
        Err(Refusal {
            code: p.error_code,
            message: p.error_message.map(|m| m.to_string()).unwrap_or_default(),
        })
    })
}
