//! The admin APIs behind Kafka's tools, through confluent-kafka's and kafka-python's admin
//! clients (`tests/clients/admin_ops.py`) and gregor's own CLI, checked as an operator would:
//! a grown topic takes writes on its new partition, a consumer starts at the low watermark
//! DeleteRecords left, an altered retention is described back, and all of it survives
//! `kill -9` and a restart.

use crate::harness::{cli, python, Broker};
use serde_json::json;

fn cli_ok(b: &Broker, args: &[&str]) -> String {
    let o = cli(b, args);
    assert!(
        o.status.success(),
        "gregor {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn cli_err(b: &Broker, args: &[&str]) -> String {
    let o = cli(b, args);
    assert!(!o.status.success(), "gregor {args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

/// A command's `--output json` document.
fn json_of(b: &Broker, args: &[&str]) -> serde_json::Value {
    let out = cli_ok(b, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("gregor {args:?}: {e}: {out}"))
}

/// The line of `gregor configs describe` for `key`, split into (value, source).
fn config_line(b: &Broker, topic: &str, key: &str) -> (String, String) {
    let out = cli_ok(b, &["configs", "describe", "--topic", topic]);
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("{key} not described: {out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[1].to_string(), cols[2].to_string())
}

#[test]
fn admin_clients_and_the_cli_alter_topics_records_configs_and_offsets() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    let out = python("admin_ops.py", &[&bs, "setup"]);
    // CreatePartitions: never shrinks, validate_only, grows; the new partition takes writes.
    assert_eq!(out["shrink_error"], "INVALID_PARTITIONS");
    assert_eq!(out["validate_only_error"], json!(null));
    assert_eq!(out["grow_error"], json!(null));
    assert_eq!(out["partitions"], 3);
    assert_eq!(out["delivered_to_2"], json!([[true, 2, 0]]));
    // DeleteRecords: a new consumer starts at the low watermark; nothing above the HW.
    assert_eq!(out["low_watermark"], 12);
    assert_eq!(out["delete_above_hw_error"], "OFFSET_OUT_OF_RANGE");
    assert_eq!(out["first_offset_read"], 12);
    assert_eq!(out["watermarks"], json!([12, 20]));
    // Configs: set, described back as a topic override; unknown keys and broker alters refused.
    assert_eq!(out["alter_error"], json!(null));
    assert_eq!(out["unknown_key_error"], "INVALID_CONFIG");
    assert_eq!(out["validate_only_alter_error"], json!(null));
    assert_eq!(out["retention.ms"], json!(["7200000", 1]));
    assert_eq!(
        out["retention.bytes_source"], 5,
        "validate_only changed nothing"
    );
    assert_eq!(out["broker_alter_error"], "INVALID_REQUEST");
    // DescribeCluster, through both clients.
    assert_eq!(out["cluster"]["nodes"], 1);
    assert_eq!(out["cluster"]["controller"], 0);
    assert_eq!(out["kp_cluster"]["cluster_id"], out["cluster"]["id"]);
    // OffsetDelete: only the partition named loses its offset.
    assert_eq!(out["og_offsets"], json!([[0, 15]]), "ops-1 is gone");
    assert_eq!(out["groups"], json!(["og"]));
    // kafka-python: grow, delete records, log dir sizes, producer state, configs.
    assert_eq!(out["kp_partitions"], 4);
    assert_eq!(out["first_offset_read_after_kp"], 14);
    let parts = &out["kp_log_dirs"][0]["log_dirs"][0]["topics"][0]["partitions"];
    let size = |i: usize| parts[i]["partition_size"].as_i64().unwrap();
    assert!(
        size(0) > size(1),
        "the written partition is larger: {parts}"
    );
    assert_eq!(
        out["kp_producers"]["3"],
        json!([[true, 2]]),
        "3 records, sequences 0..=2"
    );
    assert_eq!(out["kp_producers"]["1"], json!([]));
    assert_eq!(
        out["kp_describe_configs"]["topic"]["ops"]["retention.ms"]["config_source"],
        "DYNAMIC_TOPIC_CONFIG"
    );

    // kill -9: the log start, the override and the partitions are all still there.
    b.restart();
    let out = python("admin_ops.py", &[&bs, "after-restart"]);
    assert_eq!(out["first_offset_read"], 14);
    assert_eq!(out["watermarks"], json!([14, 20]));
    assert_eq!(out["retention.ms"], json!(["7200000", 1]));
    assert_eq!(out["partitions"], 4);

    // The CLI.
    assert_eq!(
        config_line(&b, "ops", "retention.ms"),
        ("7200000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );
    cli_ok(
        &b,
        &[
            "configs",
            "alter",
            "--topic",
            "ops",
            "--set",
            "retention.bytes=100000",
            "--delete",
            "retention.ms",
        ],
    );
    assert_eq!(
        config_line(&b, "ops", "retention.bytes"),
        ("100000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );
    assert_eq!(config_line(&b, "ops", "retention.ms").1, "DEFAULT_CONFIG");
    let e = cli_err(
        &b,
        &["configs", "alter", "--topic", "ops", "--set", "foo=1"],
    );
    assert!(e.contains("unknown topic config foo"), "{e}");

    let e = cli_err(&b, &["topics", "alter", "ops", "--partitions", "2"]);
    assert!(e.contains("partitions can only be added"), "{e}");
    assert!(cli_ok(&b, &["topics", "alter", "ops", "--partitions", "5"]).contains("5 partitions"));

    let o = cli_ok(
        &b,
        &[
            "records",
            "delete",
            "--topic",
            "ops",
            "--partition",
            "0",
            "--before",
            "16",
        ],
    );
    assert!(o.contains("now starts at offset 16"), "{o}");

    // reset-offsets: a dry run commits nothing; then the group moves.
    let reset = [
        "groups",
        "reset-offsets",
        "og",
        "--topic",
        "ops",
        "--partition",
        "0",
    ];
    let dry = cli_ok(&b, &[&reset[..], &["--to-earliest", "--dry-run"]].concat());
    assert!(dry.contains("dry run"), "{dry}");
    let committed = |b: &Broker| {
        let d = cli_ok(b, &["groups", "describe", "og"]);
        let line = d
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["ops", "0"]))
            .map(String::from);
        line.map(|l| l.split_whitespace().nth(2).unwrap().to_string())
    };
    assert_eq!(
        committed(&b).as_deref(),
        Some("15"),
        "the dry run changed nothing"
    );
    cli_ok(&b, &[&reset[..], &["--to-earliest"]].concat());
    assert_eq!(
        committed(&b).as_deref(),
        Some("16"),
        "reset to the low watermark"
    );
    cli_ok(&b, &[&reset[..], &["--to-offset", "18"]].concat());
    assert_eq!(committed(&b).as_deref(), Some("18"));
    cli_ok(&b, &[&reset[..], &["--to-latest"]].concat());
    assert_eq!(committed(&b).as_deref(), Some("20"));

    // --shift-by moves the committed offset, kept inside the log; --to-datetime finds the first
    // record at or after a time, and a time after the last record means the end.
    cli_ok(&b, &[&reset[..], &["--to-offset", "18"]].concat());
    cli_ok(&b, &[&reset[..], &["--shift-by", "-1"]].concat());
    assert_eq!(committed(&b).as_deref(), Some("17"));
    cli_ok(&b, &[&reset[..], &["--shift-by", "100"]].concat());
    assert_eq!(committed(&b).as_deref(), Some("20"), "clamped to the end");
    cli_ok(&b, &[&reset[..], &["--shift-by", "-100"]].concat());
    assert_eq!(
        committed(&b).as_deref(),
        Some("16"),
        "clamped to the log start"
    );
    cli_ok(
        &b,
        &[&reset[..], &["--to-datetime", "2999-01-01T00:00:00Z"]].concat(),
    );
    assert_eq!(
        committed(&b).as_deref(),
        Some("20"),
        "nothing after: the end"
    );
    cli_ok(
        &b,
        &[
            &reset[..],
            &["--to-datetime", "2000-01-01T00:00:00.000+01:00"],
        ]
        .concat(),
    );
    assert_eq!(
        committed(&b).as_deref(),
        Some("16"),
        "everything is after 2000"
    );
    let e = cli_err(&b, &[&reset[..], &["--to-datetime", "yesterday"]].concat());
    assert!(e.contains("YYYY-MM-DDTHH:mm:SS"), "{e}");

    // --output json: one document, parsed as a script would.
    let plan = json_of(
        &b,
        &[
            &reset[..],
            &["--to-latest", "--dry-run", "--output", "json"],
        ]
        .concat(),
    );
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["partitions"],
        json!([{"topic": "ops", "partition": 0, "committed": 16, "new_offset": 20}])
    );
    assert_eq!(
        committed(&b).as_deref(),
        Some("16"),
        "a dry run commits nothing"
    );
    let group = json_of(&b, &["groups", "describe", "og", "--output", "json"]);
    assert_eq!(group["group"], "og");
    assert_eq!(group["members"], json!([]));
    let row = group["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partition"] == 0)
        .unwrap()
        .clone();
    assert_eq!(
        row,
        json!({"topic": "ops", "partition": 0, "committed": 16, "high_watermark": 20, "lag": 4})
    );
    let groups = json_of(&b, &["groups", "list", "--output", "json"]);
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "og"),
        "{groups}"
    );
    let topics = json_of(&b, &["topics", "list", "--output", "json"]);
    assert!(
        topics
            .as_array()
            .unwrap()
            .contains(&json!({"name": "ops", "partitions": 5, "internal": false})),
        "{topics}"
    );
    let described = json_of(&b, &["topics", "describe", "ops", "--output", "json"]);
    let p0 = &described[0]["partitions"][0];
    assert_eq!(
        (
            &p0["leader"],
            &p0["log_start_offset"],
            &p0["high_watermark"]
        ),
        (&json!(0), &json!(16), &json!(20))
    );
    assert_eq!(described[0]["configs"]["retention.bytes"], "100000");
    let configs = json_of(
        &b,
        &["configs", "describe", "--topic", "ops", "--output", "json"],
    );
    let rb = configs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention.bytes")
        .unwrap();
    assert_eq!(
        (&rb["value"], &rb["source"]),
        (&json!("100000"), &json!("DYNAMIC_TOPIC_CONFIG"))
    );

    let o = cli_ok(
        &b,
        &[
            "groups",
            "delete-offsets",
            "og",
            "--topic",
            "ops",
            "--partition",
            "0",
        ],
    );
    assert!(o.contains("deleted"), "{o}");
    assert_eq!(committed(&b), None, "no committed offset left for ops-0");

    // DeleteGroups: an empty group goes; a group that does not exist is an error.
    assert!(cli_ok(&b, &["groups", "delete", "og"]).contains("deleted group og"));
    let groups = json_of(&b, &["groups", "list", "--output", "json"]);
    assert!(
        !groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "og"),
        "{groups}"
    );
    let e = cli_err(&b, &["groups", "delete", "og"]);
    assert!(e.contains("GroupIdNotFound"), "{e}");
}

#[test]
fn serve_log_format_json_writes_one_json_object_a_line() {
    let b = Broker::start(&["--log-format", "json"]);
    crate::harness::create_topic(&b, "logged", 1);
    let log = b.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(!lines.is_empty(), "the broker logged at start");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{log}"
    );
}
