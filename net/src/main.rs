//! `gregor`: the broker binary and its admin commands.
//!
//! ```text
//! gregor serve [--data-dir DIR] [--listen HOST:PORT] [--config FILE] [--durability POLICY] ...
//! gregor topics create|list|describe|delete ... [--bootstrap HOST:PORT]
//! gregor groups list|describe GROUP|delete GROUP... [--bootstrap HOST:PORT]
//! gregor produce|consume TOPIC ... [--bootstrap HOST:PORT]
//! gregor connect --config connect.toml [--bootstrap HOST:PORT]   (Kafka Connect, standalone)
//! gregor streams wordcount|severity --input T --output T [--bootstrap HOST:PORT] (Kafka Streams)
//! gregor topics alter | configs | records | groups delete-offsets|reset-offsets  (see cli/)
//! gregor cluster status --bootstrap-controller HOST:PORT[,HOST:PORT...]
//! ```
//!
//! `serve` always runs a KRaft node (net/src/quorum): with no `--controller-quorum-voters` a
//! combined broker and controller in a one-voter quorum of its own; `--process-roles` makes it
//! a controller alone or a broker alone.

mod alloc;
mod backlog;
mod cli;
mod client;
mod clock;
#[cfg(test)]
mod codec_props;
mod config;
mod connect;
mod connection;
mod disk;
mod event;
mod listener;
#[cfg(all(test, madsim))]
mod madsim_tests;
mod meta_properties;
mod metrics;
mod quorum;
mod replica_fetcher;
mod runtime;
mod streams;
mod tls;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing::{error, info, warn};

/// See `alloc`: the system allocator, guarded against a decoding hazard in `kafka-protocol`.
#[global_allocator]
static ALLOC: alloc::GuardedAlloc = alloc::GuardedAlloc;

#[derive(Parser)]
#[command(
    name = "gregor",
    version,
    about = "A Kafka broker you can read: one binary, any Kafka client."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(Box<ServeArgs>),
    /// Create, list, describe and delete topics on a running broker.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// List, describe and delete consumer groups; move or delete their committed offsets.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// Write lines from stdin to a topic, one record per line (Kafka's console producer).
    Produce(client::cli::ProduceArgs),
    /// Print a topic's records (Kafka's console consumer).
    Consume(client::cli::ConsumeArgs),
    /// Run Kafka Connect connectors (file source, file sink, syslog source) from a TOML file:
    /// a standalone worker (docs/connect.md).
    Connect(connect::ConnectArgs),
    /// Run a Kafka Streams-style application (gregor-streams): the word count or the
    /// per-minute count of log lines by severity (docs/streams.md).
    Streams(streams::StreamsArgs),
    /// Describe and alter topic configs (DescribeConfigs, IncrementalAlterConfigs).
    Configs {
        #[command(subcommand)]
        command: cli::ConfigsCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// Delete records below an offset (DeleteRecords).
    Records {
        #[command(subcommand)]
        command: cli::RecordsCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// Move partition replicas between brokers (AlterPartitionReassignments, KIP-455).
    Reassign {
        #[command(flatten)]
        args: cli::ReassignArgs,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// ACLs: list, add or remove (DescribeAcls, CreateAcls, DeleteAcls; kafka-acls).
    Acls {
        #[command(subcommand)]
        command: cli::AclsCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// SCRAM users: list, describe, add or remove (DescribeUserScramCredentials,
    /// AlterUserScramCredentials, KIP-554; kafka-configs --entity-type users).
    Users {
        #[command(subcommand)]
        command: cli::UsersCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// Elect partition leaders now: preferred or unclean (ElectLeaders, KIP-460).
    Leaders {
        #[command(subcommand)]
        command: cli::LeadersCommand,
        #[command(flatten)]
        bootstrap: cli::Bootstrap,
    },
    /// The metadata quorum: leader, epoch, high watermark, each voter's log end and lag
    /// (DescribeQuorum, like `kafka-metadata-quorum describe --status --replication`).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// The quorum, the active controller, the brokers (fenced or not), the topics and the
    /// offline partitions: through any broker (`--bootstrap`), or asking the controllers in
    /// turn until the quorum's leader answers (`--bootstrap-controller`).
    Status {
        /// A broker, HOST:PORT (a KRaft broker forwards DescribeQuorum to the active controller).
        #[arg(
            long,
            conflicts_with = "bootstrap_controller",
            required_unless_present = "bootstrap_controller"
        )]
        bootstrap: Option<String>,
        /// Controller listeners, comma-separated.
        #[arg(long, env = "GREGOR_BOOTSTRAP_CONTROLLER")]
        bootstrap_controller: Option<String>,
        #[command(flatten)]
        output: cli::OutputArg,
    },
    /// Send one broker-to-controller request (BrokerRegistration, BrokerHeartbeat,
    /// CreateTopics, CreatePartitions, DeleteTopics, AllocateProducerIds) to the active
    /// controller, following NOT_CONTROLLER to the quorum's leader.
    Controller(quorum::cli::ControllerArgs),
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Where partitions are stored [default: ./gregor-data]
    #[arg(long, env = "GREGOR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A listener, `HOST:PORT` (PLAINTEXT) or `PROTOCOL://HOST:PORT` with Kafka's security
    /// protocols PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL; repeat for several (the first is the
    /// primary one) [default: 127.0.0.1:9092]
    #[arg(long, env = "GREGOR_LISTEN")]
    listen: Vec<String>,
    /// The TLS listeners' certificate chain, PEM (docs/security.md)
    #[arg(long, env = "GREGOR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The TLS listeners' private key, PEM
    #[arg(long, env = "GREGOR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA certificates that sign client certificates, PEM
    #[arg(long, env = "GREGOR_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Ask TLS clients for a certificate (Kafka's ssl.client.auth)
    #[arg(long, value_enum, env = "GREGOR_TLS_CLIENT_AUTH")]
    tls_client_auth: Option<tls::ClientAuth>,
    /// Check every request against the ACLs: `standard` (Kafka's authorizer.class.name,
    /// the StandardAuthorizer) [default: none, everything allowed]
    #[arg(long, env = "GREGOR_AUTHORIZER")]
    authorizer: Option<String>,
    /// A principal the authorizer lets do everything, e.g. User:admin (Kafka's super.users);
    /// repeatable, added to the file's super_users
    #[arg(long = "super-user", env = "GREGOR_SUPER_USERS", value_delimiter = ',')]
    super_users: Vec<String>,
    /// Host clients are told to connect to [default: the listen address]
    #[arg(long, env = "GREGOR_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// Port clients are told to connect to [default: the listen port]
    #[arg(long, env = "GREGOR_ADVERTISED_PORT")]
    advertised_port: Option<i32>,
    /// A TOML configuration file (see net/src/config.rs)
    #[arg(long, env = "GREGOR_CONFIG")]
    config: Option<PathBuf>,
    /// none | group-commit | interval:RECORDS:MS [default: group-commit]
    #[arg(long, env = "GREGOR_DURABILITY")]
    durability: Option<String>,
    /// Partitions of auto-created topics [default: 1]
    #[arg(long, env = "GREGOR_DEFAULT_PARTITIONS")]
    default_partitions: Option<i32>,
    /// Do not create topics when clients ask for unknown ones
    #[arg(long, env = "GREGOR_NO_AUTO_CREATE_TOPICS")]
    no_auto_create_topics: bool,
    /// Shortest consumer session timeout accepted, ms [default: 6000]
    #[arg(long, env = "GREGOR_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<i32>,
    /// Delay before a new group's first rebalance, ms [default: 3000]
    #[arg(long, env = "GREGOR_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// Kafka's `offsets.topic.replication.factor`: replicas of each `__consumer_offsets`
    /// partition, capped at the brokers registered when the topic is created [default: 3]
    #[arg(long, env = "GREGOR_OFFSETS_TOPIC_REPLICATION_FACTOR")]
    offsets_topic_replication_factor: Option<i16>,
    /// Kafka's `offsets.commit.timeout.ms`: how long a group's write (a commit, a join) waits
    /// to be replicated before the request is answered COORDINATOR_NOT_AVAILABLE [default: 5000]
    #[arg(long, env = "GREGOR_OFFSETS_COMMIT_TIMEOUT_MS")]
    offsets_commit_timeout_ms: Option<u64>,
    /// Set any broker setting, `KEY=VALUE`, by its Kafka name (`log.retention.ms=3600000`) or
    /// its key under `[broker]` in the config file (`retention_ms=3600000`); repeatable, wins
    /// over the file and the other flags (Kafka's `kafka-server-start.sh --override`; the
    /// settings are listed in docs/ops.md)
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Most client connections at once; more are refused [default: 10000]
    #[arg(long, env = "GREGOR_CONNECTIONS_MAX")]
    connections_max: Option<usize>,
    /// Largest request frame; a larger length prefix closes the connection [default: 104857600]
    #[arg(long, env = "GREGOR_REQUEST_BYTES_MAX")]
    request_bytes_max: Option<usize>,
    /// Requests from one connection in flight at once; the rest wait unread [default: 64]
    #[arg(long, env = "GREGOR_REQUESTS_PER_CONNECTION_MAX")]
    requests_per_connection_max: Option<usize>,
    /// Unread response bytes per connection before its requests stop being read [default: 16777216]
    #[arg(long, env = "GREGOR_CONNECTION_BUFFER_BYTES_MAX")]
    connection_buffer_bytes_max: Option<usize>,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless set), e.g. 127.0.0.1:9308
    #[arg(long, env = "GREGOR_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// This node's id in the metadata quorum (Kafka's node.id) [default: the broker id, 0]
    #[arg(long, env = "GREGOR_NODE_ID")]
    node_id: Option<i32>,
    /// broker, controller, or broker,controller (Kafka's process.roles) [default: broker,controller]
    #[arg(long, env = "GREGOR_PROCESS_ROLES")]
    process_roles: Option<String>,
    /// Where the controller listens for the quorum, e.g. 127.0.0.1:9093
    #[arg(long, env = "GREGOR_CONTROLLER_LISTEN")]
    controller_listen: Option<SocketAddr>,
    /// The quorum's voters: ID@HOST:PORT,... (Kafka's controller.quorum.voters) [default:
    /// this node alone, in process]
    #[arg(long, env = "GREGOR_CONTROLLER_QUORUM_VOTERS")]
    controller_quorum_voters: Option<String>,
    /// Where the metadata log lives [default: <data-dir>-metadata]
    #[arg(long, env = "GREGOR_METADATA_LOG_DIR")]
    metadata_log_dir: Option<PathBuf>,
    /// Committed metadata entries between snapshots of the metadata image [default: 10000]
    #[arg(long, env = "GREGOR_METADATA_SNAPSHOT_INTERVAL_ENTRIES")]
    metadata_snapshot_interval_entries: Option<i64>,
    /// text, or json (one object a line, for log shippers) [default: text]
    #[arg(long, value_enum, env = "GREGOR_LOG_FORMAT")]
    log_format: Option<config::LogFormat>,
    /// Stop at once on SIGTERM, without first moving this broker's leaderships away (Kafka's
    /// controlled.shutdown.enable=false)
    #[arg(long, env = "GREGOR_NO_CONTROLLED_SHUTDOWN")]
    no_controlled_shutdown: bool,
    /// Longest wait for the controller to move this broker's leaderships on SIGTERM before
    /// stopping anyway, ms [default: 5000]
    #[arg(long, env = "GREGOR_CONTROLLED_SHUTDOWN_TIMEOUT_MS")]
    controlled_shutdown_timeout_ms: Option<u64>,
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create a topic (CreateTopics).
    Create {
        /// The topic's name: letters, digits, '.', '_' and '-', at most 249 characters.
        name: String,
        /// How many partitions the topic has.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// How many brokers hold a copy of each partition (-1: the controller's
        /// `default.replication.factor`).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config, key=value (repeatable): retention.ms, retention.bytes, segment.bytes, ...
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// List the topics with their partition counts (Metadata).
    List {
        #[command(flatten)]
        output: cli::OutputArg,
    },
    /// Show a topic's partitions, offsets and configs, or every topic's (Metadata,
    /// ListOffsets at each partition's leader, DescribeConfigs).
    Describe {
        /// The topic to describe [default: all topics].
        name: Option<String>,
        /// The topic to describe, as kafka-topics.sh names it (same as the positional name).
        #[arg(long = "topic", conflicts_with = "name")]
        topic: Option<String>,
        #[command(flatten)]
        filter: cli::PartitionFilter,
        #[command(flatten)]
        output: cli::OutputArg,
    },
    /// Delete a topic and its data (DeleteTopics).
    Delete {
        /// The topic to delete.
        name: String,
    },
    /// Add partitions and change configs (CreatePartitions, IncrementalAlterConfigs).
    Alter(cli::TopicsAlter),
}

#[derive(Subcommand)]
enum GroupsCommand {
    /// List the consumer groups with their states (ListGroups, asked of every broker).
    List {
        #[command(flatten)]
        output: cli::OutputArg,
    },
    /// Show a group's state, members, assignments, committed offsets and lag
    /// (DescribeGroups and OffsetFetch at its coordinator, ListOffsets at the leaders).
    Describe {
        /// The group id.
        group: String,
        #[command(flatten)]
        output: cli::OutputArg,
    },
    /// Delete groups with no members, and their committed offsets (DeleteGroups).
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete a group's committed offsets for a topic (OffsetDelete).
    DeleteOffsets(cli::GroupPartitions),
    /// Move a group's committed offsets (ListOffsets, OffsetCommit); the group must be empty.
    ResetOffsets(cli::ResetOffsets),
}

fn serve_config(args: ServeArgs) -> anyhow::Result<config::ServeConfig> {
    let mut c = match &args.config {
        Some(path) => config::load_file(path)?,
        None => config::ServeConfig::default(),
    };
    if let Some(d) = args.data_dir {
        c.data_dir = d;
    }
    if !args.listen.is_empty() {
        c.listeners = args.listen.clone();
    }
    if let Some(first) = c.listeners.first() {
        // The primary listener's address is `listen`, whose advertised address the core knows.
        let (_, addr) = listener::split_url(first).map_err(anyhow::Error::msg)?;
        c.listen = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("listener {first:?}: {e} (an IP address and a port)"))?;
    }
    c.tls_cert = args.tls_cert.or(c.tls_cert);
    c.tls_key = args.tls_key.or(c.tls_key);
    c.tls_ca = args.tls_ca.or(c.tls_ca);
    if let Some(a) = args.tls_client_auth {
        c.tls_client_auth = a;
    }
    c.authorizer = args.authorizer.or(c.authorizer);
    c.super_users.extend(args.super_users);
    c.broker.authorizer = c.authorizer_settings().map_err(anyhow::Error::msg)?;
    let listen_ip = c.listen.ip();
    c.broker.advertised_host = match args.advertised_host {
        Some(h) => h,
        None if c.broker.advertised_host != gregor_core::Config::default().advertised_host => {
            c.broker.advertised_host.clone()
        }
        None if listen_ip.is_unspecified() => "127.0.0.1".into(),
        None => listen_ip.to_string(),
    };
    c.broker.advertised_port = args.advertised_port.unwrap_or(c.listen.port() as i32);
    if let Some(d) = args.durability {
        c.broker.durability = config::parse_durability(&d).map_err(|e| anyhow::anyhow!(e))?;
    }
    if let Some(n) = args.default_partitions {
        c.broker.default_partitions = n;
    }
    if args.no_auto_create_topics {
        c.broker.auto_create_topics = false;
    }
    if let Some(ms) = args.group_min_session_timeout_ms {
        c.broker.group_session_timeout_ms_min = ms;
    }
    if let Some(n) = args.connections_max {
        c.connections_max = n;
    }
    if let Some(n) = args.request_bytes_max {
        c.request_bytes_max = n;
    }
    if let Some(n) = args.requests_per_connection_max {
        c.broker.requests_per_connection_max = n;
    }
    if let Some(n) = args.connection_buffer_bytes_max {
        c.connection_buffer_bytes_max = n;
    }
    if let Some(a) = args.metrics_listen {
        c.metrics_listen = Some(a);
    }
    if let Some(ms) = args.group_initial_rebalance_delay_ms {
        c.broker.group_initial_rebalance_delay_ms = ms;
    }
    if let Some(n) = args.offsets_topic_replication_factor {
        c.broker.offsets_topic_replication_factor = n;
    }
    if let Some(ms) = args.offsets_commit_timeout_ms {
        c.broker.offsets_commit_timeout_ms = ms;
    }
    for kv in &args.overrides {
        config::apply_override(&mut c.broker, kv).map_err(anyhow::Error::msg)?;
    }
    c.node_id = args.node_id.or(c.node_id);
    c.process_roles = args.process_roles.or(c.process_roles);
    c.controller_listen = args.controller_listen.or(c.controller_listen);
    c.controller_quorum_voters = args.controller_quorum_voters.or(c.controller_quorum_voters);
    c.metadata_log_dir = args.metadata_log_dir.or(c.metadata_log_dir);
    c.metadata_snapshot_interval_entries = args
        .metadata_snapshot_interval_entries
        .or(c.metadata_snapshot_interval_entries);
    c.controlled_shutdown_enable &= !args.no_controlled_shutdown;
    c.controlled_shutdown_timeout_ms = args
        .controlled_shutdown_timeout_ms
        .unwrap_or(c.controlled_shutdown_timeout_ms);
    if let Some(f) = args.log_format {
        c.log_format = f;
    }
    // The core's PRNG seed comes from the OS here (and is logged, so a run can be replayed).
    c.broker.seed = rand::random();
    c.broker.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    listener::resolve(&c)?;
    for m in &c.sasl_mechanisms {
        if gregor_core::sasl::Mechanism::from_name(m).is_none() {
            anyhow::bail!("unknown SASL mechanism {m:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)");
        }
    }
    Ok(c)
}

/// Log lines to stderr, as text or as one JSON object a line.
fn init_logging(format: config::LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Json => fmt.json().init(),
        // Colour only on a terminal: a log file or a pipe gets plain text.
        config::LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn main() {
    let cli = Cli::parse();
    let serve_config = match cli.command {
        Command::Serve(ref args) => Some(serve_config_of(args)),
        _ => None,
    };
    let format = match &serve_config {
        Some(Ok(c)) => c.log_format,
        _ => config::LogFormat::Text,
    };
    init_logging(format);
    let result = match cli.command {
        Command::Serve(_) => serve_config.expect("computed for serve").and_then(serve),
        Command::Topics {
            command,
            bootstrap: cli::Bootstrap { bootstrap },
        } => match command {
            TopicsCommand::Create {
                name,
                partitions,
                replication_factor,
                configs,
            } => cli::topics_create(&bootstrap, &name, partitions, replication_factor, &configs),
            TopicsCommand::List { output } => cli::topics_list(&bootstrap, output.output),
            TopicsCommand::Describe {
                name,
                topic,
                filter,
                output,
            } => {
                let name = name.or(topic);
                cli::topics_describe(&bootstrap, name.as_deref(), &filter, output.output)
            }
            TopicsCommand::Delete { name } => cli::topics_delete(&bootstrap, &name),
            TopicsCommand::Alter(a) => cli::topics_alter(&bootstrap, &a),
        },
        Command::Groups {
            command,
            bootstrap: cli::Bootstrap { bootstrap },
        } => match command {
            GroupsCommand::List { output } => cli::groups_list(&bootstrap, output.output),
            GroupsCommand::Describe { group, output } => {
                cli::groups_describe(&bootstrap, &group, output.output)
            }
            GroupsCommand::Delete { groups } => cli::groups_delete(&bootstrap, &groups),
            GroupsCommand::DeleteOffsets(t) => cli::delete_offsets(&bootstrap, &t),
            GroupsCommand::ResetOffsets(r) => cli::reset_offsets(&bootstrap, &r),
        },
        Command::Produce(args) => client::cli::produce(args),
        Command::Consume(args) => client::cli::consume(args),
        Command::Connect(args) => connect::connect(args),
        Command::Streams(args) => streams::streams(args),
        Command::Configs { command, bootstrap } => cli::configs(&bootstrap.bootstrap, &command),
        Command::Records { command, bootstrap } => cli::records(&bootstrap.bootstrap, &command),
        Command::Leaders { command, bootstrap } => cli::leaders(&bootstrap.bootstrap, &command),
        Command::Reassign { args, bootstrap } => cli::reassign(&bootstrap.bootstrap, &args),
        Command::Acls { command, bootstrap } => cli::acls(&bootstrap.bootstrap, &command),
        Command::Users { command, bootstrap } => cli::users(&bootstrap.bootstrap, &command),
        Command::Cluster {
            command:
                ClusterCommand::Status {
                    bootstrap,
                    bootstrap_controller,
                    output,
                },
        } => quorum::status::cluster_status(
            bootstrap.as_deref(),
            bootstrap_controller.as_deref(),
            output.output == cli::Format::Json,
        ),
        Command::Cluster {
            command: ClusterCommand::Controller(args),
        } => quorum::cli::run(args),
    };
    if let Err(e) = result {
        error!("{e:#}");
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The serve configuration, from a copy of the arguments (logging needs its format first).
fn serve_config_of(args: &ServeArgs) -> anyhow::Result<config::ServeConfig> {
    serve_config(args.clone())
}

fn serve(mut config: config::ServeConfig) -> anyhow::Result<()> {
    info!(
        settings = %config::kafka_settings(&config.broker),
        "broker settings (Kafka's names; docs/ops.md lists them)"
    );
    let quorum = quorum::QuorumConfig::from_serve(&config).map_err(|e| anyhow::anyhow!(e))?;
    // Whose directories these are (Kafka's meta.properties): another node's stop `serve` here.
    // A data directory holding nothing else is a fresh disk (KIP-966, below) even once claimed.
    let data_dir_new = meta_properties::is_new(&config.data_dir);
    let node_id = quorum.node_id.0;
    meta_properties::claim(&quorum.metadata_log_dir, "metadata log directory", node_id)?;
    if quorum.role.has_broker() {
        meta_properties::claim(&config.data_dir, "data directory", node_id)?;
    }
    // Every node has a metadata quorum: the voters given, or itself alone. A node with a broker
    // (combined, the default, or broker-only) serves the cluster's metadata image and asks the
    // active controller for topics and producer ids; it registers under its node id. A
    // controller alone runs only the quorum, and no Kafka listener.
    let (kraft, resign) = match quorum {
        q if !q.role.has_broker() => {
            info!(
                node_id = q.node_id.0,
                "a controller alone: no Kafka listener"
            );
            let resign = quorum::spawn(q, None)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                shutdown_signal().await;
                info!("shutdown signal received");
                resign_quorum(&resign).await;
            });
            info!("bye");
            return Ok(());
        }
        q => {
            config.broker.kraft = true;
            config.broker.broker_id = gregor_core::ids::BrokerId(q.node_id.0);
            // The broker takes the image's roles only once this incarnation is registered.
            let incarnation_id: [u8; 16] = rand::random();
            config.broker.incarnation_id = Some(incarnation_id);
            let registration = gregor_core::cluster::Registration {
                broker_id: gregor_core::cluster::BrokerId(q.node_id.0),
                incarnation_id,
                // Every listener, the primary one first (the core advertises the first; the
                // runtime swaps in a connection's own listener, net/src/listener.rs).
                endpoints: listener::resolve(&config)?
                    .into_iter()
                    .map(|l| gregor_core::cluster::records::Endpoint {
                        name: l.protocol.name().into(),
                        host: l.advertised_host,
                        port: l.advertised_port,
                    })
                    .collect(),
                rack: None,
                // KIP-966: a data directory absent or empty holds no committed record.
                log_dir_new: data_dir_new,
            };
            let (broker_end, quorum_end) = quorum::link::pair();
            let resign = quorum::spawn(q, Some((registration, quorum_end)))?;
            (Some(broker_end), resign)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let controlled = kraft
        .as_ref()
        .filter(|_| config.controlled_shutdown_enable)
        .map(|k| {
            let timeout = std::time::Duration::from_millis(config.controlled_shutdown_timeout_ms);
            (k.shutdown.clone(), timeout)
        });
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            info!("shutdown signal received");
            if let Some((ask, timeout)) = controlled {
                controlled_shutdown(ask, timeout).await;
            }
            // The broker's leaderships have moved (or could not be): now the controller's.
            resign_quorum(&resign).await;
            let _ = tx.send(true);
        });
        runtime::serve(config, rx, kraft).await
    })
}

/// Kafka's controlled shutdown (KIP-631): before the broker stops serving, its node's
/// lifecycle heartbeats `WantShutDown` until the active controller has moved every leadership
/// of this broker to another in-sync replica and fenced it (`ShouldShutDown`), so clients are
/// already producing to the new leaders when this process goes. Bounded by `timeout` (no
/// controller answered: the broker stops anyway, and its partitions wait for its session to
/// lapse); a second SIGTERM or Ctrl-C stops it at once.
async fn controlled_shutdown(ask: quorum::link::ShutdownAsk, timeout: std::time::Duration) {
    let started = std::time::Instant::now();
    let done = ask.begin();
    info!(
        timeout_ms = timeout.as_millis() as u64,
        "controlled shutdown: asking the active controller to move this broker's leaderships"
    );
    tokio::select! {
        r = done => match r {
            Ok(()) => info!(
                took_ms = started.elapsed().as_millis() as u64,
                "controlled shutdown done: leaderships moved, broker fenced; stopping"
            ),
            Err(_) => warn!("controlled shutdown: the metadata quorum's thread is gone; stopping"),
        },
        _ = tokio::time::sleep(timeout) => warn!(
            timeout_ms = timeout.as_millis() as u64,
            "controlled shutdown: no controller finished it in time; stopping anyway (its \
             partitions move when its session lapses)"
        ),
        _ = shutdown_signal() => warn!("second shutdown signal: stopping at once"),
    }
}

/// KIP-595's graceful resignation, the last thing the metadata side does when the process stops
/// cleanly: if this node is the active controller (the quorum's leader), it sends the other
/// voters EndQuorumEpoch and waits (bounded) for their acknowledgements, so they elect the next
/// controller at once rather than after their fetch timeout (2 s) and an election. A node that
/// does not lead has nothing to hand over.
async fn resign_quorum(resign: &quorum::link::ResignAsk) {
    match resign.ask().await {
        Ok(r) if r.led => info!(
            voters_told = r.told,
            acknowledged = r.acknowledged,
            "resigned as the active controller: the other voters elect the next one now"
        ),
        Ok(_) => {}
        Err(_) => warn!("resigning the quorum's leadership: the metadata quorum's thread is gone"),
    }
}

/// Ctrl-C or SIGTERM.
#[cfg(not(madsim))]
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        biased;
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Under madsim there are no Unix signals; nodes are killed by the simulation.
#[cfg(madsim)]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
