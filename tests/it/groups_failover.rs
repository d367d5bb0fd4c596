//! A consumer group's committed offsets survive its coordinator's `kill -9` (issue 10 item 7),
//! with three real `gregor serve` processes and confluent-kafka.
//!
//! A group's coordinator is the leader of the group's partition of `__consumer_offsets`. That
//! topic is created with Kafka's `offsets.topic.replication.factor` (3), and the coordinator
//! acknowledges a commit only once the partition's high watermark covers it, so every in-sync
//! replica holds it. When the coordinator's broker dies, the controller elects another ISR
//! member; that broker loads the partition (answering COORDINATOR_LOAD_IN_PROGRESS meanwhile),
//! and the client finds it with FindCoordinator. The test commits offsets, kills the
//! coordinator, and checks that OffsetFetch through the new coordinator answers the last
//! acknowledged commit and that a consumer of the group resumes there, re-reading only the
//! records it had read but not committed. The time the coordinator move took is printed (run
//! with `--nocapture`).

use crate::cluster::Cluster;
use crate::harness::python;
use serde_json::Value;
use std::time::{Duration, Instant};

const TOPIC: &str = "failover";
const GROUP: &str = "failover-group";

fn offsets(v: &Value) -> Vec<i64> {
    v["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_i64().unwrap())
        .collect()
}

/// The group's coordinator, as `describe_consumer_groups` (FindCoordinator) names it via `via`.
fn coordinator(c: &Cluster, via: i64) -> i64 {
    let v = python("cluster.py", &["coordinator", &c.bs(via), GROUP]);
    v["coordinator"].as_i64().expect("a coordinator id")
}

#[test]
fn committed_offsets_survive_the_coordinators_kill() {
    let mut c = Cluster::start_with(&|_| Vec::new());
    for via in 1..=3 {
        c.wait_brokers(via, &[1, 2, 3], Duration::from_secs(40), "cluster formed");
    }
    let created = python("cluster.py", &["create", &c.bs(1), TOPIC, "1", "3"]);
    println!("created: {created}");
    let all = (1..=3).map(|i| c.bs(i)).collect::<Vec<_>>().join(",");
    let produced = python("cluster.py", &["produce", &all, TOPIC, "100", "v"]);
    assert_eq!(produced["failed"], serde_json::json!([]), "{produced}");
    assert_eq!(produced["unfinished"], 0);

    // Read 60 records, committing after each of the first 50: the group's committed offset is
    // 50, and offsets 50..59 are the uncommitted tail.
    let first = python(
        "groups_failover.py",
        &["consume", &c.bs(1), TOPIC, GROUP, "60", "50"],
    );
    assert_eq!(offsets(&first), (0..60).collect::<Vec<_>>(), "{first}");
    assert_eq!(first["committed"], 50, "{first}");

    // The offsets topic is replicated: the group's partition has three replicas, all in sync.
    let offsets_topic = python(
        "replication.py",
        &["describe", &c.bs(1), "__consumer_offsets"],
    );
    let parts = offsets_topic["partitions"].as_object().expect("described");
    assert!(!parts.is_empty(), "{offsets_topic}");
    for (p, d) in parts {
        assert_eq!(d["replicas"], serde_json::json!([1, 2, 3]), "partition {p}");
    }
    let killed = coordinator(&c, 1);
    let before = python(
        "groups_failover.py",
        &["offsets", &c.bs(killed), GROUP, TOPIC, "30"],
    );
    assert_eq!(before["offset"], 50, "{before}");

    c.q.nodes[(killed - 1) as usize].kill9();
    let t_kill = Instant::now();
    let survivor = if killed == 1 { 2 } else { 1 };
    // OffsetFetch through the cluster: the client finds the new coordinator and retries
    // NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS until it has loaded the partition.
    let after = python(
        "groups_failover.py",
        &["offsets", &c.bs(survivor), GROUP, TOPIC, "60"],
    );
    let moved_ms = t_kill.elapsed().as_millis();
    assert_eq!(
        after["offset"], 50,
        "the committed offset survived: {after}"
    );
    let new = coordinator(&c, survivor);
    assert_ne!(new, killed, "another broker coordinates the group");
    println!(
        "coordinator {killed} killed: broker {new} answered OffsetFetch {moved_ms} ms later \
         (client saw {})",
        after["errors"]
    );

    // A consumer of the group resumes at the committed offset: it reads offsets 50..99,
    // re-reading only the uncommitted tail 50..59.
    let survivors = (1..=3)
        .filter(|i| *i != killed)
        .map(|i| c.bs(i))
        .collect::<Vec<_>>()
        .join(",");
    let resumed = python(
        "groups_failover.py",
        &["resume", &survivors, TOPIC, GROUP, "100"],
    );
    assert_eq!(
        offsets(&resumed),
        (50..100).collect::<Vec<_>>(),
        "resumed at the committed offset: {resumed}"
    );
    let reread = 60 - resumed["first"].as_i64().unwrap();
    println!(
        "the group resumed at offset {} after {:.1} s; {reread} records re-read",
        resumed["first"],
        resumed["seconds"].as_f64().unwrap_or(-1.0)
    );
}
