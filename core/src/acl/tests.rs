use super::*;
use proptest::prelude::*;

fn acl(
    principal: &str,
    op: Operation,
    permission: Permission,
    resource_type: ResourceType,
    pattern_type: PatternType,
    name: &str,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: WILDCARD.to_string(),
        operation: op,
        permission,
    }
}

fn allow_topic(principal: &str, op: Operation, name: &str) -> AclBinding {
    use PatternType::Literal;
    acl(
        principal,
        op,
        Permission::Allow,
        ResourceType::Topic,
        Literal,
        name,
    )
}

fn acls(bindings: &[AclBinding]) -> Acls {
    let mut a = Acls::default();
    for (i, b) in bindings.iter().enumerate() {
        a.add([i as u8 + 1; 16], b.clone());
    }
    assert_eq!(a.len(), bindings.len());
    a
}

fn caller(principal: &str) -> Caller {
    Caller {
        principal: principal.to_string(),
        host: "10.0.0.1".to_string(),
    }
}

fn on() -> Authorizer {
    Authorizer {
        super_users: vec!["User:admin".into()],
        allow_if_no_acl: false,
    }
}

#[test]
fn an_allow_grants_its_operation_and_the_ones_it_implies_only() {
    let a = acls(&[allow_topic("User:alice", Operation::Write, "orders")]);
    let (auth, alice) = (on(), caller("User:alice"));
    let orders = Resource::topic("orders");
    assert!(auth.authorize(&a, &alice, Operation::Write, &orders));
    assert!(auth.authorize(&a, &alice, Operation::Describe, &orders));
    assert!(!auth.authorize(&a, &alice, Operation::Read, &orders));
    assert!(!auth.authorize(&a, &alice, Operation::Write, &Resource::topic("other")));
    assert!(!auth.authorize(&a, &caller("User:bob"), Operation::Write, &orders));
    // AlterConfigs implies DescribeConfigs, not Alter; All implies everything.
    let a = acls(&[
        allow_topic("User:alice", Operation::AlterConfigs, "t"),
        allow_topic("User:bob", Operation::All, "t"),
    ]);
    let t = Resource::topic("t");
    assert!(auth.authorize(&a, &alice, Operation::DescribeConfigs, &t));
    assert!(!auth.authorize(&a, &alice, Operation::Alter, &t));
    assert!(!auth.authorize(&a, &alice, Operation::Describe, &t));
    for op in Operation::ALL.into_iter().filter(|o| *o != Operation::All) {
        assert!(auth.authorize(&a, &caller("User:bob"), op, &t), "{op:?}");
    }
}

#[test]
fn deny_wins_over_any_allow_but_implies_nothing() {
    let a = acls(&[
        allow_topic(ANY_USER, Operation::All, "orders"),
        acl(
            "User:bob",
            Operation::Read,
            Permission::Deny,
            ResourceType::Topic,
            PatternType::Prefixed,
            "ord",
        ),
    ]);
    let (auth, orders) = (on(), Resource::topic("orders"));
    assert!(auth.authorize(&a, &caller("User:alice"), Operation::Read, &orders));
    let d = auth.decide(&a, &caller("User:bob"), Operation::Read, &orders);
    assert!(matches!(d, Decision::Denied(ref b) if b.operation == Operation::Read));
    // Denying Read leaves Describe and Write to the allow.
    assert!(auth.authorize(&a, &caller("User:bob"), Operation::Describe, &orders));
    assert!(auth.authorize(&a, &caller("User:bob"), Operation::Write, &orders));
    // A deny of All refuses everything.
    let a = acls(&[
        allow_topic("User:bob", Operation::Read, "orders"),
        acl(
            "User:bob",
            Operation::All,
            Permission::Deny,
            ResourceType::Topic,
            PatternType::Literal,
            WILDCARD,
        ),
    ]);
    assert!(!auth.authorize(&a, &caller("User:bob"), Operation::Read, &orders));
}

#[test]
fn prefixed_and_wildcard_patterns_cover_their_names() {
    let prefixed = acl(
        "User:alice",
        Operation::Read,
        Permission::Allow,
        ResourceType::Topic,
        PatternType::Prefixed,
        "orders-",
    );
    assert!(prefixed.covers(&Resource::topic("orders-eu")));
    assert!(prefixed.covers(&Resource::topic("orders-")));
    assert!(!prefixed.covers(&Resource::topic("orders")));
    assert!(!prefixed.covers(&Resource::group("orders-eu")));
    let wildcard = allow_topic("User:alice", Operation::Read, WILDCARD);
    assert!(wildcard.covers(&Resource::topic("anything")));
    // A prefixed "*" is a prefix like any other: only names starting with '*'.
    let star_prefix = acl(
        "User:alice",
        Operation::Read,
        Permission::Allow,
        ResourceType::Topic,
        PatternType::Prefixed,
        "*",
    );
    assert!(!star_prefix.covers(&Resource::topic("orders")));
}

#[test]
fn hosts_and_wildcard_principals_narrow_or_widen_an_entry() {
    let mut from_one_host = allow_topic(ANY_USER, Operation::Read, "t");
    from_one_host.host = "10.0.0.1".into();
    let a = acls(&[from_one_host]);
    let t = Resource::topic("t");
    assert!(on().authorize(&a, &caller("User:carol"), Operation::Read, &t));
    let elsewhere = Caller {
        principal: "User:carol".into(),
        host: "10.0.0.2".into(),
    };
    assert!(!on().authorize(&a, &elsewhere, Operation::Read, &t));
}

#[test]
fn super_users_pass_and_no_acl_follows_the_setting() {
    let a = acls(&[acl(
        "User:admin",
        Operation::All,
        Permission::Deny,
        ResourceType::Cluster,
        PatternType::Literal,
        CLUSTER_NAME,
    )]);
    let cluster = Resource::cluster();
    // A super user passes even a deny naming it.
    assert!(on().authorize(&a, &caller("User:admin"), Operation::Alter, &cluster));
    let t = Resource::topic("nobody-named-me");
    let anon = caller(ANONYMOUS);
    assert_eq!(
        on().decide(&a, &anon, Operation::Read, &t),
        Decision::NoAclDenied
    );
    let open = Authorizer {
        allow_if_no_acl: true,
        ..on()
    };
    assert!(open.authorize(&a, &anon, Operation::Read, &t));
    // Once any ACL names the resource, the setting no longer matters.
    let a = acls(&[allow_topic("User:alice", Operation::Read, "t")]);
    assert!(!open.authorize(&a, &anon, Operation::Read, &Resource::topic("t")));
}

#[test]
fn authorize_any_finds_a_write_on_some_topic_unless_denied() {
    let auth = on();
    let alice = caller("User:alice");
    let write = |name: &str| allow_topic("User:alice", Operation::Write, name);
    let t = ResourceType::Topic;
    assert!(!auth.authorize_any(&Acls::default(), &alice, Operation::Write, t));
    assert!(auth.authorize_any(&acls(&[write("orders")]), &alice, Operation::Write, t));
    let mut deny = write("orders");
    deny.permission = Permission::Deny;
    assert!(!auth.authorize_any(&acls(&[write("orders"), deny]), &alice, Operation::Write, t));
    assert!(auth.authorize_any(&Acls::default(), &caller("User:admin"), Operation::Write, t));
}

#[test]
fn filters_match_as_kafka_reads_them() {
    let prefixed = acl(
        "User:alice",
        Operation::Read,
        Permission::Allow,
        ResourceType::Topic,
        PatternType::Prefixed,
        "orders-",
    );
    let literal = allow_topic("User:bob", Operation::Write, "orders-eu");
    let wildcard = allow_topic("User:carol", Operation::Read, WILDCARD);
    let a = acls(&[prefixed.clone(), literal.clone(), wildcard.clone()]);
    let count = |f: &AclFilter| a.matching(f).count();
    assert_eq!(count(&AclFilter::any()), 3);
    // MATCH on a name: every pattern that applies to it.
    let f = AclFilter::from_wire(2, Some("orders-eu"), 2, None, None, 1, 1).unwrap();
    assert_eq!(count(&f), 3);
    // LITERAL with a name: that literal only.
    let f = AclFilter::from_wire(2, Some("orders-eu"), 3, None, None, 1, 1).unwrap();
    assert_eq!(
        a.matching(&f).map(|(_, b)| b).collect::<Vec<_>>(),
        [&literal]
    );
    let f = AclFilter::from_wire(1, None, 1, Some("User:alice"), None, 3, 3).unwrap();
    assert_eq!(
        a.matching(&f).map(|(_, b)| b).collect::<Vec<_>>(),
        [&prefixed]
    );
    // UNKNOWN codes are refused, naming the field.
    assert!(AclFilter::from_wire(0, None, 1, None, None, 1, 1)
        .unwrap_err()
        .contains("resource type"));
    assert!(AclFilter::from_wire(1, None, 0, None, None, 1, 1).is_err());
    assert!(AclFilter::from_wire(1, None, 1, None, None, 0, 1).is_err());
    assert!(AclFilter::from_wire(1, None, 1, None, None, 1, 9).is_err());
}

#[test]
fn new_acls_are_validated_and_duplicates_refused() {
    let good = allow_topic("User:alice", Operation::Read, "t");
    assert!(good.validate().is_ok());
    for bad in [
        AclBinding {
            principal: "alice".into(),
            ..good.clone()
        },
        AclBinding {
            resource_name: String::new(),
            ..good.clone()
        },
        AclBinding {
            resource_type: ResourceType::Cluster,
            resource_name: "other".into(),
            ..good.clone()
        },
        AclBinding {
            host: String::new(),
            ..good.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad}");
    }
    let a = acls(std::slice::from_ref(&good));
    assert_eq!(
        a.check_add([9; 16], &good),
        Err(AclReplayError::Duplicate([9; 16]))
    );
    assert_eq!(
        a.check_remove([9; 16]),
        Err(AclReplayError::Unknown([9; 16]))
    );
    assert_eq!(
        Operation::parse("describe-configs"),
        Some(Operation::DescribeConfigs)
    );
    assert_eq!(
        Operation::parse("IDEMPOTENT_WRITE"),
        Some(Operation::IdempotentWrite)
    );
    assert_eq!(Operation::parse("fly"), None);
}

fn any_op() -> impl Strategy<Value = Operation> {
    proptest::sample::select(Operation::ALL.to_vec())
}

fn any_binding() -> impl Strategy<Value = AclBinding> {
    (
        proptest::sample::select(vec!["User:alice", "User:bob", ANY_USER]),
        any_op(),
        any::<bool>(),
        any::<bool>(),
        proptest::sample::select(vec!["t", "t-1", "t-", "*", "u"]),
    )
        .prop_map(|(p, op, allow, prefixed, name)| {
            acl(
                p,
                op,
                if allow {
                    Permission::Allow
                } else {
                    Permission::Deny
                },
                ResourceType::Topic,
                if prefixed {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                name,
            )
        })
}

proptest! {
    /// For any set of ACLs: an applying deny of the operation always refuses; adding an allow
    /// never takes a grant away, adding a deny never grants; a super user always passes.
    #[test]
    fn deny_wins_and_acls_are_monotone(
        bindings in proptest::collection::btree_set(any_binding(), 0..8),
        extra in any_binding(),
        op in any_op().prop_filter("one operation", |o| *o != Operation::All),
        who in proptest::sample::select(vec!["User:alice", "User:bob"]),
        name in proptest::sample::select(vec!["t", "t-1", "u", "v"]),
    ) {
        let bindings: Vec<AclBinding> = bindings.into_iter().collect();
        let a = acls(&bindings);
        let (auth, c, r) = (on(), caller(who), Resource::topic(name));
        let before = auth.authorize(&a, &c, op, &r);
        let denied = bindings.iter().any(|b| {
            b.permission == Permission::Deny
                && (b.operation == op || b.operation == Operation::All)
                && b.covers(&r)
                && b.applies_to(who, "10.0.0.1")
        });
        prop_assert!(!(denied && before), "an applying deny refuses");
        prop_assert!(auth.authorize(&a, &caller("User:admin"), op, &r));
        if bindings.contains(&extra) {
            return Ok(());
        }
        let mut more = bindings.clone();
        more.push(extra.clone());
        let after = auth.authorize(&acls(&more), &c, op, &r);
        match extra.permission {
            Permission::Allow => prop_assert!(!before || after, "an allow took a grant away"),
            Permission::Deny => prop_assert!(before || !after, "a deny granted"),
        }
    }
}
