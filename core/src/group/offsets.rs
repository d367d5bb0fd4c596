//! OffsetCommit, OffsetFetch and OffsetDelete.

use super::*;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use std::collections::BTreeSet;

pub(super) fn commit_errors(r: &OffsetCommitRequest, code: ErrorCode) -> OffsetCommitResponse {
    assert!(!code.is_none(), "a refused commit has an error");
    OffsetCommitResponse::default().with_topics(
        r.topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.into())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub(super) fn offset_commit(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: OffsetCommitRequest,
) -> bool {
    let now = b.now();
    let group_id = GroupId(r.group_id.0.to_string());
    let member_id = MemberId(r.member_id.to_string());
    let generation = GenerationId(r.generation_id_or_member_epoch);
    // Who may commit (Kafka's GroupCoordinator.handleCommitOffsets).
    let group_code = if group_id.is_empty() {
        ErrorCode::INVALID_GROUP_ID
    } else {
        match c.groups.get_mut(&group_id) {
            None if generation < GenerationId::FIRST => ErrorCode::NONE,
            None => ErrorCode::ILLEGAL_GENERATION,
            Some(g) if generation < GenerationId::FIRST && g.state == GroupState::Empty => {
                ErrorCode::NONE
            }
            Some(g) if g.is_fenced(r.group_instance_id.as_deref(), member_id.as_str()) => {
                ErrorCode::FENCED_INSTANCE_ID
            }
            // A member the group does not know; also a consumer outside the group
            // (generation -1), which may not commit while the group is active.
            Some(g) => match g.members.get_mut(&member_id) {
                None => ErrorCode::UNKNOWN_MEMBER_ID,
                Some(m) => {
                    m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
                    if generation != g.generation {
                        ErrorCode::ILLEGAL_GENERATION
                    } else if g.state == GroupState::PreparingRebalance
                        || g.state == GroupState::CompletingRebalance
                    {
                        ErrorCode::REBALANCE_IN_PROGRESS
                    } else {
                        ErrorCode::NONE
                    }
                }
            },
        }
    };
    if !group_code.is_none() {
        b.log(
            LogLevel::Info,
            format!(
                "OffsetCommit for group {group_id} by {:?} gen {generation} refused with error {}",
                member_id.as_str(),
                group_code.wire()
            ),
        );
        b.respond(
            to,
            Some(ResponseKind::OffsetCommit(commit_errors(&r, group_code))),
        );
        return true;
    }
    let mut resp = OffsetCommitResponse::default();
    let mut records = Vec::new();
    for t in &r.topics {
        let topic = t.name.0.to_string();
        let mut tr = OffsetCommitResponseTopic::default().with_name(t.name.clone());
        for p in &t.partitions {
            let code = if !partition_known(b, &topic, p.partition_index) {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX)
            {
                ErrorCode::OFFSET_METADATA_TOO_LARGE
            } else {
                records.push(GroupRecord::Offset {
                    group: group_id.0.clone(),
                    topic: topic.clone(),
                    partition: p.partition_index,
                    value: Some(OffsetValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_ms: now.unix_ms(),
                    }),
                });
                ErrorCode::NONE
            };
            tr.partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.into()),
            );
        }
        resp.topics.push(tr);
    }
    // Every partition asked about is answered, and exactly those answered NONE are written.
    assert_eq!(resp.topics.len(), r.topics.len());
    let accepted = resp
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| ErrorCode::from_wire(p.error_code).is_none())
        .count();
    assert_eq!(accepted, records.len());
    if records.is_empty() {
        b.respond(to, Some(ResponseKind::OffsetCommit(resp)));
        return true;
    }
    if !c.groups.contains_key(&group_id) {
        // A simple (group-less) consumer's commits create an Empty group, as in Kafka.
        assert!(
            generation < GenerationId::FIRST,
            "only a group-less commit creates a group"
        );
        c.groups.insert(group_id.clone(), Group::new(now.unix_ms()));
    }
    let mut failed = resp.clone();
    for t in &mut failed.topics {
        for p in &mut t.partitions {
            if ErrorCode::from_wire(p.error_code).is_none() {
                p.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE.into();
            }
        }
    }
    commit_records(
        c,
        b,
        &group_id,
        records,
        Some((
            to,
            ResponseKind::OffsetCommit(resp),
            ResponseKind::OffsetCommit(failed),
        )),
    );
    true
}

pub(super) fn offset_fetch(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: OffsetFetchRequest,
) -> bool {
    let c = &*c;
    let lookup = |group: &str, topic: &str, partition: i32| -> (i64, i32, Option<String>) {
        match c
            .offsets
            .get(group)
            .and_then(|o| o.get(&TopicPartition::new(topic, partition)))
        {
            Some(v) => (v.offset, v.leader_epoch, v.metadata.clone()),
            None => (Offset::NONE.0, LeaderEpoch::NONE.0, Some(String::new())),
        }
    };
    let all_for = |group: &str| -> BTreeMap<String, Vec<i32>> {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        if let Some(o) = c.offsets.get(group) {
            for tp in o.keys() {
                m.entry(tp.topic.clone()).or_default().push(tp.partition.0);
            }
        }
        m
    };
    let mut resp = OffsetFetchResponse::default();
    // OffsetFetch is served up to v7 (see `wire::SUPPORTED`): one group per request. The v8
    // batched form (KIP-709, `groups`) never arrives.
    assert!(
        to.api_version <= 7,
        "OffsetFetch v{} is above the negotiated cap",
        to.api_version
    );
    let group = r.group_id.0.to_string();
    let wanted: BTreeMap<String, Vec<i32>> = match &r.topics {
        Some(ts) => ts
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect(),
        None => all_for(&group),
    };
    let wanted_topics = wanted.len();
    for (topic, parts) in wanted {
        let mut tr = OffsetFetchResponseTopic::default().with_name(TopicName(sb(topic.clone())));
        for p in parts {
            let (offset, epoch, metadata) = lookup(&group, &topic, p);
            tr.partitions.push(
                OffsetFetchResponsePartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(epoch)
                    .with_metadata(metadata.map(sb)),
            );
        }
        resp.topics.push(tr);
    }
    assert_eq!(
        resp.topics.len(),
        wanted_topics,
        "every topic asked about is answered"
    );
    // Committed offsets are replayed into memory when written; answer only once everything
    // written to the group's offsets partition so far is durable, so a power loss can never
    // take back an offset a consumer was told (the committed offset never moves backwards).
    let mark = b.end_mark(
        OFFSETS_TOPIC,
        partition_for(&r.group_id.0, c.offsets_partitions),
    );
    let err = ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_error_code(ErrorCode::COORDINATOR_NOT_AVAILABLE.into()),
    );
    respond_after(b, to, ResponseKind::OffsetFetch(resp), err, mark);
    true
}

/// OffsetDelete (KIP-496): forget a group's committed offsets for some partitions, so the
/// group starts there by its `auto.offset.reset` next time. A group with members may not lose
/// the offsets of a topic it still consumes (GROUP_SUBSCRIBED_TO_TOPIC, per partition): its
/// members would be reset under their feet. Partitions of topics it does not consume, or any
/// partition of an Empty group, are deleted. Deletion writes tombstones to
/// `__consumer_offsets` and answers once they are durable, as commits do.
pub(super) fn offset_delete(
    c: &mut Coordinator,
    b: &mut Rt,
    to: ReplyTo,
    r: OffsetDeleteRequest,
) -> bool {
    let group_id = GroupId(r.group_id.0.to_string());
    let refuse = |b: &mut Rt, code: ErrorCode| {
        let resp = OffsetDeleteResponse::default().with_error_code(code.into());
        b.respond(to, Some(ResponseKind::OffsetDelete(resp)));
        true
    };
    if group_id.is_empty() {
        return refuse(b, ErrorCode::INVALID_GROUP_ID);
    }
    let group = c.groups.get(&group_id);
    if group.is_none() && !c.offsets.contains_key(&group_id) {
        return refuse(b, ErrorCode::GROUP_ID_NOT_FOUND);
    }
    // The topics the group's members consume, from their subscriptions; None: the group has
    // members that are not consumers, whose offsets are not ours to judge.
    let subscribed: Option<BTreeSet<String>> = match group {
        None => Some(BTreeSet::new()),
        Some(g) if g.state == GroupState::Empty => Some(BTreeSet::new()),
        Some(g) if g.protocol_type == "consumer" => {
            let protocol = g.protocol.clone().unwrap_or_default();
            Some(
                g.members
                    .values()
                    .flat_map(|m| subscription_topics(&m.metadata_for(&protocol)))
                    .collect(),
            )
        }
        Some(_) => None,
    };
    let Some(subscribed) = subscribed else {
        return refuse(b, ErrorCode::NON_EMPTY_GROUP);
    };
    let mut resp = OffsetDeleteResponse::default();
    let mut records = Vec::new();
    for t in &r.topics {
        let topic = t.name.0.to_string();
        let mut tr = OffsetDeleteResponseTopic::default().with_name(t.name.clone());
        for p in &t.partitions {
            let code = if !partition_known(b, &topic, p.partition_index) {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else if subscribed.contains(&topic) {
                ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: PartitionIndex(p.partition_index),
                };
                // Nothing committed: nothing to delete, and success.
                if c.offsets
                    .get(&group_id)
                    .is_some_and(|o| o.contains_key(&tp))
                {
                    records.push(GroupRecord::Offset {
                        group: group_id.0.clone(),
                        topic: topic.clone(),
                        partition: p.partition_index,
                        value: None,
                    });
                }
                ErrorCode::NONE
            };
            tr.partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.into()),
            );
        }
        resp.topics.push(tr);
    }
    assert_eq!(resp.topics.len(), r.topics.len(), "every topic is answered");
    if records.is_empty() {
        b.respond(to, Some(ResponseKind::OffsetDelete(resp)));
        return true;
    }
    b.log(
        LogLevel::Info,
        format!(
            "OffsetDelete: group {group_id} forgets {} offset(s)",
            records.len()
        ),
    );
    let failed = OffsetDeleteResponse::default()
        .with_error_code(ErrorCode::COORDINATOR_NOT_AVAILABLE.into());
    commit_records(
        c,
        b,
        &group_id,
        records,
        Some((
            to,
            ResponseKind::OffsetDelete(resp),
            ResponseKind::OffsetDelete(failed),
        )),
    );
    true
}

/// The topics of a consumer's subscription (the `consumer` protocol's member metadata:
/// version, then an array of topic names; later versions add fields after it, which are
/// not needed here). Unreadable metadata subscribes to nothing.
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut topics = Vec::new();
    let mut at = 2usize; // the version
    let read_i16 = |at: usize| {
        Some(i16::from_be_bytes(
            metadata.get(at..at + 2)?.try_into().ok()?,
        ))
    };
    let Some(count) = metadata
        .get(at..at + 4)
        .map(|b| i32::from_be_bytes(b.try_into().unwrap()))
    else {
        return topics;
    };
    at += 4;
    for _ in 0..count.max(0) {
        let Some(len) = read_i16(at).filter(|l| *l >= 0) else {
            break;
        };
        at += 2;
        let Some(name) = metadata.get(at..at + len as usize) else {
            break;
        };
        topics.push(String::from_utf8_lossy(name).into_owned());
        at += len as usize;
    }
    assert!(topics.len() <= count.max(0) as usize);
    topics
}

/// Whether the broker has partition `index` of `topic`.
fn partition_known(b: &Rt, topic: &str, index: i32) -> bool {
    b.partitions_of(topic)
        .is_some_and(|n| index >= 0 && index < n)
}
