//! Real clients produce and consume through gregor.

use crate::harness::{cli, python, run, Broker};
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn kcat_produces_and_consumes_keys_headers_and_lists_metadata() {
    let b = Broker::start(&[]);
    let mut p = Command::new("kcat")
        .args([
            "-b",
            &b.bootstrap(),
            "-t",
            "kc",
            "-K:",
            "-P",
            "-H",
            "source=kcat",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed (bash tests/run.sh)");
    let input: String = (0..50).map(|i| format!("key{i}:value{i}\n")).collect();
    p.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(p.wait().unwrap().success());
    let out = run(
        Command::new("kcat").args([
            "-b",
            &b.bootstrap(),
            "-t",
            "kc",
            "-C",
            "-e",
            "-f",
            "%o|%k|%s|%h\n",
        ]),
        "kcat",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let want: Vec<String> = (0..50)
        .map(|i| format!("{i}|key{i}|value{i}|source=kcat"))
        .collect();
    assert_eq!(lines, want);
    let md = run(
        Command::new("kcat").args(["-b", &b.bootstrap(), "-L"]),
        "kcat",
    );
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("topic \"kc\" with 1 partitions"), "{md}");
    assert!(
        !md.contains("__consumer_offsets"),
        "internal topics are hidden: {md}"
    );
}

#[test]
fn confluent_kafka_every_codec_and_acks_round_trips() {
    let b = Broker::start(&[]);
    let r = python("codecs.py", &[&b.bootstrap()]);
    for (cell, v) in r.as_object().unwrap() {
        assert_eq!(v["ok"], true, "{cell}: {v}");
        assert_eq!(v["consumed"], 300, "{cell}: {v}");
        assert_eq!(v["unflushed"], 0, "{cell}: {v}");
    }
    assert_eq!(r.as_object().unwrap().len(), 15);
}

#[test]
fn confluent_kafka_admin_configs_and_offsets_for_times() {
    let b = Broker::start(&[]);
    let r = python("admin.py", &[&b.bootstrap()]);
    assert_eq!(r["duplicate_error"], "TOPIC_ALREADY_EXISTS");
    assert_eq!(r["rf3_error"], "INVALID_REPLICATION_FACTOR");
    assert_eq!(r["partitions"], 3);
    assert_eq!(r["retention.ms"], "3600000");
    assert_eq!(r["watermarks"], serde_json::json!([0, 10]));
    assert_eq!(
        r["offset_for_time"], 5,
        "first record at or after the timestamp"
    );
}

#[test]
fn kafka_python_default_idempotent_producer_and_consumer() {
    let b = Broker::start(&[]);
    let r = python("kafka_python.py", &[&b.bootstrap()]);
    assert_eq!(
        r["idempotent"], true,
        "kafka-python 3 enables idempotence against gregor: {r}"
    );
    assert_eq!(r["offsets"], true, "{r}");
    assert_eq!(r["read_back"], true, "{r}");
}

#[test]
fn gregor_topics_cli() {
    let b = Broker::start(&["--no-auto-create-topics"]);
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    ok(cli(
        &b,
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    ));
    let list = ok(cli(&b, &["topics", "list"]));
    assert!(list.contains("orders\t3 partition(s)"), "{list}");
    let d = ok(cli(&b, &["topics", "describe", "orders"]));
    assert!(
        d.contains("Partition: 2") && d.contains("Configs: retention.ms=60000"),
        "{d}"
    );
    let dup = cli(&b, &["topics", "create", "orders"]);
    assert!(!dup.status.success());
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("TopicAlreadyExists"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    ok(cli(&b, &["topics", "delete", "orders"]));
    assert!(!ok(cli(&b, &["topics", "list"])).contains("orders"));
    let missing = cli(&b, &["topics", "describe", "nope"]);
    assert!(
        !missing.status.success(),
        "unknown topics are not auto-created here"
    );
}
