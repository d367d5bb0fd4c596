//! `gregor produce` and `gregor consume` (the gregor-client library behind them) against a real
//! gregor process, beside kcat and confluent-kafka, and against librdkafka's mock cluster: a
//! second Kafka implementation.

use crate::harness::{create_topic, gregor_bin, python, run, Broker};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `gregor produce` with `input` on stdin.
fn produce(bootstrap: &str, args: &[&str], input: &str) -> Output {
    let mut p = Command::new(gregor_bin())
        .arg("produce")
        .args(args)
        .args(["--bootstrap", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    p.wait_with_output().unwrap()
}

/// `gregor consume` of `n` records as `partition|offset|key|value|headers` lines.
fn consume(bootstrap: &str, args: &[&str], n: usize) -> Vec<Vec<String>> {
    let o = run(
        Command::new(gregor_bin())
            .arg("consume")
            .args(args)
            .args(["--max-messages", &n.to_string(), "--timeout-ms", "20000"])
            .args(["--format", "%p|%o|%k|%v|%h\\n", "--bootstrap", bootstrap]),
        "gregor consume",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Vec<String>> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(String::from).collect())
        .collect();
    assert_eq!(lines.len(), n, "{lines:?}");
    lines
}

/// Each partition's offsets are 0, 1, 2, … in the order they were printed.
fn assert_offsets_dense(lines: &[Vec<String>]) {
    let mut next: BTreeMap<&str, i64> = BTreeMap::new();
    for l in lines {
        let n = next.entry(&l[0]).or_default();
        assert_eq!(l[1].parse::<i64>().unwrap(), *n, "{l:?}");
        *n += 1;
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn gregor_produce_then_consume_round_trips_keys_values_and_headers_and_kcat_reads_them() {
    let b = Broker::start(&[]);
    create_topic(&b, "cli", 3);
    let input: String = (0..500).map(|i| format!("key{i}:value {i}\n")).collect();
    let o = produce(
        &b.bootstrap(),
        &[
            "--topic",
            "cli",
            "--key-separator",
            ":",
            "--header",
            "from=gregor",
            "--compression",
            "gzip",
        ],
        &input,
    );
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("500 record(s) delivered to cli, 0 failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines = consume(&b.bootstrap(), &["--topic", "cli", "--from-beginning"], 500);
    assert_offsets_dense(&lines);
    let got: BTreeSet<(String, String)> =
        lines.iter().map(|l| (l[2].clone(), l[3].clone())).collect();
    let want: BTreeSet<(String, String)> = (0..500)
        .map(|i| (format!("key{i}"), format!("value {i}")))
        .collect();
    assert_eq!(got, want);
    assert!(lines.iter().all(|l| l[4] == "from=gregor"));
    assert_eq!(
        lines.iter().map(|l| &l[0]).collect::<BTreeSet<_>>().len(),
        3,
        "keys spread over every partition"
    );
    // A key's records share a partition, and kcat sees the same records where gregor put them.
    let k = run(
        Command::new("kcat").args([
            "-b",
            &b.bootstrap(),
            "-t",
            "cli",
            "-C",
            "-e",
            "-f",
            "%p|%o|%k|%s|%h\n",
        ]),
        "kcat",
    );
    let kcat: BTreeSet<Vec<String>> = String::from_utf8(k.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(String::from).collect())
        .collect();
    assert_eq!(kcat, lines.iter().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn consume_from_an_offset_of_one_partition_and_from_the_end() {
    let b = Broker::start(&[]);
    create_topic(&b, "pos", 2);
    let input: String = (0..20).map(|i| format!("v{i}\n")).collect();
    ok(&produce(
        &b.bootstrap(),
        &["--topic", "pos", "--partition", "1"],
        &input,
    ));
    let lines = consume(
        &b.bootstrap(),
        &["--topic", "pos", "--partition", "1", "--offset", "15"],
        5,
    );
    let offsets: Vec<&str> = lines.iter().map(|l| l[1].as_str()).collect();
    assert_eq!(offsets, ["15", "16", "17", "18", "19"]);
    assert!(lines
        .iter()
        .all(|l| l[0] == "1" && l[3] == format!("v{}", l[1])));
    // Without --from-beginning the consumer starts at the end: it sees only what comes later.
    let c = Command::new(gregor_bin())
        .args([
            "consume",
            "--topic",
            "pos",
            "--max-messages",
            "1",
            "--timeout-ms",
            "20000",
        ])
        .args(["--bootstrap", &b.bootstrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    ok(&produce(
        &b.bootstrap(),
        &["--topic", "pos", "--partition", "0"],
        "late\n",
    ));
    let o = c.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "late\n");
}

#[test]
fn produce_reports_failed_records_and_exits_non_zero() {
    let b = Broker::start(&[]);
    create_topic(&b, "fail", 2);
    let o = produce(
        &b.bootstrap(),
        &["--topic", "fail", "--key-separator", ":"],
        "a:1\nno separator\nb:2\n",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 2: no key separator"), "{err}");
    assert!(
        err.contains("2 record(s) delivered to fail, 1 failed"),
        "{err}"
    );
    let o = produce(
        &b.bootstrap(),
        &["--topic", "fail", "--partition", "7"],
        "x\n",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("UnknownTopicOrPartition"), "{err}");
}

#[test]
fn keys_land_on_the_partitions_the_java_partitioner_picks() {
    let b = Broker::start(&[]);
    create_topic(&b, "ours", 6);
    create_topic(&b, "theirs", 6);
    let input: String = (0..300).map(|i| format!("key{i}:v\n")).collect();
    ok(&produce(
        &b.bootstrap(),
        &["--topic", "ours", "--key-separator", ":"],
        &input,
    ));
    let ours: BTreeMap<String, String> = consume(
        &b.bootstrap(),
        &["--topic", "ours", "--from-beginning"],
        300,
    )
    .into_iter()
    .map(|l| (l[2].clone(), l[0].clone()))
    .collect();
    let theirs = python(
        "client_peer.py",
        &["partitions", &b.bootstrap(), "theirs", "300"],
    );
    let theirs: BTreeMap<String, String> = theirs
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, p)| (k.clone(), p.to_string()))
        .collect();
    assert_eq!(theirs.len(), 300);
    assert_eq!(
        ours, theirs,
        "gregor-client and librdkafka's murmur2_random agree"
    );
}

#[test]
fn consumes_what_kcat_and_confluent_kafka_produced() {
    let b = Broker::start(&[]);
    create_topic(&b, "mixed", 2);
    let mut k = Command::new("kcat")
        .args([
            "-b",
            &b.bootstrap(),
            "-t",
            "mixed",
            "-P",
            "-K:",
            "-z",
            "lz4",
            "-p",
            "0",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed (bash tests/run.sh)");
    let input: String = (0..100)
        .map(|i| format!("kc{i}:kcat value {i}\n"))
        .collect();
    k.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(k.wait().unwrap().success());
    python(
        "client_peer.py",
        &["partitions", &b.bootstrap(), "mixed", "100"],
    );
    let lines = consume(
        &b.bootstrap(),
        &["--topic", "mixed", "--from-beginning"],
        200,
    );
    assert_offsets_dense(&lines);
    let values: BTreeSet<String> = lines.iter().map(|l| l[3].clone()).collect();
    for i in 0..100 {
        assert!(
            values.contains(&format!("kcat value {i}")),
            "lz4 from kcat: {i}"
        );
        assert!(
            values.contains(&format!("confluent{i}")),
            "from confluent-kafka: {i}"
        );
    }
}

/// librdkafka's in-process mock cluster with `brokers` brokers, and its first broker's address.
/// It stops when the child's stdin closes.
fn mock_cluster(brokers: usize) -> (std::process::Child, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/client_peer.py");
    let mut mock = Command::new("python3")
        .arg(script)
        .args(["mock", &brokers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with confluent-kafka (bash tests/run.sh)");
    let mut addr = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let addr = addr.trim().to_string();
    assert!(addr.contains(':'), "the mock cluster's address: {addr:?}");
    (mock, addr)
}

#[test]
fn the_client_works_against_librdkafkas_mock_cluster() {
    let (mut mock, addr) = mock_cluster(1);
    let input: String = (0..200).map(|i| format!("key{i}:mock {i}\n")).collect();
    let o = produce(
        &addr,
        &[
            "--topic",
            "m",
            "--key-separator",
            ":",
            "--compression",
            "snappy",
        ],
        &input,
    );
    ok(&o);
    // The topic positional, as Kafka's tools spell it.
    let lines = consume(&addr, &["m", "--from-beginning"], 200);
    assert_offsets_dense(&lines);
    let got: BTreeSet<(String, String)> =
        lines.iter().map(|l| (l[2].clone(), l[3].clone())).collect();
    assert_eq!(got.len(), 200);
    assert!(got.contains(&("key7".to_string(), "mock 7".to_string())));
    drop(mock.stdin.take());
    let _ = mock.wait();
}

/// A `gregor consume --group` member that exits after `idle_ms` without a record.
fn member(bootstrap: &str, group: &str, idle_ms: &str) -> std::process::Child {
    Command::new(gregor_bin())
        .args([
            "consume",
            "--topic",
            "shared",
            "--group",
            group,
            "--from-beginning",
        ])
        .args(["--timeout-ms", idle_ms, "--format", "%p|%o|%k|%v|%h\\n"])
        .args(["--bootstrap", bootstrap])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lines_of(c: std::process::Child) -> Vec<Vec<String>> {
    let o = c.wait_with_output().unwrap();
    ok(&o);
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(String::from).collect())
        .collect()
}

#[test]
fn two_group_members_share_the_partitions_and_commits_carry_over() {
    let b = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    create_topic(&b, "shared", 4);
    let first = member(&b.bootstrap(), "readers", "6000");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let second = member(&b.bootstrap(), "readers", "6000");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let input: String = (0..400).map(|i| format!("key{i}:v{i}\n")).collect();
    ok(&produce(
        &b.bootstrap(),
        &["--topic", "shared", "--key-separator", ":"],
        &input,
    ));
    let (a, b2) = (lines_of(first), lines_of(second));
    assert!(
        !a.is_empty() && !b2.is_empty(),
        "both members read: {} and {}",
        a.len(),
        b2.len()
    );
    let parts = |ls: &[Vec<String>]| ls.iter().map(|l| l[0].clone()).collect::<BTreeSet<_>>();
    assert!(
        parts(&a).is_disjoint(&parts(&b2)),
        "a partition has one reader"
    );
    let all: BTreeSet<String> = a.iter().chain(&b2).map(|l| l[3].clone()).collect();
    assert_eq!(all.len(), 400, "together they read everything");
    assert_eq!(a.len() + b2.len(), 400, "once");
    // Everything was committed: the group has nothing left for a new member.
    let again = lines_of(member(&b.bootstrap(), "readers", "3000"));
    assert!(again.is_empty(), "{again:?}");
    let described = run(
        Command::new(gregor_bin()).args([
            "groups",
            "describe",
            "readers",
            "--bootstrap",
            &b.bootstrap(),
        ]),
        "gregor groups",
    );
    let text = String::from_utf8_lossy(&described.stdout);
    let committed: i64 = text
        .lines()
        .filter(|l| l.trim_start().starts_with("shared"))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(committed, 400, "{text}");
}

/// `gregor …` against `bootstrap`, its stdout parsed as the JSON document `--output json` prints.
fn json_cli(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let o = run(
        Command::new(gregor_bin())
            .args(args)
            .args(["--output", "json", "--bootstrap", bootstrap]),
        "gregor",
    );
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("gregor {args:?}: {e}"))
}

#[test]
fn admin_commands_reach_each_leader_and_coordinator_of_a_three_broker_mock_cluster() {
    let (mut mock, addr) = mock_cluster(3);
    let input: String = (0..300).map(|i| format!("key{i}:v{i}\n")).collect();
    // Only the first broker is named; the partitions are led by the others too, and their
    // offsets come from each leader (a follower would refuse with NOT_LEADER_OR_FOLLOWER).
    // The mock picks each partition's leader at random and takes no CreateTopics, so its
    // auto-created topics have 4 partitions, all led by one broker once in 27 topics (CI saw
    // it): the test takes the first of up to five topics whose leaders are spread.
    let (topic, d) = (0..5)
        .map(|i| {
            let topic = format!("spread{i}");
            ok(&produce(&addr, &[&topic, "--key-separator", ":"], &input));
            let d = json_cli(&addr, &["topics", "describe", &topic]);
            (topic, d)
        })
        .find(|(_, d)| {
            let leaders: BTreeSet<i64> = d[0]["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["leader"].as_i64().unwrap())
                .collect();
            leaders.len() > 1
        })
        .expect("one of five topics has partitions led by several brokers");
    let parts = d[0]["partitions"].as_array().unwrap().clone();
    let hw: Vec<i64> = parts
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .collect();
    assert_eq!(hw.iter().sum::<i64>(), 300, "{d}");
    assert!(parts.iter().all(|p| p["log_start_offset"] == 0), "{d}");
    // Groups whose coordinators are spread over the brokers: each reset goes to its own
    // coordinator, and describe reads the offsets back from it.
    for g in ["ga", "gb", "gc", "gd"] {
        let reset = ["groups", "reset-offsets", g, "--topic", &topic];
        json_cli(&addr, &[&reset[..], &["--to-latest"]].concat());
        let offsets = |addr: &str| -> Vec<(i64, i64, i64)> {
            json_cli(addr, &["groups", "describe", g])["offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let n = |k: &str| r[k].as_i64().unwrap();
                    (n("committed"), n("high_watermark"), n("lag"))
                })
                .collect()
        };
        let rows = offsets(&addr);
        assert_eq!(rows.len(), hw.len(), "{g}: {rows:?}");
        assert!(
            rows.iter().all(|(c, h, lag)| c == h && *lag == 0),
            "{g}: {rows:?}"
        );
        let plan = json_cli(&addr, &[&reset[..], &["--shift-by", "-3"]].concat());
        assert_eq!(plan["dry_run"], false);
        let rows = offsets(&addr);
        assert!(
            rows.iter()
                .all(|(c, h, lag)| *c == (h - 3).max(0) && *lag == h - c),
            "{g}: {rows:?}"
        );
        json_cli(&addr, &[&reset[..], &["--to-earliest"]].concat());
        assert!(offsets(&addr).iter().all(|(c, _, _)| *c == 0), "{g}");
    }
    drop(mock.stdin.take());
    let _ = mock.wait();
}
