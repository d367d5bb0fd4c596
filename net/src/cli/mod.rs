//! The operator's admin commands, with Kafka's tools' vocabulary:
//!
//! ```text
//! gregor topics create|list|describe|delete|alter ...                        (kafka-topics)
//! gregor configs describe --topic T                                         (kafka-configs --describe)
//! gregor configs alter --topic T [--set k=v]... [--delete k]... [--validate-only]
//! gregor records delete --topic T --partition P --before OFFSET             (kafka-delete-records)
//! gregor leaders elect --type preferred|unclean (--topic T --partition P | --all-topic-partitions)
//!                                                                          (kafka-leader-election)
//! gregor reassign --topic T --partition P --replicas 2,3 [--wait] | --reassignment-json-file F
//! gregor reassign list | cancel --topic T --partition P              (kafka-reassign-partitions)
//! gregor groups list | describe GROUP | delete GROUP...                     (kafka-consumer-groups)
//! gregor acls list|add|remove ...                                              (kafka-acls)
//! gregor users list | describe --user U | add --user U --password P | remove --user U
//!                                                   (kafka-configs --entity-type users, SCRAM)
//! gregor groups delete-offsets GROUP --topic T [--partition P]
//! gregor groups reset-offsets GROUP --topic T [--partition P]
//!        --to-earliest | --to-latest | --to-offset N | --to-datetime T | --shift-by N  [--dry-run]
//! ```
//!
//! Every command is a few operations of gregor-client's admin client ([`gregor_client::admin`])
//! run by its tokio driver ([`crate::client::Driver`]), so each request reaches the broker it
//! must on a cluster (a partition's leader, a group's coordinator, every broker for a list) and
//! works against Apache Kafka too. `--output json` prints one JSON document for scripts; its
//! fields are listed in docs/ops.md. A reset commits the new offsets as kafka-consumer-groups
//! does: an OffsetCommit outside any generation, which the coordinator accepts only while the
//! group has no members (stop the consumers first).

mod acls;
mod leaders;
mod reassign;
mod secure;
mod users;
pub use acls::{acls, AclsCommand};
pub use leaders::{leaders, LeadersCommand};
pub use reassign::{reassign, ReassignArgs};
pub use users::{users, UsersCommand};

use crate::client::cli::{bootstrap, runtime};
use crate::client::Driver;
use anyhow::{anyhow, bail};
use gregor_client::admin::{
    config_source_name, ConfigChange, ListedOffset, NewTopic, OffsetSpec, PartitionInfo,
    PerPartition, TopicInfo,
};
use gregor_client::{AdminId, AdminOp, AdminResult, ClientError, Config, Output};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The broker address shared by every command.
#[derive(clap::Args, Debug)]
pub struct Bootstrap {
    /// The broker(s) to start from, host:port[,host:port...].
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9092",
        env = "GREGOR_BOOTSTRAP"
    )]
    pub bootstrap: String,
}

/// How a command prints what it found.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Columns for people.
    #[default]
    Table,
    /// One JSON document, for scripts (fields in docs/ops.md).
    Json,
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct OutputArg {
    /// table or json.
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("a JSON value prints")
    );
}

// ---- the admin client, waited for -----------------------------------------------------------

/// gregor-client's admin, driven to completion one command at a time.
pub struct Admin {
    rt: tokio::runtime::Runtime,
    driver: Driver,
}

impl Admin {
    pub fn connect(servers: &str) -> anyhow::Result<Admin> {
        let config = Config {
            bootstrap: bootstrap(servers)?,
            client_id: "gregor-cli".into(),
            // Describing a topic must not create it.
            allow_auto_topic_creation: false,
            ..Config::default()
        };
        Ok(Admin {
            rt: runtime()?,
            driver: Driver::new(config)?,
        })
    }

    /// Run operations side by side; their results in the same order.
    pub fn run_all(&mut self, ops: Vec<AdminOp>) -> Vec<Result<AdminResult, ClientError>> {
        let driver = &mut self.driver;
        self.rt.block_on(async move {
            let now = driver.now();
            let ids: Vec<AdminId> = ops
                .into_iter()
                .map(|op| driver.client().admin(now, op))
                .collect();
            let mut results = BTreeMap::new();
            while results.len() < ids.len() {
                for o in driver.next().await {
                    if let Output::Admin { id, result } = o {
                        results.insert(id, result);
                    }
                }
            }
            ids.iter()
                .map(|id| results.remove(id).expect("every operation answers"))
                .collect()
        })
    }

    pub fn run(&mut self, op: AdminOp) -> anyhow::Result<AdminResult> {
        let r = self.run_all(vec![op]).pop().expect("one result");
        Ok(r?)
    }
}

/// The one item of a per-topic result.
fn only<K: Ord + std::fmt::Debug, T>(
    m: BTreeMap<K, Result<T, ClientError>>,
    key: &K,
) -> anyhow::Result<T> {
    let mut m = m;
    match m.remove(key) {
        Some(r) => Ok(r?),
        None => bail!("the broker did not answer for {key:?}"),
    }
}

fn unexpected(r: AdminResult) -> anyhow::Error {
    anyhow!("an unexpected result: {r:?}")
}

/// Each partition's offset from a ListOffsets result (−1 where it failed).
fn offsets_of(r: Result<AdminResult, ClientError>) -> anyhow::Result<PerPartition<ListedOffset>> {
    match r? {
        AdminResult::ListOffsets(m) => Ok(m),
        other => Err(unexpected(other)),
    }
}

fn offset_or(m: &PerPartition<ListedOffset>, tp: &(String, i32)) -> i64 {
    m.get(tp)
        .and_then(|r| r.as_ref().ok())
        .map_or(-1, |o| o.offset)
}

fn list_offsets(tps: &[(String, i32)], spec: OffsetSpec) -> AdminOp {
    AdminOp::ListOffsets {
        partitions: tps.iter().map(|tp| (tp.clone(), spec)).collect(),
    }
}

fn kv(s: &str, flag: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("{flag} wants key=value, not {s:?}"))?;
    Ok((k.to_string(), v.to_string()))
}

// ---- topics -----------------------------------------------------------------------------------

pub fn topics_create(
    servers: &str,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[String],
) -> anyhow::Result<()> {
    let configs = configs
        .iter()
        .map(|c| kv(c, "--config"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let op = AdminOp::CreateTopics {
        topics: vec![NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
        }],
        validate_only: false,
    };
    let AdminResult::CreateTopics(m) = Admin::connect(servers)?.run(op)? else {
        bail!("an unexpected result")
    };
    let n = only(m, &name.to_string()).map_err(|e| anyhow!("cannot create topic {name}: {e}"))?;
    let n = if n >= 0 { n } else { partitions };
    println!("created topic {name} with {n} partition(s)");
    Ok(())
}

fn describe_topics(
    a: &mut Admin,
    names: Option<Vec<String>>,
) -> anyhow::Result<BTreeMap<String, TopicInfo>> {
    match a.run(AdminOp::DescribeTopics { topics: names })? {
        AdminResult::DescribeTopics(m) => m
            .into_iter()
            .map(|(t, r)| Ok((t, r?)))
            .collect::<Result<_, ClientError>>()
            .map_err(Into::into),
        other => Err(unexpected(other)),
    }
}

pub fn topics_list(servers: &str, out: Format) -> anyhow::Result<()> {
    let topics = describe_topics(&mut Admin::connect(servers)?, None)?;
    match out {
        Format::Table => {
            for t in topics.values() {
                println!("{}\t{} partition(s)", t.name, t.partitions.len());
            }
        }
        Format::Json => print_json(&json!(topics
            .values()
            .map(|t| json!({"name": t.name, "partitions": t.partitions.len(), "internal": t.internal}))
            .collect::<Vec<_>>())),
    }
    Ok(())
}

/// `kafka-topics.sh --describe`'s partition filters.
#[derive(clap::Args, Debug, Default)]
pub struct PartitionFilter {
    /// Only partitions whose ISR is smaller than their replica set (a follower fell behind or
    /// its broker is down: fewer copies than asked for).
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// Only partitions without a live leader (offline: nobody can produce to or fetch them).
    #[arg(long)]
    pub unavailable_partitions: bool,
}

impl PartitionFilter {
    fn keeps(&self, p: &PartitionInfo) -> bool {
        let under = p.isr.len() < p.replicas.len();
        let unavailable = p.leader < 0;
        match (
            self.under_replicated_partitions,
            self.unavailable_partitions,
        ) {
            (false, false) => true,
            (u, a) => (u && under) || (a && unavailable),
        }
    }
}

fn id_list(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// `gregor topics describe`: per topic its partition count, replication factor and config
/// overrides, then per partition its leader, replicas, ISR and offline replicas, in
/// `kafka-topics.sh --describe`'s layout (Metadata, DescribeConfigs), with each partition's
/// log start and high watermark (ListOffsets at its leader) after them.
pub fn topics_describe(
    servers: &str,
    name: Option<&str>,
    filter: &PartitionFilter,
    out: Format,
) -> anyhow::Result<()> {
    let mut a = Admin::connect(servers)?;
    let topics = describe_topics(&mut a, name.map(|n| vec![n.to_string()]))?;
    // Offsets only where a leader can answer: an offline partition (no leader) would keep the
    // admin client waiting for one until its API timeout (60 s); it shows -1 at once instead.
    let tps: Vec<(String, i32)> = topics
        .values()
        .flat_map(|t| {
            (t.partitions.iter())
                .filter(|p| p.leader >= 0)
                .map(|p| (t.name.clone(), p.partition))
        })
        .collect();
    let names: Vec<String> = topics.keys().cloned().collect();
    let mut rs = a
        .run_all(vec![
            list_offsets(&tps, OffsetSpec::Earliest),
            list_offsets(&tps, OffsetSpec::Latest),
            AdminOp::DescribeConfigs { topics: names },
        ])
        .into_iter();
    let start = offsets_of(rs.next().unwrap())?;
    let end = offsets_of(rs.next().unwrap())?;
    // Moves in progress (KIP-455), by partition: (adding, removing). A broker without
    // ListPartitionReassignments (a standalone one) has none to show.
    let server = servers.split(',').next().unwrap_or(servers);
    let moving: BTreeMap<(String, i32), (Vec<i32>, Vec<i32>)> =
        secure::Conn::open(server, &secure::SecurityArgs::default(), "gregor-cli")
            .and_then(|mut conn| reassign::ongoing(&mut conn))
            .unwrap_or_default()
            .into_iter()
            .map(|(t, p, _, adding, removing)| ((t, p), (adding, removing)))
            .collect();
    let mut configs = match rs.next().unwrap() {
        Ok(AdminResult::DescribeConfigs(m)) => m,
        Ok(other) => return Err(unexpected(other)),
        // A broker without DescribeConfigs (librdkafka's mock cluster) still has partitions.
        Err(e) => {
            eprintln!("note: no configs: {e}");
            BTreeMap::new()
        }
    };
    let mut docs = Vec::new();
    for t in topics.values() {
        let cfgs = match configs.remove(&t.name) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                eprintln!("note: no configs of {}: {e}", t.name);
                vec![]
            }
            None => vec![],
        };
        let tp = |p: i32| (t.name.clone(), p);
        let shown: Vec<&PartitionInfo> = t.partitions.iter().filter(|p| filter.keeps(p)).collect();
        let filtering = filter.under_replicated_partitions || filter.unavailable_partitions;
        if filtering && shown.is_empty() {
            continue;
        }
        match out {
            Format::Table => {
                // Like kafka-topics: the topic's overrides only (source DYNAMIC_TOPIC_CONFIG).
                let overrides: Vec<String> = cfgs
                    .iter()
                    .filter(|c| c.source == 1)
                    .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
                    .collect();
                let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
                if !filtering {
                    println!(
                        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
                        t.name,
                        t.partitions.len(),
                        overrides.join(",")
                    );
                }
                for p in shown {
                    let leader = if p.leader < 0 {
                        "none".to_string()
                    } else {
                        p.leader.to_string()
                    };
                    println!(
                        "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\tOffline: {}\tLogStartOffset: {}\tHighWatermark: {}{}{}",
                        t.name,
                        p.partition,
                        id_list(&p.replicas),
                        id_list(&p.isr),
                        id_list(&p.offline_replicas),
                        offset_or(&start, &tp(p.partition)),
                        offset_or(&end, &tp(p.partition)),
                        match moving.get(&tp(p.partition)) {
                            Some((a, r)) => format!(
                                "\tAddingReplicas: {}\tRemovingReplicas: {}",
                                id_list(a),
                                id_list(r)
                            ),
                            None => String::new(),
                        },
                        match p.error_code {
                            0 => String::new(),
                            c => format!("\tError: {}", gregor_client::io::error_name(c)),
                        }
                    );
                }
            }
            Format::Json => docs.push(json!({
                "name": t.name,
                "internal": t.internal,
                "partitions": shown.iter().map(|p| json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "leader_epoch": p.leader_epoch,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "offline_replicas": p.offline_replicas,
                    "log_start_offset": offset_or(&start, &tp(p.partition)),
                    "high_watermark": offset_or(&end, &tp(p.partition)),
                    "adding_replicas": moving.get(&tp(p.partition)).map(|m| &m.0),
                    "removing_replicas": moving.get(&tp(p.partition)).map(|m| &m.1),
                    "error": (p.error_code != 0).then(|| gregor_client::io::error_name(p.error_code)),
                })).collect::<Vec<_>>(),
                "configs": cfgs.iter().map(|c| (c.name.clone(), json!(c.value))).collect::<serde_json::Map<_, _>>(),
            })),
        }
    }
    if out == Format::Json {
        print_json(&json!(docs));
    }
    Ok(())
}

pub fn topics_delete(servers: &str, name: &str) -> anyhow::Result<()> {
    let op = AdminOp::DeleteTopics {
        topics: vec![name.to_string()],
    };
    let AdminResult::DeleteTopics(m) = Admin::connect(servers)?.run(op)? else {
        bail!("an unexpected result")
    };
    only(m, &name.to_string()).map_err(|e| anyhow!("cannot delete topic {name}: {e}"))?;
    println!("deleted topic {name}");
    Ok(())
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
    #[arg(long = "set", visible_alias = "config")]
    pub set: Vec<String>,
    /// Remove a topic config override, back to the broker's default (repeatable).
    #[arg(long = "delete", visible_alias = "delete-config")]
    pub delete: Vec<String>,
    /// Check the changes without making them.
    #[arg(long)]
    pub validate_only: bool,
}

pub fn topics_alter(servers: &str, a: &TopicsAlter) -> anyhow::Result<()> {
    if a.partitions.is_none() && a.configs.set.is_empty() && a.configs.delete.is_empty() {
        bail!("nothing to alter: give --partitions, --set or --delete");
    }
    let mut admin = Admin::connect(servers)?;
    if let Some(n) = a.partitions {
        let op = AdminOp::CreatePartitions {
            topic: a.name.clone(),
            count: n,
            validate_only: a.configs.validate_only,
        };
        let AdminResult::CreatePartitions(m) = admin.run(op)? else {
            bail!("an unexpected result")
        };
        only(m, &a.name)
            .map_err(|e| anyhow!("cannot grow topic {} to {n} partitions: {e}", a.name))?;
        println!("topic {} now has {n} partitions", a.name);
    }
    if !a.configs.set.is_empty() || !a.configs.delete.is_empty() {
        alter_configs(&mut admin, &a.name, &a.configs)?;
    }
    Ok(())
}

// ---- configs and records ----------------------------------------------------------------------

#[derive(clap::Subcommand, Debug)]
pub enum ConfigsCommand {
    /// Show a topic's configs with their source (DescribeConfigs).
    Describe {
        /// The topic.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        output: OutputArg,
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

pub fn configs(servers: &str, command: &ConfigsCommand) -> anyhow::Result<()> {
    let mut a = Admin::connect(servers)?;
    match command {
        ConfigsCommand::Describe { topic, output } => {
            let op = AdminOp::DescribeConfigs {
                topics: vec![topic.clone()],
            };
            let AdminResult::DescribeConfigs(m) = a.run(op)? else {
                bail!("an unexpected result")
            };
            let cfgs = only(m, topic).map_err(|e| anyhow!("cannot describe topic {topic}: {e}"))?;
            match output.output {
                Format::Table => {
                    println!("{:<24} {:<24} SOURCE", "CONFIG", "VALUE");
                    for c in &cfgs {
                        println!(
                            "{:<24} {:<24} {}",
                            c.name,
                            c.value.as_deref().unwrap_or(""),
                            config_source_name(c.source)
                        );
                    }
                }
                Format::Json => print_json(&json!(cfgs
                    .iter()
                    .map(|c| json!({
                        "name": c.name,
                        "value": c.value,
                        "source": config_source_name(c.source),
                        "read_only": c.read_only,
                        "sensitive": c.sensitive,
                    }))
                    .collect::<Vec<_>>())),
            }
            Ok(())
        }
        ConfigsCommand::Alter { topic, changes } => alter_configs(&mut a, topic, changes),
    }
}

fn alter_configs(a: &mut Admin, topic: &str, changes: &ConfigChanges) -> anyhow::Result<()> {
    let mut ops = Vec::new();
    for s in &changes.set {
        let (k, v) = kv(s, "--set")?;
        ops.push(ConfigChange::Set(k, v));
    }
    ops.extend(changes.delete.iter().cloned().map(ConfigChange::Delete));
    let op = AdminOp::AlterConfigs {
        topic: topic.to_string(),
        changes: ops,
        validate_only: changes.validate_only,
    };
    let AdminResult::AlterConfigs(m) = a.run(op)? else {
        bail!("an unexpected result")
    };
    only(m, &topic.to_string())
        .map_err(|e| anyhow!("cannot alter the configs of topic {topic}: {e}"))?;
    let verb = if changes.validate_only {
        "would be altered (validate only)"
    } else {
        "altered"
    };
    println!("configs of topic {topic} {verb}");
    Ok(())
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

pub fn records(servers: &str, command: &RecordsCommand) -> anyhow::Result<()> {
    let RecordsCommand::Delete {
        topic,
        partition,
        before,
    } = command;
    let tp = (topic.clone(), *partition);
    let op = AdminOp::DeleteRecords {
        partitions: vec![(tp.clone(), *before)],
    };
    let AdminResult::DeleteRecords(m) = Admin::connect(servers)?.run(op)? else {
        bail!("an unexpected result")
    };
    let low = only(m, &tp).map_err(|e| {
        anyhow!("cannot delete records of {topic}-{partition} before {before}: {e}")
    })?;
    println!("{topic}-{partition} now starts at offset {low} (low watermark)");
    Ok(())
}

// ---- groups -----------------------------------------------------------------------------------

pub fn groups_list(servers: &str, out: Format) -> anyhow::Result<()> {
    let AdminResult::ListGroups(groups) = Admin::connect(servers)?.run(AdminOp::ListGroups)? else {
        bail!("an unexpected result")
    };
    match out {
        Format::Table => {
            for g in &groups {
                let state = if g.state.is_empty() { "-" } else { &g.state };
                let pt = if g.protocol_type.is_empty() {
                    "-"
                } else {
                    &g.protocol_type
                };
                println!("{}\t{state}\t{pt}", g.group_id);
            }
        }
        Format::Json => print_json(&json!(groups
            .iter()
            .map(|g| json!({
                "group": g.group_id,
                "state": g.state,
                "protocol_type": g.protocol_type,
                "coordinator": g.coordinator,
            }))
            .collect::<Vec<_>>())),
    }
    Ok(())
}

/// A group's committed offsets.
fn committed_offsets(
    r: Result<AdminResult, ClientError>,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    match r {
        Ok(AdminResult::GroupOffsets(m)) => Ok(m),
        Ok(other) => Err(unexpected(other)),
        Err(e) => bail!("cannot fetch offsets of {group}: {e}"),
    }
}

pub fn groups_describe(servers: &str, group: &str, out: Format) -> anyhow::Result<()> {
    let mut a = Admin::connect(servers)?;
    let mut rs = a
        .run_all(vec![
            AdminOp::DescribeGroups {
                groups: vec![group.to_string()],
            },
            AdminOp::ListGroupOffsets {
                group: group.to_string(),
                partitions: None,
            },
        ])
        .into_iter();
    let described = match rs.next().unwrap()? {
        AdminResult::DescribeGroups(m) => m,
        other => return Err(unexpected(other)),
    };
    let info = match only(described, &group.to_string()) {
        Ok(g) => Some(g),
        // A broker without DescribeGroups (librdkafka's mock cluster) still has the offsets.
        Err(e)
            if e.downcast_ref::<ClientError>().and_then(|e| e.code())
                == Some(
                    gregor_client::kafka_protocol::ResponseError::UnsupportedVersion.code(),
                ) =>
        {
            eprintln!("note: no state or members: {e}");
            None
        }
        Err(e) => bail!("cannot describe group {group}: {e}"),
    };
    let committed = match rs.next().unwrap() {
        // A coordinator that cannot list every offset of a group (librdkafka's mock cluster
        // answers in a form that does not decode) is asked for every partition by name.
        Err(ClientError::Invalid(why)) => {
            eprintln!("note: asking for each partition's offset by name ({why})");
            let topics = describe_topics(&mut a, None)?;
            let tps = topics
                .values()
                .filter(|t| !t.internal)
                .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
                .collect();
            let op = AdminOp::ListGroupOffsets {
                group: group.to_string(),
                partitions: Some(tps),
            };
            committed_offsets(a.run_all(vec![op]).remove(0), group)?
        }
        r => committed_offsets(r, group)?,
    };
    let tps: Vec<(String, i32)> = committed.keys().cloned().collect();
    let end = if tps.is_empty() {
        BTreeMap::new()
    } else {
        offsets_of(
            a.run_all(vec![list_offsets(&tps, OffsetSpec::Latest)])
                .remove(0),
        )?
    };
    // (partition, committed, high watermark, lag)
    type Row<'a> = (&'a (String, i32), i64, i64, Option<i64>);
    let rows: Vec<Row> = committed
        .iter()
        .map(|(tp, c)| {
            let hw = offset_or(&end, tp);
            (tp, *c, hw, (hw >= 0).then_some(hw - c))
        })
        .collect();
    match out {
        Format::Table => {
            if let Some(g) = &info {
                println!(
                    "group {group}  state {}  protocol {}/{}  members {}  coordinator {}",
                    g.state,
                    g.protocol_type,
                    g.protocol,
                    g.members.len(),
                    g.coordinator
                );
                for m in &g.members {
                    let assigned: Vec<String> = m
                        .assignment
                        .iter()
                        .map(|(t, p)| format!("{t}-{p}"))
                        .collect();
                    println!(
                        "  member {}  client {}  host {}  assigned {}",
                        m.member_id,
                        m.client_id,
                        m.client_host,
                        assigned.join(" ")
                    );
                }
            }
            println!(
                "  {:<30} {:>9} {:>12} {:>14} {:>8}",
                "TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"
            );
            for ((t, p), c, hw, lag) in &rows {
                let lag = lag.map_or("-".to_string(), |l| l.to_string());
                println!("  {t:<30} {p:>9} {c:>12} {hw:>14} {lag:>8}");
            }
        }
        Format::Json => print_json(&json!({
            "group": group,
            "state": info.as_ref().map(|g| &g.state),
            "protocol_type": info.as_ref().map(|g| &g.protocol_type),
            "protocol": info.as_ref().map(|g| &g.protocol),
            "coordinator": info.as_ref().map(|g| g.coordinator),
            "members": info.as_ref().map(|g| g.members.iter().map(|m| json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()),
            "offsets": rows.iter().map(|((t, p), c, hw, lag)| json!({
                "topic": t,
                "partition": p,
                "committed": c,
                "high_watermark": hw,
                "lag": lag,
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}

pub fn groups_delete(servers: &str, groups: &[String]) -> anyhow::Result<()> {
    let op = AdminOp::DeleteGroups {
        groups: groups.to_vec(),
    };
    let AdminResult::DeleteGroups(m) = Admin::connect(servers)?.run(op)? else {
        bail!("an unexpected result")
    };
    let mut failed = 0;
    for (g, r) in &m {
        match r {
            Ok(()) => println!("deleted group {g}"),
            Err(e) => {
                failed += 1;
                eprintln!("error: cannot delete group {g}: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} group(s) not deleted");
    }
    Ok(())
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

/// The partitions named: one, or every partition of the topic.
fn partitions_of(a: &mut Admin, t: &GroupPartitions) -> anyhow::Result<Vec<(String, i32)>> {
    if let Some(p) = t.partition {
        return Ok(vec![(t.topic.clone(), p)]);
    }
    let topics = describe_topics(a, Some(vec![t.topic.clone()]))?;
    let info = topics
        .get(&t.topic)
        .ok_or_else(|| anyhow!("topic {}: not in the metadata answer", t.topic))?;
    Ok(info
        .partitions
        .iter()
        .map(|p| (t.topic.clone(), p.partition))
        .collect())
}

pub fn delete_offsets(servers: &str, t: &GroupPartitions) -> anyhow::Result<()> {
    let mut a = Admin::connect(servers)?;
    let parts = partitions_of(&mut a, t)?;
    let op = AdminOp::DeleteGroupOffsets {
        group: t.group.clone(),
        partitions: parts,
    };
    let m = match a.run(op) {
        Ok(AdminResult::DeleteGroupOffsets(m)) => m,
        Ok(other) => return Err(unexpected(other)),
        Err(e) => bail!("cannot delete offsets of group {}: {e}", t.group),
    };
    println!("{:<24} {:<10} RESULT", "TOPIC", "PARTITION");
    let mut failed = 0;
    for ((topic, p), r) in &m {
        let result = match r {
            Ok(()) => "deleted".to_string(),
            Err(e) => {
                failed += 1;
                e.to_string()
            }
        };
        println!("{topic:<24} {p:<10} {result}");
    }
    if failed > 0 {
        bail!("{failed} partition(s) kept their offsets");
    }
    Ok(())
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
    /// Reset to the first record at or after this time, Kafka's format
    /// YYYY-MM-DDTHH:mm:SS[.sss][Z|+HH:MM|-HH:MM] (UTC without a zone); a partition with
    /// nothing after it goes to its end.
    #[arg(long, group = "to", value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Move each committed offset by N (negative: back), kept within the log.
    #[arg(long, group = "to", allow_negative_numbers = true, value_name = "N")]
    pub shift_by: Option<i64>,
    /// Show the plan without committing it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArg,
}

pub fn reset_offsets(servers: &str, a: &ResetOffsets) -> anyhow::Result<()> {
    let t = &a.target;
    let at = a.to_datetime.as_deref().map(parse_datetime).transpose()?;
    let mut admin = Admin::connect(servers)?;
    let parts = partitions_of(&mut admin, t)?;
    let mut ops = vec![
        list_offsets(&parts, OffsetSpec::Earliest),
        list_offsets(&parts, OffsetSpec::Latest),
        AdminOp::ListGroupOffsets {
            group: t.group.clone(),
            partitions: Some(parts.clone()),
        },
    ];
    if let Some(ms) = at {
        ops.push(list_offsets(&parts, OffsetSpec::Timestamp(ms)));
    }
    let mut rs = admin.run_all(ops).into_iter();
    let earliest = offsets_of(rs.next().unwrap())?;
    let latest = offsets_of(rs.next().unwrap())?;
    let committed = committed_offsets(rs.next().unwrap(), &t.group)?;
    let by_time = rs.next().map(offsets_of).transpose()?;
    let mut plan: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for tp in &parts {
        let lo = earliest
            .get(tp)
            .ok_or_else(|| anyhow!("partition {}-{} not found", tp.0, tp.1))?
            .clone()
            .map_err(|e| anyhow!("partition {}-{}: {e}", tp.0, tp.1))?
            .offset;
        let hi = latest
            .get(tp)
            .ok_or_else(|| anyhow!("partition {}-{} not found", tp.0, tp.1))?
            .clone()
            .map_err(|e| anyhow!("partition {}-{}: {e}", tp.0, tp.1))?
            .offset;
        let to = if a.to_earliest {
            lo
        } else if a.to_latest {
            hi
        } else if let Some(n) = a.to_offset {
            // kafka-consumer-groups keeps the target inside the log, as we do.
            n.clamp(lo, hi)
        } else if let Some(m) = &by_time {
            let o = offset_or(m, tp);
            if o < 0 {
                hi
            } else {
                o.clamp(lo, hi)
            }
        } else if let Some(n) = a.shift_by {
            let Some(c) = committed.get(tp) else {
                bail!(
                    "cannot shift {}-{}: group {} has no committed offset there",
                    tp.0,
                    tp.1,
                    t.group
                );
            };
            c.saturating_add(n).clamp(lo, hi)
        } else {
            bail!("say where to: --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by");
        };
        plan.insert(tp.clone(), to);
    }
    if a.output.output == Format::Table {
        println!("{:<24} {:<10} NEW-OFFSET", "TOPIC", "PARTITION");
        for ((topic, p), o) in &plan {
            println!("{topic:<24} {p:<10} {o}");
        }
        if a.dry_run {
            println!("(dry run: nothing committed)");
        }
    }
    if !a.dry_run {
        let op = AdminOp::CommitGroupOffsets {
            group: t.group.clone(),
            offsets: plan.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
        };
        let m = match admin.run(op) {
            Ok(AdminResult::CommitGroupOffsets(m)) => m,
            Ok(other) => return Err(unexpected(other)),
            Err(e) => bail!("group {} was not reset: {e}", t.group),
        };
        let errors: Vec<String> = m
            .iter()
            .filter_map(|((_, p), r)| r.as_ref().err().map(|e| format!("partition {p}: {e}")))
            .collect();
        if !errors.is_empty() {
            bail!(
                "group {} was not reset ({}); a group with members cannot be reset: stop its \
                 consumers first",
                t.group,
                errors.join(", ")
            );
        }
        if a.output.output == Format::Table {
            println!("group {} reset", t.group);
        }
    }
    if a.output.output == Format::Json {
        print_json(&json!({
            "group": t.group,
            "dry_run": a.dry_run,
            "partitions": plan.iter().map(|((topic, p), o)| json!({
                "topic": topic,
                "partition": p,
                "committed": committed.get(&(topic.clone(), *p)),
                "new_offset": o,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(())
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian), by counting 400-year eras.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12; // March is 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse kafka-consumer-groups' `--to-datetime`: `YYYY-MM-DDTHH:mm:SS[.sss]` then `Z`,
/// `+HH:MM`, `-HH:MM` or nothing (UTC), to Unix milliseconds.
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("--to-datetime wants YYYY-MM-DDTHH:mm:SS[.sss][Z|+HH:MM], not {s:?}");
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let num = |x: &str, len: usize| -> anyhow::Result<i64> {
        if x.len() != len || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse().map_err(|_| bad())
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d[..] else {
        return Err(bad());
    };
    let (y, mo, da) = (num(y, 4)?, num(mo, 2)?, num(da, 2)?);
    // The zone: Z, or a sign after the time.
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = &z[1..];
        let (zh, zm) = z.split_once(':').unwrap_or((z, "00"));
        (t, sign * (num(zh, 2)? * 60 + num(zm, 2)?))
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let h: Vec<&str> = hms.split(':').collect();
    let [hh, mi, ss] = h[..] else {
        return Err(bad());
    };
    let (hh, mi, ss) = (num(hh, 2)?, num(mi, 2)?, num(ss, 2)?);
    let ms = match frac.len() {
        0 => 0,
        1..=3 => num(frac, frac.len())? * 10i64.pow(3 - frac.len() as u32),
        _ => return Err(bad()),
    };
    let days_in_month = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo)
        || da < 1
        || da > days_in_month[(mo - 1) as usize]
        || hh > 23
        || mi > 59
        || ss > 59
        || offset_min.abs() > 18 * 60
    {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, da);
    if mo == 2 && da == 29 && days_from_civil(y, 3, 1) - days != 1 {
        return Err(bad()); // not a leap year
    }
    Ok(((days * 24 + hh) * 60 + mi - offset_min) * 60_000 + ss * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes_in_kafkas_format() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:00.5Z").unwrap(), 500);
        // `date -u -d 2026-12-07T10:00:00Z +%s` is 1796637600.
        assert_eq!(
            parse_datetime("2026-12-07T10:00:00.000Z").unwrap(),
            1_796_637_600_000
        );
        assert_eq!(
            parse_datetime("2026-12-07T11:00:00+01:00").unwrap(),
            1_796_637_600_000
        );
        assert_eq!(
            parse_datetime("2026-12-07T09:30:00-00:30").unwrap(),
            1_796_637_600_000
        );
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00Z").unwrap(),
            1_709_164_800_000
        );
        for bad in [
            "2026-12-07",
            "2026-13-01T00:00:00",
            "2025-02-29T00:00:00",
            "2026-12-07T24:00:00",
            "2026-12-07T10:00:00.1234",
            "2026-12-07 10:00:00",
            "2026-12-07T10:00:00+25:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
