//! The client state machine: connections, metadata, and the step that runs after every input.
//!
//! ## Calling contract
//! 1. Feed every fact with [`Client::handle`]; call the application's methods
//!    ([`Client::send`], [`Client::assign`], [`Client::seek`], [`Client::flush`]) with `now`.
//! 2. Drain [`Client::poll_output`] until `None` after each, carrying out every effect in order.
//! 3. Ask [`Client::poll_timeout`] and feed `Input::Tick` when it is reached.
//!
//! Everything the client does happens in [`Client::step`], which runs after each of those
//! calls: connect to the brokers it needs, refresh metadata, get a producer id, send batches
//! that are ready, reset positions, fetch. Then the invariants are checked.

use crate::admin::Admin;
use crate::config::Config;
use crate::conn::{Conn, ConnState, Pending, Purpose, API_VERSIONS_FIRST};
use crate::consumer::Consumer;
use crate::group::Group;
use crate::io::{error_name, Input, NodeId, Output};
use crate::metadata::{Metadata, PartitionMeta};
use crate::producer::Producer;
use crate::sasl::{Exchange, Next};
use bytes::Bytes;
use gregor_core::prng::Prng;
use gregor_core::{wire, Duration, Instant};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, VecDeque};

pub struct Client {
    pub(crate) config: Config,
    pub(crate) prng: Prng,
    pub(crate) now: Instant,
    next_correlation_id: i32,
    pub(crate) conns: BTreeMap<NodeId, Conn>,
    /// Brokers that dropped, and when the client may connect to them again.
    down_until: BTreeMap<NodeId, Instant>,
    pub(crate) meta: Metadata,
    pub(crate) producer: Producer,
    pub(crate) consumer: Consumer,
    pub(crate) group: Option<Group>,
    /// The group coordinator's own connection: its node id and address.
    pub(crate) coordinator_address: Option<(NodeId, (String, u16))>,
    /// Admin operations under way, and the group coordinators they found.
    pub(crate) admin: Admin,
    pub(crate) outputs: VecDeque<Output>,
}

/// SaslHandshake v1 (KIP-152): the tokens then travel in SaslAuthenticate requests.
const SASL_HANDSHAKE_VERSION: i16 = 1;

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    pub fn new(config: Config, now: Instant) -> Result<Client, String> {
        config.validate()?;
        Ok(Client {
            prng: Prng::new(config.seed),
            config,
            now,
            next_correlation_id: 0,
            conns: BTreeMap::new(),
            down_until: BTreeMap::new(),
            meta: Metadata::default(),
            producer: Producer::default(),
            consumer: Consumer::default(),
            group: None,
            coordinator_address: None,
            admin: Admin::default(),
            outputs: VecDeque::new(),
        })
    }

    /// Whether any request still waits for its answer.
    pub fn requests_in_flight(&self) -> bool {
        self.conns.values().any(|c| !c.in_flight.is_empty())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Time only moves forward inside the client: an earlier `now` stands still.
    pub(crate) fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    pub fn handle(&mut self, input: Input) {
        self.advance(input.now());
        match input {
            Input::Connected { node, .. } => self.on_connected(node),
            Input::Frame { node, frame, .. } => self.on_frame(node, frame),
            Input::Disconnected { node, reason, .. } => self.on_disconnected(node, &reason),
            Input::Tick { .. } => self.expire_requests(),
        }
        self.step();
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest time at which the client has something to do without any input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        // A refresh that is due but has no ready connection to go on waits for a connection's
        // event (or the end of a reconnect backoff, below), not for time: its past deadline
        // would have the driver wake the client again at once, forever (the simulator saw
        // millions of such wake-ups while every broker was unreachable).
        let ready = self.conns.values().any(|c| c.state == ConnState::Ready);
        at(self
            .meta
            .next_deadline(self.config.metadata_max_age_ms)
            .filter(|t| ready || *t > self.now));
        at(self.down_until.values().min().copied());
        // A login due again waits for the connection's requests in flight: their answers
        // wake the client, not the clock.
        let idle = self.conns.values().filter(|c| c.in_flight.is_empty());
        at(idle.filter_map(|c| c.reauth_at).min());
        for c in self.conns.values() {
            at(c.in_flight.iter().map(|p| p.deadline).min());
        }
        at(self.producer_deadline());
        at(self.consumer_deadline());
        at(self.group_deadline());
        at(self.admin_deadline());
        t
    }

    /// What runs after every input and every call from the application.
    pub(crate) fn step(&mut self) {
        let now = self.now;
        self.down_until.retain(|_, t| *t > now);
        // Logins that are due again go first, before other requests take the connection.
        self.step_reauthenticate();
        // The admin first: the topics it needs leaders of join this step's Metadata request.
        self.step_admin();
        self.step_metadata();
        self.step_producer();
        self.step_group();
        self.step_consumer();
        self.invariants();
    }

    pub fn invariants(&self) {
        self.meta.invariants();
        for c in self.conns.values() {
            c.invariants();
        }
        self.producer_invariants();
        self.consumer_invariants();
        self.group_invariants();
        self.admin_invariants();
    }

    // ---- connections ---------------------------------------------------------------------

    fn address(&self, node: NodeId) -> Option<(String, u16)> {
        if let Some((n, addr)) = &self.coordinator_address {
            if *n == node {
                return Some(addr.clone());
            }
        }
        if node.is_bootstrap() {
            self.config.bootstrap.get((-1 - node.0) as usize).cloned()
        } else {
            let known = self.meta.brokers.get(&node.0);
            known.or_else(|| self.admin.addresses.get(&node.0)).cloned()
        }
    }

    /// Whether `node`'s connection is ready for requests; starts connecting if there is none.
    pub(crate) fn ready(&mut self, node: NodeId) -> bool {
        if let Some(c) = self.conns.get(&node) {
            return c.usable(self.now);
        }
        if self.down_until.contains_key(&node) {
            return false;
        }
        let Some((host, port)) = self.address(node) else {
            return false;
        };
        self.conns.insert(node, Conn::new());
        self.outputs.push_back(Output::Connect { node, host, port });
        false
    }

    /// A ready node to ask a cluster-wide question (Metadata, InitProducerId): the one with the
    /// fewest requests in flight among the known brokers, else a bootstrap server. Starts
    /// connecting to one if none is ready.
    pub(crate) fn any_ready_node(&mut self) -> Option<NodeId> {
        let best = self
            .conns
            .iter()
            .filter(|(_, c)| c.usable(self.now))
            .min_by_key(|(n, c)| (c.in_flight.len(), n.is_bootstrap(), **n))
            .map(|(n, _)| *n);
        if best.is_some() {
            return best;
        }
        if self.conns.values().any(|c| c.state != ConnState::Ready) {
            return None; // one is on its way
        }
        let mut candidates: Vec<NodeId> = self.meta.brokers.keys().map(|&b| NodeId(b)).collect();
        candidates.extend((0..self.config.bootstrap.len()).map(NodeId::bootstrap));
        if candidates.is_empty() {
            return None;
        }
        // Start at a random one so many clients do not all pick the first server.
        let start = self.prng.below(candidates.len() as u64) as usize;
        for i in 0..candidates.len() {
            let n = candidates[(start + i) % candidates.len()];
            if !self.down_until.contains_key(&n) {
                self.ready(n);
                return None;
            }
        }
        None
    }

    /// Encode and send a request on a ready connection. With `expect_response` false (a
    /// Produce with acks=0) nothing waits for an answer.
    pub(crate) fn send_request(
        &mut self,
        node: NodeId,
        key: ApiKey,
        version: i16,
        body: RequestKind,
        purpose: Purpose,
        expect_response: bool,
    ) {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let correlation_id = self.next_correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(sb(&self.config.client_id)));
        let frame = match wire::encode_request(&header, &body) {
            Ok(f) => f,
            // Every body is built by this crate for the version it chose: not encoding is a bug.
            Err(e) => panic!("{key:?} v{version} does not encode: {e}"),
        };
        let conn = self.conns.get_mut(&node).expect("sending on a connection");
        assert!(
            conn.state == ConnState::Ready
                || key == ApiKey::ApiVersions
                || (conn.state == ConnState::Authenticating
                    && matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)),
            "only the handshakes before a connection is ready"
        );
        if expect_response {
            let held_ms = match purpose {
                Purpose::Fetch(_) => self.config.fetch_wait_ms_max as u64,
                Purpose::JoinGroup => self
                    .group
                    .as_ref()
                    .map_or(0, |g| g.rebalance_timeout_ms() as u64),
                _ => 0,
            };
            conn.in_flight.push_back(Pending {
                correlation_id,
                key,
                version,
                sent_at: self.now,
                deadline: self.now + Duration::from_ms(self.config.request_timeout_ms + held_ms),
                purpose,
            });
        }
        self.outputs.push_back(Output::Send { node, frame });
    }

    fn on_connected(&mut self, node: NodeId) {
        let Some(c) = self.conns.get_mut(&node) else {
            return; // closed by us meanwhile
        };
        if c.state != ConnState::Connecting {
            return self.close(node, "connected twice".into());
        }
        c.state = ConnState::Handshake;
        self.send_api_versions(node, API_VERSIONS_FIRST);
    }

    fn send_api_versions(&mut self, node: NodeId, version: i16) {
        let body = ApiVersionsRequest::default()
            .with_client_software_name(sb("gregor-client"))
            .with_client_software_version(sb(env!("CARGO_PKG_VERSION")));
        self.send_request(
            node,
            ApiKey::ApiVersions,
            version,
            RequestKind::ApiVersions(body),
            Purpose::ApiVersions,
            true,
        );
    }

    /// Close a connection ourselves: its requests are lost as if it had dropped.
    pub(crate) fn close(&mut self, node: NodeId, reason: String) {
        if self.conns.contains_key(&node) {
            self.outputs.push_back(Output::Close {
                node,
                reason: reason.clone(),
            });
            self.on_disconnected(node, &reason);
        }
    }

    fn on_disconnected(&mut self, node: NodeId, reason: &str) {
        let Some(conn) = self.conns.remove(&node) else {
            return;
        };
        self.down_until.insert(
            node,
            self.now + Duration::from_ms(self.config.reconnect_backoff_ms),
        );
        self.outputs.push_back(Output::Log {
            message: format!("connection to node {} lost: {reason}", node.0),
        });
        // The brokers may have changed; ask again before relying on leaders.
        self.meta.refresh = true;
        for p in conn.in_flight {
            self.request_lost(p, reason);
        }
    }

    /// A request will never be answered (its connection dropped or timed out).
    fn request_lost(&mut self, p: Pending, reason: &str) {
        match p.purpose {
            Purpose::ApiVersions | Purpose::SaslHandshake | Purpose::SaslAuthenticate => {}
            Purpose::Metadata => {
                self.meta.in_flight = false;
                self.meta.backoff_until =
                    self.now + Duration::from_ms(self.config.retry_backoff_ms);
            }
            Purpose::InitProducerId => self.producer.pid_in_flight = false,
            Purpose::Produce(batches) => self.produce_lost(batches, reason),
            Purpose::ListOffsets(parts) | Purpose::Fetch(parts) => self.consumer_lost(parts),
            Purpose::Admin(id, units) => self.admin_lost(id, units, reason),
            Purpose::AdminFindCoordinator(group) => self.admin_find_coordinator_lost(&group),
            group => self.group_lost(&group),
        }
    }

    /// Close connections with a request unanswered past its deadline.
    fn expire_requests(&mut self) {
        let late: Vec<NodeId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.in_flight.iter().any(|p| self.now >= p.deadline))
            .map(|(n, _)| *n)
            .collect();
        for n in late {
            self.close(n, "request timed out".into());
        }
    }

    fn on_frame(&mut self, node: NodeId, mut frame: Bytes) {
        let Some(conn) = self.conns.get_mut(&node) else {
            return;
        };
        let Some(p) = conn.in_flight.pop_front() else {
            return self.close(node, "a response nobody asked for".into());
        };
        let header =
            match ResponseHeader::decode(&mut frame, p.key.response_header_version(p.version)) {
                Ok(h) => h,
                Err(e) => {
                    self.request_lost(p, "bad response header");
                    return self.close(node, format!("bad response header: {e}"));
                }
            };
        if header.correlation_id != p.correlation_id {
            let why = format!(
                "response correlation id {} where {} was next",
                header.correlation_id, p.correlation_id
            );
            self.request_lost(p, &why);
            return self.close(node, why);
        }
        if p.purpose == Purpose::ApiVersions {
            return self.on_api_versions(node, p.version, frame);
        }
        let body = match ResponseKind::decode(p.key, &mut frame.clone(), p.version) {
            Ok(b) => b,
            Err(e) => {
                let why = format!("{:?} v{} response does not decode: {e}", p.key, p.version);
                match p.purpose {
                    // Asking again would get the same answer: the operation fails.
                    Purpose::Admin(id, units) => self.admin_undecodable(id, units, &why),
                    _ => self.request_lost(p, &why),
                }
                return self.close(node, why);
            }
        };
        match (p.purpose, body) {
            (Purpose::SaslHandshake, ResponseKind::SaslHandshake(r)) => {
                self.on_sasl_handshake(node, r)
            }
            (Purpose::SaslAuthenticate, ResponseKind::SaslAuthenticate(r)) => {
                self.on_sasl_authenticate(node, r)
            }
            (Purpose::Metadata, ResponseKind::Metadata(r)) => self.on_metadata(r),
            (Purpose::Admin(id, units), body) => self.on_admin_response(node, id, units, body),
            (Purpose::AdminFindCoordinator(group), ResponseKind::FindCoordinator(r)) => {
                self.on_admin_find_coordinator(group, r)
            }
            (Purpose::InitProducerId, ResponseKind::InitProducerId(r)) => {
                self.on_init_producer_id(r)
            }
            (Purpose::Produce(batches), ResponseKind::Produce(r)) => {
                self.on_produce(node, batches, r)
            }
            (Purpose::ListOffsets(parts), ResponseKind::ListOffsets(r)) => {
                self.on_list_offsets(parts, r)
            }
            (Purpose::Fetch(parts), ResponseKind::Fetch(r)) => self.on_fetch(parts, r),
            (Purpose::FindCoordinator, ResponseKind::FindCoordinator(r)) => {
                self.on_find_coordinator(r)
            }
            (Purpose::JoinGroup, ResponseKind::JoinGroup(r)) => self.on_join(r),
            (Purpose::SyncGroup, ResponseKind::SyncGroup(r)) => self.on_sync(r),
            (Purpose::Heartbeat, ResponseKind::Heartbeat(r)) => self.on_heartbeat(r),
            (Purpose::OffsetFetch, ResponseKind::OffsetFetch(r)) => self.on_offset_fetch(r),
            (Purpose::OffsetCommit(sent), ResponseKind::OffsetCommit(r)) => {
                self.on_offset_commit(sent, r)
            }
            (Purpose::LeaveGroup, ResponseKind::LeaveGroup(_)) => {}
            (purpose, _) => panic!("a {purpose:?} request decoded as another response"),
        }
    }

    /// KIP-511: a broker older than our ApiVersions version answers with a v0 body and
    /// UNSUPPORTED_VERSION; we then ask again at the highest version it lists.
    fn on_api_versions(&mut self, node: NodeId, version: i16, frame: Bytes) {
        let r = ApiVersionsResponse::decode(&mut frame.clone(), version)
            .or_else(|_| ApiVersionsResponse::decode(&mut frame.clone(), 0));
        let r = match r {
            Ok(r) => r,
            Err(e) => return self.close(node, format!("ApiVersions answer does not decode: {e}")),
        };
        if r.error_code == ResponseError::UnsupportedVersion.code() && version > 0 {
            let theirs = r
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .map_or(0, |k| k.max_version);
            return self.send_api_versions(node, theirs.clamp(0, version - 1));
        }
        if r.error_code != 0 {
            return self.close(
                node,
                format!("ApiVersions refused: {}", error_name(r.error_code)),
            );
        }
        let c = self
            .conns
            .get_mut(&node)
            .expect("answer on a live connection");
        c.versions = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if self.config.sasl.is_some() {
            return self.begin_login(node);
        }
        self.now_ready(node);
    }

    fn sasl_login(&self) -> crate::sasl::Login {
        let login = self.config.sasl.clone();
        login.expect("a SASL login is configured")
    }

    /// Log in on a connection (KIP-152: SaslHandshake v1, then the tokens inside
    /// SaslAuthenticate requests); nothing else is sent on it until that is done.
    fn begin_login(&mut self, node: NodeId) {
        let login = self.sasl_login();
        let c = self.conns.get_mut(&node).expect("a live connection");
        c.state = ConnState::Authenticating;
        c.sasl = Some(Exchange::Handshake);
        c.reauth_at = None;
        let h = SaslHandshakeRequest::default().with_mechanism(sb(login.mechanism()));
        self.send_request(
            node,
            ApiKey::SaslHandshake,
            SASL_HANDSHAKE_VERSION,
            RequestKind::SaslHandshake(h),
            Purpose::SaslHandshake,
            true,
        );
    }

    /// The broker accepted (or refused) our SASL mechanism.
    fn on_sasl_handshake(&mut self, node: NodeId, r: SaslHandshakeResponse) {
        let login = self.sasl_login();
        if r.error_code != 0 {
            let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
            return self.close(
                node,
                format!(
                    "the broker refused SASL {} ({}; it offers {offered:?})",
                    login.mechanism(),
                    error_name(r.error_code)
                ),
            );
        }
        let c = self
            .conns
            .get_mut(&node)
            .expect("answer on a live connection");
        let ex = c.sasl.as_mut().expect("authenticating");
        let token = ex.handshake_done(&login, &mut self.prng);
        self.send_sasl_token(node, token);
    }

    fn send_sasl_token(&mut self, node: NodeId, token: Vec<u8>) {
        let c = self.conns.get(&node).expect("a live connection");
        // v1 (KIP-152) carries the session lifetime (KIP-368); v0 is the oldest.
        let theirs = c
            .versions
            .get(&(ApiKey::SaslAuthenticate as i16))
            .map_or(0, |(_, hi)| *hi);
        let a = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        self.send_request(
            node,
            ApiKey::SaslAuthenticate,
            theirs.clamp(0, 1),
            RequestKind::SaslAuthenticate(a),
            Purpose::SaslAuthenticate,
            true,
        );
    }

    /// A SaslAuthenticate came back: the next token, the end of the login, or a refusal.
    fn on_sasl_authenticate(&mut self, node: NodeId, r: SaslAuthenticateResponse) {
        let login = self.sasl_login();
        if r.error_code != 0 {
            let why = r.error_message.as_ref().map_or("", |m| m.as_str());
            return self.close(
                node,
                format!(
                    "SASL {} login of {:?} refused: {} {why}",
                    login.mechanism(),
                    login.user(),
                    error_name(r.error_code)
                ),
            );
        }
        let c = self
            .conns
            .get_mut(&node)
            .expect("answer on a live connection");
        let ex = c.sasl.as_mut().expect("authenticating");
        match ex.authenticated(&login, &r.auth_bytes) {
            Next::Token(token) => self.send_sasl_token(node, token),
            Next::Done => {
                c.sasl = None;
                // KIP-368: the broker gave the login a lifetime; log in again at 85–95 % of
                // it, as the Java client does, on this connection.
                c.reauth_at = (r.session_lifetime_ms > 0).then(|| {
                    let share = 85 + self.prng.below(11);
                    let ms = r.session_lifetime_ms as u64 * share / 100;
                    self.now + Duration::from_ms(ms)
                });
                self.now_ready(node);
            }
            Next::Fail(why) => self.close(node, format!("SASL login failed: {why}")),
        }
    }

    /// KIP-368: a ready connection whose login is due again, with nothing in flight (the
    /// broker's SASL answers and its other responses must not cross), logs in again; other
    /// requests wait until it is done.
    fn step_reauthenticate(&mut self) {
        if self.config.sasl.is_none() {
            return;
        }
        let due: Vec<NodeId> = (self.conns.iter())
            .filter(|(_, c)| c.state == ConnState::Ready && c.in_flight.is_empty())
            .filter(|(_, c)| c.reauth_at.is_some_and(|t| t <= self.now))
            .map(|(n, _)| *n)
            .collect();
        for node in due {
            self.outputs.push_back(Output::Log {
                message: format!("node {}: logging in again (KIP-368)", node.0),
            });
            self.begin_login(node);
        }
    }

    /// The connection may carry any request now.
    fn now_ready(&mut self, node: NodeId) {
        let c = self.conns.get_mut(&node).expect("a live connection");
        c.state = ConnState::Ready;
        for key in [ApiKey::Metadata, ApiKey::Produce, ApiKey::Fetch] {
            if c.version(key).is_none() {
                self.outputs.push_back(Output::Log {
                    message: format!(
                        "node {} speaks no {key:?} version this client speaks",
                        node.0
                    ),
                });
            }
        }
    }

    // ---- metadata ------------------------------------------------------------------------

    pub(crate) fn want_topic(&mut self, topic: &str) {
        if self.meta.wanted.insert(topic.to_string()) {
            self.meta.refresh = true;
        }
    }

    fn step_metadata(&mut self) {
        if !self.meta.due(self.now, self.config.metadata_max_age_ms) {
            return;
        }
        let Some(node) = self.any_ready_node() else {
            return;
        };
        let Some(version) = self.conns[&node].version(ApiKey::Metadata) else {
            return self.close(node, "no Metadata version in common".into());
        };
        let topics = self
            .meta
            .wanted
            .iter()
            .map(|t| {
                metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(sb(t))))
            })
            .collect();
        // Auto-creation on Metadata is what Kafka's console producer relies on; a broker that
        // does not allow it answers UNKNOWN_TOPIC_OR_PARTITION. An admin client turns it off
        // (`allow.auto.create.topics`): describing a topic must not create it.
        let body = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(self.config.allow_auto_topic_creation);
        self.meta.in_flight = true;
        self.meta.refresh = false;
        self.send_request(
            node,
            ApiKey::Metadata,
            version,
            RequestKind::Metadata(body),
            Purpose::Metadata,
            true,
        );
    }

    fn on_metadata(&mut self, r: MetadataResponse) {
        self.meta.in_flight = false;
        self.meta.answers += 1;
        self.meta.updated_at = Some(self.now);
        let mut brokers = BTreeMap::new();
        for b in &r.brokers {
            match u16::try_from(b.port) {
                Ok(port) if b.node_id.0 >= 0 => {
                    brokers.insert(b.node_id.0, (b.host.to_string(), port));
                }
                _ => self.outputs.push_back(Output::Log {
                    message: format!("metadata names a bad broker {:?}:{}", b.host, b.port),
                }),
            }
        }
        if !brokers.is_empty() {
            // Connections to brokers that left the cluster are closed.
            let gone: Vec<NodeId> = self
                .conns
                .keys()
                .filter(|n| !n.is_bootstrap() && !brokers.contains_key(&n.0))
                .filter(|n| {
                    self.coordinator_address
                        .as_ref()
                        .is_none_or(|(c, _)| c != *n)
                })
                .copied()
                .collect();
            self.meta.brokers = brokers;
            for n in gone {
                self.close(n, "broker left the cluster".into());
            }
        }
        let mut retry = false;
        for t in r.topics {
            let Some(name) = t.name.map(|n| n.to_string()) else {
                continue;
            };
            if t.error_code != 0 || t.partitions.is_empty() {
                let code = if t.error_code != 0 {
                    t.error_code
                } else {
                    ResponseError::LeaderNotAvailable.code()
                };
                self.meta.topics.remove(&name);
                self.meta.topic_errors.insert(name, code);
                retry = true;
                continue;
            }
            let mut parts = vec![
                PartitionMeta {
                    leader: None,
                    leader_epoch: -1
                };
                t.partitions.len()
            ];
            let mut complete = true;
            for p in &t.partitions {
                let Some(slot) = usize::try_from(p.partition_index)
                    .ok()
                    .and_then(|i| parts.get_mut(i))
                else {
                    complete = false;
                    continue;
                };
                let leader = (p.leader_id.0 >= 0
                    && p.error_code != ResponseError::LeaderNotAvailable.code())
                .then_some(p.leader_id.0);
                retry |= leader.is_none();
                *slot = PartitionMeta {
                    leader,
                    leader_epoch: p.leader_epoch,
                };
            }
            if !complete {
                // Partition indexes that are not 0..n: keep the old view and ask again.
                retry = true;
                continue;
            }
            self.meta.update_topic(&name, parts);
        }
        if retry {
            self.meta.refresh = true;
            self.meta.backoff_until = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        }
        self.metadata_changed();
    }
}
