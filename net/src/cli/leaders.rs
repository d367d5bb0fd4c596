//! `gregor leaders elect`: Kafka's `kafka-leader-election.sh` (KIP-460). It sends one
//! ElectLeaders request (v2) to a broker, which forwards each partition's election to the
//! active controller, and prints each partition's outcome:
//!
//! ```text
//! gregor leaders elect --bootstrap 127.0.0.1:9092 --type preferred --topic orders --partition 0
//! gregor leaders elect --bootstrap 127.0.0.1:9092 --type unclean --all-topic-partitions
//! ```
//!
//! A partition whose preferred replica already leads prints "no election needed", as Kafka's
//! tool does; the command fails if any partition's election failed for another reason.

use super::secure::{Conn, SecurityArgs};
use anyhow::bail;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// ElectLeaders v2: the election type and a top-level error code.
const VERSION: i16 = 2;
/// ELECTION_NOT_NEEDED: the partition already has the leader asked for.
const ELECTION_NOT_NEEDED: i16 = 84;

/// Which election (`--election-type` in Kafka's tool).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionKind {
    /// Back to each partition's preferred (first) replica, if it is a live in-sync replica.
    Preferred,
    /// A leaderless partition takes any live replica, losing what only the ISR had.
    Unclean,
}

#[derive(clap::Subcommand, Debug)]
pub enum LeadersCommand {
    /// Elect partition leaders now (ElectLeaders, KIP-460; kafka-leader-election).
    Elect {
        #[arg(long = "type", value_enum)]
        kind: ElectionKind,
        /// The topic (with --partition).
        #[arg(long, requires = "partition", conflicts_with = "all_topic_partitions")]
        topic: Option<String>,
        /// The partition (with --topic).
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// Every partition of every topic.
        #[arg(long)]
        all_topic_partitions: bool,
        #[command(flatten)]
        security: SecurityArgs,
    },
}

pub fn leaders(servers: &str, command: &LeadersCommand) -> anyhow::Result<()> {
    let LeadersCommand::Elect {
        kind,
        topic,
        partition,
        all_topic_partitions,
        security,
    } = command;
    let partitions = match (topic, partition, all_topic_partitions) {
        (Some(t), Some(p), false) => Some(vec![TopicPartitions::default()
            .with_topic(TopicName(StrBytes::from_string(t.clone())))
            .with_partitions(vec![*p])]),
        (None, None, true) => None,
        _ => bail!("name --topic T --partition P, or --all-topic-partitions"),
    };
    let election_type = match kind {
        ElectionKind::Preferred => 0,
        ElectionKind::Unclean => 1,
    };
    let body = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(partitions)
        .with_timeout_ms(30_000);
    let server = servers.split(',').next().unwrap_or(servers);
    let r: ElectLeadersResponse = Conn::open(server, security, "gregor-leaders")?.ask(
        ApiKey::ElectLeaders,
        VERSION,
        &body,
    )?;
    if r.error_code != 0 {
        bail!(
            "the broker refused the election: error code {}",
            r.error_code
        );
    }
    let mut failed = 0;
    for t in &r.replica_election_results {
        for p in &t.partition_result {
            let name = format!("{}-{}", t.topic.0.as_str(), p.partition_id);
            let why = p.error_message.as_ref().map_or("", |m| m.as_str());
            match p.error_code {
                0 => println!("{name}: elected"),
                ELECTION_NOT_NEEDED => println!("{name}: no election needed ({why})"),
                code => {
                    failed += 1;
                    println!("{name}: failed, error code {code}: {why}");
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} partition(s) could not be elected");
    }
    Ok(())
}
