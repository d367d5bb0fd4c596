//! The records the coordinator keeps in `__consumer_offsets`, and their codec.

use super::*;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Format version of the keys and values gregor writes into the offsets log.
pub(super) const RECORD_VERSION: u8 = 1;
/// Longest offset metadata string accepted (Kafka `offset.metadata.max.bytes`).
pub(super) const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// How often expired offsets are looked for.
pub(super) const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- records

/// The key of a record in `__consumer_offsets`. A record with the same key replaces the previous
/// one; a record with no value (a tombstone) deletes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// Start of a snapshot of one offsets partition: forget everything it held before.
    Reset {
        partition: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (its subscription).
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberValue>,
    /// When the group last changed state (for offset expiry of empty groups).
    pub state_ms: i64,
}

/// One fact in the offsets log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// Written only at the head of a snapshot (see [`compact`]); replayed only at load.
    Reset { partition: i32 },
}

impl GroupRecord {
    pub(super) fn key(&self) -> RecordKey {
        match self {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                ..
            } => RecordKey::Offset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            },
            GroupRecord::Group { group, .. } => RecordKey::Group {
                group: group.clone(),
            },
            GroupRecord::Reset { partition } => RecordKey::Reset {
                partition: *partition,
            },
        }
    }
    pub(super) fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. } | GroupRecord::Group { group, .. } => group,
            GroupRecord::Reset { .. } => "",
        }
    }

    pub(super) fn encode_kv(&self) -> (Bytes, Option<Bytes>) {
        let versioned = |payload: Vec<u8>| {
            let mut b = Vec::with_capacity(payload.len() + 1);
            b.push(RECORD_VERSION);
            b.extend_from_slice(&payload);
            Bytes::from(b)
        };
        let key = versioned(postcard::to_allocvec(&self.key()).expect("encodes"));
        assert!(
            key.len() > 1 && key[0] == RECORD_VERSION,
            "a key carries its version"
        );
        let value = match self {
            GroupRecord::Offset { value, .. } => value
                .as_ref()
                .map(|v| versioned(postcard::to_allocvec(v).expect("encodes"))),
            GroupRecord::Group { value, .. } => value
                .as_ref()
                .map(|v| versioned(postcard::to_allocvec(v).expect("encodes"))),
            GroupRecord::Reset { .. } => None,
        };
        assert!(value.as_ref().is_none_or(|v| v[0] == RECORD_VERSION));
        (key, value)
    }

    pub(super) fn decode_kv(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, String> {
        let unversion = |b: &[u8]| -> Result<Vec<u8>, String> {
            match b.split_first() {
                Some((&RECORD_VERSION, rest)) => Ok(rest.to_vec()),
                Some((v, _)) => Err(format!("unsupported record version {v}")),
                None => Err("empty record".into()),
            }
        };
        let k: RecordKey = postcard::from_bytes(&unversion(key)?).map_err(|e| e.to_string())?;
        Ok(match k {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                let value = match value {
                    None => None,
                    Some(v) => {
                        Some(postcard::from_bytes(&unversion(v)?).map_err(|e| e.to_string())?)
                    }
                };
                GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                }
            }
            RecordKey::Group { group } => {
                let value = match value {
                    None => None,
                    Some(v) => {
                        Some(postcard::from_bytes(&unversion(v)?).map_err(|e| e.to_string())?)
                    }
                };
                GroupRecord::Group { group, value }
            }
            RecordKey::Reset { partition } => GroupRecord::Reset { partition },
        })
    }
}

/// Encode records as one Kafka v2 record batch, the format of every log in gregor.
pub fn encode_batch(records: &[GroupRecord], timestamp_ms: i64) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode_kv();
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset − sequence is constant.
                sequence: i as i32 - 1,
                timestamp: timestamp_ms,
                key: Some(key),
                value,
                headers: Default::default(),
                delete_horizon: false,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("uncompressed v2 batches always encode");
    buf.freeze()
}

/// Decode every record of a run of stored batches.
pub fn decode_batches(mut bytes: Bytes) -> Result<Vec<GroupRecord>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| e.to_string())?;
        for r in set.records {
            let key = r.key.ok_or("record without key")?;
            out.push(GroupRecord::decode_kv(&key, r.value.as_deref())?);
        }
    }
    Ok(out)
}
