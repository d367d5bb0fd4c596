//! Consumer groups with real clients: a queue inside a group, a broadcast across groups,
//! failover when a member dies, and resuming at the committed offset across a broker restart.

use crate::harness::{cli, create_topic, run, Broker};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

fn produce(b: &Broker, topic: &str, partitions: i32, n: usize) {
    create_topic(b, topic, partitions);
    // Record i goes to partition i mod partitions, so every partition has records. (Left to
    // librdkafka, keyless records follow the sticky partitioner, KIP-480, and a small burst can
    // land in a single partition.)
    for part in 0..partitions {
        let mut p = Command::new("kcat")
            .args([
                "-b",
                &b.bootstrap(),
                "-t",
                topic,
                "-P",
                "-p",
                &part.to_string(),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("kcat");
        let input: String = (0..n)
            .filter(|i| i % partitions as usize == part as usize)
            .map(|i| format!("m{i}\n"))
            .collect();
        std::io::Write::write_all(&mut p.stdin.take().unwrap(), input.as_bytes()).unwrap();
        assert!(p.wait().unwrap().success());
    }
}

fn member(b: &Broker, topic: &str, group: &str, seconds: &str) -> std::process::Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/group_member.py");
    Command::new("python3")
        .arg(script)
        .args([&b.bootstrap(), topic, group, seconds])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3")
}

fn finish(c: std::process::Child) -> Value {
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
}

fn values(v: &Value) -> Vec<String> {
    v["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_str().unwrap().to_string())
        .collect()
}

/// The partitions a member held at wall-clock time `t`, from its assignment timeline.
fn held_at(v: &Value, t: f64) -> BTreeSet<u64> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|e| e[0].as_f64().unwrap() <= t)
        .last()
        .map(|e| {
            e[1].as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_members_split_partitions_and_another_group_gets_everything() {
    let b = Broker::start(&["--group-initial-rebalance-delay-ms", "1500"]);
    produce(&b, "jobs", 4, 400);
    let a = member(&b, "jobs", "workers", "12");
    let c = member(&b, "jobs", "workers", "12");
    let other = member(&b, "jobs", "auditors", "10");
    let (a, c, other) = (finish(a), finish(c), finish(other));
    // Compare the two members at one instant while both were still in the group: half a
    // second before the first of them stopped (the last moment is a race, since the first to
    // leave hands its partitions to the other).
    let stopped = a["stopped"]
        .as_f64()
        .unwrap()
        .min(c["stopped"].as_f64().unwrap());
    let (pa, pc) = (held_at(&a, stopped - 0.5), held_at(&c, stopped - 0.5));
    assert_eq!(
        pa.len() + pc.len(),
        4,
        "{pa:?} {pc:?}; timelines {} {}",
        a["timeline"],
        c["timeline"]
    );
    assert!(
        pa.is_disjoint(&pc),
        "no partition owned by both: {pa:?} {pc:?}"
    );
    let (va, vc) = (values(&a), values(&c));
    let all: BTreeSet<String> = va.iter().chain(vc.iter()).cloned().collect();
    assert_eq!(
        all.len(),
        400,
        "no gap: every record consumed within the group"
    );
    assert_eq!(
        va.len() + vc.len(),
        400,
        "no overlap: each record consumed once within the group"
    );
    assert_eq!(
        values(&other).into_iter().collect::<BTreeSet<_>>().len(),
        400,
        "a second group receives every record"
    );
    let d = cli(&b, &["groups", "describe", "workers"]);
    let d = String::from_utf8(d.stdout).unwrap();
    assert!(
        d.contains("jobs") && d.contains(" 0\n"),
        "lag 0 after everything was committed: {d}"
    );
}

#[test]
fn partitions_move_when_a_member_dies_and_commits_survive_a_restart() {
    let mut b = Broker::start(&["--group-initial-rebalance-delay-ms", "500"]);
    produce(&b, "work", 4, 200);
    let mut victim = member(&b, "work", "g", "60");
    let survivor = member(&b, "work", "g", "16");
    std::thread::sleep(std::time::Duration::from_secs(5));
    victim.kill().unwrap(); // no LeaveGroup: the session timeout (6 s) must evict it
    victim.wait().unwrap();
    let s = finish(survivor);
    assert_eq!(
        s["assignment"].as_array().unwrap().len(),
        4,
        "the survivor owns every partition after the rebalance: {s}"
    );
    // At-least-once: whatever the victim had not committed is redelivered to the survivor.
    // Between them the two members processed and committed everything: lag 0 everywhere.
    let committed = String::from_utf8(cli(&b, &["groups", "describe", "g"]).stdout).unwrap();
    let rows: Vec<&str> = committed
        .lines()
        .filter(|l| l.trim_start().starts_with("work"))
        .collect();
    assert_eq!(rows.len(), 4, "{committed}");
    for r in rows {
        assert!(r.trim_end().ends_with(" 0"), "lag 0: {committed}");
    }

    // Restart the broker; new records; a new member resumes at the committed offsets.
    b.restart();
    let mut p = Command::new("kcat")
        .args(["-b", &b.bootstrap(), "-t", "work", "-P", "-p", "0"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat");
    std::io::Write::write_all(&mut p.stdin.take().unwrap(), b"after-restart\n").unwrap();
    assert!(p.wait().unwrap().success());
    let again = finish(member(&b, "work", "g", "10"));
    let v = values(&again);
    assert!(v.contains(&"after-restart".to_string()), "{v:?}");
    assert!(
        v.len() < 20,
        "resumed at the committed offsets, not from the beginning: {} records",
        v.len()
    );
}

#[test]
fn kcat_group_consumer() {
    let b = Broker::start(&["--group-initial-rebalance-delay-ms", "500"]);
    produce(&b, "kg", 2, 100);
    let out = run(
        Command::new("timeout").args([
            "12",
            "kcat",
            "-b",
            &b.bootstrap(),
            "-G",
            "kcat-group",
            "kg",
            "-o",
            "beginning",
            "-f",
            "%p %o\n",
            "-e",
        ]),
        "kcat",
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        lines,
        100,
        "kcat -G read every record: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8(cli(&b, &["groups", "list"]).stdout).unwrap();
    assert!(list.contains("kcat-group"), "{list}");
}
