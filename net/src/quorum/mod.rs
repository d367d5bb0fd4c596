//! The metadata quorum between processes: KRaft's controllers over TCP (KIP-595).
//!
//! `gregor serve --node-id 1 --controller-listen 127.0.0.1:9093 --controller-quorum-voters
//! 1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293` makes this process voter 1 of a
//! three-voter metadata quorum, next to the broker it runs as today.
//!
//! **Roles** (Kafka's `process.roles`, `--process-roles`): `broker,controller` (combined, the
//! default), `controller` (a voter and no Kafka listener: no broker runs) or `broker` (a Raft
//! observer of the voters given, with no controller listener of its own).
//!
//! **One voter by default.** Plain `gregor serve`, with no voters given, is the same combined
//! node in a quorum of one: this node, whose node id is the broker id (0 unless set). Its
//! controller needs no listener (no other voter will ever call it; its broker reaches it
//! through [`link`], in the process), so none is opened unless `--controller-listen` and the
//! voters name one. A voter alone elects itself at once (`RaftNode::restore`), its broker
//! registers and is unfenced in the same few steps, and the broker opens its Kafka listener
//! only then ([`link::ToBroker::Ready`]), so the first client already finds a broker that
//! leads its partitions and can create topics. A data directory a standalone broker wrote
//! (no metadata log yet) is imported into the new log first ([`gregor_core::cluster::import`]).
//!
//! The pieces:
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

/// A metadata quorum member's settings, Kafka's names: `node.id`, `process.roles`, the
/// controller listener, `controller.quorum.voters`, `metadata.log.dir`.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    pub role: ProcessRole,
    /// The controller listener: none on a broker-only node, and none for the one-voter quorum
    /// of a plain `gregor serve` (its only voter is in this process).
    pub listen: Option<SocketAddr>,
    /// Every voter's id and controller address, this node's included (a lone voter with no
    /// listener is at [`IN_PROCESS`]: nobody connects to it).
    pub voters: BTreeMap<NodeId, SocketAddr>,
    /// Where `__cluster_metadata-0/` lives.
    pub metadata_log_dir: PathBuf,
    /// Committed entries between two snapshots of the image.
    pub snapshot_interval_entries: i64,
    /// The SCRAM users the first controller of an empty log writes (the TOML `[users]`).
    pub bootstrap_scram: Vec<(String, gregor_core::sasl::scram::ScramCredential)>,
}

/// The default of `metadata_snapshot_interval_entries`.
pub const SNAPSHOT_INTERVAL_ENTRIES: i64 = 10_000;

/// The voter address of a lone voter with no controller listener (never dialled).
pub const IN_PROCESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

pub use gregor_core::cluster::Role as ProcessRole;

/// Parse `process.roles`: `broker`, `controller`, or both (comma-separated, either order).
pub fn parse_roles(s: &str) -> Result<ProcessRole, String> {
    let mut broker = false;
    let mut controller = false;
    for part in s.split(',').map(str::trim) {
        match part {
            "broker" if !broker => broker = true,
            "controller" if !controller => controller = true,
            _ => {
                return Err(format!(
                    "process_roles {s:?}: expected broker, controller or broker,controller"
                ))
            }
        }
    }
    Ok(match (broker, controller) {
        (true, true) => ProcessRole::Combined,
        (true, false) => ProcessRole::Broker,
        (false, true) => ProcessRole::Controller,
        (false, false) => unreachable!("split yields at least one part"),
    })
}

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
    pub fn from_serve(c: &crate::config::ServeConfig) -> Result<QuorumConfig, String> {
        let role = match c.process_roles.as_deref() {
            None => ProcessRole::Combined,
            Some(r) => parse_roles(r)?,
        };
        let mut q = QuorumConfig::from_parts(
            role,
            c.node_id.or(Some(c.broker.broker_id.0)),
            c.controller_listen,
            c.controller_quorum_voters.as_deref(),
            c.metadata_log_dir.clone(),
            &c.data_dir,
        )?;
        if let Some(n) = c.metadata_snapshot_interval_entries {
            if n < 1 {
                return Err(format!("metadata_snapshot_interval_entries {n} is below 1"));
            }
            q.snapshot_interval_entries = n;
        }
        q.bootstrap_scram = crate::config::bootstrap_scram(&c.users);
        Ok(q)
    }

    /// The quorum settings from `serve`'s configuration. With no voters given, a combined node
    /// is the one voter of its own quorum, with no controller listener; a node of another role
    /// needs the voters. Contradictions are refused with what is wrong: a controller that is
    /// not among the voters, a broker alone that is, a listener where none can be, a voter
    /// without its listener.
    pub fn from_parts(
        role: ProcessRole,
        node_id: Option<i32>,
        listen: Option<SocketAddr>,
        voters: Option<&str>,
        metadata_log_dir: Option<PathBuf>,
        data_dir: &std::path::Path,
    ) -> Result<QuorumConfig, String> {
        let roles = match role {
            ProcessRole::Broker => "process_roles=broker",
            ProcessRole::Controller => "process_roles=controller",
            ProcessRole::Combined => "process_roles=broker,controller",
        };
        let node_id = match (node_id, voters) {
            (Some(n), _) => n,
            (None, None) => 0,
            (None, Some(_)) => {
                return Err("controller_quorum_voters needs this node's node_id".into())
            }
        };
        if node_id < 0 {
            return Err(format!("node_id {node_id} is negative"));
        }
        let node_id = NodeId(node_id);
        let (voters, listen) = match (role, voters, listen) {
            (ProcessRole::Combined, None, None) => (BTreeMap::from([(node_id, IN_PROCESS)]), None),
            (ProcessRole::Combined, None, Some(_)) => {
                return Err(
                    "controller_listen needs controller_quorum_voters (naming this node at it)"
                        .into(),
                )
            }
            (_, None, _) => {
                return Err(format!(
                    "{roles} needs controller_quorum_voters: {}",
                    if role == ProcessRole::Broker {
                        "the controllers it follows"
                    } else {
                        "the voters, this node among them"
                    }
                ))
            }
            (ProcessRole::Broker, Some(v), l) => {
                let voters = parse_voters(v)?;
                if voters.contains_key(&node_id) {
                    return Err(format!(
                        "{roles}, but node_id {} is one of the controller quorum voters: a voter is a controller",
                        node_id.0
                    ));
                }
                if let Some(l) = l {
                    return Err(format!(
                        "{roles} has no controller listener, yet controller_listen is {l}"
                    ));
                }
                (voters, None)
            }
            (_, Some(v), l) => {
                let voters = parse_voters(v)?;
                if !voters.contains_key(&node_id) {
                    return Err(format!(
                        "{roles}: node_id {} is not one of the controller quorum voters {:?}",
                        node_id.0,
                        voters.keys().map(|n| n.0).collect::<Vec<_>>()
                    ));
                }
                let Some(listen) = l else {
                    return Err(format!(
                        "{roles}: a voter needs controller_listen (its voter address {})",
                        voters[&node_id]
                    ));
                };
                // Peers reach this node at its voter address, so the listener must be there
                // (an unspecified IP listens on every interface, the voter entry's included).
                let own = voters[&node_id];
                if own.port() != listen.port()
                    || !(listen.ip().is_unspecified() || listen.ip() == own.ip())
                {
                    return Err(format!(
                        "controller_listen {listen} is not node {}'s voter address {own}",
                        node_id.0
                    ));
                }
                (voters, Some(listen))
            }
        };
        // The broker's data directory holds only partitions (each subdirectory is recovered as
        // one), so the metadata log defaults to a directory beside it, as Kafka's
        // `metadata.log.dir` may name another disk.
        let metadata_log_dir = metadata_log_dir.unwrap_or_else(|| {
            let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
            name.push("-metadata");
            data_dir.with_file_name(name)
        });
        Ok(QuorumConfig {
            node_id,
            role,
            listen,
            voters,
            metadata_log_dir,
            snapshot_interval_entries: SNAPSHOT_INTERVAL_ENTRIES,
            bootstrap_scram: Vec::new(),
        })
    }

    /// Whether this node is the only voter: the default `gregor serve`.
    pub fn alone(&self) -> bool {
        self.voters.len() == 1 && self.voters.contains_key(&self.node_id)
    }
}

/// Start the quorum member on its own thread. It runs until the process ends; a storage
/// failure stops the process (the metadata log cannot go on with a write it cannot vouch
/// for, as Kafka halts on a failed metadata log directory).
///
/// When the node is a broker too, `broker` is its registration (its node id, a fresh
/// incarnation id, its advertised listener) and the quorum thread's end of the road to the
/// broker task; a controller alone has none. Returns the handle the process resigns the
/// quorum's leadership with when it stops cleanly.
pub fn spawn(
    config: QuorumConfig,
    broker: Option<(gregor_core::cluster::Registration, link::QuorumEnd)>,
) -> anyhow::Result<link::ResignAsk> {
    assert_eq!(config.role.has_broker(), broker.is_some());
    // Open the storage here, so a damaged log stops `serve` before anything else starts.
    let (storage, recovered) = storage::Storage::open(&config.metadata_log_dir)?;
    // The listener is bound on the quorum's own runtime; whether that worked comes back here,
    // so a taken port stops `serve` with a clear error too.
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (resign, resign_asks) = link::resign_pair();
    std::thread::Builder::new()
        .name("gregor-quorum".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the quorum's runtime");
            let result = rt.block_on(async move {
                let listener = match config.listen {
                    None => None,
                    Some(at) => match tokio::net::TcpListener::bind(at).await {
                        Ok(l) => Some(l),
                        Err(e) => {
                            let why = format!("binding the controller listener {at}: {e}");
                            let _ = bound_tx.send(Err(why));
                            return Ok(());
                        }
                    },
                };
                let _ = bound_tx.send(Ok(()));
                driver::run(config, storage, recovered, listener, broker, resign_asks).await
            });
            if let Err(e) = result {
                tracing::error!("metadata quorum stopped: {e:#}");
                std::process::exit(1);
            }
        })?;
    bound_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the quorum thread ended at start"))?
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(resign)
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
        use ProcessRole::{Broker, Combined, Controller};
        // Nothing given: the one-voter quorum, in process.
        let solo = QuorumConfig::from_parts(Combined, None, None, None, None, d).unwrap();
        assert!(solo.alone() && solo.listen.is_none());
        assert_eq!(solo.voters, BTreeMap::from([(NodeId(0), IN_PROCESS)]));
        assert_eq!(solo.metadata_log_dir, PathBuf::from("/var/d1-metadata"));
        let listen = Some("127.0.0.1:9093".parse().unwrap());
        assert!(QuorumConfig::from_parts(Combined, Some(1), listen, None, None, d).is_err());
        let one = Some("1@127.0.0.1:9093");
        assert!(QuorumConfig::from_parts(Combined, Some(4), listen, one, None, d).is_err());
        assert!(QuorumConfig::from_parts(Combined, None, listen, one, None, d).is_err());
        assert!(
            QuorumConfig::from_parts(Combined, Some(1), None, one, None, d)
                .unwrap_err()
                .contains("needs controller_listen")
        );
        assert!(QuorumConfig::from_parts(
            Combined,
            Some(1),
            listen,
            Some("1@127.0.0.1:9193"),
            None,
            d
        )
        .unwrap_err()
        .contains("voter address"));
        let c = QuorumConfig::from_parts(Combined, Some(1), listen, one, None, d).unwrap();
        assert_eq!(c.metadata_log_dir, PathBuf::from("/var/d1-metadata"));
        assert!(c.alone() && c.listen == listen);
        // Roles.
        let three = Some("1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293");
        let b = QuorumConfig::from_parts(Broker, Some(4), None, three, None, d).unwrap();
        assert!(!b.alone() && b.listen.is_none() && b.role == Broker);
        for (role, id, l, v, why) in [
            (
                Broker,
                Some(4),
                None,
                None,
                "needs controller_quorum_voters",
            ),
            (
                Controller,
                Some(1),
                listen,
                None,
                "needs controller_quorum_voters",
            ),
            (Broker, Some(1), None, three, "a voter is a controller"),
            (Broker, Some(4), listen, three, "no controller listener"),
            (
                Controller,
                Some(4),
                listen,
                three,
                "not one of the controller quorum voters",
            ),
        ] {
            let e = QuorumConfig::from_parts(role, id, l, v, None, d).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let c = QuorumConfig::from_parts(Controller, Some(1), listen, three, None, d).unwrap();
        assert_eq!(c.role, Controller);
        assert_eq!(parse_roles("broker,controller"), Ok(Combined));
        assert_eq!(parse_roles("controller, broker"), Ok(Combined));
        assert_eq!(parse_roles("controller"), Ok(Controller));
        assert_eq!(parse_roles("broker"), Ok(Broker));
        assert!(parse_roles("broker,broker").is_err());
        assert!(parse_roles("").is_err());
        assert!(parse_roles("zookeeper").is_err());
    }
}
