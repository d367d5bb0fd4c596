//! Partition reassignment (KIP-455) across three real `gregor serve` processes, driven by
//! `gregor reassign` as an operator would drive `kafka-reassign-partitions.sh`:
//! * a topic with replication factor 1 holding records produced with confluent-kafka moves to
//!   the two other brokers (`--wait` returns once they are in sync and the old copy is gone);
//!   the old broker is then `kill -9`ed and every record still reads back, in order, from the
//!   new leader;
//! * another topic's replication factor is raised from 1 to 3 with Kafka's reassignment JSON,
//!   and `gregor topics describe` then shows an ISR of three.

use crate::cluster::{acked, read_all, Cluster};
use crate::harness::{gregor_bin, python, run};
use std::time::Duration;

const TOPIC: &str = "moving";
const GROWN: &str = "growing";

/// `gregor <args>`: its stdout, after checking it succeeded.
fn gregor(args: &[&str]) -> String {
    let out = run(
        std::process::Command::new(gregor_bin()).args(args),
        "gregor",
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gregor {args:?}: {text}\n{err}");
    text
}

/// Partition 0 of `topic` as broker `via`'s Metadata shows it: (leader, replicas, ISR).
fn describe(c: &Cluster, via: i64, topic: &str) -> (i64, Vec<i64>, Vec<i64>) {
    let v = python("replication.py", &["describe", &c.bs(via), topic]);
    let p = &v["partitions"]["0"];
    let ids = |k: &str| -> Vec<i64> {
        p[k].as_array()
            .map(|a| a.iter().filter_map(|i| i.as_i64()).collect())
            .unwrap_or_default()
    };
    (
        p["leader"].as_i64().unwrap_or(-1),
        ids("replicas"),
        ids("isr"),
    )
}

#[test]
fn a_partition_moved_off_its_broker_survives_that_brokers_kill9_and_a_topic_grows_to_three() {
    let mut c = Cluster::start_with(&|_| Vec::new());
    for via in 1..=3 {
        c.wait_brokers(via, &[1, 2, 3], Duration::from_secs(40), "cluster formed");
    }
    let v = python("cluster.py", &["create", &c.bs(1), TOPIC, "1", "1"]);
    let old = v["leaders"]["0"].as_i64().expect("a leader");
    let all = (1..=3).map(|i| c.bs(i)).collect::<Vec<_>>().join(",");
    let produced = python("cluster.py", &["produce", &all, TOPIC, "300", "m"]);
    let expected = acked(&produced)[&0].clone();
    assert_eq!(expected.len(), 300, "every record acknowledged: {produced}");

    // Move it to the two other brokers and wait for the move to complete.
    let others: Vec<i64> = (1..=3).filter(|b| *b != old).collect();
    let target = others
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let text = gregor(&[
        "reassign",
        "--bootstrap",
        &c.bs(old),
        "--topic",
        TOPIC,
        "--partition",
        "0",
        "--replicas",
        &target,
        "--wait",
    ]);
    assert!(text.contains("every reassignment is complete"), "{text}");
    // Another broker's Metadata follows the committed move a moment later: poll it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (leader, replicas, isr) = loop {
        let (leader, replicas, isr) = describe(&c, others[0], TOPIC);
        if (&replicas, &isr) == (&others, &others) || std::time::Instant::now() > deadline {
            break (leader, replicas, isr);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (replicas.clone(), isr),
        (others.clone(), others.clone()),
        "moved"
    );
    assert!(
        others.contains(&leader),
        "a target broker leads, not {leader}"
    );
    assert!(
        gregor(&["reassign", "--bootstrap", &c.bs(others[0]), "list"])
            .contains("no reassignment in progress")
    );
    // A cancel of nothing is refused with Kafka's NO_REASSIGNMENT_IN_PROGRESS (85).
    let out = run(
        std::process::Command::new(gregor_bin()).args([
            "reassign",
            "--bootstrap",
            &c.bs(others[0]),
            "cancel",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ]),
        "gregor reassign cancel",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("error code 85"));

    // Raise another topic's replication factor from 1 to 3 with Kafka's JSON file.
    python("cluster.py", &["create", &c.bs(1), GROWN, "1", "1"]);
    // The controller commits the topic a moment before it can be moved: wait (bounded) until
    // broker 1's Metadata names a leader for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while describe(&c, 1, GROWN).0 < 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let file = std::env::temp_dir().join(format!("gregor-reassign-{}.json", std::process::id()));
    let json = format!(
        r#"{{"version":1,"partitions":[{{"topic":"{GROWN}","partition":0,"replicas":[1,2,3]}}]}}"#
    );
    std::fs::write(&file, json).unwrap();
    let text = gregor(&[
        "reassign",
        "--bootstrap",
        &c.bs(1),
        "--reassignment-json-file",
        file.to_str().unwrap(),
        "--wait",
    ]);
    let _ = std::fs::remove_file(&file);
    assert!(text.contains("every reassignment is complete"), "{text}");
    let shown = gregor(&[
        "topics",
        "describe",
        "--bootstrap",
        &c.bs(2),
        "--topic",
        GROWN,
    ]);
    assert!(shown.contains("ReplicationFactor: 3"), "{shown}");
    let isr = shown
        .split("Isr: ")
        .nth(1)
        .and_then(|rest| rest.split('\t').next())
        .unwrap_or("");
    let mut isr: Vec<&str> = isr.split(',').collect();
    isr.sort();
    assert_eq!(isr, ["1", "2", "3"], "an ISR of three: {shown}");

    // The old broker dies hard; every record reads back from the new leader.
    c.q.nodes[(old - 1) as usize].kill9();
    let read = read_all(&c, leader, TOPIC, 1);
    assert_eq!(read.get(&0).cloned().unwrap_or_default(), expected);
}
