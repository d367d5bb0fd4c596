//! The active controller's side of ACLs (Kafka's `AclControlManager`, KIP-11 in KRaft): a
//! CreateAcls becomes an AccessControlEntry record with a fresh id, a DeleteAcls a
//! RemoveAccessControlEntry record for every ACL its filter matches. Deciding reads the
//! working image only; the records change it once they commit, on every node alike.

use super::{ControllerError, MetadataImage, MetadataRecord};
use crate::acl::{AclBinding, AclFilter, AclId};

/// The records that create `binding`: none when an equal ACL is already in force (creating
/// it again is a success that changes nothing, as in Kafka), else one AccessControlEntry
/// under an id `fresh_id` draws (drawn again while taken). A binding that is not a valid ACL
/// is INVALID_REQUEST with the reason.
pub fn create_acl(
    working: &MetadataImage,
    binding: &AclBinding,
    mut fresh_id: impl FnMut() -> AclId,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    binding
        .validate()
        .map_err(ControllerError::InvalidRequest)?;
    if working.acls().find(binding).is_some() {
        return Ok(Vec::new());
    }
    let id = loop {
        let id = fresh_id();
        if working.acls().check_add(id, binding).is_ok() {
            break id;
        }
    };
    let record = MetadataRecord::AccessControlEntry {
        id,
        binding: binding.clone(),
    };
    assert!(working.acls().check_remove(id).is_err(), "a new id");
    Ok(vec![record])
}

/// The ACLs `filter` matches, and the records that remove them (none matched: no records, a
/// success).
pub fn delete_acls(
    working: &MetadataImage,
    filter: &AclFilter,
) -> (Vec<AclBinding>, Vec<MetadataRecord>) {
    let (gone, records): (Vec<AclBinding>, Vec<MetadataRecord>) = working
        .acls()
        .matching(filter)
        .map(|(id, b)| {
            (
                b.clone(),
                MetadataRecord::RemoveAccessControlEntry { id: *id },
            )
        })
        .unzip();
    assert_eq!(gone.len(), records.len(), "one removal per ACL matched");
    assert!(gone.iter().all(|b| filter.matches(b)));
    (gone, records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::*;

    fn alice_reads(topic: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: topic.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: WILDCARD.into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    /// Created ACLs replay into the image, a repeat writes nothing, a snapshot keeps them,
    /// and a delete by filter removes exactly what it matched.
    #[test]
    fn acls_travel_the_metadata_log_into_the_image() {
        let mut image = MetadataImage::new();
        let mut next = 0u8;
        let mut ids = || {
            next += 1;
            [next / 2; 16] // every id drawn twice: the second draw of a taken one retries
        };
        let mut offset = 0;
        for topic in ["orders", "payments"] {
            let records = create_acl(&image, &alice_reads(topic), &mut ids).unwrap();
            assert_eq!(records.len(), 1);
            image.replay(offset, &records[0]).unwrap();
            offset += 1;
        }
        assert_eq!(image.acls().len(), 2);
        assert!(create_acl(&image, &alice_reads("orders"), &mut ids)
            .unwrap()
            .is_empty());
        let bad = AclBinding {
            principal: "alice".into(),
            ..alice_reads("x")
        };
        assert_eq!(
            create_acl(&image, &bad, &mut ids).unwrap_err().code(),
            42,
            "INVALID_REQUEST"
        );
        let snapshot = MetadataImage::load_snapshot(offset, &image.to_records()).unwrap();
        assert_eq!(snapshot.acls(), image.acls());
        let filter = AclFilter {
            resource_name: Some("orders".into()),
            ..AclFilter::any()
        };
        let (gone, records) = delete_acls(&image, &filter);
        assert_eq!(gone, [alice_reads("orders")]);
        for r in &records {
            image.replay(offset, r).unwrap();
            offset += 1;
        }
        assert_eq!(image.acls().len(), 1);
        // Replaying the removal again does not fit: the id is gone.
        assert!(image.replay(offset, &records[0]).is_err());
    }
}
