//! Topic configs are enforced, not only stored (issue 13, item 2): confluent-kafka sees
//! `max.message.bytes` refuse a larger batch with MESSAGE_TOO_LARGE until an
//! IncrementalAlterConfigs raises it, `segment.bytes` with `retention.bytes` keep the log near
//! its size limit, and `segment.ms` with `retention.ms` delete records by age (the broker's
//! `log.retention.check.interval.ms` set low with `--override`, so the test takes seconds).
//! `cleanup.policy=compact` is in compaction.rs and `min.insync.replicas` (NOT_ENOUGH_REPLICAS
//! for acks=all) in replication.rs.

use crate::harness::{python, Broker};

#[test]
fn topic_configs_bound_batches_roll_segments_and_delete_by_size_and_age() {
    let b = Broker::start(&["--override", "log.retention.check.interval.ms=200"]);
    let out = python("enforced_configs.py", &[&b.bootstrap()]);

    // max.message.bytes=1000: 100 bytes pass, 3000 are refused, and pass once it is raised.
    assert_eq!(out["mmb_small"], serde_json::Value::Null, "{out}");
    assert_eq!(out["mmb_big"], "MSG_SIZE_TOO_LARGE", "{out}");
    assert_eq!(out["mmb_big_after"], serde_json::Value::Null, "{out}");
    assert_eq!(out["mmb_read"], serde_json::json!([100, 3000]), "{out}");

    // retention.bytes=3000 over 1 KiB segments: the oldest segments went, whole; what stays is
    // at most the limit plus the active segment (~15 batches of ~270 bytes), and a consumer
    // from the earliest offset starts at the new log start.
    let (low, high) = (
        out["rb_watermarks"][0].as_i64(),
        out["rb_watermarks"][1].as_i64(),
    );
    let (low, high) = (low.unwrap(), high.unwrap());
    assert_eq!(high, 40, "{out}");
    assert!(low > 0 && high - low <= 16, "kept {low}..{high}: {out}");
    assert_eq!(out["rb_read_first"].as_i64(), Some(low), "{out}");

    // retention.ms=3000 with segment.ms=100: the five old records, each in its own segment,
    // are deleted by age; the newer one stays.
    assert_eq!(out["rm_watermarks"], serde_json::json!([5, 6]), "{out}");
    assert_eq!(out["rm_read"], serde_json::json!(["new"]), "{out}");

    let log = b.log();
    assert!(
        log.contains("log.retention.check.interval.ms=200"),
        "the start-up log shows the overridden setting: {log}"
    );
    assert!(log.contains("offsets.commit.timeout.ms=5000"), "{log}");
}

/// A broker setting the file or flags get wrong stops the start with an error naming it.
#[test]
fn an_unknown_or_malformed_override_stops_the_start_naming_it() {
    for (arg, names) in [
        ("no.such.setting=1", "no.such.setting"),
        (
            "offsets.commit.timeout.ms=soon",
            "offsets.commit.timeout.ms",
        ),
        (
            "offsets.commit.timeout.ms=0",
            "offsets_commit_timeout_ms must be at least 1",
        ),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "gregor-it-override-{}-{}",
            std::process::id(),
            crate::harness::free_port()
        ));
        let mut child = std::process::Command::new(crate::harness::gregor_bin())
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{}", crate::harness::free_port()))
            .arg("--data-dir")
            .arg(&dir)
            .args(["--override", arg])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start gregor");
        // Bounded: a broker that accepted the setting would serve until killed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("gregor serve --override {arg} started instead of refusing it");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{arg}: {stderr}");
        assert!(stderr.contains(names), "{arg}: {stderr}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
