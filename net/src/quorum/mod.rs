//! The metadata quorum between processes: KRaft's controllers over TCP (KIP-595).
//!
//! `gregor serve --node-id 1 --controller-listen 127.0.0.1:9093 --controller-quorum-voters
//! 1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293` makes this process voter 1 of a
//! three-voter metadata quorum, next to the broker it runs as today. The pieces:
//! * [`driver`]: the event loop around the sans-IO
//!   [`gregor_core::cluster::QuorumController`] (a Raft voter, its committed metadata image,
//!   and while it leads the active controller): it feeds it messages, requests and time, and
//!   performs its outputs in order, each storage output durable before the next (the calling
//!   contract in [`gregor_core::raft`]), each controller answer after the records it needs.
//! * [`transport`]: the controller listener and one connection to each other voter, speaking
//!   Kafka's KRaft RPCs ([`gregor_core::raft::wire`]) with correlation ids, bounded queues and
//!   reconnection with backoff; the listener also serves the broker-to-controller RPCs
//!   ([`gregor_core::cluster::wire`]), ApiVersions, DescribeCluster and Metadata.
//! * [`controller_client`]: sends one request to the active controller, following
//!   NOT_CONTROLLER; [`cli`]: `gregor cluster controller <request>` over it.
//! * [`storage`]: the metadata log, `quorum-state` and snapshots on disk, as Kafka lays them out.
//! * [`status`]: `gregor cluster status`: DescribeQuorum, then the brokers and topics of the
//!   leader's committed image.
//!
//! The quorum runs on its own thread with its own single-threaded tokio runtime, so its fsyncs
//! (done inline: each must finish before the next output) never stall the broker's tasks.
//! Without a quorum configured nothing here runs and `gregor serve` is the single broker it was.

pub mod cli;
pub mod controller_client;
pub mod driver;
pub mod link;
pub mod status;
pub mod storage;
pub mod transport;

use gregor_core::raft::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A metadata quorum member's settings, Kafka's names: `node.id`, the controller listener,
/// `controller.quorum.voters`, `metadata.log.dir`.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    pub listen: SocketAddr,
    /// Every voter's id and controller address, this node's included.
    pub voters: BTreeMap<NodeId, SocketAddr>,
    /// Where `__cluster_metadata-0/` lives.
    pub metadata_log_dir: PathBuf,
    /// Committed entries between two snapshots of the image.
    pub snapshot_interval_entries: i64,
}

/// The default of `metadata_snapshot_interval_entries`.
pub const SNAPSHOT_INTERVAL_ENTRIES: i64 = 10_000;

/// Parse `controller.quorum.voters`: `ID@HOST:PORT` separated by commas, ids distinct.
pub fn parse_voters(s: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut voters = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| format!("voter {part:?} is not ID@HOST:PORT"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|i| *i >= 0)
            .ok_or_else(|| format!("voter id {id:?} is not a non-negative integer"))?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("voter address {addr:?} is not HOST:PORT"))?;
        if voters.insert(NodeId(id), addr).is_some() {
            return Err(format!("voter id {id} appears twice"));
        }
    }
    if voters.is_empty() {
        return Err("controller quorum voters: none given".into());
    }
    Ok(voters)
}

impl QuorumConfig {
    /// [`QuorumConfig::from_parts`] of `serve`'s configuration.
    pub fn from_serve(c: &crate::config::ServeConfig) -> Result<Option<QuorumConfig>, String> {
        let mut q = QuorumConfig::from_parts(
            c.node_id,
            c.controller_listen,
            c.controller_quorum_voters.as_deref(),
            c.metadata_log_dir.clone(),
            &c.data_dir,
        )?;
        if let (Some(q), Some(n)) = (q.as_mut(), c.metadata_snapshot_interval_entries) {
            if n < 1 {
                return Err(format!("metadata_snapshot_interval_entries {n} is below 1"));
            }
            q.snapshot_interval_entries = n;
        }
        Ok(q)
    }

    /// The quorum settings from `serve`'s configuration: `None` when none of node id,
    /// controller listener and voters is set (a single broker, as before); an error naming what
    /// is missing or wrong when only some are.
    pub fn from_parts(
        node_id: Option<i32>,
        listen: Option<SocketAddr>,
        voters: Option<&str>,
        metadata_log_dir: Option<PathBuf>,
        data_dir: &std::path::Path,
    ) -> Result<Option<QuorumConfig>, String> {
        let (node_id, listen, voters) = match (node_id, listen, voters) {
            (None, None, None) => return Ok(None),
            (Some(n), Some(l), Some(v)) => (n, l, v),
            _ => {
                return Err(
                    "a metadata quorum needs all of node_id, controller_listen and controller_quorum_voters"
                        .into(),
                )
            }
        };
        if node_id < 0 {
            return Err(format!("node_id {node_id} is negative"));
        }
        let voters = parse_voters(voters)?;
        let node_id = NodeId(node_id);
        if !voters.contains_key(&node_id) {
            return Err(format!(
                "node_id {} is not one of the controller quorum voters {:?}",
                node_id.0,
                voters.keys().map(|n| n.0).collect::<Vec<_>>()
            ));
        }
        // Peers reach this node at its voter address, so the listener must be there (an
        // unspecified IP listens on every interface, the voter entry's included).
        let own = voters[&node_id];
        if own.port() != listen.port() || !(listen.ip().is_unspecified() || listen.ip() == own.ip())
        {
            return Err(format!(
                "controller_listen {listen} is not node {}'s voter address {own}",
                node_id.0
            ));
        }
        // The broker's data directory holds only partitions (each subdirectory is recovered as
        // one), so the metadata log defaults to a directory beside it, as Kafka's
        // `metadata.log.dir` may name another disk.
        let metadata_log_dir = metadata_log_dir.unwrap_or_else(|| {
            let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
            name.push("-metadata");
            data_dir.with_file_name(name)
        });
        Ok(Some(QuorumConfig {
            node_id,
            listen,
            voters,
            metadata_log_dir,
            snapshot_interval_entries: SNAPSHOT_INTERVAL_ENTRIES,
        }))
    }
}

/// Start the quorum member on its own thread. It runs until the process ends; a storage
/// failure stops the process (the metadata log cannot go on with a write it cannot vouch
/// for, as Kafka halts on a failed metadata log directory).
///
/// The node is a broker too (Kafka's combined mode): `broker` is its registration (its node id,
/// a fresh incarnation id, its advertised listener) and the quorum thread's end of the road to
/// the broker task.
pub fn spawn(
    config: QuorumConfig,
    broker: (gregor_core::cluster::Registration, link::QuorumEnd),
) -> anyhow::Result<()> {
    // Open the storage here, so a damaged log stops `serve` before anything else starts.
    let (storage, recovered) = storage::Storage::open(&config.metadata_log_dir)?;
    // The listener is bound on the quorum's own runtime; whether that worked comes back here,
    // so a taken port stops `serve` with a clear error too.
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("gregor-quorum".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the quorum's runtime");
            let result = rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(config.listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        let why = format!("binding the controller listener {}: {e}", config.listen);
                        let _ = bound_tx.send(Err(why));
                        return Ok(());
                    }
                };
                let _ = bound_tx.send(Ok(()));
                driver::run(config, storage, recovered, listener, broker).await
            });
            if let Err(e) = result {
                tracing::error!("metadata quorum stopped: {e:#}");
                std::process::exit(1);
            }
        })?;
    bound_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the quorum thread ended at start"))?
        .map_err(|e| anyhow::anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_refusals_say_why() {
        let v = parse_voters("1@127.0.0.1:9093, 2@127.0.0.1:9193,3@127.0.0.1:9293").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[&NodeId(2)].port(), 9193);
        assert!(parse_voters("1@127.0.0.1:9093,1@127.0.0.1:9193")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_voters("x@127.0.0.1:1").is_err());
        assert!(parse_voters("1-127.0.0.1:1").is_err());
        assert!(parse_voters("").is_err());
        let d = std::path::Path::new("/var/d1");
        assert!(QuorumConfig::from_parts(None, None, None, None, d)
            .unwrap()
            .is_none());
        let listen = Some("127.0.0.1:9093".parse().unwrap());
        assert!(QuorumConfig::from_parts(Some(1), listen, None, None, d).is_err());
        assert!(
            QuorumConfig::from_parts(Some(4), listen, Some("1@127.0.0.1:9093"), None, d).is_err()
        );
        assert!(
            QuorumConfig::from_parts(Some(1), listen, Some("1@127.0.0.1:9193"), None, d)
                .unwrap_err()
                .contains("voter address")
        );
        let c = QuorumConfig::from_parts(Some(1), listen, Some("1@127.0.0.1:9093"), None, d)
            .unwrap()
            .unwrap();
        assert_eq!(c.metadata_log_dir, PathBuf::from("/var/d1-metadata"));
    }
}
