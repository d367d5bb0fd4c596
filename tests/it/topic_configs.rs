//! Topic configs in a KRaft cluster, end to end (issue 13's topic-config gap): kafka-python's
//! admin client alters `retention.ms` and `min.insync.replicas` of a topic; the change goes
//! through the active controller as ConfigRecords, so DescribeConfigs on every broker shows the
//! new values as topic overrides, and a restart keeps them (they are in the metadata log).
//! `gregor topics describe` shows an RF 3 topic's replicas and ISR as `kcat -L` does.

use crate::harness::{gregor_bin, python, run, Broker};
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
