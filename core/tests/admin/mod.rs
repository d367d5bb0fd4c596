//! The admin APIs behind Kafka's tools, driven through the broker as an AdminClient drives
//! them, and checked the way an operator would check them: what the topic looks like after,
//! what a consumer or producer sees, and what a restarted broker still knows.

use super::*;

mod formats;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

fn grow(h: &mut Harness, topic: &str, count: i32, validate_only: bool) -> (i16, Option<String>) {
    let req = CreatePartitionsRequest::default()
        .with_validate_only(validate_only)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count),
        ]);
    let c = h.send(
        1,
        ApiKey::CreatePartitions,
        3,
        RequestKind::CreatePartitions(req),
    );
    let Some(ResponseKind::CreatePartitions(r)) = h.take(c) else {
        panic!("no CreatePartitions response")
    };
    let t = &r.results[0];
    (
        t.error_code,
        t.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn partitions(h: &Harness, topic: &str) -> usize {
    h.broker.topics()[topic].partitions.len()
}

#[test]
fn create_partitions_grows_durably_and_never_shrinks() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let (code, msg) = grow(&mut h, "t", 1, false);
    assert_eq!(code, INVALID_PARTITIONS, "a topic never shrinks");
    assert!(msg.unwrap().contains("can only be added"));
    assert_eq!(grow(&mut h, "t", 2, false).0, INVALID_PARTITIONS);
    assert_eq!(grow(&mut h, "nope", 3, false).0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(grow(&mut h, "t", 100_000, false).0, INVALID_PARTITIONS);
    assert_eq!(grow(&mut h, "t", 4, true).0, NONE, "validate_only succeeds");
    assert_eq!(partitions(&h, "t"), 2, "validate_only changes nothing");

    h.hold_syncs = true;
    assert_eq!(grow(&mut h, "t", 4, false).0, NONE);
    assert_eq!(partitions(&h, "t"), 4);
    assert!(
        h.storage.files.contains_key("t-3/partition.meta")
            && h.storage.files.contains_key("t-3/00000000000000000000.log"),
        "the new partitions exist on storage before the answer"
    );
    h.hold_syncs = false;
    let c = h.produce(1, "t", 3, batch(&["new"], None), 1);
    h.release_syncs();
    assert_eq!(
        h.produce_result(c),
        Some((NONE, 0)),
        "partition N-1 takes writes"
    );

    // A power loss keeps the grown topic and what was acknowledged on its new partition.
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    assert_eq!(partitions(&h2, "t"), 4);
    assert!(h2.broker.topics()["t"]
        .partitions
        .iter()
        .all(|p| p.offline.is_none()));
    let f = h2.fetch("t", 3, 0, 0);
    let (err, _, vals) = h2.fetch_result(f).unwrap();
    assert_eq!((err, vals.len()), (NONE, 1));
}

fn delete_records(h: &mut Harness, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset),
            ])]);
    let c = h.send(1, ApiKey::DeleteRecords, 2, RequestKind::DeleteRecords(req));
    let Some(ResponseKind::DeleteRecords(r)) = h.take(c) else {
        panic!("no DeleteRecords response")
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

fn earliest(h: &mut Harness, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)]),
    ]);
    let c = h.send(1, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req));
    let Some(ResponseKind::ListOffsets(r)) = h.take(c) else {
        panic!()
    };
    r.topics[0].partitions[0].offset
}

fn small_segments() -> Config {
    Config {
        segment_bytes_max: 1024,
        batch_bytes_max: 900,
        ..Config::default()
    }
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    let mut h = Harness::new(small_segments());
    h.create("t", 1);
    for i in 0..40 {
        let v = format!("value-{i:02}-{}", "x".repeat(40));
        let c = h.produce(1, "t", 0, batch(&[&v], None), 1);
        assert_eq!(h.produce_result(c), Some((NONE, i)));
    }
    let segments_before = h.broker.topics()["t"].partitions[0].log.segments().len();
    assert!(segments_before >= 3, "{segments_before} segments");

    assert_eq!(
        delete_records(&mut h, "t", 0, 41).0,
        OFFSET_OUT_OF_RANGE,
        "above the HW"
    );
    assert_eq!(delete_records(&mut h, "t", 0, -5).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(
        delete_records(&mut h, "t", 1, 5).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let before = h.storage.clone();
    assert_eq!(delete_records(&mut h, "t", 0, 25), (NONE, 25));
    assert_eq!(
        delete_records(&mut h, "t", 0, 10),
        (NONE, 25),
        "the start never moves back"
    );

    let log = &h.broker.topics()["t"].partitions[0].log;
    assert_eq!(log.log_start_offset(), 25);
    assert!(
        log.segments().len() < segments_before,
        "whole segments below were deleted"
    );
    assert!(log.segments()[0].base_offset <= 25);
    let on_disk = h
        .storage
        .files
        .keys()
        .filter(|k| k.starts_with("t-0/") && k.ends_with(".log"))
        .count();
    assert_eq!(on_disk, log.segments().len(), "their files are gone too");
    assert_eq!(earliest(&mut h, "t"), 25);

    // A reader below the new start is told OFFSET_OUT_OF_RANGE; one at it reads on from it.
    let f = h.fetch("t", 0, 3, 0);
    assert_eq!(h.fetch_result(f).unwrap().0, OFFSET_OUT_OF_RANGE);
    let f = h.fetch("t", 0, 25, 0);
    let (err, _, vals) = h.fetch_result(f).unwrap();
    assert_eq!(err, NONE);
    assert_eq!(vals.first().map(|v| v.0), Some(25));

    // The start survives a power loss, mid-segment included.
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(small_segments(), disk, true);
    assert_eq!(earliest(&mut h2, "t"), 25);
    let f = h2.fetch("t", 0, 24, 0);
    assert_eq!(h2.fetch_result(f).unwrap().0, OFFSET_OUT_OF_RANGE);

    // A crash after the new start was written but before the segments were deleted: the
    // restarted broker finishes the job.
    let mut crashed = before.clone();
    let meta = h.storage.files["t-0/partition.meta"].clone();
    crashed.files.insert("t-0/partition.meta".into(), meta);
    let h3 = Harness::with_disk(small_segments(), crashed, true);
    let log = &h3.broker.topics()["t"].partitions[0].log;
    assert_eq!(log.log_start_offset(), 25);
    let kept = h3.storage.files.keys();
    let kept = kept.filter(|k| k.starts_with("t-0/") && k.ends_with(".log"));
    assert_eq!(kept.count(), log.segments().len());

    // -1: up to the high watermark, everything consumers can see.
    assert_eq!(delete_records(&mut h2, "t", 0, -1), (NONE, 40));
    assert_eq!(earliest(&mut h2, "t"), 40);
    let c = h2.produce(1, "t", 0, batch(&["after"], None), 1);
    assert_eq!(
        h2.produce_result(c),
        Some((NONE, 40)),
        "writes go on at the end"
    );
}

#[test]
fn delete_records_refuses_internal_topics() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    assert_eq!(commit(&mut h, 1, "solo", "", -1, 0, 5), NONE);
    assert_eq!(
        delete_records(&mut h, "__consumer_offsets", 0, -1).0,
        INVALID_TOPIC_EXCEPTION
    );
}

fn alter(
    h: &mut Harness,
    resource_type: i8,
    res: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(*op)
                .with_value(v.map(|v| StrBytes::from_string(v.into())))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(res.into()))
                .with_configs(configs),
        ]);
    let c = h.send(
        1,
        ApiKey::IncrementalAlterConfigs,
        1,
        RequestKind::IncrementalAlterConfigs(req),
    );
    let Some(ResponseKind::IncrementalAlterConfigs(r)) = h.take(c) else {
        panic!("no IncrementalAlterConfigs response")
    };
    let p = &r.responses[0];
    (
        p.error_code,
        p.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// (value, config source) of a topic config, as DescribeConfigs shows it.
fn described(h: &mut Harness, topic: &str, key: &str) -> (String, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.into()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(key.into())])),
    ]);
    let c = h.send(
        1,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(req),
    );
    let Some(ResponseKind::DescribeConfigs(r)) = h.take(c) else {
        panic!()
    };
    let e = &r.results[0].configs[0];
    (e.value.as_ref().unwrap().to_string(), e.config_source)
}

#[test]
fn topic_configs_are_altered_described_and_survive_a_restart() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let default = described(&mut h, "t", "retention.ms");
    assert_eq!(default.1, 5, "DEFAULT_CONFIG before any alter");

    let (code, msg) = alter(&mut h, 2, "t", &[("retention.ms", 0, Some("1000"))], true);
    assert_eq!(code, NONE);
    assert!(msg.is_empty());
    assert_eq!(
        described(&mut h, "t", "retention.ms"),
        default,
        "validate_only changes nothing"
    );

    assert_eq!(
        alter(
            &mut h,
            2,
            "t",
            &[
                ("retention.ms", 0, Some("1000")),
                ("max.message.bytes", 0, Some("2000"))
            ],
            false
        )
        .0,
        NONE
    );
    assert_eq!(
        described(&mut h, "t", "retention.ms"),
        ("1000".into(), 1),
        "DYNAMIC_TOPIC_CONFIG"
    );
    assert_eq!(h.broker.topics()["t"].settings.max_message_bytes, 2000);

    let (code, msg) = alter(&mut h, 2, "t", &[("retention.mss", 0, Some("1"))], false);
    assert_eq!(code, INVALID_CONFIG);
    assert!(msg.contains("unknown topic config retention.mss"), "{msg}");
    assert_eq!(
        alter(&mut h, 2, "t", &[("retention.ms", 0, Some("soon"))], false).0,
        INVALID_CONFIG
    );
    assert_eq!(
        alter(
            &mut h,
            2,
            "t",
            &[("cleanup.policy", 2, Some("compact"))],
            false
        )
        .0,
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut h, 2, "nope", &[("retention.ms", 0, Some("1"))], false).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let (code, msg) = alter(&mut h, 4, "0", &[("log.retention.ms", 0, Some("1"))], false);
    assert_eq!(code, INVALID_REQUEST);
    assert!(msg.contains("static"), "{msg}");

    // A power loss keeps the override (it is in every partition's metadata file).
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    assert_eq!(described(&mut h2, "t", "retention.ms"), ("1000".into(), 1));
    assert_eq!(h2.broker.topics()["t"].settings.max_message_bytes, 2000);

    // DELETE goes back to the default; AlterConfigs replaces the whole set of overrides.
    assert_eq!(
        alter(&mut h2, 2, "t", &[("retention.ms", 1, None)], false).0,
        NONE
    );
    assert_eq!(described(&mut h2, "t", "retention.ms"), default);
    let req = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.bytes"))
                .with_value(Some(StrBytes::from_static_str("5000")))]),
    ]);
    let c = h2.send(1, ApiKey::AlterConfigs, 2, RequestKind::AlterConfigs(req));
    let Some(ResponseKind::AlterConfigs(r)) = h2.take(c) else {
        panic!()
    };
    assert_eq!(r.responses[0].error_code, NONE);
    assert_eq!(
        described(&mut h2, "t", "retention.bytes"),
        ("5000".into(), 1)
    );
    assert_eq!(
        described(&mut h2, "t", "max.message.bytes").1,
        5,
        "AlterConfigs dropped the override it did not name"
    );
}

#[test]
fn an_altered_retention_deletes_old_segments() {
    let mut h = Harness::new(small_segments());
    h.create("t", 1);
    for i in 0..30 {
        let v = format!("value-{i:02}-{}", "x".repeat(40));
        let c = h.produce(1, "t", 0, batch(&[&v], None), 1);
        assert_eq!(h.produce_result(c), Some((NONE, i)));
    }
    assert_eq!(
        alter(
            &mut h,
            2,
            "t",
            &[("retention.bytes", 0, Some("1024"))],
            false
        )
        .0,
        NONE
    );
    h.advance_ms(61_000);
    let log = &h.broker.topics()["t"].partitions[0].log;
    assert!(log.log_start_offset() > 0, "retention.bytes took effect");
    assert!(log.size_bytes() <= 2048);
}

fn offset_delete(h: &mut Harness, group: &str, partition: i32) -> (i16, i16) {
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(partition),
                ]),
        ]);
    let c = h.send(1, ApiKey::OffsetDelete, 0, RequestKind::OffsetDelete(req));
    let Some(ResponseKind::OffsetDelete(r)) = h.take(c) else {
        panic!()
    };
    let p = r.topics.first().and_then(|t| t.partitions.first());
    (r.error_code, p.map_or(-1, |p| p.error_code))
}

/// The `consumer` protocol's subscription metadata (v0) for `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes()); // no user data
    Bytes::from(b)
}

#[test]
fn offset_delete_spares_topics_the_group_consumes() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    assert_eq!(offset_delete(&mut h, "nobody", 0).0, GROUP_ID_NOT_FOUND);
    assert_eq!(commit(&mut h, 1, "solo", "", -1, 0, 5), NONE);
    assert_eq!(commit(&mut h, 1, "solo", "", -1, 1, 7), NONE);
    assert_eq!(offset_delete(&mut h, "solo", 0), (NONE, NONE));
    assert_eq!(fetch_offset(&mut h, "solo", 0), -1);
    assert_eq!(
        fetch_offset(&mut h, "solo", 1),
        7,
        "only what was named is deleted"
    );
    assert_eq!(
        offset_delete(&mut h, "solo", 9).1,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // A group with a member subscribed to t keeps t's offsets.
    let join_sub = |h: &mut Harness, member: &str| {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(subscription(&["t"]))]);
        h.send(1, ApiKey::JoinGroup, 5, RequestKind::JoinGroup(req))
    };
    let c = join_sub(&mut h, "");
    let id = join_result(&mut h, c).unwrap().member_id.to_string();
    let c = join_sub(&mut h, &id);
    h.advance_ms(3_500);
    assert_eq!(join_result(&mut h, c).unwrap().error_code, NONE);
    let c = sync(&mut h, 1, "g", &id, 1, &[(&id, "assignment")]);
    assert!(h.take(c).is_some());
    assert_eq!(commit(&mut h, 1, "g", &id, 1, 0, 3), NONE);
    assert_eq!(
        offset_delete(&mut h, "g", 0),
        (NONE, GROUP_SUBSCRIBED_TO_TOPIC)
    );
    assert_eq!(fetch_offset(&mut h, "g", 0), 3);

    // Durable: a restarted broker has forgotten solo's partition 0 too.
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    assert_eq!(fetch_offset(&mut h2, "solo", 0), -1);
    assert_eq!(fetch_offset(&mut h2, "solo", 1), 7);
}

#[test]
fn cluster_log_dirs_and_producers_are_described() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let c = h.produce(
        1,
        "t",
        1,
        batch(
            &["a", "b"],
            Some((h.broker.topics().len() as i64 + 40, 0, 0)),
        ),
        1,
    );
    assert_eq!(h.produce_result(c).map(|r| r.0), Some(NONE));

    let c = h.send(
        1,
        ApiKey::DescribeCluster,
        1,
        RequestKind::DescribeCluster(DescribeClusterRequest::default()),
    );
    let Some(ResponseKind::DescribeCluster(r)) = h.take(c) else {
        panic!()
    };
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.cluster_id.to_string(), h.broker.cluster_id_string());
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.controller_id, r.brokers[0].broker_id);

    let c = h.send(
        1,
        ApiKey::DescribeLogDirs,
        4,
        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
    );
    let Some(ResponseKind::DescribeLogDirs(r)) = h.take(c) else {
        panic!()
    };
    let t = r.results[0]
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "t")
        .expect("t listed");
    let sizes: Vec<i64> = t.partitions.iter().map(|p| p.partition_size).collect();
    assert_eq!(sizes.len(), 2);
    assert!(
        sizes[1] > sizes[0],
        "the partition written to is larger: {sizes:?}"
    );

    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0, 1, 7]),
    ]);
    let c = h.send(
        1,
        ApiKey::DescribeProducers,
        0,
        RequestKind::DescribeProducers(req),
    );
    let Some(ResponseKind::DescribeProducers(r)) = h.take(c) else {
        panic!()
    };
    let ps = &r.topics[0].partitions;
    assert!(ps[0].active_producers.is_empty());
    assert_eq!(ps[1].active_producers.len(), 1);
    assert_eq!(ps[1].active_producers[0].last_sequence, 1);
    assert_eq!(ps[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

/// ListOffsets by timestamp never answers a record below a log start DeleteRecords moved into
/// the middle of a batch: it answers the first record at or above the start that reaches the
/// timestamp (Kafka's `findOffsetByTimestamp(timestamp, logStartOffset)`).
#[test]
fn offsets_by_timestamp_skip_deleted_records() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let c = h.produce(1, "t", 0, batch(&["a", "b", "c", "d", "e"], None), 1);
    assert_eq!(h.produce_result(c), Some((NONE, 0)));
    assert_eq!(delete_records(&mut h, "t", 0, 2), (NONE, 2));
    for (ts, want) in [
        (1_700_000_000_000, 2),
        (1_700_000_000_003, 3),
        (1_700_000_000_009, -1),
    ] {
        let req = ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)]),
        ]);
        let c = h.send(1, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req));
        let Some(ResponseKind::ListOffsets(r)) = h.take(c) else {
            panic!()
        };
        assert_eq!(r.topics[0].partitions[0].offset, want, "timestamp {ts}");
    }
    // A fetch at the start gets the batch holding it; the records below are the consumer's to
    // skip, as with any fetch that starts inside a batch.
    let f = h.fetch("t", 0, 2, 0);
    let (err, _, vals) = h.fetch_result(f).unwrap();
    assert_eq!(err, NONE);
    assert!(vals.iter().any(|(o, _)| *o == 2));
}

/// When the only records of the first segment that reach a timestamp lie below the log start,
/// the search goes on in the next segment instead of answering "none".
#[test]
fn offsets_by_timestamp_look_past_a_segment_whose_hits_were_deleted() {
    let mut h = Harness::new(small_segments());
    h.create("t", 1);
    let pad = "x".repeat(60);
    let mut batches = vec![batch(&["a", "b"], None)];
    batches.extend((0..20).map(|_| batch(&[&pad], None)));
    batches.push(batch(&["y", "z"], None));
    let mut end = 0;
    for b in batches {
        let c = h.produce(1, "t", 0, b, 1);
        assert_eq!(h.produce_result(c).map(|r| r.0), Some(NONE));
        end = h.broker.topics()["t"].partitions[0].log.log_end_offset();
    }
    assert!(h.broker.topics()["t"].partitions[0].log.segments().len() >= 2);
    assert_eq!(delete_records(&mut h, "t", 0, 2), (NONE, 2));
    // Only records "b" (deleted) and "z" (the last) carry the later timestamp.
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(1_700_000_000_001)]),
    ]);
    let c = h.send(1, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req));
    let Some(ResponseKind::ListOffsets(r)) = h.take(c) else {
        panic!()
    };
    assert_eq!(r.topics[0].partitions[0].offset, end - 1);
}
