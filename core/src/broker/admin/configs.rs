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
//! `retention.bytes`, `segment.bytes`, `segment.ms`, `max.message.bytes`,
//! `message.timestamp.type`, `compression.type`, `index.interval.bytes`, and log
//! compaction's `cleanup.policy`, `delete.retention.ms`, `min.cleanable.dirty.ratio`,
//! `min.compaction.lag.ms`); `min.insync.replicas` is accepted at 1 on a standalone broker (in a
//! cluster it and `unclean.leader.election.enable` are ordinary topic configs, checked as the
//! controller checks them). An unknown key or a bad value is INVALID_CONFIG with a message
//! naming the key.
//!
//! In a cluster (KRaft) a change is not made here: it is checked against the image and
//! forwarded to the active controller, which writes ConfigRecords; every broker applies them
//! when its image brings them (`Broker::follow_topic_configs`, below), and DescribeConfigs
//! answers from the image's overrides over this broker's defaults. What follows about
//! `partition.meta` written before the answer is the standalone broker's path.
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
        if self.config.kraft {
            let resp = IncrementalAlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                    })
                    .collect(),
            );
            let response = ResponseKind::IncrementalAlterConfigs(resp);
            return self.kraft_alter(to, alters, r.validate_only, response);
        }
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
        if self.config.kraft {
            let resp = AlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                    })
                    .collect(),
            );
            let response = ResponseKind::AlterConfigs(resp);
            return self.kraft_alter(to, alters, r.validate_only, response);
        }
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
                    writes: self.set_topic_settings(&a.name, settings, Some(id)),
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
        check_resource(a, duplicate)?;
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

    /// Give topic `name` new settings now and store them in the metadata file of every
    /// partition it has here (a cluster's placeholders for partitions hosted elsewhere, and
    /// offline partitions, have no file to write). Returns the writes issued (none if nothing
    /// changed).
    fn set_topic_settings(
        &mut self,
        name: &str,
        settings: TopicSettings,
        waiter: Option<u64>,
    ) -> usize {
        let t = self.topics.get_mut(name).expect("checked");
        if t.settings == settings {
            return 0;
        }
        t.settings = settings;
        assert!(!t.partitions.is_empty(), "a topic has partitions");
        let local: Vec<usize> = (0..t.partitions.len())
            .filter(|i| t.partitions[*i].offline.is_none())
            .collect();
        for i in &local {
            let meta = self.partition_meta_now(name, *i);
            assert_eq!(
                meta.settings, self.topics[name].settings,
                "the file gets the new configs"
            );
            self.write_partition_meta(&meta, waiter);
        }
        self.log(
            LogLevel::Info,
            format!("topic {name}: configs now {:?}", self.topics[name].settings),
        );
        local.len()
    }
}

impl Broker {
    /// The config alters in a cluster (KIP-500): each topic's changes are checked here against
    /// the image (the topic exists, the keys and values apply) and forwarded to the active
    /// controller as one `AlterConfigs` request of set and delete changes; the
    /// response (`response`, one entry per resource, in order) leaves once every topic's
    /// answer is back, that is once the ConfigRecords are committed. The local settings change
    /// later, when the records reach this broker in an image ([`Broker::follow_topic_configs`]),
    /// on every broker alike. AlterConfigs (`replace_all`) becomes the same changes: its list
    /// set, and every other override the image holds deleted.
    fn kraft_alter(
        &mut self,
        to: ReplyTo,
        alters: Vec<Alter>,
        validate_only: bool,
        mut response: ResponseKind,
    ) {
        let mut asks = Vec::new();
        let mut seen = BTreeSet::new();
        let resources = alters.len();
        for (slot, a) in alters.into_iter().enumerate() {
            let duplicate = !seen.insert((a.resource_type, a.name.clone()));
            match self.kraft_check_alter(&a, duplicate) {
                Err(e) => {
                    self.log(
                        LogLevel::Info,
                        format!("config change of {} refused: {}", a.name, e.message),
                    );
                    Broker::set_alter_error(&mut response, slot, e.code.into(), Some(e.message));
                }
                Ok(_) if validate_only => {}
                Ok(changes) => asks.push((slot, a.name, changes)),
            }
        }
        assert!(asks.iter().all(|(slot, _, _)| *slot < resources));
        assert!(
            !validate_only || asks.is_empty(),
            "validate_only asks nobody"
        );
        self.forward_config_alters(to, response, asks);
    }

    /// The changes to forward for `a`, or why it is refused (Kafka's codes:
    /// UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG, INVALID_REQUEST).
    fn kraft_check_alter(
        &self,
        a: &Alter,
        duplicate: bool,
    ) -> Result<Vec<(String, Option<String>)>, ClientError> {
        check_resource(a, duplicate)?;
        let configs = self
            .metadata_image()
            .and_then(|i| Some(i.topics()[&i.topic_id(&a.name)?].configs.clone()))
            .ok_or_else(|| {
                ClientError::new(
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic {}", a.name),
                )
            })?;
        let mut changes = a.changes.clone()?;
        if a.replace_all {
            let named: BTreeSet<String> = changes.iter().map(|(k, _)| k.clone()).collect();
            let dropped = configs.keys().filter(|k| !named.contains(*k));
            changes.extend(dropped.map(|k| (k.clone(), None)).collect::<Vec<_>>());
            // Every override the image holds is named: set again, or deleted.
            assert!(configs.keys().all(|k| changes.iter().any(|(c, _)| c == k)));
        }
        let base = self
            .settings_of(&configs)
            .unwrap_or(self.default_settings());
        self.apply_topic_configs(base, &changes)
            .map_err(|e| ClientError::new(ErrorCode::INVALID_CONFIG, e))?;
        assert!(changes.len() >= a.changes.as_ref().map_or(0, |c| c.len()));
        Ok(changes)
    }

    /// The settings topic configs `configs` (as the image holds them) make over this broker's
    /// defaults.
    fn settings_of(&self, configs: &BTreeMap<String, String>) -> Result<TopicSettings, String> {
        let configs: Vec<(String, Option<String>)> = configs
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        self.topic_settings_from(&configs)
    }

    /// A new image may change the configs of topics this broker hosts (an AlterConfigs
    /// committed): their settings change at once (retention, segment size and age, cleanup
    /// policy, max.message.bytes, ...) and are stored in each local partition's
    /// `partition.meta`, with a log line naming the topic and the keys. Called with the new
    /// image before it replaces the old one.
    pub(in crate::broker) fn follow_topic_configs(
        &mut self,
        image: &crate::cluster::MetadataImage,
    ) {
        // (topic, its new configs, the keys that changed), read before anything changes.
        let old = self.metadata_image();
        let none = BTreeMap::new();
        let changed: Vec<(String, BTreeMap<String, String>, BTreeSet<String>)> = image
            .topics()
            .iter()
            .filter(|(_, t)| t.name != crate::group::OFFSETS_TOPIC)
            .filter(|(_, t)| self.topics.contains_key(&t.name))
            .filter_map(|(id, t)| {
                // A topic new to the image had no overrides before (its partitions were just
                // created with its configs).
                let before = old.and_then(|o| o.topics().get(id));
                let before = before.map_or(&none, |o| &o.configs);
                let keys: BTreeSet<String> = before
                    .keys()
                    .chain(t.configs.keys())
                    .filter(|k| before.get(*k) != t.configs.get(*k))
                    .cloned()
                    .collect();
                assert_eq!(keys.is_empty(), before == &t.configs);
                (!keys.is_empty()).then(|| (t.name.clone(), t.configs.clone(), keys))
            })
            .collect();
        let first = old.is_none();
        for (name, configs, keys) in changed {
            let settings = match self.settings_of(&configs) {
                Ok(s) => s,
                Err(e) => {
                    self.log(
                        LogLevel::Warn,
                        format!("topic {name}: its new configs do not apply here ({e})"),
                    );
                    continue;
                }
            };
            let differ = settings != self.topics[&name].settings;
            // (The first image after a start names every override: news only if it differs.)
            if first && !differ {
                continue;
            }
            self.log(
                LogLevel::Info,
                format!("topic {name}: configs {keys:?} changed in the metadata log"),
            );
            self.set_topic_settings(&name, settings, None);
            assert_eq!(
                self.settings_of(&configs).as_ref(),
                Ok(&self.topics[&name].settings)
            );
        }
    }

    /// DescribeConfigs of topic `name`: each topic config gregor knows, with its value and
    /// whether it is the default (`(key, value, is_default)`), sorted by key; `None` for a topic
    /// this broker does not know. In a cluster the values are the image's ConfigRecords over
    /// this broker's defaults, so every broker answers alike, hosting the topic or not, and a
    /// key is an override (DYNAMIC_TOPIC_CONFIG) exactly when the image sets it; the
    /// replication configs `min.insync.replicas` and `unclean.leader.election.enable` come
    /// from the image too. Standalone, a value is the default when it equals the broker's.
    pub(super) fn topic_config_entries(&self, name: &str) -> Option<Vec<(String, String, bool)>> {
        use crate::cluster::replication::{MIN_INSYNC_REPLICAS, UNCLEAN_LEADER_ELECTION_ENABLE};
        let d = self.default_settings();
        let overrides = if self.config.kraft {
            let image = self.metadata_image()?;
            Some(image.topics()[&image.topic_id(name)?].configs.clone())
        } else {
            None
        };
        let s = match &overrides {
            Some(o) => self.settings_of(o).unwrap_or(d.clone()),
            None => self.topics.get(name)?.settings.clone(),
        };
        let mut entries: Vec<(String, String, bool)> = settings_entries(&s)
            .into_iter()
            .zip(settings_entries(&d))
            .map(|((k, v), (_, dv))| {
                let default = match &overrides {
                    Some(o) => !o.contains_key(&k),
                    None => v == dv,
                };
                (k, v, default)
            })
            .collect();
        let replication = [
            (MIN_INSYNC_REPLICAS, "1"),
            (UNCLEAN_LEADER_ELECTION_ENABLE, "false"),
        ];
        for (k, default) in replication {
            match overrides.as_ref().map(|o| o.get(k)) {
                Some(Some(v)) => entries.push((k.into(), v.clone(), false)),
                Some(None) => entries.push((k.into(), default.into(), true)),
                // Standalone: one replica, so one in-sync replica and nothing to elect.
                None if k == MIN_INSYNC_REPLICAS => entries.push((k.into(), default.into(), true)),
                None => {}
            }
        }
        entries.sort();
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "each key once");
        // An override the image holds is never shown as the default.
        assert!(overrides.iter().flatten().all(|(k, _)| {
            let shown = entries.iter().find(|e| &e.0 == k);
            shown.is_none_or(|e| !e.2)
        }));
        Some(entries)
    }

    /// Put error `code` (0: none) and `message` on resource `slot` of a config alter's
    /// response.
    pub(in crate::broker) fn set_alter_error(
        response: &mut ResponseKind,
        slot: usize,
        code: i16,
        message: Option<String>,
    ) {
        assert!(
            code != 0 || message.is_none(),
            "a success carries no message"
        );
        let message = message.map(sb);
        match response {
            ResponseKind::IncrementalAlterConfigs(r) => {
                r.responses[slot].error_code = code;
                r.responses[slot].error_message = message;
            }
            ResponseKind::AlterConfigs(r) => {
                r.responses[slot].error_code = code;
                r.responses[slot].error_message = message;
            }
            other => unreachable!("{other:?} is not a config alter's response"),
        }
    }
}

/// The configs a topic's settings stand for, as DescribeConfigs shows them.
pub(in crate::broker) fn settings_entries(s: &TopicSettings) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s
        .compaction
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    out.extend([
        ("compression.type".into(), s.compression.name().into()),
        (
            "index.interval.bytes".into(),
            s.index_interval_bytes.to_string(),
        ),
        ("max.message.bytes".into(), s.max_message_bytes.to_string()),
        (
            "message.timestamp.type".into(),
            s.timestamp_type.name().into(),
        ),
        ("retention.bytes".into(), s.retention_bytes.to_string()),
        ("retention.ms".into(), s.retention_ms.to_string()),
        ("segment.bytes".into(), s.segment_bytes.to_string()),
        ("segment.ms".into(), s.segment_ms.to_string()),
    ]);
    out
}

/// The checks of a resource that come before its topic: named once, and a topic.
fn check_resource(a: &Alter, duplicate: bool) -> Result<(), ClientError> {
    if duplicate {
        return Err(ClientError::new(
            ErrorCode::INVALID_REQUEST,
            format!("resource {} appears twice in the request", a.name),
        ));
    }
    match a.resource_type {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err(ClientError::new(
            ErrorCode::INVALID_REQUEST,
            "broker configs are static in gregor: set them on the command line and restart \
             the broker",
        )),
        other => Err(ClientError::new(
            ErrorCode::INVALID_REQUEST,
            format!("config resource type {other} is not supported (2 = topic)"),
        )),
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
