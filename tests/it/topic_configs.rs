//! Topic configs in a KRaft cluster, end to end (issue 13's topic-config gap): kafka-python's
//! admin client alters `retention.ms` and `min.insync.replicas` of a topic; the change goes
//! through the active controller as ConfigRecords, so DescribeConfigs on every broker shows the
//! new values as topic overrides, and a restart keeps them (they are in the metadata log).
//! `gregor topics describe` shows an RF 3 topic's replicas and ISR as `kcat -L` does.

use crate::harness::{gregor_bin, kcat_read, python, run, Broker};
use crate::quorum::Quorum;
use std::process::Command;
use std::time::{Duration, Instant};

/// (value, source) of config `key` of `topic` as the broker at `bs` describes it.
fn described(bs: &str, topic: &str, key: &str) -> (String, String) {
    let out = python("topic_configs.py", &[bs, "describe", topic]);
    let e = &out["configs"]["topic"][topic][key];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (s(&e["value"]), s(&e["config_source"]))
}

/// Wait (bounded) until the broker at `bs` describes `key` of `topic` as `want`: a broker's
/// image follows the controller's commit within a heartbeat or two.
fn eventually(bs: &str, topic: &str, key: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = described(bs, topic, key);
        if got == (want.to_string(), "DYNAMIC_TOPIC_CONFIG".to_string()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{bs}: {key} of {topic} is {got:?}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alter(bs: &str, topic: &str) {
    let out = python("topic_configs.py", &[bs, "alter", topic]);
    let bad = out["bad"].as_str().unwrap_or_default();
    assert!(
        bad.contains("40") || bad.contains("InvalidConfig"),
        "min.insync.replicas=0 is INVALID_CONFIG: {bad}"
    );
}

#[test]
fn one_node_alters_topic_configs_through_its_controller_and_keeps_them() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    python("topic_configs.py", &[&bs, "create", "tc", "1"]);
    // kafka-python lists only the overrides: none yet.
    assert_eq!(described(&bs, "tc", "min.insync.replicas").1, "");
    alter(&bs, "tc");
    eventually(&bs, "tc", "retention.ms", "7200000");
    eventually(&bs, "tc", "min.insync.replicas", "2");
    b.restart();
    let bs = b.bootstrap();
    eventually(&bs, "tc", "retention.ms", "7200000");
    eventually(&bs, "tc", "min.insync.replicas", "2");
}

#[test]
fn three_nodes_show_altered_configs_everywhere_and_the_isr_of_an_rf3_topic() {
    let mut q = Quorum::start("1000");
    let first = q.nodes[0].bootstrap();
    python("topic_configs.py", &[&first, "create", "tc3", "3"]);
    alter(&first, "tc3");
    for n in &q.nodes {
        eventually(&n.bootstrap(), "tc3", "retention.ms", "7200000");
        eventually(&n.bootstrap(), "tc3", "min.insync.replicas", "2");
    }
    // `gregor topics describe`: every partition has three replicas, all in sync, as kcat -L
    // lists them ("replicas: 1,2,3, isrs: 1,2,3").
    let out = run(
        Command::new(gregor_bin()).args([
            "topics",
            "describe",
            "--topic",
            "tc3",
            "--bootstrap",
            &first,
        ]),
        "gregor",
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ReplicationFactor: 3"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("Partition: ")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for r in rows {
        let col = |name: &str| {
            r.split('\t')
                .find_map(|c| c.strip_prefix(name))
                .unwrap_or_default()
                .to_string()
        };
        let mut replicas: Vec<&str> = Vec::new();
        let reps = col("Replicas: ");
        replicas.extend(reps.split(','));
        assert_eq!(replicas.len(), 3, "{r}");
        let mut isr: Vec<String> = col("Isr: ").split(',').map(String::from).collect();
        let mut sorted: Vec<String> = replicas.iter().map(|s| s.to_string()).collect();
        sorted.sort();
        isr.sort();
        assert_eq!(isr, sorted, "all in sync: {r}");
        assert!(r.contains("Configs") || col("Offline: ").is_empty(), "{r}");
    }
    assert!(text.contains("min.insync.replicas=2"), "{text}");
    // A restart of every node keeps the configs: they are in the metadata log.
    for n in &mut q.nodes {
        n.restart();
    }
    for n in &q.nodes {
        eventually(&n.bootstrap(), "tc3", "retention.ms", "7200000");
    }
}

/// The topic configs that change what the broker stores (issue 13, item 2), through real
/// clients on one node (tests/clients/topic_formats.py): `message.timestamp.type=LogAppendTime`
/// turns a producer's timestamp of 2001 into the broker's append time, typed LogAppendTime in
/// confluent-kafka's delivery report and consumer (and in kcat's `%T`); `compression.type`
/// stores kcat's uncompressed batches as gzip, zstd and lz4, values intact, in segment files a
/// fraction of the uncompressed topic's.
#[test]
fn log_append_time_and_broker_side_compression_reach_real_clients() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    let out = python("topic_formats.py", &[&bs]);
    let described = &out["described"];
    // confluent-kafka's ConfigSource: 1 DYNAMIC_TOPIC_CONFIG, 5 DEFAULT_CONFIG.
    assert_eq!(
        described["lat"]["message.timestamp.type"],
        serde_json::json!(["LogAppendTime", 1]),
        "{out}"
    );
    assert_eq!(
        described["ct"]["message.timestamp.type"],
        serde_json::json!(["CreateTime", 5]),
        "{out}"
    );
    assert_eq!(
        described["gz"]["compression.type"],
        serde_json::json!(["gzip", 1]),
        "{out}"
    );
    assert_eq!(
        described["ct"]["compression.type"],
        serde_json::json!(["producer", 5]),
        "{out}"
    );

    let (create, append) = (&out["types"]["create"], &out["types"]["append"]);
    let (lo, hi) = (
        out["window"][0].as_i64().unwrap() - 1_000,
        out["window"][1].as_i64().unwrap() + 1_000,
    );
    let delivered = out["delivered"].as_array().unwrap();
    assert_eq!(delivered.len(), 6, "{out}");
    for d in delivered {
        assert_eq!(d[1], true, "{out}");
        if d[0] == "lat" {
            // The produce response's log_append_time_ms, as librdkafka reports it.
            assert_eq!(&d[2], append, "{out}");
            assert!((lo..=hi).contains(&d[3].as_i64().unwrap()), "{out}");
        } else {
            assert_eq!(&d[2], create, "{out}");
        }
    }
    for (i, r) in out["read_lat"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r[0], format!("lat-{i}"), "{out}");
        assert_eq!(&r[1], append, "{out}");
        assert!((lo..=hi).contains(&r[2].as_i64().unwrap()), "{out}");
    }
    let read_ct = out["read_ct"].as_array().unwrap();
    assert_eq!(read_ct.len(), 3, "{out}");
    for (i, r) in read_ct.iter().enumerate() {
        assert_eq!(r[1], *create, "{out}");
        assert_eq!(r[2], 1_000_000_000_000i64 + i as i64, "{out}");
    }
    // kcat shows the same timestamps.
    let kcat: Vec<i64> = kcat_read(&bs, "lat", 0, "%T\n")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(kcat.len(), 3);
    assert!(kcat.iter().all(|t| (lo..=hi).contains(t)), "{kcat:?}");

    let segment = |topic: &str| {
        let path = b
            .data_dir
            .join(format!("{topic}-0"))
            .join("00000000000000000000.log");
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len()
    };
    let plain = segment("un");
    // 200 records of ~1 KB: the uncompressed topic holds them whole.
    assert!(plain > 200_000, "uncompressed segment {plain} bytes");
    for topic in ["gz", "zs", "l4"] {
        assert_eq!(
            out[format!("values_{topic}")],
            serde_json::json!([200, true])
        );
        let stored = segment(topic);
        assert!(
            stored * 5 < plain,
            "{topic}: {stored} bytes is not compressed (uncompressed: {plain})"
        );
    }
    assert_eq!(out["values_un"], serde_json::json!([200, true]));
}
