//! The replica fetcher's transport: carries a follower's Fetch requests
//! ([`gregor_core::Output::ReplicaFetch`]) to partition leaders over TCP and hands each answer
//! back to the broker task as [`Event::ReplicaFetched`] (then `Input::ReplicaFetched`).
//!
//! In Kafka a follower replicates by fetching, like a consumer, with a Fetch request whose
//! `replica_id` names it (KIP-392 later moved it to `ReplicaState` at v15). Kafka's
//! `ReplicaFetcherManager` runs a `ReplicaFetcherThread` per source broker, each with one kept
//! connection (its `BlockingSend`). The core decides *what* to fetch and when to retry; this
//! module only moves bytes, with the same shape:
//!
//! * **One link per leader**: a task owning one kept TCP connection to the broker's first
//!   endpoint, as the latest metadata image registers it ([`ReplicaFetcher::on_image`]). A
//!   broker that re-registers at another address (restarted on another port) gets a new link;
//!   the old one finishes what it holds and ends.
//! * **Serialized**: the core keeps at most one fetch out per leader, so a link writes a
//!   request and reads its answer before the next (no pipelining to reorder).
//! * **Exactly one answer per request**, whatever happens: the response, or an `Err` naming
//!   why (no endpoint known, connection refused or lost, a response to another correlation id,
//!   an undecodable or oversized frame, no answer within `max_wait_ms` plus
//!   `replica.socket.timeout.ms`). Every request is held by a [`Pending`] that answers `Err`
//!   when dropped unanswered, so even a link task that dies answers.
//! * After an error the connection is dropped; the next fetch connects again. The core paces
//!   its retries (Kafka's `replica.fetch.backoff.ms`), so there is no backoff here.
//! * The broker task only pushes onto an unbounded channel: it never waits for the network.
//!   Memory is bounded: one request in flight per leader, and a response above
//!   [`FetcherConfig::response_bytes_max`] is refused before it is read.

use crate::connection::read_frame;
use crate::event::Event;
use crate::metrics::ReplicaFetchMetrics;
use bytes::Bytes;
use gregor_core::cluster::{BrokerId, MetadataImage};
use gregor_core::io::ReplicaFetchId;
use gregor_core::kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, RequestKind, ResponseHeader,
};
use gregor_core::kafka_protocol::protocol::{Decodable, StrBytes};
use gregor_core::wire;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// The transport's settings.
#[derive(Clone, Debug)]
pub struct FetcherConfig {
    /// Kafka's `replica.socket.timeout.ms` (30 s): on top of a fetch's own `max_wait_ms` (the
    /// leader may hold it that long), how long an answer may take before the fetch fails.
    pub socket_timeout: Duration,
    /// The largest response frame read; a longer length prefix fails the fetch and drops the
    /// connection (Kafka bounds it with `replica.fetch.response.max.bytes`, 10 MiB, in the
    /// request; this is the driver's own guard against a broken peer).
    pub response_bytes_max: usize,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        FetcherConfig {
            socket_timeout: Duration::from_secs(30),
            response_bytes_max: 100 * 1024 * 1024,
        }
    }
}

/// One fetch handed to a link.
struct Job {
    api_version: i16,
    request: FetchRequest,
}

/// A fetch not yet answered. Answering consumes it; dropping it unanswered answers `Err`.
struct Pending {
    from: BrokerId,
    id: ReplicaFetchId,
    answers: mpsc::UnboundedSender<Event>,
    answered: bool,
}

impl Pending {
    fn answer(mut self, result: Result<FetchResponse, String>) {
        self.answered = true;
        // A closed channel means the broker task is gone (shutting down): nobody to tell.
        let _ = self.answers.send(Event::ReplicaFetched {
            from: self.from,
            id: self.id,
            result,
        });
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.answers.send(Event::ReplicaFetched {
                from: self.from,
                id: self.id,
                result: Err(format!(
                    "the replica fetcher's link to broker {} ended before answering",
                    self.from.0
                )),
            });
        }
    }
}

/// The kept link to one leader: its address and the task's queue.
struct Link {
    addr: (String, u16),
    jobs: mpsc::UnboundedSender<(Job, Pending)>,
}

/// The replica fetcher of one broker: a link per leader it fetches from.
pub struct ReplicaFetcher {
    client_id: String,
    config: FetcherConfig,
    /// Each broker's first endpoint in the latest metadata image.
    endpoints: BTreeMap<BrokerId, (String, u16)>,
    links: BTreeMap<BrokerId, Link>,
    answers: mpsc::UnboundedSender<Event>,
    metrics: Option<ReplicaFetchMetrics>,
}

impl ReplicaFetcher {
    /// The fetcher of broker `local`; answers go to `answers` (the broker task's events).
    pub fn new(
        local: BrokerId,
        config: FetcherConfig,
        answers: mpsc::UnboundedSender<Event>,
        metrics: Option<ReplicaFetchMetrics>,
    ) -> ReplicaFetcher {
        ReplicaFetcher {
            client_id: format!("gregor-replica-fetcher-{}", local.0),
            config,
            endpoints: BTreeMap::new(),
            links: BTreeMap::new(),
            answers,
            metrics,
        }
    }

    /// Follow a new metadata image: every registered broker's PLAINTEXT endpoint (the
    /// inter-broker listener: the fetcher speaks neither TLS nor SASL yet), else its first. A link whose
    /// broker left or moved is let go (it answers what it holds, then ends).
    pub fn on_image(&mut self, image: &MetadataImage) {
        let endpoints = image
            .brokers()
            .iter()
            .filter_map(|(id, reg)| {
                let e = reg
                    .endpoints
                    .iter()
                    .find(|e| e.name == "PLAINTEXT")
                    .or(reg.endpoints.first())?;
                Some((*id, (e.host.clone(), e.port)))
            })
            .collect();
        self.set_endpoints(endpoints);
    }

    /// Replace the known endpoints (what [`ReplicaFetcher::on_image`] reads from an image).
    pub fn set_endpoints(&mut self, endpoints: BTreeMap<BrokerId, (String, u16)>) {
        self.endpoints = endpoints;
        let endpoints = &self.endpoints;
        self.links.retain(|to, link| {
            let keep = endpoints.get(to) == Some(&link.addr);
            if !keep {
                info!(
                    broker = to.0,
                    old = %format!("{}:{}", link.addr.0, link.addr.1),
                    new = ?endpoints.get(to).map(|(h, p)| format!("{h}:{p}")),
                    "replica fetcher: the leader's endpoint changed; dropping its connection"
                );
            }
            keep
        });
    }

    /// Send `request` to broker `to` at `api_version`; exactly one [`Event::ReplicaFetched`]
    /// with `id` follows. Never waits.
    pub fn fetch(
        &mut self,
        to: BrokerId,
        id: ReplicaFetchId,
        api_version: i16,
        request: FetchRequest,
    ) {
        let pending = Pending {
            from: to,
            id,
            answers: self.answers.clone(),
            answered: false,
        };
        if let Some(m) = &self.metrics {
            m.requests(to).inc();
        }
        let Some(addr) = self.endpoints.get(&to).cloned() else {
            if let Some(m) = &self.metrics {
                m.errors(to).inc();
            }
            pending.answer(Err(format!(
                "no endpoint known for broker {} in the metadata image",
                to.0
            )));
            return;
        };
        let link = self.links.entry(to).or_insert_with(|| {
            let (jobs, queue) = mpsc::unbounded_channel();
            tokio::spawn(link_task(
                to,
                addr.clone(),
                self.client_id.clone(),
                self.config.clone(),
                queue,
                self.metrics.clone(),
            ));
            Link { addr, jobs }
        });
        let job = Job {
            api_version,
            request,
        };
        if let Err(mpsc::error::SendError((_, pending))) = link.jobs.send((job, pending)) {
            // The task is gone (it cannot be, short of a panic): the pending answers as it
            // drops, and the next fetch starts a new link.
            self.links.remove(&to);
            drop(pending);
        }
    }
}

/// Whether a link's connection is up, for logging changes once rather than per fetch.
#[derive(PartialEq)]
enum State {
    New,
    Up,
    Down,
}

/// One leader's link: serve its queue in order on one kept connection.
async fn link_task(
    to: BrokerId,
    addr: (String, u16),
    client_id: String,
    config: FetcherConfig,
    mut queue: mpsc::UnboundedReceiver<(Job, Pending)>,
    metrics: Option<ReplicaFetchMetrics>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut correlation_id = 0i32;
    let mut state = State::New;
    let shown = format!("{}:{}", addr.0, addr.1);
    while let Some((job, pending)) = queue.recv().await {
        correlation_id = correlation_id.wrapping_add(1);
        let limit =
            Duration::from_millis(job.request.max_wait_ms.max(0) as u64) + config.socket_timeout;
        let exchange = exchange(
            &mut conn,
            &addr,
            &client_id,
            correlation_id,
            &job,
            config.response_bytes_max,
        );
        let result = match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        match &result {
            Ok((_, bytes)) => {
                if let Some(m) = &metrics {
                    m.bytes(to).inc_by(*bytes as u64);
                }
                if state != State::Up {
                    info!(broker = to.0, addr = %shown, "replica fetcher connected to the leader");
                    state = State::Up;
                }
            }
            Err(e) => {
                conn = None;
                if let Some(m) = &metrics {
                    m.errors(to).inc();
                }
                if state == State::Down {
                    debug!(broker = to.0, addr = %shown, error = %e, "replica fetch failed");
                } else {
                    warn!(broker = to.0, addr = %shown, error = %e, "replica fetcher lost its connection to the leader; reconnecting on the next fetch");
                    state = State::Down;
                }
            }
        }
        pending.answer(
            result
                .map(|(r, _)| r)
                .map_err(|e| format!("fetch from broker {} at {shown}: {e}", to.0)),
        );
    }
}

/// Connect if need be, write the request and read its answer: the response and the frame's
/// size in bytes.
async fn exchange(
    conn: &mut Option<TcpStream>,
    addr: &(String, u16),
    client_id: &str,
    correlation_id: i32,
    job: &Job,
    response_bytes_max: usize,
) -> Result<(FetchResponse, usize), String> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(job.api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let frame = wire::encode_request(&header, &RequestKind::Fetch(job.request.clone()))
        .map_err(|e| format!("cannot encode Fetch v{}: {e}", job.api_version))?;
    if conn.is_none() {
        let s = TcpStream::connect((addr.0.as_str(), addr.1))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = s.set_nodelay(true);
        *conn = Some(s);
    }
    let s = conn.as_mut().expect("connected above");
    s.write_all(&frame)
        .await
        .map_err(|e| format!("connection lost writing the request: {e}"))?;
    s.flush()
        .await
        .map_err(|e| format!("connection lost writing the request: {e}"))?;
    let len = s
        .read_i32()
        .await
        .map_err(|e| format!("connection lost awaiting the answer: {e}"))?;
    if len < 0 || len as usize > response_bytes_max {
        return Err(format!(
            "a response frame of {len} bytes (at most {response_bytes_max})"
        ));
    }
    let mut buf = read_frame(s, len as usize)
        .await
        .map_err(|e| format!("connection lost mid-answer: {e}"))?
        .freeze();
    let response = decode(&mut buf, correlation_id, job.api_version)?;
    Ok((response, wire::FRAME_PREFIX_BYTES + len as usize))
}

/// Decode a Fetch response frame (without its length prefix) to request `correlation_id`.
fn decode(buf: &mut Bytes, correlation_id: i32, version: i16) -> Result<FetchResponse, String> {
    let header = ResponseHeader::decode(buf, ApiKey::Fetch.response_header_version(version))
        .map_err(|e| format!("undecodable response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "a response to correlation id {}, expected {correlation_id}",
            header.correlation_id
        ));
    }
    FetchResponse::decode(buf, version)
        .map_err(|e| format!("undecodable Fetch v{version} response: {e}"))
}

#[cfg(all(test, not(madsim)))]
mod tests;
