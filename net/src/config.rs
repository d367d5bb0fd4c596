//! Configuration: defaults < `--config FILE` (TOML) < environment (`GREGOR_*`) < flags.
//!
//! The file has the network settings at the top level and the broker's own settings (every
//! field of `gregor_core::Config`) under `[broker]`:
//! ```toml
//! listen = "127.0.0.1:9092"
//! data_dir = "/var/lib/gregor"
//! [broker]
//! default_partitions = 3
//! durability = { policy = "group-commit" }
//! ```
//!
//! Security (docs/security.md): listeners with a protocol each, TLS files, SASL users.
//! ```toml
//! listeners = ["PLAINTEXT://127.0.0.1:9092", "SASL_SSL://0.0.0.0:9094"]
//! advertised_listeners = ["SASL_SSL://broker1.example:9094"]
//! tls_cert = "server.pem"
//! tls_key = "server.key"
//! sasl_mechanisms = ["SCRAM-SHA-512", "PLAIN"]
//! super_users = ["User:admin"]
//! [users]
//! alice = "alice-secret"
//! ```

use gregor_core::sasl::scram::{ScramCredential, ScramMechanism, ITERATIONS_MIN};
use gregor_core::sasl::Credentials;
use gregor_core::{Config, Durability};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The one PLAINTEXT listener when `listeners` is empty.
    pub listen: SocketAddr,
    /// Kafka's `listeners`: `PROTOCOL://HOST:PORT` each (net/src/listener.rs); the first is the
    /// broker's primary one. Empty: `listen`, PLAINTEXT.
    pub listeners: Vec<String>,
    /// Kafka's `advertised_listeners`: `PROTOCOL://HOST:PORT` for listeners whose advertised
    /// address is not their bind address.
    pub advertised_listeners: Vec<String>,
    /// The TLS listeners' certificate chain and key, PEM (net/src/tls.rs; Kafka's
    /// `ssl.keystore.*`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA certificates for client certificates, PEM (Kafka's `ssl.truststore.location`).
    pub tls_ca: Option<PathBuf>,
    /// Kafka's `ssl.client.auth`: `none`, `requested` or `required`.
    pub tls_client_auth: crate::tls::ClientAuth,
    /// Kafka's `sasl.enabled.mechanisms` [default: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512].
    pub sasl_mechanisms: Vec<String>,
    /// SASL users and their passwords: the PLAIN users (Kafka's JAAS file for PLAIN), kept as
    /// a salted hash ([`plain_users`]); and the SCRAM users a new cluster starts with, written
    /// into the metadata log by its first controller ([`bootstrap_scram`]; Kafka's
    /// `kafka-storage format --add-scram`). Later SCRAM users are added with `gregor users add`
    /// (AlterUserScramCredentials, KIP-554).
    pub users: BTreeMap<String, String>,
    /// Kafka's `connection.failed.authentication.delay.ms`: a failed SASL authentication is
    /// answered (and the connection closed) this much later, slowing password guessing
    /// [default: 100].
    pub connection_failed_authentication_delay_ms: u64,
    /// Kafka's `connections.max.reauth.ms` (KIP-368): a SASL login lasts this long, and the
    /// client must log in again on its connection before then (librdkafka 2.2+ and the Java
    /// client do); a connection whose login expired is closed at its next other request.
    /// 0, the default, as in Kafka: a login lasts as long as its connection.
    pub connections_max_reauth_ms: u64,
    /// Kafka's `super.users`: principals (`User:admin`) that the authorizer lets do
    /// everything.
    pub super_users: Vec<String>,
    /// Kafka's `authorizer.class.name`: `standard` checks every request against the ACLs in
    /// the metadata log (docs/security.md); none (the default) allows everything.
    pub authorizer: Option<String>,
    /// Kafka's `allow.everyone.if.no.acl.found`: with the authorizer on, a resource no ACL
    /// names is open to everyone [default: false].
    pub allow_everyone_if_no_acl_found: bool,
    pub data_dir: PathBuf,
    /// Most client connections at once; more are refused (Kafka `max.connections`).
    pub connections_max: usize,
    /// Largest request frame accepted (Kafka `socket.request.max.bytes`, 100 MiB).
    pub request_bytes_max: usize,
    /// Response bytes waiting to be written to one connection before the broker stops reading
    /// its requests (until the client reads its answers).
    pub connection_buffer_bytes_max: usize,
    /// Where to serve Prometheus metrics (`http://ADDR/metrics`); none unless set.
    pub metrics_listen: Option<SocketAddr>,
    /// Kafka's `node.id`: this node's id in the metadata quorum (net/src/quorum) [default: the
    /// broker id]. With no `controller_quorum_voters` the node is the one voter of its own
    /// quorum, in this process: a whole cluster of one.
    pub node_id: Option<i32>,
    /// Kafka's `process.roles`: `broker`, `controller` or `broker,controller` [default: both].
    pub process_roles: Option<String>,
    /// Where the controller listens for the quorum's RPCs, e.g. `127.0.0.1:9093`.
    pub controller_listen: Option<SocketAddr>,
    /// Kafka's `controller.quorum.voters`: `1@127.0.0.1:9093,2@127.0.0.1:9193,...`.
    pub controller_quorum_voters: Option<String>,
    /// Kafka's `metadata.log.dir` [default: `<data_dir>-metadata`, beside the data directory].
    pub metadata_log_dir: Option<PathBuf>,
    /// Committed metadata entries between two snapshots of the image (KIP-630; Kafka's
    /// `metadata.log.max.snapshot.interval` counts bytes and time instead) [default: 10000].
    pub metadata_snapshot_interval_entries: Option<i64>,
    /// Kafka's `controlled.shutdown.enable`: on SIGTERM or Ctrl-C the broker first asks the
    /// active controller to move its leaderships to other in-sync replicas (KIP-631), and
    /// stops once that is committed [default: true]. Off: it stops at once, and its partitions
    /// wait for its session to lapse (`broker.session.timeout.ms`, 9 s).
    pub controlled_shutdown_enable: bool,
    /// How long a controlled shutdown may take before the broker stops anyway (no controller
    /// answered: the quorum lost its majority, say), ms [default: 5000].
    pub controlled_shutdown_timeout_ms: u64,
    /// How log lines are written to stderr: `text` for people, `json` (one object a line) for
    /// log shippers.
    pub log_format: LogFormat,
    pub broker: Config,
}

impl ServeConfig {
    /// The core's authorizer from `authorizer`, `super_users` and
    /// `allow_everyone_if_no_acl_found`; an unknown authorizer name or a super user that is
    /// not `Type:name` is an error naming it.
    pub fn authorizer_settings(&self) -> Result<Option<gregor_core::acl::Authorizer>, String> {
        match self.authorizer.as_deref() {
            None | Some("") | Some("none") => return Ok(None),
            Some("standard") | Some("StandardAuthorizer") => {}
            Some(other) => return Err(format!("unknown authorizer {other:?} (standard or none)")),
        }
        if let Some(bad) = self.super_users.iter().find(|s| !s.contains(':')) {
            return Err(format!("super user {bad:?} is not Type:name (User:admin)"));
        }
        Ok(Some(gregor_core::acl::Authorizer {
            super_users: self.super_users.clone(),
            allow_if_no_acl: self.allow_everyone_if_no_acl_found,
        }))
    }
}

/// The log's format (`--log-format`, `log_format`, `GREGOR_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:9092".parse().unwrap(),
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_client_auth: crate::tls::ClientAuth::None,
            sasl_mechanisms: gregor_core::sasl::Mechanism::ALL
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
            users: BTreeMap::new(),
            connection_failed_authentication_delay_ms: 100,
            connections_max_reauth_ms: 0,
            super_users: Vec::new(),
            authorizer: None,
            allow_everyone_if_no_acl_found: false,
            data_dir: PathBuf::from("gregor-data"),
            connections_max: 10_000,
            request_bytes_max: 100 * 1024 * 1024,
            connection_buffer_bytes_max: 16 * 1024 * 1024,
            metrics_listen: None,
            node_id: None,
            process_roles: None,
            controller_listen: None,
            controller_quorum_voters: None,
            metadata_log_dir: None,
            metadata_snapshot_interval_entries: None,
            controlled_shutdown_enable: true,
            controlled_shutdown_timeout_ms: 5_000,
            log_format: LogFormat::Text,
            broker: Config::default(),
        }
    }
}

/// The PLAIN users of the `users` section, each password kept only as a SCRAM-SHA-256 hash
/// with a fresh random salt (the password is forgotten).
pub fn plain_users(users: &BTreeMap<String, String>) -> Credentials {
    let mut creds = Credentials::default();
    for (user, password) in users {
        let salt: [u8; 16] = rand::random();
        let hashed = ScramCredential::derive(
            ScramMechanism::Sha256,
            password.as_bytes(),
            &salt,
            ITERATIONS_MIN,
        );
        creds.set_plain(user, hashed);
    }
    creds
}

/// The SCRAM credentials a new cluster starts with: SCRAM-SHA-256 and SCRAM-SHA-512 for each
/// user of the `users` section, a fresh random salt each and Kafka's default 4096 iterations.
/// Only the first controller of an empty metadata log writes them (once per cluster).
pub fn bootstrap_scram(users: &BTreeMap<String, String>) -> Vec<(String, ScramCredential)> {
    let mut out = Vec::new();
    for (user, password) in users {
        for m in ScramMechanism::ALL {
            let salt: [u8; 16] = rand::random();
            let cred = ScramCredential::derive(m, password.as_bytes(), &salt, ITERATIONS_MIN);
            out.push((user.clone(), cred));
        }
    }
    out
}

/// Parse `none`, `group-commit` or `interval:RECORDS:MS`.
pub fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "none" => Ok(Durability::None),
        "group-commit" => Ok(Durability::GroupCommit),
        other => {
            let parts: Vec<&str> = other.split(':').collect();
            if parts.len() == 3 && parts[0] == "interval" {
                let records = parts[1]
                    .parse()
                    .map_err(|_| format!("bad record count in {other:?}"))?;
                let interval_ms = parts[2]
                    .parse()
                    .map_err(|_| format!("bad interval in {other:?}"))?;
                Ok(Durability::Interval {
                    records,
                    interval_ms,
                })
            } else {
                Err(format!(
                    "durability must be none, group-commit or interval:RECORDS:MS, not {other:?}"
                ))
            }
        }
    }
}

/// The `[broker]` settings that are Kafka broker configs, by Kafka's name: what
/// `--override NAME=VALUE` accepts besides the TOML key, and what the start-up log shows.
/// (The TOML key is the field of `gregor_core::Config`; its doc comment says what it does.)
pub const KAFKA_NAMES: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "auto_create_topics"),
    ("num.partitions", "default_partitions"),
    ("log.segment.bytes", "segment_bytes_max"),
    ("log.roll.ms", "segment_age_ms_max"),
    ("log.retention.bytes", "retention_bytes"),
    ("log.retention.ms", "retention_ms"),
    (
        "log.retention.check.interval.ms",
        "retention_check_interval_ms",
    ),
    ("log.cleanup.policy", "cleanup_policy"),
    ("log.message.timestamp.type", "message_timestamp_type"),
    ("compression.type", "compression_type"),
    ("log.index.interval.bytes", "index_interval_bytes"),
    ("log.cleaner.backoff.ms", "log_cleaner_backoff_ms"),
    ("message.max.bytes", "batch_bytes_max"),
    ("fetch.max.bytes", "fetch_response_bytes_max"),
    (
        "group.min.session.timeout.ms",
        "group_session_timeout_ms_min",
    ),
    (
        "group.max.session.timeout.ms",
        "group_session_timeout_ms_max",
    ),
    (
        "group.initial.rebalance.delay.ms",
        "group_initial_rebalance_delay_ms",
    ),
    ("offsets.topic.num.partitions", "offsets_topic_partitions"),
    (
        "offsets.topic.replication.factor",
        "offsets_topic_replication_factor",
    ),
    ("offsets.commit.timeout.ms", "offsets_commit_timeout_ms"),
    ("min.insync.replicas", "min_insync_replicas"),
    ("replica.lag.time.max.ms", "replica_lag_time_max_ms"),
    ("replica.fetch.wait.max.ms", "replica_fetch_wait_max_ms"),
    ("replica.fetch.max.bytes", "replica_fetch_max_bytes"),
    (
        "replica.fetch.response.max.bytes",
        "replica_fetch_response_max_bytes",
    ),
    ("replica.fetch.backoff.ms", "replica_fetch_backoff_ms"),
];

/// Set one `[broker]` setting from `KEY=VALUE` (`gregor serve --override`, as Kafka's
/// `kafka-server-start.sh --override`): KEY is a TOML key of `[broker]` or its Kafka name
/// ([`KAFKA_NAMES`]); VALUE is read as a TOML value (a number, `true`, a quoted string) or else
/// as a bare string. `log.cleanup.policy` takes Kafka's list (`compact,delete`) and
/// `durability` the flag's form (`interval:RECORDS:MS`). An unknown key or a value of the wrong
/// type is an error naming it; the result is checked by `Config::validate` afterwards.
pub fn apply_override(broker: &mut Config, kv: &str) -> Result<(), String> {
    let Some((key, value)) = kv.split_once('=') else {
        return Err(format!("--override {kv:?}: expected KEY=VALUE"));
    };
    let (key, value) = (key.trim(), value.trim());
    let field = KAFKA_NAMES
        .iter()
        .find(|(kafka, _)| *kafka == key)
        .map_or(key, |(_, field)| *field);
    let bad = |why: String| format!("--override {key}: {why}");
    let parsed = match field {
        "cleanup_policy" => {
            let policy = gregor_core::config::CleanupPolicy::parse(value).ok_or_else(|| {
                bad(format!(
                    "{value:?} is not delete, compact or compact,delete"
                ))
            })?;
            toml::Value::try_from(policy).map_err(|e| bad(e.to_string()))?
        }
        "durability" => toml::Value::try_from(parse_durability(value).map_err(bad)?)
            .map_err(|e| bad(e.to_string()))?,
        _ => toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
    };
    let mut table = settings_table(broker).map_err(bad)?;
    table.insert(field.to_string(), parsed);
    let mut next: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
    // What `settings_table` leaves out is kept as it was.
    next.authorizer = broker.authorizer.take();
    next.incarnation_id = broker.incarnation_id;
    if field != "seed" {
        next.seed = broker.seed;
    }
    *broker = next;
    Ok(())
}

/// The `[broker]` settings as a TOML table, without what TOML cannot hold or the file does not
/// set: the PRNG seed (a random u64 may exceed TOML's i64), the incarnation id and the
/// authorizer.
fn settings_table(broker: &Config) -> Result<toml::Table, String> {
    let mut c = broker.clone();
    c.seed = 0;
    c.incarnation_id = None;
    c.authorizer = None;
    match toml::Value::try_from(&c) {
        Ok(toml::Value::Table(t)) => Ok(t),
        other => Err(format!("the settings do not serialize: {other:?}")),
    }
}

/// The broker settings that have a Kafka name, `name=value` separated by spaces, for the
/// start-up log: what this broker runs with, in the names an operator knows.
pub fn kafka_settings(broker: &Config) -> String {
    let Ok(table) = settings_table(broker) else {
        return String::new();
    };
    let show = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    KAFKA_NAMES
        .iter()
        .filter_map(|(kafka, field)| table.get(*field).map(|v| format!("{kafka}={}", show(v))))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn load_file(path: &std::path::Path) -> anyhow::Result<ServeConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_durability_parse() {
        let c: ServeConfig = toml::from_str(
            "listen = \"127.0.0.1:9999\"\n[broker]\ndefault_partitions = 3\ndurability = { policy = \"interval\", records = 10, interval_ms = 5 }\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.log_format, LogFormat::Text);
        let j: ServeConfig = toml::from_str("log_format = \"json\"\n").unwrap();
        assert_eq!(j.log_format, LogFormat::Json);
        assert_eq!(c.broker.default_partitions, 3);
        // Kafka's offsets.topic.replication.factor: 3 unless set.
        assert_eq!(c.broker.offsets_topic_replication_factor, 3);
        let o: ServeConfig =
            toml::from_str("[broker]\noffsets_topic_replication_factor = 1\n").unwrap();
        assert_eq!(o.broker.offsets_topic_replication_factor, 1);
        assert_eq!(
            c.broker.durability,
            Durability::Interval {
                records: 10,
                interval_ms: 5
            }
        );
        assert!(toml::from_str::<ServeConfig>("nonsense = 1").is_err());
        let r: ServeConfig = toml::from_str("process_roles = \"controller\"\n").unwrap();
        assert_eq!(r.process_roles.as_deref(), Some("controller"));
        let q: ServeConfig = toml::from_str(
            "node_id = 2\ncontroller_listen = \"127.0.0.1:9193\"\ncontroller_quorum_voters = \"1@127.0.0.1:9093,2@127.0.0.1:9193\"\n",
        )
        .unwrap();
        assert_eq!(q.node_id, Some(2));
        assert_eq!(q.controller_listen.map(|a| a.port()), Some(9193));
        assert_eq!(
            q.controller_quorum_voters.as_deref(),
            Some("1@127.0.0.1:9093,2@127.0.0.1:9193")
        );
        assert_eq!(
            parse_durability("interval:100:20"),
            Ok(Durability::Interval {
                records: 100,
                interval_ms: 20
            })
        );
        assert_eq!(parse_durability("none"), Ok(Durability::None));
        let sec: ServeConfig = toml::from_str(
            "listeners = [\"SASL_SSL://127.0.0.1:9094\"]\ntls_client_auth = \"required\"\nsuper_users = [\"User:admin\"]\n[users]\nalice = \"pw\"\n",
        )
        .unwrap();
        assert_eq!(sec.listeners, ["SASL_SSL://127.0.0.1:9094"]);
        assert_eq!(sec.tls_client_auth, crate::tls::ClientAuth::Required);
        assert_eq!(sec.users.get("alice").map(String::as_str), Some("pw"));
        assert_eq!(sec.super_users, ["User:admin"]);
        assert_eq!(
            sec.connection_failed_authentication_delay_ms, 100,
            "Kafka's default"
        );
        let d: ServeConfig =
            toml::from_str("connection_failed_authentication_delay_ms = 250\n").unwrap();
        assert_eq!(d.connection_failed_authentication_delay_ms, 250);
        assert_eq!(sec.connections_max_reauth_ms, 0, "Kafka's default: off");
        let r: ServeConfig = toml::from_str(
            "connections_max_reauth_ms = 2000
",
        )
        .unwrap();
        assert_eq!(r.connections_max_reauth_ms, 2000);
        assert!(parse_durability("sometimes").is_err());
    }

    #[test]
    fn overrides_reach_every_broker_setting_by_toml_key_or_kafka_name() {
        let mut b = Config::default();
        apply_override(&mut b, "offsets.commit.timeout.ms=7000").unwrap();
        assert_eq!(b.offsets_commit_timeout_ms, 7000);
        apply_override(&mut b, "full_check_every_steps = 10").unwrap();
        assert_eq!(b.full_check_every_steps, 10);
        apply_override(&mut b, "log.cleanup.policy=compact,delete").unwrap();
        assert_eq!(
            b.cleanup_policy,
            gregor_core::config::CleanupPolicy::CompactDelete
        );
        apply_override(&mut b, "log.message.timestamp.type=LogAppendTime").unwrap();
        assert_eq!(
            b.message_timestamp_type,
            gregor_core::config::TimestampType::LogAppendTime
        );
        apply_override(&mut b, "compression.type=zstd").unwrap();
        assert_eq!(
            b.compression_type,
            gregor_core::config::TopicCompression::Zstd
        );
        apply_override(&mut b, "log.index.interval.bytes=512").unwrap();
        assert_eq!(b.index_interval_bytes, 512);
        let err = apply_override(&mut b, "compression.type=brotli").unwrap_err();
        assert!(err.contains("compression.type"), "{err}");
        apply_override(&mut b, "auto.create.topics.enable=false").unwrap();
        assert!(!b.auto_create_topics);
        apply_override(&mut b, "durability=interval:10:5").unwrap();
        assert_eq!(
            b.durability,
            Durability::Interval {
                records: 10,
                interval_ms: 5
            }
        );
        apply_override(&mut b, "advertised_host=broker1.example").unwrap();
        assert_eq!(b.advertised_host, "broker1.example");
        // Everything else kept its value.
        assert_eq!(b.offsets_commit_timeout_ms, 7000);
        assert_eq!(b.default_partitions, Config::default().default_partitions);
        let e = apply_override(&mut b, "no.such.setting=1").unwrap_err();
        assert!(
            e.contains("no.such.setting") && e.contains("unknown field"),
            "{e}"
        );
        let e = apply_override(&mut b, "num.partitions=many").unwrap_err();
        assert!(e.contains("num.partitions"), "{e}");
        assert!(apply_override(&mut b, "num.partitions").is_err());
        // The seed drawn at start is any u64, beyond TOML's integers: still shown, still set.
        b.seed = u64::MAX;
        apply_override(&mut b, "num.partitions=3").unwrap();
        assert_eq!((b.seed, b.default_partitions), (u64::MAX, 3));
        let shown = kafka_settings(&b);
        assert!(shown.contains("offsets.commit.timeout.ms=7000"), "{shown}");
        assert!(
            shown.contains("log.cleanup.policy=compact-delete"),
            "{shown}"
        );
        assert_eq!(shown.split(' ').count(), KAFKA_NAMES.len(), "{shown}");
        // Every Kafka name maps to a real field.
        let table = toml::Value::try_from(Config::default()).unwrap();
        for (kafka, field) in KAFKA_NAMES {
            assert!(table.get(*field).is_some(), "{kafka} -> {field}");
        }
    }
}
