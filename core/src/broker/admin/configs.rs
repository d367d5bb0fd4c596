//! Changing topic configs: IncrementalAlterConfigs (KIP-339) and the older AlterConfigs.
//!
//! A topic config overrides the broker's default for one topic (`retention.ms` on the topic
//! beats `log.retention.ms` on the broker). The two APIs differ in what they replace:
//! * **AlterConfigs** sets a topic's whole list of overrides: a key left out goes back to the
//!   broker default. Tools that used it had to describe, edit and write back, racing each
//!   other; hence
//! * **IncrementalAlterConfigs** (KIP-339), which applies operations key by key: SET (0) a
//!   value, DELETE (1) the override (back to the default), APPEND (2) and SUBTRACT (3) for list
//!   configs (gregor's topic configs are all single values, so those are refused).
//!
//! The topic configs gregor honours are the fields of [`TopicSettings`] (`retention.ms`,
//! `retention.bytes`, `segment.bytes`, `segment.ms`, `max.message.bytes`, and log
//! compaction's `cleanup.policy`, `delete.retention.ms`, `min.cleanable.dirty.ratio`,
//! `min.compaction.lag.ms`); `min.insync.replicas`, `compression.type` and `message.timestamp.type` are accepted at the
//! one value gregor implements. An unknown key is INVALID_CONFIG with a message naming it.
//! The new settings take effect at once (produce size checks, segment rolls, the next
//! retention check) and are stored in every partition's `partition.meta` before the answer,
//! so they survive a restart; DescribeConfigs shows an override with source
//! DYNAMIC_TOPIC_CONFIG. With `validate_only` everything is checked and nothing changes.
//!
//! Broker configs are static in gregor (set on the command line at start): altering one is
//! refused with INVALID_REQUEST and a message saying so.

use super::*;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;

/// Resource types of the config APIs (Kafka's `ConfigResource.Type`).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One resource of either alter API, reduced to what both share: the key-value changes to
/// make (`None` restores the default) and whether they replace every override.
struct Alter {
    resource_type: i8,
    name: String,
    changes: Result<Vec<(String, Option<String>)>, ClientError>,
    replace_all: bool,
}

/// What one resource's alter came to: an error, or the outstanding storage writes.
struct Outcome {
    code: ErrorCode,
    message: Option<String>,
    writes: usize,
}

impl Broker {
    pub(in crate::broker) fn incremental_alter_configs(
        &mut self,
        to: ReplyTo,
        r: IncrementalAlterConfigsRequest,
    ) {
        let alters = r
            .resources
            .iter()
            .map(|res| Alter {
                resource_type: res.resource_type,
                name: res.resource_name.to_string(),
                changes: incremental_changes(&res.configs),
                replace_all: false,
            })
            .collect();
        let (id, outcomes, outstanding) = self.alter_resources(alters, r.validate_only);
        let mut resp = IncrementalAlterConfigsResponse::default();
        for (res, o) in r.resources.iter().zip(outcomes) {
            resp.responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone())
                    .with_error_code(o.code.into())
                    .with_error_message(o.message.map(sb)),
            );
        }
        assert_eq!(resp.responses.len(), r.resources.len());
        self.answer_when_durable(
            id,
            to,
            ResponseKind::IncrementalAlterConfigs(resp),
            outstanding,
        );
    }

    pub(in crate::broker) fn alter_configs(&mut self, to: ReplyTo, r: AlterConfigsRequest) {
        let alters = r
            .resources
            .iter()
            .map(|res| Alter {
                resource_type: res.resource_type,
                name: res.resource_name.to_string(),
                changes: no_duplicates(
                    res.configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect(),
                ),
                replace_all: true,
            })
            .collect();
        let (id, outcomes, outstanding) = self.alter_resources(alters, r.validate_only);
        let mut resp = AlterConfigsResponse::default();
        for (res, o) in r.resources.iter().zip(outcomes) {
            resp.responses.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone())
                    .with_error_code(o.code.into())
                    .with_error_message(o.message.map(sb)),
            );
        }
        assert_eq!(resp.responses.len(), r.resources.len());
        self.answer_when_durable(id, to, ResponseKind::AlterConfigs(resp), outstanding);
    }

    /// Check and apply each resource's changes; returns the pending id the writes wait under,
    /// one outcome per resource (in order), and the writes outstanding per topic.
    fn alter_resources(
        &mut self,
        alters: Vec<Alter>,
        validate_only: bool,
    ) -> (u64, Vec<Outcome>, BTreeMap<String, usize>) {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut outstanding = BTreeMap::new();
        let mut outcomes = Vec::new();
        let mut seen = BTreeSet::new();
        for a in alters {
            let duplicate = !seen.insert((a.resource_type, a.name.clone()));
            let outcome = match self.check_alter(&a, duplicate) {
                Err(e) => Outcome {
                    code: e.code,
                    message: Some(e.message),
                    writes: 0,
                },
                Ok(_) if validate_only => Outcome {
                    code: ErrorCode::NONE,
                    message: None,
                    writes: 0,
                },
                Ok(settings) => Outcome {
                    code: ErrorCode::NONE,
                    message: None,
                    writes: self.set_topic_settings(&a.name, settings, id),
                },
            };
            if outcome.writes > 0 {
                outstanding.insert(a.name.clone(), outcome.writes);
            }
            outcomes.push(outcome);
        }
        // Only a change that succeeded, outside validate_only, wrote anything.
        assert!(!validate_only || outstanding.is_empty());
        (id, outcomes, outstanding)
    }

    /// The settings a topic would have after `a`, or why `a` is refused.
    fn check_alter(&self, a: &Alter, duplicate: bool) -> Result<TopicSettings, ClientError> {
        if duplicate {
            return Err(ClientError::new(
                ErrorCode::INVALID_REQUEST,
                format!("resource {} appears twice in the request", a.name),
            ));
        }
        match a.resource_type {
            RESOURCE_TOPIC => {}
            RESOURCE_BROKER => {
                return Err(ClientError::new(
                    ErrorCode::INVALID_REQUEST,
                    "broker configs are static in gregor: set them on the command line and \
                     restart the broker",
                ))
            }
            other => {
                return Err(ClientError::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("config resource type {other} is not supported (2 = topic)"),
                ))
            }
        }
        let Some(t) = self.topics.get(&a.name) else {
            return Err(ClientError::new(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic {}", a.name),
            ));
        };
        let changes = a.changes.as_ref().map_err(Clone::clone)?;
        let base = if a.replace_all {
            self.default_settings()
        } else {
            t.settings.clone()
        };
        self.apply_topic_configs(base, changes)
            .map_err(|e| ClientError::new(ErrorCode::INVALID_CONFIG, e))
    }

    /// Give topic `name` new settings now and store them in every partition's metadata file.
    /// Returns the writes issued (none if nothing changed).
    fn set_topic_settings(&mut self, name: &str, settings: TopicSettings, waiter: u64) -> usize {
        let t = self.topics.get_mut(name).expect("checked");
        if t.settings == settings {
            return 0;
        }
        t.settings = settings;
        let n = t.partitions.len();
        assert!(n > 0, "a topic has partitions");
        for i in 0..n {
            let meta = self.partition_meta_now(name, i);
            assert_eq!(
                meta.settings, self.topics[name].settings,
                "the file gets the new configs"
            );
            self.write_partition_meta(&meta, Some(waiter));
        }
        self.log(
            LogLevel::Info,
            format!("topic {name}: configs now {:?}", self.topics[name].settings),
        );
        n
    }
}

/// An IncrementalAlterConfigs resource's operations as key-value changes.
fn incremental_changes(
    configs: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<(String, Option<String>)>, ClientError> {
    let mut changes = Vec::new();
    for c in configs {
        let key = c.name.to_string();
        match c.config_operation {
            OP_SET => match &c.value {
                Some(v) => changes.push((key, Some(v.to_string()))),
                None => {
                    return Err(ClientError::new(
                        ErrorCode::INVALID_CONFIG,
                        format!("SET of {key} carries no value"),
                    ))
                }
            },
            OP_DELETE => changes.push((key, None)),
            OP_APPEND | OP_SUBTRACT => {
                return Err(ClientError::new(
                    ErrorCode::INVALID_CONFIG,
                    format!("{key} is not a list config: APPEND and SUBTRACT do not apply"),
                ))
            }
            other => {
                return Err(ClientError::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("unknown config operation {other} for {key}"),
                ))
            }
        }
    }
    no_duplicates(changes)
}

/// Kafka refuses a resource that names a key twice.
fn no_duplicates(
    changes: Vec<(String, Option<String>)>,
) -> Result<Vec<(String, Option<String>)>, ClientError> {
    let mut keys = BTreeSet::new();
    match changes.iter().find(|(k, _)| !keys.insert(k.as_str())) {
        Some((k, _)) => Err(ClientError::new(
            ErrorCode::INVALID_REQUEST,
            format!("config {k} appears twice"),
        )),
        None => Ok(changes),
    }
}
