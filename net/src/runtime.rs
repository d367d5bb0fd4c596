//! The production driver: one task owns the [`Broker`] and applies inputs one at a time.
//!
//! The loop follows the core's calling contract (see `gregor_core::broker`): take an input —
//! a request from a connection, a closed connection, a finished fsync, or the timer from
//! `poll_timeout` — call `handle`, then drain every output: encode responses onto their
//! connection's writer, carry out storage requests on [`Disk`], close connections. Storage
//! results that are ready at once are fed straight back; fsyncs run on blocking threads and
//! come back as events.

use crate::backlog::Backlog;
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::connection;
use crate::disk::{fault, Disk, Executed};
use crate::event::Event;
use crate::listener::{Endpoints, SecurityProtocol};
use crate::metrics::Metrics;
use crate::quorum::link::{BrokerEnd, ToBroker};
use crate::replica_fetcher::{FetcherConfig, ReplicaFetcher};
use crate::tls;
use gregor_core::cluster::{Request, RequestId};
use gregor_core::io::LogLevel;
use gregor_core::sasl::{Credentials, Mechanism, SaslSession};
use gregor_core::{Broker, ConnId, Input, Output};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{error, info, warn};

struct ConnHandle {
    peer: SocketAddr,
    /// The listener the connection came in on: its responses name the brokers' addresses on it.
    listener: SecurityProtocol,
    /// Who the connection is (Kafka's `KafkaPrincipal`): `User:ANONYMOUS`, a TLS certificate's
    /// subject, or the SASL user once authenticated. What the authorizer (ACLs) will check.
    principal: String,
    writer: mpsc::UnboundedSender<connection::Frame>,
    permits: Arc<Semaphore>,
    backlog: Arc<Backlog>,
    /// Requests handed to the broker and not yet finished (for flow control).
    outstanding: usize,
}

struct Driver {
    broker: Broker,
    disk: Disk,
    clock: Clock,
    conns: HashMap<ConnId, ConnHandle>,
    events: mpsc::UnboundedSender<Event>,
    ready: VecDeque<Input>,
    /// Counted only when a metrics listener is configured.
    metrics: Option<Metrics>,
    /// In a cluster (KRaft): where the broker's requests for the active controller go.
    controller: Option<mpsc::UnboundedSender<(RequestId, Request)>>,
    /// Carries the broker's follower fetches to partition leaders (`replica_fetcher.rs`).
    fetcher: ReplicaFetcher,
    /// The credentials the connections' SASL sessions check (PLAIN from the TOML, SCRAM from
    /// the latest image).
    credentials: Arc<RwLock<Credentials>>,
    /// Every broker's address on every listener, for Kafka's listener rule (`listener.rs`).
    endpoints: Endpoints,
    /// The first listener's protocol: the core's answers already name its addresses.
    primary: SecurityProtocol,
}

impl Driver {
    fn apply(&mut self, input: Input) {
        self.broker.handle(input);
        self.drain();
        while let Some(next) = self.ready.pop_front() {
            self.broker.handle(next);
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.broker.poll_output() {
            match out {
                Output::Response {
                    conn,
                    correlation_id,
                    api_version,
                    mut body,
                } => {
                    if let Some(m) = self.metrics.as_mut() {
                        m.on_response(conn, correlation_id, &body);
                    }
                    let Some(h) = self.conns.get(&conn) else {
                        continue;
                    };
                    if h.listener != self.primary {
                        self.endpoints.rewrite(h.listener, &mut body);
                    }
                    match connection::encode_frame(correlation_id, api_version, &body) {
                        Ok(frame) => {
                            h.backlog.queued.fetch_add(frame.len(), Ordering::SeqCst);
                            let _ = h.writer.send(frame);
                        }
                        Err(e) => {
                            // A response we cannot encode is a bug; the client cannot be
                            // answered, so close its connection rather than hang it.
                            error!(peer = %h.peer, error = %e, "cannot encode response; closing connection");
                            self.close(conn);
                        }
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(h) = self.conns.get(&conn) {
                        info!(peer = %h.peer, principal = %h.principal, %reason, "closing connection");
                    }
                    self.close(conn);
                }
                Output::Storage { op, request } => {
                    let what = storage_op_name(&request);
                    match self.disk.execute(request) {
                        Executed::Done(result) => {
                            if let (Err(_), Some(m)) = (&result, &self.metrics) {
                                m.on_storage_error(what);
                            }
                            self.ready.push_back(Input::StorageDone {
                                now: self.clock.now(),
                                op,
                                result,
                            })
                        }
                        Executed::Sync(file) => {
                            let events = self.events.clone();
                            let sync = move || {
                                let started = std::time::Instant::now();
                                let result = file
                                    .sync_data()
                                    .map(|_| gregor_core::StorageReply::Done)
                                    .map_err(fault);
                                let took = started.elapsed();
                                let _ = events.send(Event::SyncDone { op, result, took });
                            };
                            // fsync blocks: off the broker task. Under madsim there are no threads;
                            // the (real) file is synced in place.
                            #[cfg(not(madsim))]
                            tokio::task::spawn_blocking(sync);
                            #[cfg(madsim)]
                            sync();
                        }
                    }
                }
                Output::Log { level, message } => match level {
                    LogLevel::Info => info!(target: "gregor::core", "{message}"),
                    LogLevel::Warn => warn!(target: "gregor::core", "{message}"),
                    LogLevel::Error => error!(target: "gregor::core", "{message}"),
                },
                Output::Controller { id, request } => match &self.controller {
                    Some(to) => {
                        // The quorum thread outlives the broker task; if it is gone the
                        // process is exiting and the request's own timeout answers it.
                        let _ = to.send((id, request));
                    }
                    None => unreachable!(
                        "a standalone broker (kraft = false) asks no controller: {id:?} {request:?}"
                    ),
                },
                Output::ReplicaFetch {
                    to,
                    id,
                    api_version,
                    request,
                } => self.fetcher.fetch(to, id, api_version, request),
            }
        }
    }

    /// A new committed image: the fetcher learns the brokers' endpoints before the broker
    /// follows it (and may fetch from a leader it names).
    fn on_image(&mut self, image: Arc<gregor_core::cluster::MetadataImage>) {
        // The SCRAM users this broker's authenticator checks: those of the image it applied
        // (KIP-554), so a user added through any broker logs in here once this image has it.
        let changed = {
            let mut creds = self.credentials.write().expect("credentials lock");
            creds.replace_scram(image.scram())
        };
        if changed {
            info!(
                offset = image.offset(),
                users = image.scram().users().count(),
                "SCRAM users changed"
            );
        }
        self.fetcher.on_image(&image);
        self.endpoints.on_image(&image);
        let now = self.clock.now();
        self.apply(Input::Metadata { now, image });
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(h) = self.conns.remove(&conn) {
            h.permits.close();
        }
    }

    fn on_event(&mut self, ev: Event) {
        let now = self.clock.now();
        match ev {
            Event::Open {
                conn,
                peer,
                writer,
                permits,
                backlog,
                listener,
                principal,
            } => {
                if let Some(m) = &self.metrics {
                    m.connections.opened.inc();
                    m.connections.open.inc();
                }
                self.conns.insert(
                    conn,
                    ConnHandle {
                        peer,
                        listener,
                        principal: principal.clone(),
                        writer,
                        permits,
                        backlog,
                        outstanding: 0,
                    },
                );
                let host = peer.ip().to_string();
                self.apply(Input::Principal {
                    now,
                    conn,
                    principal,
                    host,
                });
            }
            Event::Authenticated { conn, principal } => {
                if let Some(h) = self.conns.get_mut(&conn) {
                    h.principal = principal.clone();
                    let host = h.peer.ip().to_string();
                    self.apply(Input::Principal {
                        now,
                        conn,
                        principal,
                        host,
                    });
                }
            }
            Event::Request { conn, request } => {
                let Some(h) = self.conns.get_mut(&conn) else {
                    return;
                };
                h.outstanding += 1;
                if let Some(m) = self.metrics.as_mut() {
                    let header = &request.header;
                    m.on_request(
                        conn,
                        header.correlation_id,
                        header.request_api_key,
                        &request.body,
                    );
                }
                self.apply(Input::Request { now, conn, request });
            }
            Event::Closed { conn } => {
                self.conns.remove(&conn);
                if let Some(m) = self.metrics.as_mut() {
                    m.on_closed(conn);
                }
                self.apply(Input::ConnClosed { now, conn });
            }
            Event::SyncDone { op, result, took } => {
                if let Some(m) = &self.metrics {
                    m.on_fsync(took);
                    if result.is_err() {
                        m.on_storage_error("sync");
                    }
                }
                self.apply(Input::StorageDone { now, op, result })
            }
            Event::ReplicaFetched { from, id, result } => self.apply(Input::ReplicaFetched {
                now,
                from,
                id,
                result,
            }),
            Event::Scrape { reply } => {
                let text = match &self.metrics {
                    Some(m) => m.scrape(&self.broker),
                    None => String::new(),
                };
                let _ = reply.send(text);
            }
        }
    }

    /// Give connections back the permits of requests that finished.
    fn release_permits(&mut self) {
        for (conn, h) in self.conns.iter_mut() {
            if h.outstanding == 0 {
                continue;
            }
            let now = self.broker.in_flight(*conn);
            if now < h.outstanding {
                h.backlog.release(h.outstanding - now);
                h.outstanding = now;
            }
        }
    }
}

/// Tell glibc's allocator to keep memory the broker frees, so request buffers are recycled.
///
/// Each request frame is read into a buffer of its own (`connection::read_frame`) and freed once
/// the broker is done with it: a produce's batch right after its write to the segment. With
/// glibc's defaults a buffer of a megabyte (a typical produce request) is served by a fresh
/// `mmap` and given back with `munmap`, or carved from the heap whose top is trimmed back to the
/// kernel after it is freed; either way the next request faults in new pages that the kernel
/// zero-fills, which a profile of the produce path showed as 6-7% page faults and 6% memset.
/// Fixing both thresholds (which also turns off glibc's adaptive threshold) keeps buffers up to
/// 32 MiB on the heap and up to 256 MiB of freed memory in the process, so the broker's memory
/// stays at its working set's peak instead of being handed back and faulted in again. Requests
/// are bounded by `requests_per_connection_max` and `request_bytes_max`, so the peak is too.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(madsim)))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any request buffer
    // exists and takes no pointers.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Run the broker until `shutdown` fires.
///
/// `kraft` is the broker's end of the road to its node's metadata side
/// ([`crate::quorum::link`]): `gregor serve` always has one (a one-voter quorum when no voters
/// are given). Before it opens its Kafka listener the broker hands its data directory's topics
/// to the metadata side and waits for [`ToBroker::Ready`], then follows the images sent until
/// then. Without `kraft` the broker is the standalone one (`Config.kraft` false: tests and
/// the single-broker simulator).
pub async fn serve(
    config: ServeConfig,
    mut shutdown: watch::Receiver<bool>,
    kraft: Option<BrokerEnd>,
) -> anyhow::Result<()> {
    keep_freed_memory();
    let clock = Clock::new();
    let started = std::time::Instant::now();
    let recovered = crate::disk::recover(&config.data_dir)?;
    let segments: usize = recovered.partitions.iter().map(|p| p.segments.len()).sum();
    let bytes_read: u64 = recovered
        .partitions
        .iter()
        .map(|p| p.segment_bytes_read)
        .sum();
    info!(
        partitions = recovered.partitions.len(),
        segments,
        segment_bytes_read = bytes_read,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered data directory {}",
        config.data_dir.display()
    );
    let disk = Disk::open(&config.data_dir)?;
    let broker = Broker::new(config.broker.clone(), recovered, clock.now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let metrics = config.metrics_listen.map(|_| Metrics::new());
    let fetcher = ReplicaFetcher::new(
        gregor_core::cluster::BrokerId(config.broker.broker_id.0),
        FetcherConfig::default(),
        events_tx.clone(),
        metrics.as_ref().map(|m| m.replica_fetch.clone()),
    );
    let listeners = crate::listener::resolve(&config)?;
    let tls = match listeners.iter().any(|l| l.protocol.tls()) {
        true => Some(Arc::new(tls::Reloading::new(
            config
                .tls_cert
                .as_deref()
                .expect("checked by listener::resolve"),
            config
                .tls_key
                .as_deref()
                .expect("checked by listener::resolve"),
            config.tls_ca.as_deref(),
            config.tls_client_auth,
        )?)),
        false => None,
    };
    if let Some(tls) = tls.clone() {
        // Certificate files replaced by a renewal are used for new connections within a
        // second, without a restart (net/src/tls.rs).
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                match tls.check() {
                    None => {}
                    Some(Ok(())) => {
                        info!("TLS certificate files changed: reloaded for new connections")
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "TLS certificate files changed but do not make a valid configuration: keeping the previous one")
                    }
                }
            }
        });
    }
    // The PLAIN users now; the SCRAM users arrive with each metadata image (`on_image`).
    let credentials = Arc::new(RwLock::new(crate::config::plain_users(&config.users)));
    let mechanisms: Vec<Mechanism> = config
        .sasl_mechanisms
        .iter()
        .filter_map(|m| Mechanism::from_name(m))
        .collect();
    if listeners.iter().any(|l| l.protocol.sasl()) && mechanisms.is_empty() {
        anyhow::bail!("a SASL listener needs at least one of sasl_mechanisms");
    }
    let mut driver = Driver {
        endpoints: Endpoints::own(config.broker.broker_id.0, &listeners),
        primary: listeners[0].protocol,
        broker,
        disk,
        clock,
        conns: HashMap::new(),
        events: events_tx.clone(),
        ready: VecDeque::new(),
        metrics,
        controller: kraft.as_ref().map(|k| k.requests.clone()),
        fetcher,
        credentials: credentials.clone(),
    };
    driver.drain();
    while let Some(next) = driver.ready.pop_front() {
        driver.broker.handle(next);
        driver.drain();
    }
    let mut from_quorum = match kraft {
        Some(k) => Some(wait_until_ready(&mut driver, k, started).await?),
        None => None,
    };
    let broker = &driver.broker;
    let mut bound = Vec::new();
    for l in &listeners {
        let socket = TcpListener::bind(l.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", l.addr))?;
        info!(
            listener = l.protocol.name(),
            listen = %l.addr,
            advertised = %format!("{}:{}", l.advertised_host, l.advertised_port),
            "listening"
        );
        bound.push((socket, l.protocol));
    }
    info!(
        listen = %config.listen,
        advertised = %format!("{}:{}", config.broker.advertised_host, config.broker.advertised_port),
        data_dir = %config.data_dir.display(),
        durability = ?config.broker.durability,
        seed = config.broker.seed,
        cluster_id = %broker.cluster_id_string(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "gregor is serving Kafka clients"
    );

    let connection_metrics = driver.metrics.as_ref().map(|m| m.connections.clone());
    #[cfg(not(madsim))]
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
            info!(metrics = %format!("http://{addr}/metrics"), "serving Prometheus metrics");
            Some(tokio::spawn(crate::metrics::serve_http(
                l,
                events_tx.clone(),
            )))
        }
        None => None,
    };
    let shared = Arc::new(Accept {
        events: events_tx,
        config: config.clone(),
        metrics: connection_metrics,
        active: Arc::new(AtomicUsize::new(0)),
        next: AtomicU64::new(0),
        tls,
        credentials,
        mechanisms,
        clock,
    });
    let accepts: Vec<_> = bound
        .into_iter()
        .map(|(socket, protocol)| tokio::spawn(accept_loop(socket, protocol, shared.clone())))
        .collect();
    loop {
        let deadline = driver.broker.poll_timeout().map(|t| clock.to_tokio(t));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                driver.on_event(ev);
                // Take whatever else is already queued before giving permits back.
                for _ in 0..1024 {
                    match events.try_recv() {
                        Ok(ev) => driver.on_event(ev),
                        Err(_) => break,
                    }
                }
                driver.release_permits();
            }
            ev = async { match from_quorum.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let Some(ev) = ev else {
                    error!("the metadata quorum's thread is gone; stopping");
                    break;
                };
                let now = clock.now();
                match ev {
                    ToBroker::Image(image) => driver.on_image(image),
                    ToBroker::Reply { id, result } => {
                        driver.apply(Input::ControllerReply { now, id, result })
                    }
                    ToBroker::Ready => {
                        warn!("the metadata side said ready twice; ignored");
                        continue;
                    }
                }
                driver.release_permits();
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                let now = clock.now();
                driver.apply(Input::Tick { now });
                driver.release_permits();
            }
        }
    }
    info!("shutting down: no longer accepting connections");
    for accept in accepts {
        accept.abort();
    }
    #[cfg(not(madsim))]
    if let Some(m) = metrics_server {
        m.abort();
    }
    // Index files and the clean-shutdown marker (net/src/disk.rs), so the next start reads no
    // segment data.
    let requests = driver.broker.clean_shutdown_requests();
    for failure in driver.disk.clean_shutdown(requests) {
        tracing::warn!("clean shutdown: {failure}");
    }
    info!("all segment files synced; bye");
    Ok(())
}

/// Hand the broker's local topics to the metadata side, wait for [`ToBroker::Ready`], and feed
/// the broker the images and answers that came meanwhile, in order. Returns the road's
/// receiving end for the main loop.
async fn wait_until_ready(
    driver: &mut Driver,
    kraft: BrokerEnd,
    started: std::time::Instant,
) -> anyhow::Result<mpsc::UnboundedReceiver<ToBroker>> {
    let BrokerEnd {
        mut events,
        local_topics,
        ..
    } = kraft;
    let gone = || anyhow::anyhow!("the metadata quorum's thread ended before the broker started");
    local_topics
        .send(driver.broker.local_topics())
        .map_err(|_| gone())?;
    let mut waiting = Vec::new();
    loop {
        match events.recv().await.ok_or_else(gone)? {
            ToBroker::Ready => break,
            other => waiting.push(other),
        }
    }
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "the metadata image is ready"
    );
    // Only the latest image matters (each is whole); answers keep their order.
    let latest = waiting
        .iter()
        .rposition(|e| matches!(e, ToBroker::Image(_)));
    for (i, ev) in waiting.into_iter().enumerate() {
        let now = driver.clock.now();
        match ev {
            ToBroker::Image(image) if Some(i) == latest => driver.on_image(image),
            ToBroker::Image(_) => {}
            ToBroker::Reply { id, result } => {
                driver.apply(Input::ControllerReply { now, id, result })
            }
            ToBroker::Ready => unreachable!("the loop stops at the first"),
        }
    }
    Ok(events)
}

/// What every listener's accept loop shares: the road to the broker task, the limits, and what
/// a connection needs to secure itself.
struct Accept {
    events: mpsc::UnboundedSender<Event>,
    config: ServeConfig,
    metrics: Option<crate::metrics::ConnectionMetrics>,
    /// Open connections on all listeners (`connections_max`).
    active: Arc<AtomicUsize>,
    /// The last connection id handed out (ids are unique across listeners).
    next: AtomicU64,
    tls: Option<Arc<tls::Reloading>>,
    credentials: Arc<RwLock<Credentials>>,
    mechanisms: Vec<Mechanism>,
    /// The broker's clock, for SASL session lifetimes (KIP-368).
    clock: Clock,
}

/// How long a client has to finish its TLS handshake (Kafka has no such setting; a port
/// scanner's or a plaintext client's connection on a TLS port is closed at the latest by then).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_loop(listener: TcpListener, protocol: SecurityProtocol, shared: Arc<Accept>) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let max = shared.config.connections_max;
        if shared.active.load(Ordering::Relaxed) >= max {
            warn!(%peer, max, "refusing connection: connection limit reached");
            if let Some(m) = &shared.metrics {
                m.refused.inc();
            }
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        shared.active.fetch_add(1, Ordering::Relaxed);
        let conn = ConnId(shared.next.fetch_add(1, Ordering::Relaxed) + 1);
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.secure(conn, peer, socket, protocol).await;
            shared.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

impl Accept {
    /// Run one connection: the TLS handshake first on a TLS listener (a failed one is logged
    /// and the socket closed; other clients are not affected), then its reader and writer.
    async fn secure(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        socket: tokio::net::TcpStream,
        protocol: SecurityProtocol,
    ) {
        let listener = protocol.name();
        if !protocol.tls() {
            let (read, write) = connection::split(socket);
            let anonymous = "User:ANONYMOUS".to_string();
            return self.run(conn, peer, protocol, anonymous, read, write).await;
        }
        let acceptor = (self.tls.as_ref())
            .expect("listener::resolve demands TLS files")
            .acceptor();
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
            Ok(Ok(stream)) => {
                let principal = tls::principal(stream.get_ref().1);
                if principal != "User:ANONYMOUS" {
                    info!(%peer, listener, %principal, "TLS client certificate accepted");
                }
                let (read, write) = tokio::io::split(stream);
                self.run(conn, peer, protocol, principal, read, write).await
            }
            Ok(Err(e)) => {
                warn!(%peer, listener, error = %e, "closing connection: TLS handshake failed")
            }
            Err(_) => warn!(%peer, listener, "closing connection: TLS handshake timed out"),
        }
    }

    async fn run<R, W>(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        protocol: SecurityProtocol,
        principal: String,
        read: R,
        write: W,
    ) where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(
            self.config.broker.requests_per_connection_max,
        ));
        let backlog = Arc::new(Backlog::new(
            self.config.connection_buffer_bytes_max,
            permits.clone(),
        ));
        let opened = Event::Open {
            conn,
            peer,
            writer: writer_tx.clone(),
            permits: permits.clone(),
            backlog: backlog.clone(),
            listener: protocol,
            principal: principal.clone(),
        };
        if self.events.send(opened).is_err() {
            return;
        }
        tokio::spawn(connection::write_loop(write, writer_rx, backlog.clone()));
        let session = if protocol.sasl() {
            // The SCRAM server nonce: 24 bytes from the operating system (the core has none).
            let nonce: [u8; 24] = rand::random();
            SaslSession::new(self.mechanisms.clone(), &nonce)
                .with_reauth(self.config.connections_max_reauth_ms)
        } else {
            SaslSession::not_required(principal)
        };
        let auth = connection::Auth {
            session,
            credentials: self.credentials.clone(),
            writer: writer_tx,
            backlog,
            listener: protocol.name(),
            failed_delay: std::time::Duration::from_millis(
                self.config.connection_failed_authentication_delay_ms,
            ),
            clock: self.clock,
        };
        let max = self.config.request_bytes_max;
        connection::read_loop(conn, peer, read, self.events.clone(), permits, max, auth).await;
    }
}

/// A storage request's kind, as the storage-errors metric labels it.
fn storage_op_name(request: &gregor_core::StorageRequest) -> &'static str {
    use gregor_core::StorageRequest as R;
    match request {
        R::Append { .. } => "append",
        R::Sync { .. } => "sync",
        R::Read { .. } => "read",
        _ => "other",
    }
}
