//! The tokio driver of `gregor-client`, and the `gregor produce` / `gregor consume` commands
//! built on it.
//!
//! The client library decides everything; this module only carries its effects out: a TCP
//! connection per [`Output::Connect`], a frame written per [`Output::Send`], each response frame
//! read back as an [`Input::Frame`], and a tick when [`Client::poll_timeout`] is reached. What
//! is left ([`Output::Delivered`], [`Output::Records`], [`Output::ConsumeError`]) is handed to
//! the application by [`Driver::next`].

pub mod cli;

use crate::clock::Clock;
use bytes::Bytes;
use gregor_client::{Client, Config, Input, NodeId, Output};
use gregor_core::Instant;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

/// A consumer's failure (a group it cannot join, a partition it cannot read) as the error a
/// program built on the client stops with: the CLI's consume, Connect's sinks and Streams all
/// give up on the same two outputs. `None` for every other output.
pub fn consumer_failure(o: &Output) -> Option<anyhow::Error> {
    match o {
        Output::GroupError { group, error } => {
            Some(anyhow::anyhow!("cannot join group {group}: {error}"))
        }
        Output::ConsumeError {
            topic,
            partition,
            error,
        } => Some(anyhow::anyhow!("cannot read {topic}-{partition}: {error}")),
        _ => None,
    }
}

/// The largest response frame the driver reads; a longer length prefix drops the connection.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// How long a TCP connect may take before the broker counts as unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a connection's tasks report. `generation` tells a closed connection's late news from
/// the current one's.
enum Event {
    Connected {
        node: NodeId,
        generation: u64,
    },
    Frame {
        node: NodeId,
        generation: u64,
        frame: Bytes,
    },
    Closed {
        node: NodeId,
        generation: u64,
        reason: String,
    },
}

struct ConnHandle {
    generation: u64,
    writer: mpsc::UnboundedSender<Bytes>,
    task: JoinHandle<()>,
}

pub struct Driver {
    client: Client,
    clock: Clock,
    conns: BTreeMap<NodeId, ConnHandle>,
    next_generation: u64,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
}

impl Driver {
    pub fn new(mut config: Config) -> anyhow::Result<Driver> {
        // The sticky partitioner's seed comes from the OS here, as the broker's does.
        config.seed = rand::random();
        let clock = Clock::new();
        let client = Client::new(config, clock.now()).map_err(|e| anyhow::anyhow!(e))?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Ok(Driver {
            client,
            clock,
            conns: BTreeMap::new(),
            next_generation: 0,
            events_tx,
            events_rx,
        })
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The client, for the application's calls (`send`, `assign`, `seek`, `flush`): pass them
    /// [`Driver::now`]. Their effects are carried out by the next [`Driver::next`].
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Carry out the client's effects and wait until it has results for the application.
    /// Cancel-safe: it only awaits between whole steps.
    pub async fn next(&mut self) -> Vec<Output> {
        loop {
            let app = self.carry_out();
            if !app.is_empty() {
                return app;
            }
            self.wait_one().await;
        }
    }

    /// Run until `done(client)` holds or `limit` passes; returns the application's results
    /// meanwhile (used to finish commits and leave a group before exiting).
    pub async fn run_until(
        &mut self,
        done: impl Fn(&Client) -> bool,
        limit: std::time::Duration,
    ) -> Vec<Output> {
        let end = tokio::time::Instant::now() + limit;
        let mut app = Vec::new();
        loop {
            app.extend(self.carry_out());
            if done(&self.client) || tokio::time::Instant::now() >= end {
                return app;
            }
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let _ = tokio::time::timeout(left, self.wait_one()).await;
        }
    }

    /// Wait for one network event or the client's next deadline, and feed it.
    async fn wait_one(&mut self) {
        let deadline = self.client.poll_timeout().map(|t| self.clock.to_tokio(t));
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        tokio::select! {
            ev = self.events_rx.recv() => {
                let ev = ev.expect("the driver holds a sender");
                self.feed(ev);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {
                let now = self.now();
                self.client.handle(Input::Tick { now });
            }
        }
    }

    fn feed(&mut self, ev: Event) {
        let now = self.now();
        let current = |d: &Driver, node: NodeId, generation: u64| {
            d.conns
                .get(&node)
                .is_some_and(|c| c.generation == generation)
        };
        match ev {
            Event::Connected { node, generation } if current(self, node, generation) => {
                self.client.handle(Input::Connected { now, node })
            }
            Event::Frame {
                node,
                generation,
                frame,
            } if current(self, node, generation) => {
                self.client.handle(Input::Frame { now, node, frame })
            }
            Event::Closed {
                node,
                generation,
                reason,
            } if current(self, node, generation) => {
                self.conns.remove(&node);
                self.client
                    .handle(Input::Disconnected { now, node, reason })
            }
            _ => {} // news from a connection already closed
        }
    }

    /// Perform the network effects; return the application's results.
    fn carry_out(&mut self) -> Vec<Output> {
        let mut app = Vec::new();
        while let Some(out) = self.client.poll_output() {
            match out {
                Output::Connect { node, host, port } => self.connect(node, host, port),
                Output::Send { node, frame } => {
                    if let Some(c) = self.conns.get(&node) {
                        // A failed send means the connection task ended; its Closed event
                        // follows.
                        let _ = c.writer.send(frame);
                    }
                }
                Output::Close { node, reason } => {
                    debug!(node = node.0, %reason, "closing connection");
                    if let Some(c) = self.conns.remove(&node) {
                        c.task.abort();
                    }
                }
                Output::Log { message } => debug!("{message}"),
                other => app.push(other),
            }
        }
        app
    }

    fn connect(&mut self, node: NodeId, host: String, port: u16) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let (writer, rx) = mpsc::unbounded_channel();
        let events = self.events_tx.clone();
        let task = tokio::spawn(async move {
            let reason = run_connection(node, generation, &host, port, rx, &events)
                .await
                .err()
                .map_or_else(|| "closed".to_string(), |e| format!("{e:#}"));
            let _ = events.send(Event::Closed {
                node,
                generation,
                reason,
            });
        });
        if let Some(old) = self.conns.insert(
            node,
            ConnHandle {
                generation,
                writer,
                task,
            },
        ) {
            old.task.abort();
        }
    }
}

/// One connection: connect, then write what the client sends while a reader task hands every
/// response frame back. Returns when either side fails.
async fn run_connection(
    node: NodeId,
    generation: u64,
    host: &str,
    port: u16,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {host}:{port} timed out"))?
        .map_err(|e| anyhow::anyhow!("cannot connect to {host}:{port}: {e}"))?;
    stream.set_nodelay(true)?;
    let (mut r, mut w) = crate::connection::split(stream);
    let _ = events.send(Event::Connected { node, generation });
    // The reader is a future of this task, not a task of its own: aborting the connection's
    // task (Output::Close) drops it and the socket with it.
    let reader = read_frames(&mut r, node, generation, events);
    tokio::pin!(reader);
    loop {
        tokio::select! {
            f = frames.recv() => match f {
                Some(f) => {
                    w.write_all(&f).await?;
                }
                None => return Ok(()),
            },
            r = &mut reader => return r,
        }
    }
}

/// Hand every response frame read from `r` to the driver, until the connection fails.
async fn read_frames(
    r: &mut crate::connection::OwnedReadHalf,
    node: NodeId,
    generation: u64,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    loop {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        anyhow::ensure!(
            len <= RESPONSE_BYTES_MAX,
            "response of {len} bytes, more than {RESPONSE_BYTES_MAX}"
        );
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await?;
        let frame = Bytes::from(buf);
        if events
            .send(Event::Frame {
                node,
                generation,
                frame,
            })
            .is_err()
        {
            return Ok(());
        }
    }
}
