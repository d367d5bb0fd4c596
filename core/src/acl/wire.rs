//! ACLs in Kafka's messages: CreateAcls (API 30), DescribeAcls (29) and DeleteAcls (31) carry
//! them as wire codes (`resource_type` 2 = topic, `operation` 4 = write, ...). These turn the
//! codes into the model and back; a code that names nothing is an error saying which field,
//! which the APIs answer with INVALID_REQUEST.

use super::*;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::DeleteAclsMatchingAcl;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::DescribeAclsRequest;
use kafka_protocol::protocol::StrBytes;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The ACL a CreateAcls creation names, or why it names none.
pub fn binding_of_creation(c: &AclCreation) -> Result<AclBinding, String> {
    let bad = |what: &str, code: i8| format!("{what} {code} is not one an ACL can name");
    let binding = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| bad("resource type", c.resource_type))?,
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| bad("pattern type", c.resource_pattern_type))?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| bad("operation", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| bad("permission", c.permission_type))?,
    };
    binding.validate()?;
    assert_eq!(binding.operation as i8, c.operation);
    Ok(binding)
}

/// The CreateAcls creation of `b` (what a broker forwards to the controller, and a client
/// sends).
pub fn creation_of(b: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(b.resource_type as i8)
        .with_resource_name(sb(&b.resource_name))
        .with_resource_pattern_type(b.pattern_type as i8)
        .with_principal(sb(&b.principal))
        .with_host(sb(&b.host))
        .with_operation(b.operation as i8)
        .with_permission_type(b.permission as i8)
}

/// The filter of a DeleteAcls entry.
pub fn filter_of_delete(f: &DeleteAclsFilter) -> Result<AclFilter, String> {
    AclFilter::from_wire(
        f.resource_type_filter,
        f.resource_name_filter.as_deref(),
        f.pattern_type_filter,
        f.principal_filter.as_deref(),
        f.host_filter.as_deref(),
        f.operation,
        f.permission_type,
    )
}

/// The filter of a DescribeAcls request.
pub fn filter_of_describe(r: &DescribeAclsRequest) -> Result<AclFilter, String> {
    AclFilter::from_wire(
        r.resource_type_filter,
        r.resource_name_filter.as_deref(),
        r.pattern_type_filter,
        r.principal_filter.as_deref(),
        r.host_filter.as_deref(),
        r.operation,
        r.permission_type,
    )
}

/// The pattern-type code of a filter (ANY 1, MATCH 2, or the type's own).
fn pattern_code(p: PatternFilter) -> i8 {
    match p {
        PatternFilter::Any => ANY,
        PatternFilter::Match => MATCH,
        PatternFilter::Exactly(t) => t as i8,
    }
}

/// The DeleteAcls entry of `f` (a broker forwarding it, a client sending it).
pub fn delete_filter_of(f: &AclFilter) -> DeleteAclsFilter {
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(f.resource_type.map_or(ANY, |t| t as i8))
        .with_resource_name_filter(f.resource_name.as_deref().map(sb))
        .with_pattern_type_filter(pattern_code(f.pattern))
        .with_principal_filter(f.principal.as_deref().map(sb))
        .with_host_filter(f.host.as_deref().map(sb))
        .with_operation(f.operation.map_or(ANY, |o| o as i8))
        .with_permission_type(f.permission.map_or(ANY, |p| p as i8));
    assert_eq!(
        filter_of_delete(&filter).as_ref(),
        Ok(f),
        "a filter round-trips"
    );
    filter
}

/// The DescribeAcls request of `f`.
pub fn describe_request_of(f: &AclFilter) -> DescribeAclsRequest {
    let d = delete_filter_of(f);
    DescribeAclsRequest::default()
        .with_resource_type_filter(d.resource_type_filter)
        .with_resource_name_filter(d.resource_name_filter)
        .with_pattern_type_filter(d.pattern_type_filter)
        .with_principal_filter(d.principal_filter)
        .with_host_filter(d.host_filter)
        .with_operation(d.operation)
        .with_permission_type(d.permission_type)
}

/// A removed ACL as DeleteAcls reports it.
pub fn matching_acl_of(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type as i8)
        .with_resource_name(sb(&b.resource_name))
        .with_pattern_type(b.pattern_type as i8)
        .with_principal(sb(&b.principal))
        .with_host(sb(&b.host))
        .with_operation(b.operation as i8)
        .with_permission_type(b.permission as i8)
}

/// The ACL a DeleteAcls matching entry reports, or why it is not one.
pub fn binding_of_matching(m: &DeleteAclsMatchingAcl) -> Result<AclBinding, String> {
    binding_of_creation(
        &AclCreation::default()
            .with_resource_type(m.resource_type)
            .with_resource_name(m.resource_name.clone())
            .with_resource_pattern_type(m.pattern_type)
            .with_principal(m.principal.clone())
            .with_host(m.host.clone())
            .with_operation(m.operation)
            .with_permission_type(m.permission_type),
    )
}

/// DescribeAcls' answer: the ACLs grouped by resource pattern, in order.
pub fn describe_resources<'a>(
    bindings: impl IntoIterator<Item = &'a AclBinding>,
) -> Vec<DescribeAclsResource> {
    let mut grouped: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    let mut n = 0;
    for b in bindings {
        n += 1;
        let key = (b.resource_type, b.resource_name.clone(), b.pattern_type);
        grouped.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(sb(&b.principal))
                .with_host(sb(&b.host))
                .with_operation(b.operation as i8)
                .with_permission_type(b.permission as i8),
        );
    }
    let out: Vec<DescribeAclsResource> = grouped
        .into_iter()
        .map(|((t, name, p), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(t as i8)
                .with_resource_name(sb(&name))
                .with_pattern_type(p as i8)
                .with_acls(acls)
        })
        .collect();
    assert_eq!(out.iter().map(|r| r.acls.len()).sum::<usize>(), n);
    out
}

/// The ACLs a DescribeAcls answer lists (the client side), skipping none: an entry that does
/// not read as an ACL is an error.
pub fn bindings_of_describe(resources: &[DescribeAclsResource]) -> Result<Vec<AclBinding>, String> {
    let mut out = Vec::new();
    for r in resources {
        for a in &r.acls {
            out.push(binding_of_creation(
                &AclCreation::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_resource_pattern_type(r.pattern_type)
                    .with_principal(a.principal.clone())
                    .with_host(a.host.clone())
                    .with_operation(a.operation)
                    .with_permission_type(a.permission_type),
            )?);
        }
    }
    Ok(out)
}
