//! Prometheus metrics (`--metrics-listen`): a real client's traffic shows in what the endpoint
//! serves, parsed by the Prometheus project's own Python parser.

use crate::harness::{create_topic, free_port, python, Broker};

#[test]
fn metrics_show_traffic_offsets_and_lag_as_prometheus_parses_them() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let b = Broker::start(&["--metrics-listen", &listen]);
    create_topic(&b, "mt", 2);
    let out = python(
        "metrics.py",
        &[&b.bootstrap(), &format!("http://{listen}/metrics"), "mt"],
    );
    assert_eq!(out["read"], 500, "the consumer read every record");
    let v = |key: &str| -> f64 {
        out["values"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("no sample {key} in {}", out["values"]))
    };
    // Records and bytes in: exactly what was acknowledged, counted from the batch headers.
    assert_eq!(v("gregor_topic_records_in_total{topic=mt}"), 500.0);
    let bytes_in = v("gregor_topic_in_bytes_total{topic=mt}");
    assert!(
        bytes_in > 500.0 * 100.0,
        "bytes in {bytes_in} hold 500 values of 100 bytes"
    );
    // Out: the consumer read everything at least once.
    assert!(v("gregor_topic_records_out_total{topic=mt}") >= 500.0);
    // Offsets per partition: 250 records each, all below the high watermark.
    for p in ["0", "1"] {
        let key = |m: &str| format!("{m}{{partition={p},topic=mt}}");
        assert_eq!(v(&key("gregor_partition_log_end_offset")), 250.0);
        assert_eq!(v(&key("gregor_partition_high_watermark")), 250.0);
        assert_eq!(v(&key("gregor_partition_log_start_offset")), 0.0);
        assert!(v(&key("gregor_partition_size_bytes")) > 0.0);
        // Committed 150 of 250: a lag of 100, as kafka-consumer-groups would show.
        assert_eq!(
            v(&format!(
                "gregor_group_lag{{group=mg,partition={p},topic=mt}}"
            )),
            100.0
        );
    }
    assert_eq!(
        v("gregor_group_members{group=mg}"),
        0.0,
        "the consumer closed"
    );
    // Requests and their latency, by API; fsyncs under the default group commit.
    assert!(v("gregor_requests_total{api=Produce}") >= 1.0);
    assert!(v("gregor_request_seconds_count{api=Produce}") >= 1.0);
    assert!(v("gregor_request_seconds_count{api=OffsetCommit}") >= 1.0);
    assert!(v("gregor_fsync_seconds_count{}") >= 1.0);
    assert!(v("gregor_connections_opened_total{}") >= 2.0);
    assert_eq!(v("gregor_connections_refused_total{}"), 0.0);
}
