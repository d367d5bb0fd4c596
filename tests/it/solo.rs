//! `gregor serve` alone is a one-voter KRaft quorum (the same code as a cluster node), and a
//! data directory written before the metadata log existed keeps its topics: gregor's own
//! migration imports them into the new log before the broker follows any image.
//!
//! A standalone broker's data directory is what a KRaft node's is without its metadata log
//! (`partition.meta`, `broker.meta` and the segments are the same files), so the upgrade is
//! tried here by removing the metadata log of a stopped node: the next start finds partitions,
//! committed offsets and producer ids, and no log naming them.

use crate::harness::{cli, python, Broker};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every value `read` returned, by partition.
fn read(b: &Broker, topic: &str, partitions: i64) -> BTreeMap<i64, Vec<String>> {
    let v = python(
        "cluster.py",
        &["read", &b.bootstrap(), topic, &partitions.to_string()],
    );
    assert_eq!(
        v["eof"].as_array().unwrap().len() as i64,
        partitions,
        "{topic}: every partition read to its end: {v}"
    );
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in v["records"].as_array().unwrap() {
        let values = out.entry(r[0].as_i64().unwrap()).or_default();
        assert_eq!(r[1].as_i64().unwrap(), values.len() as i64, "offsets dense");
        values.push(r[2].as_str().unwrap().to_string());
    }
    out
}

fn produced(v: &Value) -> usize {
    assert_eq!(v["failed"], serde_json::json!([]), "no produce failed: {v}");
    v["acked"]
        .as_object()
        .unwrap()
        .values()
        .map(|vs| vs.as_array().unwrap().len())
        .sum()
}

fn retention_ms(b: &Broker, topic: &str) -> (String, String) {
    let o = cli(b, &["configs", "describe", "--topic", topic]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("retention.ms"))
        .unwrap_or_else(|| panic!("retention.ms not described: {out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[1].to_string(), cols[2].to_string())
}

#[test]
fn a_data_directory_without_a_metadata_log_keeps_its_topics_offsets_and_configs() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    // The one voter leads and its broker is unfenced before the listener opens: a topic
    // created by the first client gets a leader (this node) at once.
    let created = python("cluster.py", &["create", &bs, "kept", "3"]);
    assert_eq!(created["errors"], serde_json::json!([]), "{created}");
    let o = cli(
        &b,
        &[
            "topics",
            "create",
            "tuned",
            "--partitions",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        produced(&python("cluster.py", &["produce", &bs, "kept", "300", "a"])),
        300
    );
    // A group reads all 300 and commits.
    let g = python("cluster.py", &["group", &bs, "kept", "g1", "300"]);
    assert_eq!(g["values"].as_array().unwrap().len(), 300, "{g}");
    assert_eq!(g["coordinator"], 0, "node 0 coordinates: {g}");
    let before = read(&b, "kept", 3);
    assert!(b.terminate(), "clean shutdown");

    // The upgrade: the same directory with no metadata log.
    std::fs::remove_dir_all(b.metadata_dir()).unwrap();
    b.restart();
    let log = b.log();
    assert!(
        log.contains("importing a standalone broker's data directory"),
        "the import is logged"
    );
    assert!(!log.contains("stray (KIP-858)"), "no local topic deleted");
    assert_eq!(read(&b, "kept", 3), before, "every record kept");
    assert_eq!(
        retention_ms(&b, "tuned"),
        ("3600000".to_string(), "DYNAMIC_TOPIC_CONFIG".to_string()),
        "the override kept"
    );
    // Idempotent producers get ids past the old ones (the import's ProducerIdsRecord).
    assert_eq!(
        produced(&python("cluster.py", &["produce", &bs, "kept", "10", "b"])),
        10
    );
    // The group resumes at its committed offsets: it reads only the 10 new records.
    let g = python("cluster.py", &["group", &bs, "kept", "g1", "10"]);
    let mut values: Vec<&str> = g["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("b-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected, "resumed at the committed offsets");

    // A plain restart (the log now names the topics) imports nothing and keeps everything.
    b.restart();
    let topics = python("cluster.py", &["create", &bs, "later", "1"]);
    assert_eq!(topics["leaders"]["0"], 0);
    assert_eq!(
        read(&b, "kept", 3).values().map(Vec::len).sum::<usize>(),
        310
    );
    assert_eq!(
        b.log()
            .matches("importing a standalone broker's data directory")
            .count(),
        1,
        "imported once"
    );
}

/// Kafka's `meta.properties`: the first start of a data directory writes which node it belongs
/// to, and node 2 started on node 1's directory (a copied config, a swapped volume) refuses to
/// start, naming both ids, instead of serving node 1's replicas as its own. Node 1 starts on it
/// again as before; a wiped directory (no file) is a fresh disk and is claimed anew.
#[test]
fn a_data_directory_of_another_node_is_refused() {
    let mut b = Broker::start(&["--node-id", "1"]);
    let props = std::fs::read_to_string(b.data_dir.join("meta.properties"))
        .expect("meta.properties written at the first start");
    assert!(props.contains("node.id=1\n"), "{props}");
    assert!(b.terminate(), "clean shutdown");

    let other_meta = b.data_dir.with_extension("node2-metadata");
    let out = crate::harness::run(
        std::process::Command::new("timeout")
            .arg("30")
            .arg(crate::harness::gregor_bin())
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", crate::harness::free_port()))
            .arg("--data-dir")
            .arg(&b.data_dir)
            .args(["--node-id", "2", "--metadata-log-dir"])
            .arg(&other_meta),
        "gregor serve",
    );
    let _ = std::fs::remove_dir_all(&other_meta);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: {stderr}");
    assert!(
        stderr.contains("belongs to node 1") && stderr.contains("this is node 2"),
        "the error names both ids: {stderr}"
    );
    assert!(
        stderr.contains(&b.data_dir.display().to_string()),
        "and the directory: {stderr}"
    );

    b.restart();
    assert!(b.alive(), "node 1 starts on its own directory: {}", b.log());
    b.kill9();
    std::fs::remove_dir_all(&b.data_dir).unwrap();
    b.restart();
    assert!(b.alive(), "a wiped directory is a fresh disk: {}", b.log());
}
