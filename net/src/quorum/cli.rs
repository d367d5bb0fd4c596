//! `gregor cluster controller --controller-quorum-voters ... <request>`: send one
//! broker-to-controller request to the active controller with the [`ControllerClient`], as a
//! broker would, and print its answer. For operators poking at a quorum (and the end-to-end
//! tests); brokers send the same requests from inside `gregor serve`.
//!
//! The answer goes to stdout as one line (`broker_epoch 12`, `fenced false`, `topic_id <uuid>`,
//! `producer_ids 0 1000`, `ok`); a refusal is an error naming Kafka's code and the message.

use super::controller_client::ControllerClient;
use super::parse_voters;
use anyhow::bail;
use gregor_core::cluster::records::Endpoint;
use gregor_core::cluster::{BrokerEpoch, BrokerId, Registration, Reply, Request};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ControllerArgs {
    /// The controller quorum's voters, ID@HOST:PORT comma-separated.
    #[arg(long, env = "GREGOR_CONTROLLER_QUORUM_VOTERS")]
    controller_quorum_voters: String,
    /// Give up after this many seconds without an answer from an active controller.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    #[command(subcommand)]
    request: ControllerRequest,
}

#[derive(clap::Subcommand)]
pub enum ControllerRequest {
    /// BrokerRegistration: broker NODE_ID joins, listening at HOST:PORT (PLAINTEXT).
    RegisterBroker {
        #[arg(long)]
        node_id: i32,
        #[arg(long)]
        endpoint: String,
        /// The incarnation (a new one per process start), 32 hex digits [default: random].
        #[arg(long)]
        incarnation: Option<String>,
    },
    /// BrokerHeartbeat: the broker is alive and has replayed the metadata log to OFFSET.
    Heartbeat {
        #[arg(long)]
        node_id: i32,
        #[arg(long)]
        broker_epoch: i64,
        #[arg(long)]
        metadata_offset: i64,
        /// WantShutDown: ask for a controlled shutdown (KIP-631).
        #[arg(long)]
        want_shut_down: bool,
    },
    /// CreateTopics of one topic.
    CreateTopic {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// A topic config, KEY=VALUE; repeat for more.
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// CreatePartitions: grow a topic to COUNT partitions.
    CreatePartitions {
        name: String,
        #[arg(long)]
        count: i32,
    },
    /// DeleteTopics of one topic.
    DeleteTopic { name: String },
    /// DescribeQuorum: the quorum leader's view (leader, epoch, high watermark).
    DescribeQuorum,
    /// AllocateProducerIds for a registered broker.
    AllocateProducerIds {
        #[arg(long)]
        node_id: i32,
        #[arg(long)]
        broker_epoch: i64,
    },
}

fn request_of(r: ControllerRequest) -> anyhow::Result<Request> {
    Ok(match r {
        ControllerRequest::RegisterBroker {
            node_id,
            endpoint,
            incarnation,
        } => {
            let (host, port) = endpoint
                .rsplit_once(':')
                .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint:?} is not HOST:PORT"))?;
            let incarnation_id = match incarnation {
                Some(hex) => parse_hex16(&hex)?,
                None => rand::random(),
            };
            Request::BrokerRegistration(Registration {
                broker_id: BrokerId(node_id),
                incarnation_id,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: host.to_string(),
                    port: port.parse()?,
                }],
                rack: None,
                log_dir_new: false,
            })
        }
        ControllerRequest::Heartbeat {
            node_id,
            broker_epoch,
            metadata_offset,
            want_shut_down,
        } => Request::BrokerHeartbeat {
            broker_id: BrokerId(node_id),
            broker_epoch: BrokerEpoch(broker_epoch),
            metadata_offset,
            want_shut_down,
        },
        ControllerRequest::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut map = BTreeMap::new();
            for c in configs {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("config {c:?} is not KEY=VALUE"))?;
                map.insert(k.to_string(), v.to_string());
            }
            Request::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs: map,
            }
        }
        ControllerRequest::CreatePartitions { name, count } => {
            Request::CreatePartitions { name, count }
        }
        ControllerRequest::DeleteTopic { name } => Request::DeleteTopic { name },
        ControllerRequest::DescribeQuorum => Request::DescribeQuorum,
        ControllerRequest::AllocateProducerIds {
            node_id,
            broker_epoch,
        } => Request::AllocateProducerIds {
            broker_id: BrokerId(node_id),
            broker_epoch: BrokerEpoch(broker_epoch),
        },
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_hex16(s: &str) -> anyhow::Result<[u8; 16]> {
    let digits: Vec<u8> = s.bytes().filter(|c| *c != b'-').collect();
    if digits.len() != 32 {
        bail!("incarnation {s:?} is not 32 hex digits");
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair)?;
        out[i] = u8::from_str_radix(pair, 16)
            .map_err(|_| anyhow::anyhow!("incarnation {s:?} is not hex"))?;
    }
    Ok(out)
}

pub fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let voters = parse_voters(&args.controller_quorum_voters).map_err(|e| anyhow::anyhow!(e))?;
    let request = request_of(args.request)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = rt.block_on(async {
        let mut client = ControllerClient::new(voters, "gregor-cli");
        client
            .send(&request, Duration::from_secs(args.timeout_secs))
            .await
    })?;
    match answer {
        Ok(Reply::BrokerRegistration { broker_epoch }) => {
            println!("broker_epoch {}", broker_epoch.0)
        }
        Ok(Reply::BrokerHeartbeat {
            fenced,
            should_shut_down,
        }) => println!("fenced {fenced} should_shut_down {should_shut_down}"),
        Ok(Reply::CreateTopic { topic_id }) => {
            println!("topic_id {}", hex(&topic_id.0))
        }
        Ok(Reply::AllocateProducerIds { first, count }) => println!("producer_ids {first} {count}"),
        Ok(
            Reply::DeleteTopic
            | Reply::CreatePartitions
            | Reply::AlterConfigs
            | Reply::ElectLeader
            | Reply::AlterReassignment
            | Reply::CreateAcl
            | Reply::AlterScram,
        ) => println!("ok"),
        Ok(Reply::DeleteAcls(gone)) => {
            for b in gone {
                println!("removed {b}");
            }
        }
        Ok(Reply::AlterPartition {
            leader,
            leader_epoch,
            partition_epoch,
            isr,
        }) => println!("leader {leader:?} leader_epoch {leader_epoch} partition_epoch {partition_epoch} isr {isr:?}"),
        Ok(Reply::DescribeQuorum(s)) => println!(
            "leader {} epoch {} high_watermark {}",
            s.leader.map_or(-1, |l| l.0),
            s.epoch.0,
            s.high_watermark
        ),
        Err(r) => bail!("the controller refused: error {}: {}", r.code, r.message),
    }
    Ok(())
}
