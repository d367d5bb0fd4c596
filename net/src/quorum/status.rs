//! `gregor cluster status`: the cluster as an operator checks it, through any broker
//! (`--bootstrap HOST:PORT`) or from the controllers (`--bootstrap-controller
//! HOST:PORT[,...]`): the metadata quorum as its leader sees it (what Kafka's
//! `kafka-metadata-quorum describe --status --replication` prints), the active controller, the
//! registered brokers (fenced or not) with the partitions each leads and holds, the topics
//! with each partition's leader, and the offline partitions. `--output json` prints the same
//! as one JSON document.
//!
//! Through a broker (what Kafka's tools do with `--bootstrap-server`):
//! * **DescribeQuorum** (55): a KRaft broker forwards it to the active controller, the only
//!   node that knows every replica's progress;
//! * **DescribeCluster** v2 with `IncludeFencedBrokers` (KIP-1073): every registered broker,
//!   fenced ones included with `IsFenced`, from the broker's metadata image;
//! * **Metadata** v9: every topic with each partition's leader, replicas, ISR and offline
//!   replicas. A partition with no leader is offline.
//!
//! From the controllers, the tool sends DescribeQuorum to each given controller in turn: a
//! controller that is not the leader answers NOT_LEADER_OR_FOLLOWER with the leader it knows,
//! and the tool tries the next address. Then it asks the leader DescribeCluster and Metadata,
//! both answered from its committed metadata image.

use anyhow::{bail, Context};
use bytes::Bytes;
use gregor_client::admin::PartitionInfo;
use gregor_core::cluster::wire::client::{self, ClusterDescription};
use gregor_core::cluster::wire::{self as cwire};
use gregor_core::raft::wire::{self, QuorumStatus, DESCRIBE_QUORUM_VERSIONS};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Send one request frame (length prefix included) and read the response frame (without its
/// prefix), checking the correlation id is 1.
pub(crate) fn exchange(addr: &str, request: &[u8]) -> anyhow::Result<Bytes> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&sock, TIMEOUT)
        .with_context(|| format!("cannot connect to controller {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(request)?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .context("reading the response")?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 16 * 1024 * 1024 {
        bail!("response of {len} bytes from {addr}");
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf)?;
    let frame = Bytes::from(buf);
    let corr = wire::response_correlation_id(&frame)?;
    if corr != 1 {
        bail!("response correlation id {corr}, expected 1");
    }
    Ok(frame)
}

/// One DescribeQuorum exchange: the status and the error code the controller answered with.
pub fn describe(addr: &str) -> anyhow::Result<(QuorumStatus, i16)> {
    let version = DESCRIBE_QUORUM_VERSIONS.1;
    let frame = exchange(addr, &wire::encode_describe_quorum_request(1, version)?)?;
    Ok(wire::decode_describe_quorum_response(frame, version)?)
}

/// One topic of a Metadata response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub error_code: i16,
    pub partitions: Vec<PartitionInfo>,
}

/// Everything `cluster status` shows: the quorum (`None` with why when it could not be
/// described), the brokers and the topics.
pub struct ClusterStatus {
    pub quorum: Result<QuorumStatus, String>,
    pub cluster: ClusterDescription,
    pub topics: Vec<TopicView>,
}

/// The Metadata version asked for: one both a broker (up to 9) and a controller listener (up
/// to 12) serve, with offline replicas (v5+) and leader epochs (v7+).
const METADATA_VERSION: i16 = 9;

/// Every topic, with each partition's leader, replicas, ISR and offline replicas (Metadata).
pub fn topics(addr: &str) -> anyhow::Result<Vec<TopicView>> {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, RequestHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    let key = ApiKey::Metadata;
    let v = METADATA_VERSION;
    let mut body = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("gregor-cli")))
        .encode(&mut body, key.request_header_version(v))?;
    MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false)
        .encode(&mut body, v)?;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let mut buf = exchange(addr, &frame)?;
    kafka_protocol::messages::ResponseHeader::decode(&mut buf, key.response_header_version(v))?;
    let r = MetadataResponse::decode(&mut buf, v)?;
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
    let mut topics: Vec<TopicView> = r
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: ids(&p.replica_nodes),
                    isr: ids(&p.isr_nodes),
                    offline_replicas: ids(&p.offline_replicas),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicView {
                name: t.name.as_ref().map_or(String::new(), |n| n.to_string()),
                error_code: t.error_code,
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// The brokers registered (DescribeCluster, endpoint type brokers, fenced ones included).
pub fn brokers(addr: &str) -> anyhow::Result<ClusterDescription> {
    let request = client::encode_describe_cluster_request(1, cwire::ENDPOINT_TYPE_BROKERS)?;
    let cluster = client::decode_describe_cluster_response(exchange(addr, &request)?)?;
    if cluster.error_code != 0 {
        bail!("DescribeCluster from {addr}: error {}", cluster.error_code);
    }
    Ok(cluster)
}

/// The status through the broker at `addr`.
fn through_broker(addr: &str) -> anyhow::Result<ClusterStatus> {
    let quorum = match describe(addr) {
        Ok((status, 0)) => Ok(status),
        Ok((_, code)) => Err(format!("the broker's DescribeQuorum failed: error {code}")),
        // A standalone broker has no quorum to forward to, and closes on the request.
        Err(e) => Err(format!(
            "the broker does not answer DescribeQuorum: a standalone broker has no metadata quorum ({e:#})"
        )),
    };
    Ok(ClusterStatus {
        quorum,
        cluster: brokers(addr)?,
        topics: topics(addr)?,
    })
}

/// The status from the first of `bootstrap_controllers` that leads the quorum.
fn from_controllers(bootstrap_controllers: &str) -> anyhow::Result<ClusterStatus> {
    let mut heard = Vec::new();
    for addr in bootstrap_controllers.split(',').map(str::trim) {
        match describe(addr) {
            Ok((status, 0)) => {
                return Ok(ClusterStatus {
                    quorum: Ok(status),
                    cluster: brokers(addr)?,
                    topics: topics(addr)?,
                })
            }
            Ok((status, code)) => heard.push(format!(
                "{addr}: not the leader (error {code}); it knows leader {} in epoch {}",
                status.leader.map_or("none".into(), |l| l.0.to_string()),
                status.epoch.0
            )),
            Err(e) => heard.push(format!("{addr}: {e:#}")),
        }
    }
    bail!(
        "no metadata quorum leader answered:\n  {}",
        heard.join("\n  ")
    )
}

/// `gregor cluster status`: through the broker `bootstrap` if given, else from the
/// controllers; a table, or JSON.
pub fn cluster_status(
    bootstrap: Option<&str>,
    bootstrap_controllers: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let status = match (bootstrap, bootstrap_controllers) {
        (Some(b), _) => {
            let addr = b.split(',').map(str::trim).next().unwrap_or_default();
            through_broker(addr)?
        }
        (None, Some(c)) => from_controllers(c)?,
        (None, None) => bail!("give --bootstrap HOST:PORT or --bootstrap-controller HOST:PORT"),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&status)).expect("JSON prints")
        );
        return Ok(());
    }
    match &status.quorum {
        Ok(q) => print!("{}", render(q)),
        Err(why) => println!("Quorum:            unknown: {why}"),
    }
    print!("{}", render_cluster(&status));
    Ok(())
}

/// Each voter's lag behind the leader's log end (-1 when its log end is not known).
fn lags(s: &QuorumStatus) -> impl Fn(i64) -> i64 {
    let leader_end = s
        .voters
        .iter()
        .find(|v| Some(v.id) == s.leader)
        .map_or(-1, |v| v.log_end_offset);
    move |end: i64| {
        if end < 0 || leader_end < 0 {
            -1
        } else {
            (leader_end - end).max(0)
        }
    }
}

/// Per broker: the partitions it leads, and those it holds a replica of.
fn per_broker(topics: &[TopicView]) -> BTreeMap<i32, (usize, usize)> {
    let mut out: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for p in topics.iter().flat_map(|t| &t.partitions) {
        if p.leader >= 0 {
            out.entry(p.leader).or_default().0 += 1;
        }
        for r in &p.replicas {
            out.entry(*r).or_default().1 += 1;
        }
    }
    out
}

/// The partitions with no leader: (topic, partition, replicas).
fn offline(topics: &[TopicView]) -> Vec<(&str, &PartitionInfo)> {
    partitions_where(topics, |p| p.leader < 0)
}

/// The under-replicated partitions: fewer in-sync replicas than replicas (a follower fell
/// behind, or its broker is down), as `kafka-topics.sh --under-replicated-partitions` and
/// Kafka's `UnderReplicatedPartitions` metric count them.
fn under_replicated(topics: &[TopicView]) -> Vec<(&str, &PartitionInfo)> {
    partitions_where(topics, |p| p.isr.len() < p.replicas.len())
}

fn partitions_where(
    topics: &[TopicView],
    keep: impl Fn(&PartitionInfo) -> bool,
) -> Vec<(&str, &PartitionInfo)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
        .filter(|(_, p)| keep(p))
        .collect()
}

fn to_json(s: &ClusterStatus) -> serde_json::Value {
    use serde_json::json;
    let replica = |r: &wire::ReplicaStatus, lag: i64| {
        json!({
            "id": r.id.0,
            "log_end_offset": r.log_end_offset,
            "lag": lag,
            "last_fetch_timestamp": r.last_fetch_ms,
            "last_caught_up_timestamp": r.last_caught_up_ms,
        })
    };
    let quorum = match &s.quorum {
        Ok(q) => {
            let lag = lags(q);
            let max = q
                .voters
                .iter()
                .filter(|v| Some(v.id) != q.leader)
                .map(|v| lag(v.log_end_offset))
                .max()
                .unwrap_or(0);
            json!({
                "leader_id": q.leader.map_or(-1, |l| l.0),
                "leader_epoch": q.epoch.0,
                "high_watermark": q.high_watermark,
                "max_follower_lag": max,
                "voters": q.voters.iter().map(|v| replica(v, lag(v.log_end_offset))).collect::<Vec<_>>(),
                "observers": q.observers.iter().map(|v| replica(v, lag(v.log_end_offset))).collect::<Vec<_>>(),
            })
        }
        Err(why) => json!({ "error": why }),
    };
    let counts = per_broker(&s.topics);
    let brokers: Vec<_> = s
        .cluster
        .nodes
        .iter()
        .map(|n| {
            let (leaders, replicas) = counts.get(&n.id).copied().unwrap_or_default();
            json!({
                "id": n.id,
                "host": n.host,
                "port": n.port,
                "rack": n.rack,
                "fenced": n.fenced,
                "broker_epoch": n.broker_epoch,
                "leaders": leaders,
                "replicas": replicas,
            })
        })
        .collect();
    let topics: Vec<_> = s
        .topics
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "error_code": t.error_code,
                "partitions": t.partitions.iter().map(|p| json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "leader_epoch": p.leader_epoch,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "offline_replicas": p.offline_replicas,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let offline: Vec<_> = offline(&s.topics)
        .into_iter()
        .map(|(t, p)| json!({ "topic": t, "partition": p.partition, "replicas": p.replicas }))
        .collect();
    let under: Vec<_> = under_replicated(&s.topics)
        .into_iter()
        .map(|(t, p)| {
            json!({
                "topic": t,
                "partition": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "offline_replicas": p.offline_replicas,
            })
        })
        .collect();
    json!({
        "quorum": quorum,
        "active_controller": s.quorum.as_ref().ok().and_then(|q| q.leader).map(|l| l.0),
        "brokers": brokers,
        "topics": topics,
        "offline_partition_count": offline.len(),
        "offline_partitions": offline,
        "under_replicated_partition_count": under.len(),
        "under_replicated_partitions": under,
    })
}

fn render(s: &QuorumStatus) -> String {
    use std::fmt::Write as _;
    let lag = lags(s);
    let ids = |rs: &[wire::ReplicaStatus]| {
        rs.iter()
            .map(|r| r.id.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let followers = s.voters.iter().filter(|v| Some(v.id) != s.leader);
    let max_lag = followers.map(|v| lag(v.log_end_offset)).max().unwrap_or(0);
    let mut out = String::new();
    let leader = s.leader.map_or(-1, |l| l.0);
    writeln!(out, "LeaderId:          {leader}").unwrap();
    writeln!(out, "LeaderEpoch:       {}", s.epoch.0).unwrap();
    writeln!(out, "HighWatermark:     {}", s.high_watermark).unwrap();
    writeln!(out, "MaxFollowerLag:    {max_lag}").unwrap();
    writeln!(out, "CurrentVoters:     [{}]", ids(&s.voters)).unwrap();
    writeln!(out, "CurrentObservers:  [{}]", ids(&s.observers)).unwrap();
    writeln!(out).unwrap();
    writeln!(
        out,
        "{:<8}{:<14}{:<8}{:<20}{:<23}Status",
        "NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp"
    )
    .unwrap();
    let rows = s
        .voters
        .iter()
        .map(|r| (r, true))
        .chain(s.observers.iter().map(|r| (r, false)));
    for (r, voter) in rows {
        let role = match (Some(r.id) == s.leader, voter) {
            (true, _) => "Leader",
            (false, true) => "Follower",
            (false, false) => "Observer",
        };
        writeln!(
            out,
            "{:<8}{:<14}{:<8}{:<20}{:<23}{role}",
            r.id.0,
            r.log_end_offset,
            lag(r.log_end_offset),
            r.last_fetch_ms,
            r.last_caught_up_ms
        )
        .unwrap();
    }
    out
}

/// The active controller, the brokers (with the partitions each leads and holds), the topics
/// with each partition's leader, and the offline partitions, after the quorum's table.
fn render_cluster(s: &ClusterStatus) -> String {
    use std::fmt::Write as _;
    let (c, topics) = (&s.cluster, &s.topics);
    let counts = per_broker(topics);
    let mut out = String::new();
    writeln!(out).unwrap();
    let active = s.quorum.as_ref().ok().and_then(|q| q.leader);
    writeln!(out, "ActiveController:  {}", active.map_or(-1, |l| l.0)).unwrap();
    writeln!(out, "Brokers:           {}", c.nodes.len()).unwrap();
    writeln!(
        out,
        "{:<10}{:<24}{:<8}{:<13}{:<9}Replicas",
        "BrokerId", "Endpoint", "Fenced", "BrokerEpoch", "Leaders"
    )
    .unwrap();
    for n in &c.nodes {
        let epoch = n.broker_epoch.map_or("-".to_string(), |e| e.to_string());
        let endpoint = format!("{}:{}", n.host, n.port);
        let (leaders, replicas) = counts.get(&n.id).copied().unwrap_or_default();
        writeln!(
            out,
            "{:<10}{:<24}{:<8}{:<13}{:<9}{replicas}",
            n.id, endpoint, n.fenced, epoch, leaders
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "Topics:            {}", topics.len()).unwrap();
    writeln!(out, "{:<30}{:<12}Leaders", "Topic", "Partitions").unwrap();
    for t in topics {
        let leaders = t
            .partitions
            .iter()
            .map(|p| format!("{}:{}", p.partition, p.leader))
            .collect::<Vec<_>>()
            .join(",");
        writeln!(out, "{:<30}{:<12}{leaders}", t.name, t.partitions.len()).unwrap();
    }
    let offline = offline(topics);
    writeln!(out).unwrap();
    writeln!(out, "OfflinePartitions: {}", offline.len()).unwrap();
    for (t, p) in offline {
        let replicas = p
            .replicas
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        writeln!(out, "  {t}-{} (replicas [{replicas}])", p.partition).unwrap();
    }
    let under = under_replicated(topics);
    writeln!(out, "UnderReplicatedPartitions: {}", under.len()).unwrap();
    let list = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for (t, p) in under {
        writeln!(
            out,
            "  {t}-{} (leader {} replicas [{}] isr [{}] offline [{}])",
            p.partition,
            p.leader,
            list(&p.replicas),
            list(&p.isr),
            list(&p.offline_replicas)
        )
        .unwrap();
    }
    out
}
