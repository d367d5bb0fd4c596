//! Conformance fixes found by running librdkafka's own test suite against gregor (issue 8,
//! item 10), each checked here with confluent-kafka (librdkafka 2.16).

use crate::harness::{create_topic as create, python, Broker};

/// KIP-74: with fetch.max.bytes=1000000 and max.partition.fetch.bytes=20000000 a consumer
/// reads a ~19 MB partition to the end; a response over receive.message.max.bytes would fail
/// with "Invalid response size".
#[test]
fn fetch_max_bytes_bounds_the_whole_response() {
    let b = Broker::start(&[]);
    create(&b, "big", 1);
    let v = python(
        "conformance.py",
        &["fetch_max_bytes", &b.bootstrap(), "big", "19000"],
    );
    assert_eq!(v["consumed"], v["produced"], "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .all(|e| !e.as_str().unwrap().contains("Invalid response size")),
        "{v}"
    );
}

/// KIP-345: a second consumer with the same group.instance.id takes the instance over; the
/// first is fenced (FENCED_INSTANCE_ID on its next heartbeat, sync or commit), which librdkafka
/// raises as a fatal error.
#[test]
fn a_static_member_replaced_by_its_instance_id_is_fenced() {
    let b = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    create(&b, "st", 2);
    let v = python(
        "conformance.py",
        &["static_fence", &b.bootstrap(), "st", "gs"],
    );
    assert_eq!(v["a_assigned"], serde_json::json!([0, 1]), "{v}");
    // librdkafka reports it through the error callback as _FATAL (-150) naming the fencing.
    let fenced = v["errors"]["a"].as_array().unwrap().iter().any(|e| {
        (e["code"] == -150 || e["fatal"] == true)
            && e["str"]
                .as_str()
                .unwrap()
                .contains("fenced by other consumer")
    });
    assert!(fenced, "the first member was not fenced: {v}");
    assert!(
        v["errors"]["b"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["code"] != -150 && e["fatal"] == false),
        "the new member goes on: {v}"
    );
}

/// Members listing `roundrobin,range` vote for roundrobin, so it wins (librdkafka test 0132):
/// over four partitions the first member (client.id c0) gets 0 and 2, the second 1 and 3.
#[test]
fn the_protocol_most_members_prefer_is_chosen() {
    let b = Broker::start(&["--group-initial-rebalance-delay-ms", "1500"]);
    create(&b, "rr", 4);
    let v = python(
        "conformance.py",
        &["roundrobin", &b.bootstrap(), "rr", "grr"],
    );
    assert_eq!(v["assignments"], serde_json::json!([[0, 2], [1, 3]]), "{v}");
    assert_eq!(v["protocol"], "roundrobin", "{v}");
}

/// ListOffsets by timestamp answers at record granularity (librdkafka's offsets-for-times test
/// got the batch's first offset, 0, where the record's, 1, was right): three records at t0,
/// t0+10 and t0+20 produced in one compressed batch, in each codec Kafka knows; the broker
/// decompresses the batch to find the first record at or after the target.
#[test]
fn offsets_for_times_finds_the_record_inside_a_compressed_batch() {
    let b = Broker::start(&[]);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("oft-{codec}");
        create(&b, &topic, 1);
        let v = python(
            "conformance.py",
            &["offsets_for_times", &b.bootstrap(), &topic, codec],
        );
        assert_eq!(
            v["answers"],
            serde_json::json!({"0": 0, "5": 1, "10": 1, "11": 2, "20": 2, "21": -1}),
            "{codec}: {v}"
        );
        assert_eq!(v["first"], serde_json::json!([1, 10]), "{codec}: {v}");
    }
}
