//! A synchronous, in-memory driver for tests, fuzz targets and workloads (cargo feature
//! `testkit`; quinn's `Pair` plays the same part).
//!
//! The runtime (`gregor-net`) and the simulator drive the broker with real or simulated time and
//! a disk that takes time. Tests mostly want neither: [`Pair`] hands every storage operation to a
//! [`Storage`] at once, feeds the completion straight back, and repeats until the broker is quiet,
//! so one call of [`Pair::request`] is one whole exchange. Time moves only when the test says so
//! ([`Pair::advance_ms`]).
//!
//! [`batch`] encodes test records with [`crate::batch::encode`], the one record-batch encoder of
//! every test, workload and gregor's own client.
//!
//! Nothing here is compiled into the production broker.

use crate::io::{ConnId, Input, OpId, Output, Request, StorageFault, StorageReply, StorageRequest};
use crate::kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use crate::kafka_protocol::records::Compression;
use crate::prng::Prng;
use crate::{wire, Broker, Config, Duration, Instant, Recovered};
use bytes::Bytes;

/// A disk that carries out one storage operation at once. Randomness (for fault injection)
/// comes from the driver's own seeded PRNG, so a test stays a pure function of its inputs.
pub trait Storage {
    fn exec(
        &mut self,
        request: &StorageRequest,
        prng: &mut Prng,
    ) -> Result<StorageReply, StorageFault>;
}

/// The wall-clock instant every [`Pair`] starts at (14 November 2023, as Kafka's own tests pick
/// a fixed instant).
pub const START_UNIX_MS: i64 = 1_700_000_000_000;

/// A replica fetch a follower sent ([`Output::ReplicaFetch`]), waiting for the test to route it.
#[derive(Clone, Debug)]
pub struct ReplicaFetch {
    pub to: crate::cluster::BrokerId,
    pub id: crate::io::ReplicaFetchId,
    pub api_version: i16,
    pub request: crate::kafka_protocol::messages::FetchRequest,
}

/// One broker and its disk, driven synchronously.
pub struct Pair<S> {
    pub broker: Broker,
    pub storage: S,
    pub now: Instant,
    pub prng: Prng,
    /// Every response in the order the broker released it. Each one was checked to encode at
    /// the version the client asked for: a broker that cannot answer what it accepted has a bug.
    pub responses: Vec<(ConnId, i32, ResponseKind)>,
    /// Connections the broker closed.
    pub closed: Vec<ConnId>,
    /// Hold fsyncs back instead of completing them (to test what waits for durability);
    /// [`Pair::release_syncs`] completes them.
    pub hold_syncs: bool,
    pub held: Vec<(OpId, StorageRequest)>,
    /// Requests a KRaft-mode broker sent to the controller, for the test to answer with
    /// [`Input::ControllerReply`] (through [`Pair::input`]).
    pub controller: Vec<(crate::cluster::RequestId, crate::cluster::Request)>,
    /// Replica fetches a KRaft-mode follower sent, for the test to route to the leader and
    /// answer with [`Input::ReplicaFetched`] (through [`Pair::input`]).
    pub replica_fetches: Vec<ReplicaFetch>,
    /// Every log line the broker emitted, in order.
    pub logs: Vec<String>,
    next_corr: i32,
}

impl<S: Storage> Pair<S> {
    /// A broker recovered from `storage` (what it holds), at [`START_UNIX_MS`].
    pub fn new(mut config: Config, recovered: Recovered, storage: S) -> Pair<S> {
        // A harness checks every invariant after every step.
        config.full_check_every_steps = 1;
        let now = Instant::from_unix_ms(START_UNIX_MS);
        let broker = Broker::new(config, recovered, now).expect("a valid test configuration");
        let mut p = Pair {
            broker,
            storage,
            now,
            prng: Prng::new(1),
            responses: Vec::new(),
            closed: Vec::new(),
            hold_syncs: false,
            held: Vec::new(),
            controller: Vec::new(),
            replica_fetches: Vec::new(),
            logs: Vec::new(),
            next_corr: 0,
        };
        p.drain();
        p
    }

    /// Carry out every output until the broker is quiet. Completions are fed back after the
    /// broker's outputs are drained, as a driver that polls to `None` first would.
    pub fn drain(&mut self) {
        loop {
            let mut done = Vec::new();
            while let Some(out) = self.broker.poll_output() {
                match out {
                    Output::Response {
                        conn,
                        correlation_id,
                        api_version,
                        body,
                    } => {
                        if let Err(e) = wire::encode_response(correlation_id, api_version, &body) {
                            panic!("response does not encode at v{api_version}: {e}: {body:?}");
                        }
                        self.responses.push((conn, correlation_id, body));
                    }
                    Output::Close { conn, .. } => self.closed.push(conn),
                    Output::Log { message, .. } => self.logs.push(message),
                    Output::Controller { id, request } => self.controller.push((id, request)),
                    Output::ReplicaFetch {
                        to,
                        id,
                        api_version,
                        request,
                    } => self.replica_fetches.push(ReplicaFetch {
                        to,
                        id,
                        api_version,
                        request,
                    }),
                    Output::Storage { op, request } => {
                        if self.hold_syncs && matches!(request, StorageRequest::Sync { .. }) {
                            self.held.push((op, request));
                            continue;
                        }
                        let result = self.storage.exec(&request, &mut self.prng);
                        done.push(Input::StorageDone {
                            now: self.now,
                            op,
                            result,
                        });
                    }
                }
            }
            if done.is_empty() {
                return;
            }
            for input in done {
                self.broker.handle(input);
            }
        }
    }

    /// Complete the fsyncs held back by [`Pair::hold_syncs`].
    pub fn release_syncs(&mut self) {
        for (op, request) in std::mem::take(&mut self.held) {
            let result = self.storage.exec(&request, &mut self.prng);
            self.broker.handle(Input::StorageDone {
                now: self.now,
                op,
                result,
            });
        }
        self.drain();
    }

    /// Hand the broker one request and carry out everything it leads to.
    pub fn request(&mut self, conn: u64, request: Request) {
        self.broker.handle(Input::Request {
            now: self.now,
            conn: ConnId(conn),
            request,
        });
        self.drain();
    }

    /// Send a request body with a fresh correlation id; returns the id.
    pub fn send(&mut self, conn: u64, key: ApiKey, version: i16, body: RequestKind) -> i32 {
        self.next_corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.next_corr);
        self.request(conn, Request { header, body });
        self.next_corr
    }

    /// Take the response with correlation id `corr`, if it was released.
    pub fn take(&mut self, corr: i32) -> Option<ResponseKind> {
        let i = self.responses.iter().position(|(_, c, _)| *c == corr)?;
        Some(self.responses.remove(i).2)
    }

    /// Feed a byte stream as one connection would: length-prefixed frames, each decoded by the
    /// wire layer and handed to the broker when it decodes (frames that do not decode are
    /// dropped, as the runtime answers them with a close).
    pub fn feed_stream(&mut self, conn: u64, mut data: &[u8]) {
        while data.len() >= 4 {
            let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            data = &data[4..];
            if len > data.len() {
                break;
            }
            let frame = Bytes::copy_from_slice(&data[..len]);
            data = &data[len..];
            if let Ok(request) = wire::decode_request(frame) {
                self.request(conn, request);
            }
        }
    }

    /// Hand the broker any input (a metadata image, a controller reply) and carry out
    /// everything it leads to.
    pub fn input(&mut self, input: Input) {
        self.broker.handle(input);
        self.drain();
    }

    /// Move the clock forward and let the broker's timers fire.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now = self.now + Duration::from_ms(ms);
        self.broker.handle(Input::Tick { now: self.now });
        self.drain();
    }
}

pub use crate::batch::Rec;

/// Encode records as a producer does: one Kafka v2 batch with base offset 0 (see
/// [`crate::batch::encode`]); a test's records always encode.
pub fn batch(recs: &[Rec], producer: Option<(i64, i16, i32)>, compression: Compression) -> Bytes {
    crate::batch::encode(recs, producer, compression).expect("encoding a test batch")
}
