//! The operator's admin commands beyond create/list/describe, with Kafka's tools' vocabulary:
//!
//! ```text
//! gregor topics alter NAME [--partitions N] [--set k=v]... [--delete k]...   (kafka-topics --alter)
//! gregor configs describe --topic T                                         (kafka-configs --describe)
//! gregor configs alter --topic T [--set k=v]... [--delete k]... [--validate-only]
//! gregor records delete --topic T --partition P --before OFFSET             (kafka-delete-records)
//! gregor groups delete-offsets GROUP --topic T [--partition P]              (kafka-consumer-groups --delete-offsets)
//! gregor groups reset-offsets GROUP --topic T [--partition P]
//!        --to-earliest | --to-latest | --to-offset N  [--dry-run]           (kafka-consumer-groups --reset-offsets)
//! ```
//!
//! Each is one or two plain Kafka requests ([`crate::admin::Client`]), so they work against
//! Apache Kafka too. A reset commits the new offsets as kafka-consumer-groups does: an
//! OffsetCommit outside any generation, which the coordinator accepts only while the group has
//! no members (stop the consumers first).

use crate::admin::{error_name, Client};
use anyhow::{anyhow, bail};
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The broker address shared by every command.
#[derive(clap::Args, Debug)]
pub struct Bootstrap {
    /// The broker to talk to.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9092",
        env = "GREGOR_BOOTSTRAP"
    )]
    pub bootstrap: String,
}

/// `gregor topics alter`.
#[derive(clap::Args, Debug)]
pub struct TopicsAlter {
    /// The topic to change.
    pub name: String,
    /// Grow the topic to this many partitions (CreatePartitions; partitions are never removed).
    #[arg(long)]
    pub partitions: Option<i32>,
    #[command(flatten)]
    pub configs: ConfigChanges,
}

/// Config changes, as IncrementalAlterConfigs operations.
#[derive(clap::Args, Debug)]
pub struct ConfigChanges {
    /// Set a topic config, key=value (repeatable): retention.ms, retention.bytes,
    /// segment.bytes, segment.ms, max.message.bytes.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Remove a topic config override, back to the broker's default (repeatable).
    #[arg(long = "delete")]
    pub delete: Vec<String>,
    /// Check the changes without making them.
    #[arg(long)]
    pub validate_only: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigsCommand {
    /// Show a topic's configs with their source (DescribeConfigs).
    Describe {
        /// The topic.
        #[arg(long)]
        topic: String,
    },
    /// Set or remove topic config overrides (IncrementalAlterConfigs).
    Alter {
        /// The topic.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        changes: ConfigChanges,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum RecordsCommand {
    /// Delete a partition's records below an offset: its log start moves there (DeleteRecords).
    Delete {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
        /// Records below this offset go; -1 means the high watermark (everything readable).
        #[arg(long, allow_negative_numbers = true)]
        before: i64,
    },
}

/// Which partitions of one topic a group command acts on.
#[derive(clap::Args, Debug)]
pub struct GroupPartitions {
    /// The consumer group.
    pub group: String,
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// One partition [default: every partition of the topic].
    #[arg(long)]
    pub partition: Option<i32>,
}

/// `gregor groups reset-offsets`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("to").required(true)))]
pub struct ResetOffsets {
    #[command(flatten)]
    pub target: GroupPartitions,
    /// Reset to each partition's log start offset.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// Reset to each partition's high watermark (skip everything written so far).
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// Reset to this offset (kept within each partition's log start and high watermark).
    #[arg(long, group = "to")]
    pub to_offset: Option<i64>,
    /// Show the plan without committing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn topics_alter(bootstrap: &str, a: &TopicsAlter) -> anyhow::Result<()> {
    if a.partitions.is_none() && a.configs.set.is_empty() && a.configs.delete.is_empty() {
        bail!("nothing to alter: give --partitions, --set or --delete");
    }
    let mut c = Client::connect(bootstrap)?;
    if let Some(n) = a.partitions {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_validate_only(a.configs.validate_only)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(sb(&a.name)))
                    .with_count(n),
            ]);
        let ResponseKind::CreatePartitions(r) = c.call(
            ApiKey::CreatePartitions,
            3,
            RequestKind::CreatePartitions(req),
        )?
        else {
            bail!("unexpected response")
        };
        let t = &r.results[0];
        if t.error_code != 0 {
            bail!(
                "cannot grow topic {} to {n} partitions: {} {}",
                a.name,
                error_name(t.error_code),
                t.error_message.as_deref().unwrap_or("")
            );
        }
        println!("topic {} now has {n} partitions", a.name);
    }
    if !a.configs.set.is_empty() || !a.configs.delete.is_empty() {
        alter_configs(&mut c, &a.name, &a.configs)?;
    }
    Ok(())
}

pub fn configs(bootstrap: &str, command: &ConfigsCommand) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    match command {
        ConfigsCommand::Describe { topic } => {
            let req = DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(sb(topic)),
            ]);
            let ResponseKind::DescribeConfigs(r) = c.call(
                ApiKey::DescribeConfigs,
                4,
                RequestKind::DescribeConfigs(req),
            )?
            else {
                bail!("unexpected response")
            };
            let res = &r.results[0];
            if res.error_code != 0 {
                bail!(
                    "cannot describe topic {topic}: {} {}",
                    error_name(res.error_code),
                    res.error_message.as_deref().unwrap_or("")
                );
            }
            println!("{:<24} {:<24} SOURCE", "CONFIG", "VALUE");
            for cfg in &res.configs {
                println!(
                    "{:<24} {:<24} {}",
                    cfg.name.as_str(),
                    cfg.value.as_deref().unwrap_or(""),
                    source_name(cfg.config_source)
                );
            }
            Ok(())
        }
        ConfigsCommand::Alter { topic, changes } => alter_configs(&mut c, topic, changes),
    }
}

/// Kafka's names for a config's source (`DescribeConfigsResponse.ConfigSource`).
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

fn alter_configs(c: &mut Client, topic: &str, changes: &ConfigChanges) -> anyhow::Result<()> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut ops = Vec::new();
    for kv in &changes.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--set wants key=value, not {kv:?}"))?;
        ops.push(
            AlterableConfig::default()
                .with_name(sb(k))
                .with_config_operation(0)
                .with_value(Some(sb(v))),
        );
    }
    for k in &changes.delete {
        ops.push(
            AlterableConfig::default()
                .with_name(sb(k))
                .with_config_operation(1),
        );
    }
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(changes.validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(topic))
            .with_configs(ops)]);
    let ResponseKind::IncrementalAlterConfigs(r) = c.call(
        ApiKey::IncrementalAlterConfigs,
        1,
        RequestKind::IncrementalAlterConfigs(req),
    )?
    else {
        bail!("unexpected response")
    };
    let res = &r.responses[0];
    if res.error_code != 0 {
        bail!(
            "cannot alter the configs of topic {topic}: {} {}",
            error_name(res.error_code),
            res.error_message.as_deref().unwrap_or("")
        );
    }
    let verb = if changes.validate_only {
        "would be altered (validate only)"
    } else {
        "altered"
    };
    println!("configs of topic {topic} {verb}");
    Ok(())
}

pub fn records(bootstrap: &str, command: &RecordsCommand) -> anyhow::Result<()> {
    let RecordsCommand::Delete {
        topic,
        partition,
        before,
    } = command;
    let mut c = Client::connect(bootstrap)?;
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(*partition)
                    .with_offset(*before),
            ])]);
    let ResponseKind::DeleteRecords(r) =
        c.call(ApiKey::DeleteRecords, 2, RequestKind::DeleteRecords(req))?
    else {
        bail!("unexpected response")
    };
    let p = &r.topics[0].partitions[0];
    if p.error_code != 0 {
        bail!(
            "cannot delete records of {topic}-{partition} before {before}: {}",
            error_name(p.error_code)
        );
    }
    println!(
        "{topic}-{partition} now starts at offset {} (low watermark)",
        p.low_watermark
    );
    Ok(())
}

/// The partitions named: one, or every partition of the topic.
fn partitions_of(c: &mut Client, t: &GroupPartitions) -> anyhow::Result<Vec<i32>> {
    if let Some(p) = t.partition {
        return Ok(vec![p]);
    }
    let n = c.partition_count(&t.topic)?;
    Ok((0..n).collect())
}

pub fn delete_offsets(bootstrap: &str, t: &GroupPartitions) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let parts = partitions_of(&mut c, t)?;
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(sb(&t.group)))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(sb(&t.topic)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|p| {
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(*p)
                        })
                        .collect(),
                ),
        ]);
    let ResponseKind::OffsetDelete(r) =
        c.call(ApiKey::OffsetDelete, 0, RequestKind::OffsetDelete(req))?
    else {
        bail!("unexpected response")
    };
    if r.error_code != 0 {
        bail!(
            "cannot delete offsets of group {}: {}",
            t.group,
            error_name(r.error_code)
        );
    }
    println!("{:<24} {:<10} RESULT", "TOPIC", "PARTITION");
    let mut failed = 0;
    for p in r.topics.iter().flat_map(|t| &t.partitions) {
        failed += (p.error_code != 0) as usize;
        let result = if p.error_code == 0 {
            "deleted".to_string()
        } else {
            error_name(p.error_code)
        };
        println!("{:<24} {:<10} {result}", t.topic, p.partition_index);
    }
    if failed > 0 {
        bail!("{failed} partition(s) kept their offsets");
    }
    Ok(())
}

pub fn reset_offsets(bootstrap: &str, a: &ResetOffsets) -> anyhow::Result<()> {
    let t = &a.target;
    let mut c = Client::connect(bootstrap)?;
    let parts = partitions_of(&mut c, t)?;
    let earliest = c.list_offsets(&t.topic, &parts, -2)?;
    let latest = c.list_offsets(&t.topic, &parts, -1)?;
    let mut plan: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &parts {
        let (Some(lo), Some(hi)) = (earliest.get(p), latest.get(p)) else {
            bail!("partition {}-{p} not found", t.topic);
        };
        let to = if a.to_earliest {
            *lo
        } else if a.to_latest {
            *hi
        } else if let Some(n) = a.to_offset {
            // kafka-consumer-groups keeps the target inside the log, as we do.
            n.clamp(*lo, *hi)
        } else {
            bail!("say where to: --to-earliest, --to-latest or --to-offset N");
        };
        plan.insert(*p, to);
    }
    println!("{:<24} {:<10} NEW-OFFSET", "TOPIC", "PARTITION");
    for (p, o) in &plan {
        println!("{:<24} {:<10} {o}", t.topic, p);
    }
    if a.dry_run {
        println!("(dry run: nothing committed)");
        return Ok(());
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(&t.group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(&t.topic)))
                .with_partitions(
                    plan.iter()
                        .map(|(p, o)| {
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                        })
                        .collect(),
                ),
        ]);
    let ResponseKind::OffsetCommit(r) =
        c.call(ApiKey::OffsetCommit, 7, RequestKind::OffsetCommit(req))?
    else {
        bail!("unexpected response")
    };
    let errors: Vec<String> = r
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code != 0)
        .map(|p| {
            format!(
                "partition {}: {}",
                p.partition_index,
                error_name(p.error_code)
            )
        })
        .collect();
    if !errors.is_empty() {
        bail!(
            "group {} was not reset ({}); a group with members cannot be reset: stop its \
             consumers first",
            t.group,
            errors.join(", ")
        );
    }
    println!("group {} reset", t.group);
    Ok(())
}
