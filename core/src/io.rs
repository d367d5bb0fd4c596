//! The whole vocabulary between the broker and the world.
//!
//! Facts come in as [`Input`]s; effects leave as [`Output`]s. A driver (the tokio runtime in
//! `net`, the simulator in `sim`) turns outputs into real or simulated I/O and feeds the results
//! back as inputs. Nothing else crosses the boundary.
//!
//! ## Storage contract
//! Storage requests are executed **in the order they are emitted**, per broker, as if by one
//! FIFO queue: a write emitted after another lands after it, a read sees every write emitted
//! before it, a truncate cuts what was written before it. Completions are reported with the
//! [`OpId`] of the request; the driver may report them in any order (a slow fsync may complete
//! after later appends) but an operation's effect never overtakes an earlier one's.
//! [`StorageRequest::Sync`] completing means every write emitted before it to that file is on
//! stable storage.

use crate::time::Instant;
use bytes::Bytes;
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, RequestHeader, RequestKind, ResponseKind,
};

/// One client connection, numbered by the driver. Responses go back on the same connection, in
/// the order the requests arrived (Kafka clients rely on that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Names one storage operation, so its completion can be matched to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Names one replica fetch (a follower's Fetch to a partition leader), so its answer can be
/// matched to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaFetchId(pub u64);

/// A topic partition's identity on disk: the directory `<topic>-<partition>`, as in Kafka.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionDir {
    pub topic: String,
    pub partition: i32,
}

impl PartitionDir {
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// A segment file: `<topic>-<partition>/<base_offset:020>.log`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentFile {
    pub dir: PartitionDir,
    pub base_offset: i64,
}

impl SegmentFile {
    pub fn file_name(&self) -> String {
        format!("{:020}.log", self.base_offset)
    }
    /// The segment's sparse offset index: `<base_offset:020>.index`, beside it.
    pub fn index_file_name(&self) -> String {
        format!("{:020}.index", self.base_offset)
    }
    /// The segment's time index: `<base_offset:020>.timeindex`, beside it.
    pub fn time_index_file_name(&self) -> String {
        format!("{:020}.timeindex", self.base_offset)
    }
    /// The cleaner's output for this segment while it is written: `<base_offset:020>.log.cleaned`
    /// (Kafka's suffix). Discarded at start: the old segment is whole beside it.
    pub fn cleaned_file_name(&self) -> String {
        format!("{:020}.log.cleaned", self.base_offset)
    }
    /// The cleaner's output once complete and durable, about to replace the segment:
    /// `<base_offset:020>.log.swap` (Kafka's suffix). Renamed into place at start.
    pub fn swap_file_name(&self) -> String {
        format!("{:020}.log.swap", self.base_offset)
    }
}

impl PartitionDir {
    /// A producer-state snapshot's file name: `<offset:020>.snapshot` (Kafka's name).
    pub fn snapshot_file_name(offset: i64) -> String {
        assert!(offset >= 0, "snapshots are taken at log offsets");
        format!("{offset:020}.snapshot")
    }
}

/// An effect on storage. See the module docs for the ordering contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageRequest {
    /// Create the partition directory and write its metadata file (`partition.meta`), durably.
    CreatePartition { dir: PartitionDir, meta: Bytes },
    /// Remove a partition directory and everything in it.
    DeletePartition { dir: PartitionDir },
    /// Create a new, empty segment file holding `header`, durably (file and directory entry).
    CreateSegment { file: SegmentFile, header: Bytes },
    /// Write `data` at byte `position` of the segment file.
    Append {
        file: SegmentFile,
        position: u64,
        data: Bytes,
    },
    /// Make every earlier write to the file durable (fsync).
    Sync { file: SegmentFile },
    /// Read `len` bytes at `position` (fewer if the file is shorter).
    Read {
        file: SegmentFile,
        position: u64,
        len: u32,
    },
    /// Cut the file to `len` bytes, durably.
    Truncate { file: SegmentFile, len: u64 },
    /// Delete a segment file and its two index files (and a `.cleaned` or `.swap` file the
    /// cleaner left for it).
    DeleteSegment { file: SegmentFile },
    /// Write a segment's sparse offset index (`.index`) and time index (`.timeindex`)
    /// (`log::index::encode_indexes`), which describe the first `covers` bytes of the segment.
    /// First make the segment durable (fsync), then replace each file atomically and durably:
    /// an index never vouches for bytes a power loss could take. If the segment is shorter than
    /// `covers` (a write the core counted failed), write nothing and fail. A failure only costs
    /// a longer scan at the next start.
    WriteSegmentIndex {
        file: SegmentFile,
        covers: u64,
        index: Bytes,
        time_index: Bytes,
    },
    /// Delete a segment's two index files, durably, if they exist (before the segment is cut,
    /// so a stale index never outlives the bytes it described).
    DeleteSegmentIndex { file: SegmentFile },
    /// Write a producer-state snapshot (`<offset>.snapshot` in the partition directory): the
    /// idempotent producers' state after every batch below `offset`. First make `segment` (the
    /// active segment, which holds the newest batches the snapshot covers) durable, then write
    /// the file atomically and durably, then delete the directory's snapshots below
    /// `delete_below`. A failure only costs a longer replay at the next start.
    WriteProducerSnapshot {
        dir: PartitionDir,
        segment: SegmentFile,
        offset: i64,
        data: Bytes,
        delete_below: i64,
    },
    /// Delete, durably, every producer snapshot of the directory taken above `above` (the log
    /// was cut there: they describe batches that are gone).
    DeleteProducerSnapshots { dir: PartitionDir, above: i64 },
    /// Replace the broker's own metadata file (`broker.meta`) atomically and durably.
    WriteBrokerMeta { data: Bytes },
    /// Log compaction (`log::cleaner`), first step of replacing a closed segment: create
    /// `<base>.log.cleaned` (replacing any leftover) holding `header`. Not durable yet.
    CreateCleanedSegment { file: SegmentFile, header: Bytes },
    /// Write `data` at byte `position` of the segment's `.cleaned` file.
    AppendCleanedSegment {
        file: SegmentFile,
        position: u64,
        data: Bytes,
    },
    /// The `.cleaned` file is complete: fsync it, delete the segment's index files (they
    /// describe the old bytes), rename it to `<base>.log.swap`, and make the rename durable.
    /// From here recovery finishes the swap; before it, recovery discards the `.cleaned` file.
    SwapCleanedSegment { file: SegmentFile },
    /// Rename `<base>.log.swap` over `<base>.log` (atomically: a reader of the directory sees
    /// the old segment or the new, never neither), durably. Reads emitted after this see the
    /// new file.
    CompleteSegmentSwap { file: SegmentFile },
    /// Delete the segment's `.cleaned` file, durably, if it exists (a clean interrupted before
    /// its swap: found at start, or abandoned after a failed write).
    DiscardCleanedSegment { file: SegmentFile },
}

/// The successful result of a storage operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageReply {
    Done,
    Read(Bytes),
}

/// Why a storage operation failed. These are faults of the environment, not of the client nor
/// of gregor: they become `KAFKA_STORAGE_ERROR` for the requests that depended on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left on the device.
    DiskFull,
    /// Any other I/O error, with the driver's description.
    Io(String),
}

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageFault::DiskFull => write!(f, "disk full"),
            StorageFault::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// A decoded Kafka request as the wire layer hands it to the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Something that happened, with the time it happened.
// A request is by far the largest input; boxing it would cost an allocation per request on the
// hot path for no gain, since inputs are consumed at once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Input {
    /// A connection sent a request.
    Request {
        now: Instant,
        conn: ConnId,
        request: Request,
    },
    /// Who connection `conn` is (KIP-11's principal): `User:ANONYMOUS` until told otherwise;
    /// the driver says so when the connection opens (a TLS client certificate's subject) and
    /// again once SASL authenticates it. `host` is the client's address, for ACL host filters.
    Principal {
        now: Instant,
        conn: ConnId,
        principal: String,
        host: String,
    },
    /// A connection is gone; forget its pending work (appends it caused still complete).
    ConnClosed { now: Instant, conn: ConnId },
    /// A storage operation completed.
    StorageDone {
        now: Instant,
        op: OpId,
        result: Result<StorageReply, StorageFault>,
    },
    /// Time passed; the deadline returned by `poll_timeout()` may have been reached.
    Tick { now: Instant },
    /// The committed metadata image moved (KRaft mode only): delivered after every change of
    /// the image, in offset order. The broker diffs it against the previous one it saw.
    Metadata {
        now: Instant,
        image: std::sync::Arc<crate::cluster::MetadataImage>,
    },
    /// The active controller answered the [`Output::Controller`] request `id`.
    ControllerReply {
        now: Instant,
        id: crate::cluster::RequestId,
        result: Result<crate::cluster::Reply, crate::cluster::ControllerError>,
    },
    /// The partition leader `from` answered the [`Output::ReplicaFetch`] `id`, or the driver
    /// gave up on it: `Err` names why (no endpoint known for the broker, connection refused or
    /// lost, no answer within the driver's timeout, an answer that did not decode).
    ReplicaFetched {
        now: Instant,
        from: crate::cluster::BrokerId,
        id: ReplicaFetchId,
        result: Result<FetchResponse, String>,
    },
}

impl Input {
    pub fn now(&self) -> Instant {
        match self {
            Input::Request { now, .. }
            | Input::Principal { now, .. }
            | Input::ConnClosed { now, .. }
            | Input::StorageDone { now, .. }
            | Input::Tick { now }
            | Input::Metadata { now, .. }
            | Input::ControllerReply { now, .. }
            | Input::ReplicaFetched { now, .. } => *now,
        }
    }
}

/// An effect the driver must carry out.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send a response to a connection. Encode `body` at `api_version` with a response header
    /// carrying `correlation_id`.
    Response {
        conn: ConnId,
        correlation_id: i32,
        api_version: i16,
        body: ResponseKind,
    },
    /// Close a connection (after sending any responses emitted before this output).
    Close { conn: ConnId, reason: String },
    /// Perform a storage operation and report its completion with `Input::StorageDone`.
    Storage { op: OpId, request: StorageRequest },
    /// A line for the operator's log: bad input from a client, a repair made at recovery, a
    /// storage fault. The core does no logging itself; the driver writes these out.
    Log { level: LogLevel, message: String },
    /// Ask the active controller (KRaft mode only): the node's metadata side routes it to the
    /// active controller, retrying NOT_CONTROLLER, and answers with
    /// [`Input::ControllerReply`] carrying the same `id`. A standalone broker never emits it.
    Controller {
        id: crate::cluster::RequestId,
        request: crate::cluster::Request,
    },
    /// Replication (KRaft mode only): this broker follows partitions that broker `to` leads and
    /// fetches their records as Kafka's replica fetcher does, with a Kafka Fetch request naming
    /// this broker as `replica_id`. The driver sends `request` at `api_version` to `to`'s
    /// endpoint as the latest metadata image registers it, on a connection it keeps for that
    /// broker, and answers with exactly one [`Input::ReplicaFetched`] carrying the same `id`:
    /// the response, or why there is none. The broker has at most one fetch out per leader and
    /// paces its own retries after an error.
    ReplicaFetch {
        to: crate::cluster::BrokerId,
        id: ReplicaFetchId,
        api_version: i16,
        request: FetchRequest,
    },
}

/// How serious a log line from the core is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}
