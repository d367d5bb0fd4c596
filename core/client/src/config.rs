//! The client's settings, named and defaulted as the Java client names them (`linger.ms` is
//! `linger_ms`), each limit checked once in [`Config::validate`].

use kafka_protocol::records::Compression;

/// How many brokers must have a record before the producer is told it is written (`acks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker sends no response at all; a record counts as delivered once it is
    /// written on the socket, with no offset.
    None,
    /// `acks=1`: the leader wrote it.
    Leader,
    /// `acks=all` (−1): every in-sync replica has it. Required for idempotence.
    All,
    /// `acks=N`, N ≥ 2: the leader and N−1 followers have it (durably, under group commit).
    /// gregor's broker takes it (refused with NOT_ENOUGH_REPLICAS while fewer than N replicas
    /// are in the ISR); Kafka's refuses it (INVALID_REQUIRED_ACKS), and so does the Java
    /// client. What it promises is in docs/guarantees.md. Not idempotent.
    Replicas(u8),
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
            Acks::Replicas(n) => {
                assert!(n >= 2, "acks=N counts the leader and at least one follower");
                i16::from(n)
            }
        }
    }
    /// Parse Kafka's spellings: `0`, `1`, `all` or `-1`, and a replica count N from 2 up.
    pub fn parse(s: &str) -> Result<Acks, String> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => match other.parse::<u8>() {
                Ok(n) if n >= 2 => Ok(Acks::Replicas(n)),
                _ => Err(format!(
                    "acks must be 0, 1, all, -1 or a replica count from 2, not {other:?}"
                )),
            },
        }
    }
}

/// Where a consumer starts when it has no position, or its position is out of range
/// (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Stop and report an error to the application.
    None,
}

/// Parse a `compression.type` name.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(format!(
            "compression must be none, gzip, snappy, lz4 or zstd, not {other:?}"
        )),
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `host:port` of brokers to ask for metadata first (`bootstrap.servers`).
    pub bootstrap: Vec<(String, u16)>,
    pub client_id: String,
    /// Seed of the client's PRNG (sticky partition choices). Same seed, same choices.
    pub seed: u64,

    pub acks: Acks,
    /// KIP-98: sequence numbers per partition so a retried batch is written once. Needs
    /// `acks=all`; with other acks the client turns it off, as the Java client does when the
    /// setting was not asked for explicitly.
    pub enable_idempotence: bool,
    /// Bytes of records the producer collects per partition before it sends a batch.
    pub batch_bytes_max: usize,
    /// How long a batch waits for more records before it is sent anyway (`linger.ms`).
    pub linger_ms: u64,
    /// Produce requests in flight on one connection (`max.in.flight.requests.per.connection`);
    /// at most 5 with idempotence (the broker remembers five batches per producer and
    /// partition, KIP-98 / KAFKA-5494).
    pub in_flight_requests_per_connection_max: usize,
    /// The largest request the producer builds (`max.request.size`); a record above it fails.
    pub request_bytes_max: usize,
    /// Time from `send` to a delivery report, retries included (`delivery.timeout.ms`, KIP-91).
    pub delivery_timeout_ms: u64,
    /// How long a request may wait for its response before its connection is closed.
    pub request_timeout_ms: u64,
    /// Pause before retrying a failed request or metadata lookup (`retry.backoff.ms`).
    pub retry_backoff_ms: u64,
    /// Pause before reconnecting to a broker that dropped (`reconnect.backoff.ms`).
    pub reconnect_backoff_ms: u64,
    /// Metadata older than this is refreshed even without errors (`metadata.max.age.ms`).
    pub metadata_max_age_ms: u64,
    pub compression: Compression,

    pub auto_offset_reset: OffsetReset,
    /// How long a broker may hold a fetch waiting for data (`fetch.max.wait.ms`).
    pub fetch_wait_ms_max: i32,
    /// Bytes a fetch response may carry in all (`fetch.max.bytes`) and per partition
    /// (`max.partition.fetch.bytes`); the first batch comes back whole even if larger (KIP-74).
    pub fetch_bytes_max: i32,
    pub fetch_partition_bytes_max: i32,

    /// Whether Metadata requests may create the topics they name
    /// (`allow.auto.create.topics`); an admin client turns it off.
    pub allow_auto_topic_creation: bool,
    /// How long an admin operation may take, retries included (`default.api.timeout.ms`).
    pub default_api_timeout_ms: u64,
    /// Log in with SASL on every connection (`security.protocol=SASL_PLAINTEXT` with
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`); `None`: PLAINTEXT.
    pub sasl: Option<crate::sasl::Login>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bootstrap: vec![("127.0.0.1".into(), 9092)],
            client_id: "gregor-client".into(),
            seed: 0,
            acks: Acks::All,
            enable_idempotence: true,
            batch_bytes_max: 16 * 1024,
            linger_ms: 5,
            in_flight_requests_per_connection_max: 5,
            request_bytes_max: 1024 * 1024,
            delivery_timeout_ms: 120_000,
            request_timeout_ms: 30_000,
            retry_backoff_ms: 100,
            reconnect_backoff_ms: 50,
            metadata_max_age_ms: 300_000,
            compression: Compression::None,
            auto_offset_reset: OffsetReset::Latest,
            fetch_wait_ms_max: 500,
            fetch_bytes_max: 50 * 1024 * 1024,
            fetch_partition_bytes_max: 1024 * 1024,
            allow_auto_topic_creation: true,
            default_api_timeout_ms: 60_000,
            sasl: None,
        }
    }
}

impl Config {
    /// Whether the producer runs idempotent: asked for, and acks=all.
    pub fn idempotent(&self) -> bool {
        self.enable_idempotence && self.acks == Acks::All
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap.is_empty() {
            return Err("bootstrap servers: at least one host:port".into());
        }
        if self.batch_bytes_max == 0 || self.batch_bytes_max > self.request_bytes_max {
            return Err(format!(
                "batch_bytes_max ({}) must be in 1..=request_bytes_max ({})",
                self.batch_bytes_max, self.request_bytes_max
            ));
        }
        if self.in_flight_requests_per_connection_max == 0
            || (self.idempotent() && self.in_flight_requests_per_connection_max > 5)
        {
            return Err(format!(
                "in_flight_requests_per_connection_max ({}) must be 1..=5 with idempotence, and at least 1",
                self.in_flight_requests_per_connection_max
            ));
        }
        if self.request_timeout_ms == 0 || self.delivery_timeout_ms < self.linger_ms {
            return Err("request_timeout_ms > 0 and delivery_timeout_ms >= linger_ms".into());
        }
        if self.compression == Compression::Lz4 {
            // The producer encodes with gregor-core's batch encoder, whose LZ4 would link a C
            // library into the sans-IO crates; the consumer reads LZ4 all the same.
            return Err("the producer compresses with none, gzip, snappy or zstd; not lz4".into());
        }
        if self.fetch_wait_ms_max < 0
            || self.fetch_bytes_max <= 0
            || self.fetch_partition_bytes_max <= 0
        {
            return Err("fetch limits must be positive".into());
        }
        if let Some(login) = &self.sasl {
            login.validate()?;
        }
        Ok(())
    }
}

/// Split `host:port` (bracketed IPv6 allowed).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected host:port, not {s:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port in {s:?}: {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("empty host in {s:?}"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod acks_tests {
    use super::Acks;

    #[test]
    fn acks_parse_kafkas_spellings_and_a_replica_count() {
        assert_eq!(Acks::parse("all").map(Acks::wire), Ok(-1));
        assert_eq!(Acks::parse("-1"), Ok(Acks::All));
        assert_eq!(Acks::parse("1"), Ok(Acks::Leader));
        assert_eq!(Acks::parse("3"), Ok(Acks::Replicas(3)));
        assert_eq!(Acks::Replicas(2).wire(), 2);
        for bad in ["-2", "256", "two", ""] {
            assert!(Acks::parse(bad).is_err(), "{bad:?}");
        }
    }
}
