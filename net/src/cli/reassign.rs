//! `gregor reassign`: Kafka's `kafka-reassign-partitions.sh` (KIP-455). Moves a partition's
//! replicas to other brokers: to add a broker, take one away, or change a topic's replication
//! factor. It sends AlterPartitionReassignments (v0) to a broker, which forwards each
//! partition's move to the active controller:
//!
//! ```text
//! gregor reassign --bootstrap 127.0.0.1:9092 --topic orders --partition 0 --replicas 2,3 --wait
//! gregor reassign --bootstrap 127.0.0.1:9092 --reassignment-json-file moves.json
//! gregor reassign --bootstrap 127.0.0.1:9092 list
//! gregor reassign --bootstrap 127.0.0.1:9092 cancel --topic orders --partition 0
//! ```
//!
//! The JSON file is the one `kafka-reassign-partitions.sh --execute` takes:
//! `{"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3]}]}`. A move
//! starts at once and completes when every added replica has caught up and joined the ISR;
//! `--wait` polls ListPartitionReassignments until none of the moves is still in progress.

use super::secure::{Conn, SecurityArgs};
use anyhow::{bail, Context};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};

/// How long `--wait` waits for the moves to complete.
const WAIT_MAX: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug)]
pub struct ReassignArgs {
    #[command(subcommand)]
    pub command: Option<ReassignCommand>,
    /// The topic to move (with --partition and --replicas).
    #[arg(long, requires_all = ["partition", "replicas"], conflicts_with = "reassignment_json_file")]
    pub topic: Option<String>,
    #[arg(long)]
    pub partition: Option<i32>,
    /// The target replicas, comma-separated broker ids; the first is the preferred leader.
    #[arg(long, value_delimiter = ',')]
    pub replicas: Vec<i32>,
    /// Kafka's reassignment JSON (kafka-reassign-partitions.sh --reassignment-json-file).
    #[arg(long)]
    pub reassignment_json_file: Option<std::path::PathBuf>,
    /// Wait until every move has completed (or failed).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub security: SecurityArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum ReassignCommand {
    /// The reassignments in progress (ListPartitionReassignments).
    List,
    /// Cancel a reassignment in progress: back to the original replicas.
    Cancel {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
}

/// One partition's move: topic, partition, target (`None` cancels).
type Move = (String, i32, Option<Vec<i32>>);

pub fn reassign(servers: &str, args: &ReassignArgs) -> anyhow::Result<()> {
    let server = servers.split(',').next().unwrap_or(servers);
    let conn = &mut Conn::open(server, &args.security, "gregor-reassign")?;
    let moves: Vec<Move> = match (&args.command, &args.topic, &args.reassignment_json_file) {
        (Some(ReassignCommand::List), None, None) => return list(conn),
        (Some(ReassignCommand::Cancel { topic, partition }), None, None) => {
            vec![(topic.clone(), *partition, None)]
        }
        (None, Some(t), None) => vec![(t.clone(), args.partition.unwrap_or(0), Some(args.replicas.clone()))],
        (None, None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_json(&text).with_context(|| format!("{} is not a reassignment", path.display()))?
        }
        _ => bail!(
            "name --topic T --partition P --replicas 1,2, or --reassignment-json-file F, or list, or cancel"
        ),
    };
    alter(conn, &moves)?;
    if args.wait {
        wait(conn, &moves)?;
    }
    Ok(())
}

/// Kafka's reassignment JSON: version 1, a list of partitions with their target replicas.
pub fn parse_json(text: &str) -> anyhow::Result<Vec<Move>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    if v["version"].as_i64() != Some(1) {
        bail!("\"version\" must be 1");
    }
    let Some(parts) = v["partitions"].as_array() else {
        bail!("no \"partitions\" list");
    };
    let mut out = Vec::new();
    for p in parts {
        let topic = p["topic"]
            .as_str()
            .context("a partition without \"topic\"")?;
        let partition = p["partition"]
            .as_i64()
            .context("a partition without \"partition\"")?;
        let replicas = (p["replicas"].as_array())
            .context("a partition without \"replicas\"")?
            .iter()
            .map(|r| {
                r.as_i64()
                    .map(|r| r as i32)
                    .context("a replica that is not a broker id")
            })
            .collect::<anyhow::Result<Vec<i32>>>()?;
        out.push((topic.to_string(), partition as i32, Some(replicas)));
    }
    Ok(out)
}

fn alter(conn: &mut Conn, moves: &[Move]) -> anyhow::Result<()> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, partition, target) in moves {
        let replicas = target
            .as_ref()
            .map(|t| t.iter().map(|b| BrokerId(*b)).collect());
        let p = ReassignablePartition::default()
            .with_partition_index(*partition)
            .with_replicas(replicas);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
            _ => topics.push(
                ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let body = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    let r: AlterPartitionReassignmentsResponse =
        conn.ask(ApiKey::AlterPartitionReassignments, 0, &body)?;
    if r.error_code != 0 {
        bail!(
            "the broker refused the reassignment: error code {}",
            r.error_code
        );
    }
    let mut failed = 0;
    for t in &r.responses {
        for p in &t.partitions {
            let name = format!("{}-{}", t.name.0.as_str(), p.partition_index);
            let why = p.error_message.as_ref().map_or("", |m| m.as_str());
            match p.error_code {
                0 => println!("{name}: reassignment started"),
                code => {
                    failed += 1;
                    println!("{name}: failed, error code {code}: {why}");
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} partition(s) could not be reassigned");
    }
    Ok(())
}

/// One reassignment in progress: (topic, partition, replicas, adding, removing).
pub type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// The reassignments in progress, as ListPartitionReassignments lists them.
pub fn ongoing(conn: &mut Conn) -> anyhow::Result<Vec<Ongoing>> {
    let body = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
    let r: ListPartitionReassignmentsResponse =
        conn.ask(ApiKey::ListPartitionReassignments, 0, &body)?;
    if r.error_code != 0 {
        bail!(
            "the broker refused the listing: error code {}",
            r.error_code
        );
    }
    let ids = |bs: &[BrokerId]| bs.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok((r.topics.iter())
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .map(|(t, p)| {
            let name = t.name.0.to_string();
            (
                name,
                p.partition_index,
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            )
        })
        .collect())
}

fn list(conn: &mut Conn) -> anyhow::Result<()> {
    let moves = ongoing(conn)?;
    if moves.is_empty() {
        println!("no reassignment in progress");
    }
    for (topic, p, replicas, adding, removing) in moves {
        println!("{topic}-{p}: replicas {replicas:?} adding {adding:?} removing {removing:?}");
    }
    Ok(())
}

fn wait(conn: &mut Conn, moves: &[Move]) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut busy: Vec<String> = ongoing(conn)?
            .into_iter()
            .filter(|(t, p, ..)| moves.iter().any(|(mt, mp, _)| mt == t && mp == p))
            .map(|(t, p, ..)| format!("{t}-{p}"))
            .collect();
        // The broker answers from the metadata it has applied, which may not hold the move yet
        // (the controller commits it first): a move is done once the broker also shows its
        // partition on exactly the target replicas.
        for (t, p, target) in moves {
            if let Some(target) = target {
                let mut want = target.clone();
                want.sort_unstable();
                if replicas_of(conn, t, *p)? != want {
                    busy.push(format!("{t}-{p}"));
                }
            }
        }
        busy.dedup();
        if busy.is_empty() {
            println!("every reassignment is complete");
            return Ok(());
        }
        if start.elapsed() > WAIT_MAX {
            bail!("still in progress after {WAIT_MAX:?}: {busy:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The replicas of `topic`-`partition` in the broker's Metadata, sorted (empty if it has none).
fn replicas_of(conn: &mut Conn, topic: &str, partition: i32) -> anyhow::Result<Vec<i32>> {
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let resp: MetadataResponse = conn.ask(ApiKey::Metadata, 9, &req)?;
    let mut replicas: Vec<i32> = resp
        .topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.partition_index == partition)
        .flat_map(|p| p.replica_nodes.iter().map(|b| b.0))
        .collect();
    replicas.sort_unstable();
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kafkas_reassignment_json_is_read_and_bad_files_are_refused() {
        let ok = r#"{"version":1,"partitions":[{"topic":"t","partition":2,"replicas":[3,1]}]}"#;
        assert_eq!(
            super::parse_json(ok).unwrap(),
            vec![("t".to_string(), 2, Some(vec![3, 1]))]
        );
        assert!(super::parse_json(r#"{"version":2,"partitions":[]}"#).is_err());
        assert!(super::parse_json(r#"{"version":1,"partitions":[{"topic":"t"}]}"#).is_err());
        assert!(super::parse_json("not json").is_err());
    }
}
