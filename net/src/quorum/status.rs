//! `gregor cluster status --bootstrap-controller HOST:PORT[,HOST:PORT...]`: the metadata
//! quorum as its leader sees it, what Kafka's `kafka-metadata-quorum describe --status
//! --replication` prints.
//!
//! The tool sends DescribeQuorum to each given controller in turn. Only the leader knows every
//! replica's progress; another controller answers NOT_LEADER_OR_FOLLOWER with the leader it
//! knows, and the tool tries the next address.
//!
//! Then it asks the leader DescribeCluster (endpoint type 1, brokers) and Metadata, both
//! answered from its committed metadata image: the registered brokers (id, endpoint, fenced,
//! broker epoch) and the topics with each partition's leader.

use anyhow::{bail, Context};
use bytes::Bytes;
use gregor_core::cluster::wire::client::{self, ClusterDescription, TopicDescription};
use gregor_core::cluster::wire::{self as cwire};
use gregor_core::raft::wire::{self, QuorumStatus, DESCRIBE_QUORUM_VERSIONS};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Send one request frame (length prefix included) and read the response frame (without its
/// prefix), checking the correlation id is 1.
fn exchange(addr: &str, request: &[u8]) -> anyhow::Result<Bytes> {
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

/// The brokers registered in a controller's committed image (DescribeCluster, endpoint type
/// brokers) and its topics (Metadata).
pub fn describe_cluster(addr: &str) -> anyhow::Result<(ClusterDescription, Vec<TopicDescription>)> {
    let request = client::encode_describe_cluster_request(1, cwire::ENDPOINT_TYPE_BROKERS)?;
    let cluster = client::decode_describe_cluster_response(exchange(addr, &request)?)?;
    let topics =
        client::decode_metadata_response(exchange(addr, &client::encode_metadata_request(1)?)?)?;
    Ok((cluster, topics))
}

pub fn cluster_status(bootstrap_controllers: &str) -> anyhow::Result<()> {
    let mut heard = Vec::new();
    for addr in bootstrap_controllers.split(',').map(str::trim) {
        match describe(addr) {
            Ok((status, 0)) => {
                print!("{}", render(&status));
                let (cluster, topics) = describe_cluster(addr)?;
                print!("{}", render_cluster(&cluster, &topics));
                return Ok(());
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

fn render(s: &QuorumStatus) -> String {
    use std::fmt::Write as _;
    let leader_end = s
        .voters
        .iter()
        .find(|v| Some(v.id) == s.leader)
        .map_or(-1, |v| v.log_end_offset);
    let lag = |end: i64| {
        if end < 0 {
            -1
        } else {
            (leader_end - end).max(0)
        }
    };
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

/// The brokers and topics of the leader's committed image, after the quorum's table.
fn render_cluster(c: &ClusterDescription, topics: &[TopicDescription]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    writeln!(out).unwrap();
    writeln!(out, "Brokers:           {}", c.nodes.len()).unwrap();
    writeln!(
        out,
        "{:<10}{:<24}{:<8}BrokerEpoch",
        "BrokerId", "Endpoint", "Fenced"
    )
    .unwrap();
    for n in &c.nodes {
        let epoch = n.broker_epoch.map_or("-".to_string(), |e| e.to_string());
        let endpoint = format!("{}:{}", n.host, n.port);
        writeln!(out, "{:<10}{:<24}{:<8}{epoch}", n.id, endpoint, n.fenced).unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "Topics:            {}", topics.len()).unwrap();
    writeln!(out, "{:<30}{:<12}Leaders", "Topic", "Partitions").unwrap();
    for t in topics {
        let leaders = t
            .partitions
            .iter()
            .map(|(p, l)| format!("{p}:{l}"))
            .collect::<Vec<_>>()
            .join(",");
        writeln!(out, "{:<30}{:<12}{leaders}", t.name, t.partitions.len()).unwrap();
    }
    out
}
