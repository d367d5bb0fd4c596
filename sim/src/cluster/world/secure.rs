//! The ACL workload (`--acls`, issue 14 item 5): brokers with the StandardAuthorizer on,
//! clients that log in with SASL, ACLs that change during the run, and the record the
//! [`crate::check::acl`] checker judges.
//!
//! * **Authentication.** Every client logs in with SASL (PLAIN, SCRAM-SHA-256 or
//!   SCRAM-SHA-512, drawn per client) through gregor-client's login and the core's broker-side
//!   [`SaslSession`], exactly as a `SASL_PLAINTEXT` listener runs it (net/src/connection.rs):
//!   the session answers the SASL requests itself, closes a connection that sends anything else
//!   first, and once it authenticates tells the broker the principal and the client's host
//!   ([`Input::Principal`]).
//! * **Principals.** The workload that the other checkers judge (producers, readers, the
//!   committer, the creator, the auditor) are super users, so ACL changes never starve it; the
//!   brokers' replica fetchers are `User:ANONYMOUS`, a super user too (they speak no SASL yet,
//!   docs/security.md). Two *probers*, `User:prober-0` and `User:prober-1`, each on a host of its
//!   own, are what the ACLs are about: every ~100–400 ms they produce to, fetch from, list
//!   offsets of and describe the probe topics, and commit and fetch offsets of the probe group.
//! * **ACL changes.** The operator (`User:admin`, a super user, on the admin connection) sends a
//!   CreateAcls or DeleteAcls every ~0.2–1.5 s to a live broker, which forwards it to the
//!   active controller: allows and denies for a prober or `User:*`, from any host or the
//!   prober's own, on a probe topic, the wildcard `*`, the prefixes `acl-probe-` and `acl-`, the
//!   probe group, or the cluster. Per seed `allow.everyone.if.no.acl.found` is on in one of three.
//! * **What is recorded.** For every request a client's connection sends and a broker reads:
//!   the principal, the host and the metadata offset of the image the broker had applied; when
//!   the broker answers, each part it served or refused for authorization, with the operation
//!   Kafka checks for that API, and the offset it had applied then. Every image handed to a
//!   broker adds its ACL set by offset.

use super::{Ev, Role2, World};
use crate::check::acl::{AclHistory, Judged, Policy, Rule};
use crate::clients::MS;
use crate::network::Endpoint;
use bytes::Bytes;
use gregor_client::{AdminOp, Login, OffsetSpec, ProducerRecord};
use gregor_core::acl::{
    AclBinding, Authorizer, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME,
};
use gregor_core::cluster::MetadataImage;
use gregor_core::io::{Input, Request};
use gregor_core::prng::Prng;
use gregor_core::sasl::{Credentials, Mechanism, SaslSession, Step};
use gregor_core::scram::{ScramCredential, ScramMechanism};
use gregor_core::{wire, ConnId};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// The operator's principal.
const ADMIN: &str = "User:admin";
/// The topics the probers use (created by the operator), and their group.
pub const PROBE_TOPICS: [&str; 2] = ["acl-probe-0", "acl-probe-1"];
const PROBE_GROUP: &str = "acl-probe-group";
/// How many probers.
const PROBERS: usize = 2;
/// Kafka's authorization errors: TOPIC_, GROUP_AUTHORIZATION_FAILED.
const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The address client `c` connects from (for ACL host filters).
fn host_of(c: usize) -> String {
    format!("10.0.{}.{}", c / 200, 1 + c % 200)
}

/// A request a broker read, waiting for its answer.
struct Asked {
    t: u64,
    node: i32,
    principal: String,
    host: String,
    /// The applied image's offset when it was read (−1: none yet).
    offset: i64,
    /// The group a group API names.
    group: Option<String>,
}

/// The ACL workload's state: SASL sessions, who each connection is, the ACLs created, and the
/// checker's record.
pub(super) struct Secure {
    prng: Prng,
    pub(super) history: AclHistory,
    creds: Credentials,
    sessions: BTreeMap<u64, SaslSession>,
    /// Connections whose principal the broker was told: (principal, host).
    who: BTreeMap<u64, (String, String)>,
    asked: BTreeMap<(u64, i32), Asked>,
    /// The operator's connection to each node.
    admin_conns: BTreeMap<usize, u64>,
    /// ACLs created (and maybe deleted since): what a DeleteAcls names.
    created: Vec<AclBinding>,
    /// Some image handed to a broker has had the probe topics.
    topics_made: bool,
    /// The probers' hosts, by prober.
    prober_hosts: Vec<String>,
    /// The operator's last correlation id.
    admin_corr: i32,
    /// `connections.max.reauth.ms` of the brokers' SASL sessions (KIP-368; 0: off): the
    /// clients must log in again on their connections before their logins expire.
    reauth_ms: u64,
}

impl Secure {
    pub(super) fn new(seed: u64) -> Secure {
        // A generator of its own: the other workloads' choices stay as without --acls.
        let mut prng = Prng::new(seed ^ 0xac1_5ec0_0000_0001);
        let mut super_users: Vec<String> =
            ["admin", "ANONYMOUS", "creator", "committer", "auditor"]
                .iter()
                .map(|u| format!("User:{u}"))
                .collect();
        for k in 0..8 {
            super_users.push(format!("User:producer-{k}"));
            super_users.push(format!("User:reader-{k}"));
        }
        let policy = Policy {
            super_users,
            allow_if_no_acl: prng.ratio(1, 3),
        };
        let reauth_ms = if prng.ratio(1, 2) {
            2_000 + prng.below(6_000)
        } else {
            0
        };
        Secure {
            prng,
            history: AclHistory {
                policy,
                ..AclHistory::default()
            },
            creds: Credentials::default(),
            sessions: BTreeMap::new(),
            who: BTreeMap::new(),
            asked: BTreeMap::new(),
            admin_conns: BTreeMap::new(),
            created: Vec::new(),
            topics_made: false,
            prober_hosts: Vec::new(),
            admin_corr: 0,
            reauth_ms,
        }
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "\nacls: StandardAuthorizer, super users {}, allow.everyone.if.no.acl.found={}, {PROBERS} probers; connections.max.reauth.ms={}",
            self.history.policy.super_users.len(),
            self.history.policy.allow_if_no_acl,
            self.reauth_ms
        )
    }

    /// The brokers' authorizer settings.
    pub(super) fn authorizer(&self) -> Authorizer {
        Authorizer {
            super_users: self.history.policy.super_users.clone(),
            allow_if_no_acl: self.history.policy.allow_if_no_acl,
        }
    }

    /// Client `client_id`'s login: a mechanism drawn for it, and a credential the brokers'
    /// sessions check it against (PLAIN: the broker's own salted hash; SCRAM: the salted keys).
    pub(super) fn login(&mut self, client_id: &str) -> Login {
        let password = format!("{client_id}-secret");
        let salt = format!("salt-of-{client_id}");
        let mechanism = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"][self.prng.below(3) as usize];
        match ScramMechanism::from_name(mechanism) {
            Some(m) => self.creds.upsert(
                client_id,
                ScramCredential::derive(m, password.as_bytes(), salt.as_bytes(), 4096),
            ),
            None => self.creds.set_plain(
                client_id,
                ScramCredential::derive(
                    ScramMechanism::Sha256,
                    password.as_bytes(),
                    salt.as_bytes(),
                    4096,
                ),
            ),
        }
        Login::new(mechanism, client_id, &password).expect("a mechanism gregor speaks")
    }

    /// Note the ACLs of an image handed to a broker.
    pub(super) fn image_handed(&mut self, image: &MetadataImage) {
        let rules = image
            .acls()
            .iter()
            .map(|(_, b)| Rule {
                resource_type: b.resource_type,
                name: b.resource_name.clone(),
                prefixed: b.pattern_type == PatternType::Prefixed,
                principal: b.principal.clone(),
                host: b.host.clone(),
                operation: b.operation,
                allow: b.permission == Permission::Allow,
            })
            .collect();
        self.history.image(image.offset(), rules);
        if PROBE_TOPICS.iter().all(|t| image.topic_id(t).is_some()) {
            self.topics_made = true;
        }
    }
}

/// What the broker does with a request on a secured connection.
pub(super) enum Gate {
    /// Hand it to the broker, after these inputs (the principal, once authenticated).
    Forward(Vec<Input>),
    /// The session answers it itself; then, if `close`, the connection closes.
    Answer(Box<ResponseKind>, bool),
    /// Close the connection without an answer.
    Close,
}

impl World {
    /// The ACL workload starts with the others: the probers and the operator's first step.
    pub(super) fn start_acl_workload(&mut self) {
        if self.secure.is_none() {
            return;
        }
        for k in 0..PROBERS {
            let config = gregor_client::Config {
                // acks=1 without idempotence: no InitProducerId (whose authorization,
                // IdempotentWrite on the cluster or Write on any topic, is not judged).
                acks: gregor_client::Acks::Leader,
                enable_idempotence: false,
                in_flight_requests_per_connection_max: 1,
                delivery_timeout_ms: 6_000,
                ..self.client_config(format!("prober-{k}"))
            };
            self.add_client(config, Role2::Prober);
            let c = self.clients.len() - 1;
            let s = self.secure.as_mut().expect("checked");
            s.prober_hosts.push(host_of(c));
            self.schedule(self.now + (200 + 100 * k as u64) * MS, Ev::Probe(c));
        }
        self.schedule(self.now + 100 * MS, Ev::AclChange);
    }

    /// Who client `c`'s connection `conn` is, as the broker must be told.
    fn acl_gate(&mut self, i: usize, conn: u64, request: &Request) -> Gate {
        let now = self.machines[i].node.clock(self.now);
        let from = self.net.conns.get(&conn).map(|k| k.from);
        let Some(s) = self.secure.as_mut() else {
            return Gate::Forward(Vec::new());
        };
        let c = match from {
            Some(Endpoint::Client(c)) => c,
            // A follower's replica fetcher: `User:ANONYMOUS` (it speaks no SASL yet).
            Some(Endpoint::Node(_)) | None => return Gate::Forward(Vec::new()),
            Some(Endpoint::Admin) => {
                // The operator's connection: no SASL here (its own listener, as a broker's
                // PLAINTEXT one with an ACL-free operator principal would be).
                if s.who.contains_key(&conn) {
                    return Gate::Forward(Vec::new());
                }
                s.who.insert(conn, (ADMIN.into(), "10.9.9.9".into()));
                return Gate::Forward(vec![Input::Principal {
                    now,
                    conn: ConnId(conn),
                    principal: ADMIN.into(),
                    host: "10.9.9.9".into(),
                }]);
            }
        };
        if !s.sessions.contains_key(&conn) {
            let nonce: Vec<u8> = (0..24).map(|_| s.prng.below(256) as u8).collect();
            let session = SaslSession::new(Mechanism::ALL.to_vec(), &nonce);
            s.sessions.insert(conn, session.with_reauth(s.reauth_ms));
        }
        let session = s.sessions.get_mut(&conn).expect("made above");
        let was = session.is_authenticated();
        let step = session.on_request_at(request, &s.creds, now);
        let principal = session.principal().map(str::to_string);
        let gate = match step {
            Step::Forward => Gate::Forward(Vec::new()),
            Step::Respond(body) => Gate::Answer(Box::new(body), false),
            Step::RespondAndClose(body, why) => {
                self.say(|| format!("node {} SASL: {why}", i + 1));
                Gate::Answer(Box::new(body), true)
            }
            Step::Close(why) => {
                self.say(|| format!("node {} SASL: closing: {why}", i + 1));
                self.count("sasl connections closed");
                Gate::Close
            }
        };
        let s = self.secure.as_mut().expect("checked");
        match (was, principal, gate) {
            (false, Some(p), Gate::Answer(body, false)) => {
                // Authenticated by this answer: the broker learns who the connection is
                // before any request of it arrives (again after a re-authentication).
                let again = s.who.contains_key(&conn);
                let host = host_of(c);
                s.who.insert(conn, (p.clone(), host.clone()));
                let input = Input::Principal {
                    now,
                    conn: ConnId(conn),
                    principal: p,
                    host,
                };
                self.count(if again {
                    "sasl re-authentications"
                } else {
                    "sasl logins"
                });
                self.pump(i, vec![input]);
                Gate::Answer(body, false)
            }
            (_, _, gate) => gate,
        }
    }

    /// With the ACL workload on, what broker `i` does with a request read from `conn` before
    /// it may see it: the SASL session's answer (false: the broker does not see it), or the
    /// request goes on, noted for the checker (true).
    pub(super) fn acl_deliver(&mut self, i: usize, conn: u64, request: &Request) -> bool {
        if self.secure.is_none() {
            return true;
        }
        match self.acl_gate(i, conn, request) {
            Gate::Forward(first) => {
                if !first.is_empty() {
                    self.pump(i, first);
                }
                self.acl_asked(i, conn, request);
                true
            }
            Gate::Answer(body, close) => {
                self.acl_answer(conn, Some((request, *body)), close);
                false
            }
            Gate::Close => {
                self.acl_answer(conn, None, true);
                false
            }
        }
    }

    /// A SASL answer the session gave, sent back on the connection; then maybe the close.
    fn acl_answer(&mut self, conn: u64, answer: Option<(&Request, ResponseKind)>, close: bool) {
        let lat = self.latency();
        if let Some((request, body)) = answer {
            let h = &request.header;
            let frame = wire::encode_response(h.correlation_id, h.request_api_version, &body)
                .expect("SASL answers encode");
            if let Some(at) = self.net.send_from_node(conn, self.now, lat) {
                self.schedule(at, Ev::ToClient(conn, frame.slice(4..)));
            }
        }
        if close {
            if let Some(c) = self.net.conns.get_mut(&conn) {
                c.broken = true;
            }
            let at = self.now + 2 * lat;
            self.schedule(at, Ev::Reset(conn));
        }
    }

    /// A request forwarded to broker `i`: note who asked, and the image it had.
    fn acl_asked(&mut self, i: usize, conn: u64, request: &Request) {
        let t = self.ms();
        let offset = (self.machines[i].node.broker.as_ref())
            .and_then(|b| b.metadata_image())
            .map_or(-1, |im| im.offset());
        let Some(s) = self.secure.as_mut() else {
            return;
        };
        let Some((principal, host)) = s.who.get(&conn).cloned() else {
            return; // ApiVersions before authentication: nothing is authorized
        };
        let group = match &request.body {
            RequestKind::OffsetCommit(r) => Some(r.group_id.0.to_string()),
            RequestKind::OffsetFetch(r) => Some(r.group_id.0.to_string()),
            RequestKind::FindCoordinator(r) if r.key_type == 0 => Some(r.key.to_string()),
            _ => None,
        };
        s.asked.insert(
            (conn, request.header.correlation_id),
            Asked {
                t,
                node: i as i32 + 1,
                principal,
                host,
                offset,
                group,
            },
        );
    }

    /// Broker `i` answered: each part served or refused for authorization is judged.
    pub(super) fn acl_answered(&mut self, i: usize, conn: u64, corr: i32, body: &ResponseKind) {
        let now_offset = (self.machines[i].node.broker.as_ref())
            .and_then(|b| b.metadata_image())
            .map_or(-1, |im| im.offset());
        let Some(s) = self.secure.as_mut() else {
            return;
        };
        let Some(a) = s.asked.remove(&(conn, corr)) else {
            return;
        };
        // (api, resource type, name, operation, code): code 0 served, an authorization
        // error refused, anything else not judged.
        let mut parts: Vec<(&'static str, ResourceType, String, Operation, i16)> = Vec::new();
        let mut topic_parts = |api, op, name: &str, codes: &mut dyn Iterator<Item = i16>| {
            for code in codes {
                parts.push((api, ResourceType::Topic, name.to_string(), op, code));
            }
        };
        let mut at = (a.offset, a.offset);
        match body {
            ResponseKind::Produce(r) => {
                for t in &r.responses {
                    let codes = &mut t.partition_responses.iter().map(|p| p.error_code);
                    topic_parts("Produce", Operation::Write, &t.name.0, codes);
                }
            }
            ResponseKind::Fetch(r) => {
                for t in &r.responses {
                    let codes = &mut t.partitions.iter().map(|p| p.error_code);
                    topic_parts("Fetch", Operation::Read, &t.topic.0, codes);
                }
            }
            ResponseKind::ListOffsets(r) => {
                for t in &r.topics {
                    let codes = &mut t.partitions.iter().map(|p| p.error_code);
                    topic_parts("ListOffsets", Operation::Describe, &t.name.0, codes);
                }
            }
            ResponseKind::Metadata(r) => {
                // Filtered when answered: any image from reading to answering.
                at = (a.offset, now_offset.max(a.offset));
                for t in &r.topics {
                    let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                    let codes = &mut std::iter::once(t.error_code);
                    topic_parts("Metadata", Operation::Describe, &name, codes);
                }
            }
            ResponseKind::DescribeConfigs(r) => {
                for res in r.results.iter().filter(|res| res.resource_type == 2) {
                    let codes = &mut std::iter::once(res.error_code);
                    topic_parts(
                        "DescribeConfigs",
                        Operation::DescribeConfigs,
                        &res.resource_name,
                        codes,
                    );
                }
            }
            ResponseKind::OffsetCommit(r) => {
                let group = a.group.clone().unwrap_or_default();
                for t in &r.topics {
                    for p in &t.partitions {
                        let code = p.error_code;
                        // Served: both the group and the topic were Read-allowed.
                        if code == 0 || code == GROUP_DENIED {
                            let g = (ResourceType::Group, group.clone());
                            parts.push(("OffsetCommit", g.0, g.1, Operation::Read, code));
                        }
                        if code == 0 || code == TOPIC_DENIED {
                            let name = t.name.0.to_string();
                            parts.push((
                                "OffsetCommit",
                                ResourceType::Topic,
                                name,
                                Operation::Read,
                                code,
                            ));
                        }
                    }
                }
            }
            ResponseKind::OffsetFetch(r) => {
                let denied = r.error_code == GROUP_DENIED
                    || (r.topics.iter().flat_map(|t| &t.partitions))
                        .any(|p| p.error_code == GROUP_DENIED);
                let code = if denied { GROUP_DENIED } else { r.error_code };
                let group = a.group.clone().unwrap_or_default();
                parts.push((
                    "OffsetFetch",
                    ResourceType::Group,
                    group,
                    Operation::Describe,
                    code,
                ));
            }
            ResponseKind::FindCoordinator(r) => {
                if let Some(group) = a.group.clone() {
                    let code = r.error_code;
                    parts.push((
                        "FindCoordinator",
                        ResourceType::Group,
                        group,
                        Operation::Describe,
                        code,
                    ));
                }
            }
            _ => {}
        }
        for (api, resource_type, name, operation, code) in parts {
            let served = match code {
                0 => true,
                TOPIC_DENIED | GROUP_DENIED => false,
                _ => continue,
            };
            s.history.judged.push(Judged {
                t: a.t,
                node: a.node,
                api,
                principal: a.principal.clone(),
                host: a.host.clone(),
                resource_type,
                name,
                operation,
                served,
                offsets: at,
            });
        }
    }

    /// A connection is gone: its session and pending requests with it.
    pub(super) fn acl_conn_gone(&mut self, conn: u64) {
        if let Some(s) = self.secure.as_mut() {
            s.sessions.remove(&conn);
            s.who.remove(&conn);
            s.asked.retain(|(c, _), _| *c != conn);
            s.admin_conns.retain(|_, c| *c != conn);
        }
    }

    /// A prober's turn: one request of a kind drawn, then the next turn.
    pub(super) fn probe(&mut self, c: usize) {
        if self.stopping {
            return;
        }
        let Some(s) = self.secure.as_mut() else {
            return;
        };
        let gap = 100 + s.prng.below(300);
        let kind = s.prng.below(7);
        let topic = PROBE_TOPICS[s.prng.below(2) as usize].to_string();
        let commit = s.prng.ratio(1, 2);
        self.schedule(self.now + gap * MS, Ev::Probe(c));
        let now = self.client_now();
        let client = &mut self.clients[c].client;
        let tp = (topic.clone(), 0);
        match kind {
            0 | 1 => {
                let record = ProducerRecord {
                    topic,
                    partition: Some(0),
                    value: Some(Bytes::from_static(b"probe")),
                    ..ProducerRecord::default()
                };
                client.send(now, record);
            }
            2 => client.seek(now, tp, 0),
            _ if client.admin_pending() >= 2 => {}
            3 => {
                let partitions = vec![(tp, OffsetSpec::Latest)];
                client.admin(now, AdminOp::ListOffsets { partitions });
            }
            4 => {
                let topics = Some(PROBE_TOPICS.iter().map(|t| t.to_string()).collect());
                client.admin(now, AdminOp::DescribeTopics { topics });
            }
            5 => {
                let group = PROBE_GROUP.to_string();
                let op = if commit {
                    AdminOp::CommitGroupOffsets {
                        group,
                        offsets: vec![(tp, 0)],
                    }
                } else {
                    AdminOp::ListGroupOffsets {
                        group,
                        partitions: Some(vec![tp]),
                    }
                };
                client.admin(now, op);
            }
            _ => {
                client.admin(
                    now,
                    AdminOp::DescribeConfigs {
                        topics: vec![topic],
                    },
                );
            }
        }
        self.after_client(c);
    }

    /// The operator's turn: make the probe topics until they exist, then create or delete an
    /// ACL; then the next turn.
    pub(super) fn acl_change(&mut self) {
        if self.stopping {
            return;
        }
        let live: Vec<usize> = (0..self.machines.len())
            .filter(|i| self.machines[*i].member.is_some())
            .collect();
        let Some(s) = self.secure.as_mut() else {
            return;
        };
        let gap = 200 + s.prng.below(1_300);
        self.schedule(self.now + gap * MS, Ev::AclChange);
        let s = self.secure.as_mut().expect("checked");
        if live.is_empty() {
            return;
        }
        let i = live[s.prng.below(live.len() as u64) as usize];
        let (key, version, body) = if !s.topics_made {
            let topics = PROBE_TOPICS.iter().map(|t| {
                CreatableTopic::default()
                    .with_name(TopicName(sb(t)))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
            });
            let r = CreateTopicsRequest::default()
                .with_topics(topics.collect())
                .with_timeout_ms(5_000);
            (ApiKey::CreateTopics, 4, RequestKind::CreateTopics(r))
        } else if s.created.is_empty() || s.prng.ratio(3, 5) {
            let b = draw_acl(&mut s.prng, &s.prober_hosts);
            s.created.push(b.clone());
            let creation = gregor_core::acl::wire::creation_of(&b);
            let r = CreateAclsRequest::default().with_creations(vec![creation]);
            (ApiKey::CreateAcls, 1, RequestKind::CreateAcls(r))
        } else {
            let k = s.prng.below(s.created.len() as u64) as usize;
            let b = s.created.swap_remove(k);
            // Mostly exactly that ACL; sometimes every ACL of its principal.
            let broad = s.prng.ratio(1, 8);
            let filter = DeleteAclsFilter::default()
                .with_resource_type_filter(if broad { 1 } else { b.resource_type as i8 })
                .with_resource_name_filter((!broad).then(|| sb(&b.resource_name)))
                .with_pattern_type_filter(if broad { 1 } else { b.pattern_type as i8 })
                .with_principal_filter(Some(sb(&b.principal)))
                .with_host_filter((!broad).then(|| sb(&b.host)))
                .with_operation(if broad { 1 } else { b.operation as i8 })
                .with_permission_type(if broad { 1 } else { b.permission as i8 });
            if broad {
                s.created.retain(|c| c.principal != b.principal);
            }
            let r = DeleteAclsRequest::default().with_filters(vec![filter]);
            (ApiKey::DeleteAcls, 1, RequestKind::DeleteAcls(r))
        };
        self.count("acl operator requests");
        self.operator_send(i, key, version, body);
    }

    /// Send a request on the operator's connection to node `i` (opened when needed); its
    /// answer is not waited for: the checker judges by the images brokers applied, whatever
    /// became of the request.
    fn operator_send(&mut self, i: usize, key: ApiKey, version: i16, body: RequestKind) {
        let incarnation = self.machines[i].node.incarnation;
        let s = self.secure.as_mut().expect("the ACL workload");
        let open = s.admin_conns.get(&i).copied().filter(|c| {
            self.net
                .conns
                .get(c)
                .is_some_and(|k| !k.broken && k.incarnation == incarnation)
        });
        let conn = match open {
            Some(c) => c,
            None => {
                let c = self.net.open(Endpoint::Admin, i, incarnation);
                s.admin_conns.insert(i, c);
                c
            }
        };
        s.admin_corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(s.admin_corr)
            .with_client_id(Some(sb("acl-operator")));
        let lat = self.latency();
        if let Some(at) = self.net.send_to_node(conn, self.now, lat) {
            let request = Request { header, body };
            self.schedule(at, Ev::ToBroker(conn, Box::new(request)));
        }
    }

    /// The ACL checker's findings and its summary line.
    pub(super) fn acl_verdict(&self) -> Option<(Vec<String>, String)> {
        let s = self.secure.as_ref()?;
        let found = crate::check::acl::check(&s.history)
            .into_iter()
            .map(|(k, d)| format!("{k}: {d}"))
            .collect();
        let (served, refused) = s.history.counts();
        let sets = s.history.sets.len();
        let summary = format!(
            "acls: {served} request parts served and {refused} refused for authorization, judged against {sets} images' ACLs; {} ACLs created by the operator and not deleted",
            s.created.len()
        );
        Some((found, summary))
    }
}

/// An ACL from the small universe the probers live in: for a prober or `User:*`, from any host
/// or the prober's own (`hosts`, by prober), on a probe topic, the wildcard, two prefixes, the
/// probe group or the cluster; three in four are ALLOWs.
fn draw_acl(prng: &mut Prng, hosts: &[String]) -> AclBinding {
    let k = prng.below(PROBERS as u64) as usize;
    let principal = match prng.below(5) {
        0 => "User:*".to_string(),
        _ => format!("User:prober-{k}"),
    };
    let host = match hosts.get(k) {
        Some(h) if prng.ratio(1, 4) => h.clone(),
        _ => "*".to_string(),
    };
    let (resource_type, name, pattern_type) = match prng.below(9) {
        0 | 1 => (ResourceType::Topic, PROBE_TOPICS[0], PatternType::Literal),
        2 => (ResourceType::Topic, PROBE_TOPICS[1], PatternType::Literal),
        3 => (ResourceType::Topic, "*", PatternType::Literal),
        4 => (ResourceType::Topic, "acl-probe-", PatternType::Prefixed),
        5 => (ResourceType::Topic, "acl-", PatternType::Prefixed),
        6 => (ResourceType::Group, PROBE_GROUP, PatternType::Literal),
        7 => (ResourceType::Group, "acl-", PatternType::Prefixed),
        _ => (ResourceType::Cluster, CLUSTER_NAME, PatternType::Literal),
    };
    use Operation::*;
    let ops = [
        Read,
        Write,
        Describe,
        All,
        DescribeConfigs,
        AlterConfigs,
        Create,
        Alter,
    ];
    let operation = ops[prng.below(ops.len() as u64) as usize];
    let permission = if prng.ratio(1, 4) {
        Permission::Deny
    } else {
        Permission::Allow
    };
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal,
        host,
        operation,
        permission,
    }
}
