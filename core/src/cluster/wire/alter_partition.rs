//! AlterPartition (API 56, KIP-497) on the controller listener: a partition leader's request to
//! change its ISR, split into one [`Request::AlterPartition`] per partition, and the answer
//! assembled back in the request's order.

use super::*;

/// gregor's tagged field on an AlterPartition partition (v2+ are flexible versions): the
/// broker id (int32, big-endian) of the ISR member the leader hands its leadership to
/// (`Request::AlterPartition::successor`, acks=N across a leader change). Kafka's controller
/// ignores unknown tags; a tag this high is far from any Kafka assigns.
pub(crate) const SUCCESSOR_TAG: i32 = 10_000;

/// The successor a partition's tagged field names, if it is there and well formed.
fn successor_of(p: &alter_partition_request::PartitionData) -> Option<BrokerId> {
    let raw = p.unknown_tagged_fields.get(&SUCCESSOR_TAG)?;
    let id = i32::from_be_bytes(raw.as_ref().try_into().ok()?);
    (id >= 0).then_some(BrokerId(id))
}

/// AlterPartition's items: one [`Request::AlterPartition`] per partition, in the request's
/// order. v2 names the new ISR by broker id alone (epoch -1: not checked); v3 carries each
/// member's broker epoch (`NewIsrWithEpochs`, KIP-903). The partition index rides in
/// [`Item::partitions`] for the response.
pub(super) fn alter_partition_items(r: &AlterPartitionRequest, version: i16) -> Vec<Item> {
    let mut items = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let new_isr: Vec<(BrokerId, BrokerEpoch)> = if version >= 3 {
                p.new_isr_with_epochs
                    .iter()
                    .map(|b| (BrokerId(b.broker_id.0), BrokerEpoch(b.broker_epoch)))
                    .collect()
            } else {
                p.new_isr
                    .iter()
                    .map(|b| (BrokerId(b.0), BrokerEpoch(-1)))
                    .collect()
            };
            items.push(Item {
                topic: None,
                partitions: p.partition_index,
                replication_factor: -1,
                request: Ok(Request::AlterPartition {
                    broker_id: BrokerId(r.broker_id.0),
                    broker_epoch: BrokerEpoch(r.broker_epoch),
                    topic_id: crate::cluster::TopicId(uuid_bytes(t.topic_id)),
                    partition: p.partition_index,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr,
                    successor: successor_of(p),
                }),
            });
        }
    }
    let asked: usize = r.topics.iter().map(|t| t.partitions.len()).sum();
    assert_eq!(items.len(), asked, "one item per partition");
    items
}

/// AlterPartition's response: each partition's new state or error, grouped by topic in the
/// request's order. When every partition got the same request-level error (STALE_BROKER_EPOCH,
/// NOT_CONTROLLER), Kafka puts it in the top-level error code with no topics, as here.
pub(super) fn encode_alter_partition_response(
    items: &[Item],
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    const REQUEST_LEVEL: [i16; 2] = [77, 41];
    let codes: BTreeSet<i16> = answers.iter().map(|a| code_of(a).0).collect();
    let top = match codes.iter().next() {
        Some(c) if codes.len() == 1 && REQUEST_LEVEL.contains(c) => *c,
        _ => 0,
    };
    let mut topics: Vec<alter_partition_response::TopicData> = Vec::new();
    if top == 0 {
        for (i, a) in items.iter().zip(answers) {
            let Ok(Request::AlterPartition {
                topic_id,
                partition,
                ..
            }) = &i.request
            else {
                panic!("an AlterPartition item holds its request: {i:?}");
            };
            let mut pd = alter_partition_response::PartitionData::default()
                .with_partition_index(*partition)
                .with_error_code(code_of(a).0)
                .with_leader_id(kafka_protocol::messages::BrokerId(-1))
                .with_leader_epoch(-1)
                .with_partition_epoch(-1);
            match a {
                Ok(Reply::AlterPartition {
                    leader,
                    leader_epoch,
                    partition_epoch,
                    isr,
                }) => {
                    pd = pd
                        .with_leader_id(kafka_protocol::messages::BrokerId(
                            leader.map_or(-1, |b| b.0),
                        ))
                        .with_leader_epoch(*leader_epoch)
                        .with_partition_epoch(*partition_epoch)
                        .with_isr(
                            isr.iter()
                                .map(|b| kafka_protocol::messages::BrokerId(b.0))
                                .collect(),
                        );
                }
                Ok(other) => panic!("AlterPartition answered with {other:?}"),
                Err(_) => {}
            }
            let id = Uuid::from_bytes(topic_id.0);
            match topics.last_mut() {
                Some(t) if t.topic_id == id => t.partitions.push(pd),
                _ => topics.push(
                    alter_partition_response::TopicData::default()
                        .with_topic_id(id)
                        .with_partitions(vec![pd]),
                ),
            }
        }
        let n: usize = topics.iter().map(|t| t.partitions.len()).sum();
        assert_eq!(n, items.len(), "one result per partition asked");
    }
    let body = AlterPartitionResponse::default()
        .with_error_code(top)
        .with_topics(topics);
    frame(ApiKey::AlterPartition, version, correlation_id, &body)
}
