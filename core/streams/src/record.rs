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
