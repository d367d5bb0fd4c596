//! What reaches the broker task: connection readers send requests and closes, the disk's
//! blocking threads send finished fsyncs, the accept loop sends new connections. Its own module
//! so that `connection` and `runtime` depend on it and not on each other.

use crate::backlog::Backlog;
use crate::connection::Frame;
use crate::disk::StorageResult;
use gregor_core::cluster::BrokerId;
use gregor_core::io::ReplicaFetchId;
use gregor_core::io::Request;
use gregor_core::kafka_protocol::messages::FetchResponse;
use gregor_core::{ConnId, OpId};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Everything that reaches the broker task.
// Requests dominate the size; boxing them would add an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    Open {
        conn: ConnId,
        peer: SocketAddr,
        writer: mpsc::UnboundedSender<Frame>,
        permits: Arc<Semaphore>,
        backlog: Arc<Backlog>,
        /// The listener it came in on (net/src/listener.rs).
        listener: crate::listener::SecurityProtocol,
        /// Who it is so far: `User:ANONYMOUS`, or a TLS client certificate's subject.
        principal: String,
    },
    /// The connection authenticated with SASL as `principal` (`User:alice`).
    Authenticated {
        conn: ConnId,
        principal: String,
    },
    Request {
        conn: ConnId,
        request: Request,
    },
    Closed {
        conn: ConnId,
    },
    SyncDone {
        op: OpId,
        result: StorageResult,
        /// How long the fsync took (for the fsync latency histogram).
        took: std::time::Duration,
    },
    /// A replica fetch's answer from the leader `from`, or why there is none
    /// (`replica_fetcher.rs`): exactly one per `Output::ReplicaFetch`.
    ReplicaFetched {
        from: BrokerId,
        id: ReplicaFetchId,
        result: Result<FetchResponse, String>,
    },
    /// The metrics endpoint asks for the current metrics, encoded as text. (Under madsim there
    /// is no HTTP endpoint, so nothing sends it.)
    #[cfg_attr(madsim, allow(dead_code))]
    Scrape {
        reply: tokio::sync::oneshot::Sender<String>,
    },
}
