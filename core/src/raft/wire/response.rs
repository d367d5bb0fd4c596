//! Reading the responses to the quorum's requests, with the [`Pending`] kept for each.

use super::*;

/// The correlation id of a response frame (without its length prefix), to find its
/// [`Pending`].
pub fn response_correlation_id(frame: &[u8]) -> Result<i32, WireError> {
    if frame.len() < 4 {
        return Err(WireError::Frame(format!(
            "{} bytes, shorter than a header",
            frame.len()
        )));
    }
    Ok(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
}

/// Decode a response frame (without its length prefix) to the request kept as `pending`. An
/// acknowledgement of BeginQuorumEpoch or EndQuorumEpoch decodes to `None`: Raft needs nothing
/// from it.
pub fn decode_response(frame: Bytes, pending: &Pending) -> Result<Option<Message>, WireError> {
    let message = decode_response_body(frame, pending)?;
    if let Some(m) = &message {
        assert_eq!(
            api_of(m),
            pending.api_key,
            "the answer is of the request's API"
        );
        assert!(matches!(
            m,
            Message::VoteResponse { .. }
                | Message::FetchResponse { .. }
                | Message::FetchSnapshotResponse { .. }
        ));
    }
    Ok(message)
}

fn decode_response_body(frame: Bytes, pending: &Pending) -> Result<Option<Message>, WireError> {
    let mut buf = frame;
    let (key, version) = (pending.api_key, pending.version);
    ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| WireError::Frame(format!("response header: {e}")))?;
    match key {
        ApiKey::Vote => {
            let r = VoteResponse::decode(&mut buf, version).map_err(|e| malformed("Vote", e))?;
            top_error("Vote", r.error_code)?;
            let p = only(
                "Vote",
                r.topics.into_iter().map(|t| (t.topic_name, t.partitions)),
            )?;
            top_error("Vote", p.error_code)?;
            Ok(Some(Message::VoteResponse {
                epoch: epoch("Vote", p.leader_epoch)?,
                granted: p.vote_granted,
            }))
        }
        ApiKey::BeginQuorumEpoch => {
            let r = BeginQuorumEpochResponse::decode(&mut buf, version)
                .map_err(|e| malformed("BeginQuorumEpoch", e))?;
            top_error("BeginQuorumEpoch", r.error_code)?;
            Ok(None)
        }
        ApiKey::EndQuorumEpoch => {
            let r = EndQuorumEpochResponse::decode(&mut buf, version)
                .map_err(|e| malformed("EndQuorumEpoch", e))?;
            top_error("EndQuorumEpoch", r.error_code)?;
            Ok(None)
        }
        ApiKey::Fetch => decode_fetch_response(&mut buf, pending).map(Some),
        ApiKey::FetchSnapshot => decode_fetch_snapshot_response(&mut buf, pending).map(Some),
        other => Err(WireError::Frame(format!("{other:?} is not a quorum RPC"))),
    }
}

pub(super) fn top_error(api: &'static str, code: i16) -> Result<(), WireError> {
    if code != ERROR_NONE {
        return Err(malformed(api, format!("error code {code}")));
    }
    Ok(())
}

fn decode_fetch_response(buf: &mut Bytes, pending: &Pending) -> Result<Message, WireError> {
    let r = FetchResponse::decode(buf, pending.version).map_err(|e| malformed("Fetch", e))?;
    top_error("Fetch", r.error_code)?;
    let mut topics = r.responses.into_iter();
    let t = topics
        .next()
        .ok_or_else(|| malformed("Fetch", "no topic in response"))?;
    if topics.next().is_some() || t.topic_id != METADATA_TOPIC_ID {
        return Err(malformed("Fetch", "a response for another topic"));
    }
    let mut parts = t.partitions.into_iter();
    let p = parts
        .next()
        .ok_or_else(|| malformed("Fetch", "no partition in response"))?;
    if parts.next().is_some() || p.partition_index != 0 {
        return Err(malformed("Fetch", "a response for another partition"));
    }
    let diverging = p.diverging_epoch != fetch_response::EpochEndOffset::default();
    let snapshot = p.snapshot_id != fetch_response::SnapshotId::default();
    let records = p.records.as_ref().is_some_and(|r| !r.is_empty());
    let result = match p.error_code {
        NOT_LEADER_OR_FOLLOWER | FENCED_LEADER_EPOCH | UNKNOWN_LEADER_EPOCH => {
            FetchResult::NotLeader
        }
        ERROR_NONE => match (diverging, snapshot, records) {
            (true, false, false) => FetchResult::Diverging {
                epoch: epoch("Fetch", p.diverging_epoch.epoch)?,
                end_offset: offset("Fetch", p.diverging_epoch.end_offset)?,
            },
            (false, true, false) => FetchResult::Snapshot {
                snapshot_id: SnapshotId {
                    end_offset: offset("Fetch", p.snapshot_id.end_offset)?,
                    epoch: epoch("Fetch", p.snapshot_id.epoch)?,
                },
            },
            (false, false, _) => FetchResult::Entries {
                base_offset: pending.fetch_offset,
                entries: match &p.records {
                    Some(r) if !r.is_empty() => decode_entries(r, pending.fetch_offset)?,
                    _ => Vec::new(),
                },
            },
            _ => {
                return Err(malformed(
                    "Fetch",
                    "more than one of records, diverging epoch and snapshot id",
                ))
            }
        },
        code => return Err(malformed("Fetch", format!("error code {code}"))),
    };
    if let FetchResult::Entries { base_offset, .. } = &result {
        assert_eq!(
            *base_offset, pending.fetch_offset,
            "entries start at the fetch offset"
        );
    }
    Ok(Message::FetchResponse {
        epoch: epoch("Fetch", p.current_leader.leader_epoch)?,
        fetch_id: pending.fetch_id,
        leader: leader_of(p.current_leader.leader_id.0),
        result,
        high_watermark: offset("Fetch", p.high_watermark)?,
    })
}

fn decode_fetch_snapshot_response(
    buf: &mut Bytes,
    pending: &Pending,
) -> Result<Message, WireError> {
    let r = FetchSnapshotResponse::decode(buf, pending.version)
        .map_err(|e| malformed("FetchSnapshot", e))?;
    top_error("FetchSnapshot", r.error_code)?;
    let p = only(
        "FetchSnapshot",
        r.topics.into_iter().map(|t| (t.name, t.partitions)),
    )?;
    let result = match p.error_code {
        ERROR_NONE => {
            let size = u64::try_from(p.size)
                .map_err(|_| malformed("FetchSnapshot", format!("size {}", p.size)))?;
            let position = u64::try_from(p.position)
                .map_err(|_| malformed("FetchSnapshot", format!("position {}", p.position)))?;
            let end = position.checked_add(p.unaligned_records.len() as u64);
            if end.is_none_or(|end| end > size) {
                return Err(malformed("FetchSnapshot", "chunk past the snapshot's size"));
            }
            assert!(position + p.unaligned_records.len() as u64 <= size);
            SnapshotResult::Chunk {
                snapshot_id: SnapshotId {
                    end_offset: offset("FetchSnapshot", p.snapshot_id.end_offset)?,
                    epoch: epoch("FetchSnapshot", p.snapshot_id.epoch)?,
                },
                size,
                position,
                bytes: p.unaligned_records,
            }
        }
        SNAPSHOT_NOT_FOUND | POSITION_OUT_OF_RANGE => SnapshotResult::NotFound,
        NOT_LEADER_OR_FOLLOWER | FENCED_LEADER_EPOCH | UNKNOWN_LEADER_EPOCH => {
            SnapshotResult::NotLeader
        }
        code => return Err(malformed("FetchSnapshot", format!("error code {code}"))),
    };
    Ok(Message::FetchSnapshotResponse {
        epoch: epoch("FetchSnapshot", p.current_leader.leader_epoch)?,
        fetch_id: pending.fetch_id,
        leader: leader_of(p.current_leader.leader_id.0),
        result,
    })
}
