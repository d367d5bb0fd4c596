//! The whole vocabulary between the client and the world.
//!
//! Facts come in as [`Input`]s, each carrying `now`: a connection opened, a response frame
//! arrived, a connection dropped, time passed. Effects leave as [`Output`]s: open a connection
//! to a broker, send a request frame on it, close it — and the results the application waits
//! for, a record's delivery report or records fetched from a partition. A driver (the tokio one
//! in `gregor-net`, or a test) carries the network effects out and hands everything else to the
//! application.

use bytes::Bytes;
use gregor_core::Instant;
use kafka_protocol::ResponseError;
use std::fmt;

/// A broker the client talks to. Bootstrap servers are numbered −1, −2, … until metadata names
/// the cluster's real brokers by their `node.id` (the Java client does the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

impl NodeId {
    /// The `i`th bootstrap server's id.
    pub fn bootstrap(i: usize) -> NodeId {
        NodeId(-1 - i as i32)
    }
    pub fn is_bootstrap(self) -> bool {
        self.0 < 0
    }
}

/// One record as the application hands it to the producer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// A partition chosen by the application; `None` lets the partitioner choose (by key, or
    /// sticky for records without one).
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Creation time in Unix milliseconds; `None` stamps the record with `now` when it is sent.
    pub timestamp_ms: Option<i64>,
}

/// The handle [`crate::Client::send`] returns; the delivery report carries it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

/// Where a record landed, or why it did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: RecordId,
    pub topic: String,
    /// The partition it was sent to (−1 if it failed before a partition was chosen).
    pub partition: i32,
    /// Its offset in the partition; −1 when the broker does not say (acks=0, or a batch the
    /// broker recognised as a duplicate of one it had already written).
    pub result: Result<i64, ClientError>,
}

/// One record read from a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Records fetched from one partition, in offset order, each at or after the position the
/// consumer had; the position is now one past the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub topic: String,
    pub partition: i32,
    pub records: Vec<ConsumerRecord>,
    /// The partition's high watermark when the broker answered: the offset the next produced
    /// record will get, as far as consumers can see. A position equal to it is the end.
    pub high_watermark: i64,
}

/// Why a record or a read failed, and whose fault it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The broker refused with a Kafka error code that retrying does not cure (or retries ran
    /// out of time).
    Broker { code: i16, message: String },
    /// `delivery.timeout.ms` passed before the record was acknowledged.
    Timeout(String),
    /// The application asked for something impossible (a record larger than a request may be,
    /// a partition the topic does not have).
    Invalid(String),
}

impl ClientError {
    pub fn broker(code: i16, context: impl Into<String>) -> ClientError {
        ClientError::Broker {
            code,
            message: context.into(),
        }
    }
    /// The Kafka error code, if a broker gave one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A Kafka error code as its name: `NOT_LEADER_OR_FOLLOWER (6)`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None if code == 0 => "NONE".into(),
        None => format!("UNKNOWN_ERROR ({code})"),
        Some(e) => format!("{e:?} ({code})"),
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Broker { code, message } => write!(f, "{}: {message}", error_name(*code)),
            ClientError::Timeout(m) => write!(f, "timed out: {m}"),
            ClientError::Invalid(m) => write!(f, "invalid: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Something that happened, with the time it happened.
#[derive(Clone, Debug)]
pub enum Input {
    /// The connection asked for by [`Output::Connect`] is open.
    Connected { now: Instant, node: NodeId },
    /// One response frame arrived on a connection: the bytes after the 4-byte length prefix.
    Frame {
        now: Instant,
        node: NodeId,
        frame: Bytes,
    },
    /// The connection is gone (refused, reset, closed by the broker), or could not be opened.
    Disconnected {
        now: Instant,
        node: NodeId,
        reason: String,
    },
    /// Time passed; the deadline returned by `poll_timeout()` may have been reached.
    Tick { now: Instant },
}

impl Input {
    pub fn now(&self) -> Instant {
        match self {
            Input::Connected { now, .. }
            | Input::Frame { now, .. }
            | Input::Disconnected { now, .. }
            | Input::Tick { now } => *now,
        }
    }
}

/// An effect for the driver, or a result for the application.
#[derive(Clone, Debug)]
pub enum Output {
    /// Open a TCP connection to `host:port` for `node`; report `Connected` or `Disconnected`.
    Connect {
        node: NodeId,
        host: String,
        port: u16,
    },
    /// Write a whole request frame (length prefix included) on `node`'s connection.
    Send { node: NodeId, frame: Bytes },
    /// Close `node`'s connection. No `Disconnected` is expected for it.
    Close { node: NodeId, reason: String },
    /// A produced record was acknowledged, or failed for good.
    Delivered(Delivery),
    /// Records read from a partition.
    Records(Fetched),
    /// A partition the consumer reads can no longer be read (its position is out of range and
    /// `auto.offset.reset` is `none`, or its topic does not exist); it stays stopped until the
    /// application seeks.
    ConsumeError {
        topic: String,
        partition: i32,
        error: ClientError,
    },
    /// The consumer group cannot be joined (the broker refused for good: an unsupported
    /// assignor, a bad session timeout, a missing API); the member has left it.
    GroupError { group: String, error: ClientError },
    /// An admin operation's result (see [`crate::admin`]).
    Admin {
        id: crate::admin::AdminId,
        result: Result<crate::admin::AdminResult, ClientError>,
    },
    /// A line for the application's log (a retry, a leader change). The client does no logging.
    Log { message: String },
}
