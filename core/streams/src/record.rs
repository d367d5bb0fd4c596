//! A record as a task sees it, and the records a task asks the runner to produce.

/// One record: Kafka's key, value, timestamp and headers. Keys and values are bytes; the
/// topology's functions give them meaning (Kafka Streams' serdes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Event time in Unix milliseconds: the producer's (or the broker's) timestamp. Windows and
    /// stream time are computed from it, never from a clock.
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    pub fn new(key: Option<&[u8]>, value: Option<&[u8]>, timestamp_ms: i64) -> Record {
        Record {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp_ms,
            headers: vec![],
        }
    }

    /// The last header named `name` with a value, as Kafka's `Headers.lastHeader`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The value as UTF-8 text (lossy), empty when there is none.
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

/// What a produced record is for: the runner treats them alike (all must be acknowledged
/// before the input offsets are committed), but they are counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitKind {
    /// A sink's record, for the application's output topic.
    Output,
    /// A record through an internal repartition topic, keyed so that a key's records meet in
    /// one partition (and so in one task) downstream.
    Repartition,
    /// A state store change, for its changelog topic, on the task's own partition.
    Changelog,
}

/// A record to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emit {
    pub topic: String,
    /// `Some` for changelog records (the task's partition); `None` lets the producer's
    /// partitioner choose by key (murmur2, as the Java client).
    pub partition: Option<i32>,
    pub record: Record,
    pub kind: EmitKind,
}

/// The header a repartition record carries its [`Origin`] in; tasks remove it on reading, so
/// it never reaches an output topic.
pub const ORIGIN_HEADER: &str = "gregor.streams.origin";

/// Where a record came from: the input record (topic, partition, offset) whose processing
/// produced it, and its place among that input record's repartition records.
///
/// Under at-least-once, an input record is processed again after a crash or a rebalance (its
/// offset was not yet committed), and a stateless step before a repartition topic then writes
/// its results twice. An aggregation reading the repartition topic sees origins that only
/// grow, from one upstream partition, as long as one task at a time writes them (in order:
/// the producer is idempotent); an origin not above the highest one applied is such a repeat,
/// and the aggregation skips it instead of counting it twice. The highest origin applied per
/// upstream partition travels in every changelog record, so a restored store knows it too.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub index: u32,
}

impl Origin {
    /// topic bytes, then partition (4), offset (8) and index (4), big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.topic.as_bytes().to_vec();
        b.extend_from_slice(&self.partition.to_be_bytes());
        b.extend_from_slice(&self.offset.to_be_bytes());
        b.extend_from_slice(&self.index.to_be_bytes());
        b
    }

    /// `None` for a header too short or a topic not UTF-8 (a record not written by a task).
    pub fn decode(b: &[u8]) -> Option<Origin> {
        let (topic, rest) = b.split_at_checked(b.len().checked_sub(16)?)?;
        Some(Origin {
            topic: String::from_utf8(topic.to_vec()).ok()?,
            partition: i32::from_be_bytes(rest[0..4].try_into().ok()?),
            offset: i64::from_be_bytes(rest[4..12].try_into().ok()?),
            index: u32::from_be_bytes(rest[12..16].try_into().ok()?),
        })
    }

    /// The upstream partition the order of origins is kept per.
    pub fn stream(&self) -> (String, i32) {
        (self.topic.clone(), self.partition)
    }
}
