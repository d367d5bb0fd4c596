//! `kill -9` mid-stream: every acknowledged record is there after a restart, at its offset.

use crate::harness::{python, Broker};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn kill_9_loses_no_acknowledged_record() {
    let mut b = Broker::start(&[]);
    let out = std::env::temp_dir().join(format!("gregor-acked-{}", b.port));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/produce_stream.py");
    let mut producer = Command::new("python3")
        .arg(&script)
        .args([&b.bootstrap(), "stream", out.to_str().unwrap(), "4"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    std::thread::sleep(Duration::from_millis(2500));
    b.kill9();
    let status = producer.wait().unwrap();
    assert!(status.success());
    let acked: Vec<(i64, i64, String)> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<(i64, i64, String)>(l).unwrap())
        .collect();
    assert!(
        acked.len() > 100,
        "the producer got going before the kill ({} acked)",
        acked.len()
    );
    b.restart();
    let got = python("consume_all.py", &[&b.bootstrap(), "stream", "1"]);
    let got: Vec<(i64, i64, String)> = serde_json::from_value(got).unwrap();
    let by_offset: BTreeMap<i64, &str> = got.iter().map(|(_, o, v)| (*o, v.as_str())).collect();
    for (_, offset, value) in &acked {
        assert_eq!(
            by_offset.get(offset).copied(),
            Some(value.as_str()),
            "acknowledged record at offset {offset} lost or changed"
        );
    }
    let distinct: BTreeSet<&str> = got.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(
        distinct.len(),
        got.len(),
        "the idempotent producer wrote no duplicate"
    );
    let offsets: Vec<i64> = got.iter().map(|(_, o, _)| *o).collect();
    assert_eq!(
        offsets,
        (0..got.len() as i64).collect::<Vec<_>>(),
        "offsets are dense"
    );
    let _ = std::fs::remove_file(out);
}

#[test]
fn sigterm_shuts_down_cleanly_and_data_survives() {
    let mut b = Broker::start(&[]);
    let r = python("kafka_python.py", &[&b.bootstrap()]);
    assert_eq!(r["offsets"], true);
    assert!(b.terminate(), "exit code 0 on SIGTERM");
    assert!(b.log().contains("shutting down"), "{}", b.log());
    b.restart();
    let got = python("consume_all.py", &[&b.bootstrap(), "kp", "1"]);
    assert_eq!(got.as_array().unwrap().len(), 500);
}
