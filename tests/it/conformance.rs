//! Conformance fixes found by running librdkafka's own test suite against gregor (issue 8,
//! item 10), each checked here with confluent-kafka (librdkafka 2.16).

use crate::harness::{cli, python, Broker};

fn create(b: &Broker, topic: &str, partitions: i32) {
    let o = cli(
        b,
        &[
            "topics",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

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
