//! The two example topologies `gregor streams` runs (docs/streams.md).

use gregor_streams::{Record, StreamsBuilder, Topology, Windows};

/// Word count, Kafka Streams' first example: split each line into lowercase words, group by
/// word (through a repartition topic), count, and write the latest count of each word to
/// `output` (key: the word, value: the count as decimal text).
pub fn wordcount(app_id: &str, input: &str, output: &str) -> Result<Topology, String> {
    let b = StreamsBuilder::new(app_id);
    b.stream(input)
        .flat_map(|r: Record| {
            let text = r.value_str().to_lowercase();
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| Record {
                    key: Some(w.as_bytes().to_vec()),
                    value: Some(w.as_bytes().to_vec()),
                    timestamp_ms: r.timestamp_ms,
                    headers: vec![],
                })
                .collect()
        })
        .group_by_key()
        .count("counts")
        .to_stream()
        .to(output);
    b.build()
}

/// Log lines per severity per window: the syslog source (`gregor connect`) puts each line's
/// severity (`err`, `warning`, `info`, …) in the header `severity`. Key the lines by it, count
/// them in tumbling windows of `window_ms` (a minute) with a grace period for late lines, and
/// write `<severity>@<window start ms>` → count to `output`. Lines without the header count
/// under `unknown`.
pub fn severity(
    app_id: &str,
    input: &str,
    output: &str,
    window_ms: i64,
    grace_ms: i64,
) -> Result<Topology, String> {
    if window_ms <= 0 || grace_ms < 0 {
        return Err("the window must be positive and the grace not negative".into());
    }
    let b = StreamsBuilder::new(app_id);
    b.stream(input)
        .select_key(|r| Some(r.header("severity").unwrap_or(b"unknown").to_vec()))
        .group_by_key()
        .windowed_by(Windows::tumbling(window_ms).grace(grace_ms))
        .count("severity-counts")
        .to_stream()
        .to(output);
    b.build()
}
