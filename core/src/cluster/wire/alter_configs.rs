//! IncrementalAlterConfigs (API 44, KIP-339) on the controller listener: a broker forwards a
//! topic config change to the active controller in Kafka's own encoding, one
//! [`Request::AlterConfigs`] per resource, and the answer is assembled back in the request's
//! order. Only topic resources (type 2) reach the controller; SET (0) and DELETE (1) are the
//! operations (gregor's topic configs are single values: APPEND and SUBTRACT are
//! INVALID_CONFIG). Anything else is refused per resource, as Kafka refuses it.

use super::*;
use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use incremental_alter_configs_response::AlterConfigsResourceResponse;

/// `ConfigResource.Type.TOPIC`.
const TOPIC: i8 = 2;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// INVALID_CONFIG.
const INVALID_CONFIG: i16 = 40;

/// One item per resource, in the request's order; the topic name rides in [`Item::topic`].
pub(super) fn alter_configs_items(r: &IncrementalAlterConfigsRequest) -> Vec<Item> {
    let mut seen = BTreeSet::new();
    let items: Vec<Item> = r
        .resources
        .iter()
        .map(|res| {
            let (name, dup) = name_of(&mut seen, &res.resource_name);
            let request = if let Some(d) = dup {
                Err(d)
            } else if res.resource_type != TOPIC {
                Err(refuse(format!(
                    "config resource type {} is not the controller's (2 = topic)",
                    res.resource_type
                )))
            } else if r.validate_only {
                Err(refuse("validate_only is not supported by the controller"))
            } else {
                changes_of(&res.configs).map(|changes| Request::AlterConfigs {
                    name: name.clone(),
                    changes,
                })
            };
            Item {
                topic: Some(name),
                partitions: -1,
                replication_factor: -1,
                request,
            }
        })
        .collect();
    assert_eq!(items.len(), r.resources.len(), "one item per resource");
    assert!(items.iter().all(|i| match &i.request {
        Ok(Request::AlterConfigs { name, .. }) => i.topic.as_ref() == Some(name),
        Ok(_) => false,
        Err(refusal) => refusal.code != 0,
    }));
    items
}

/// A resource's operations as set (`Some`) and delete (`None`) changes.
fn changes_of(configs: &[AlterableConfig]) -> Result<Vec<(String, Option<String>)>, Refusal> {
    let changes: Result<Vec<(String, Option<String>)>, Refusal> = configs
        .iter()
        .map(|c| match (c.config_operation, &c.value) {
            (OP_SET, Some(v)) => Ok((c.name.to_string(), Some(v.to_string()))),
            (OP_DELETE, _) => Ok((c.name.to_string(), None)),
            (OP_SET, None) => Err(Refusal {
                code: INVALID_CONFIG,
                message: format!("SET of {} carries no value", c.name),
            }),
            (op, _) => Err(Refusal {
                code: INVALID_CONFIG,
                message: format!("operation {op} on {}: only SET and DELETE apply", c.name),
            }),
        })
        .collect();
    assert!(changes.as_ref().map_or(true, |c| c.len() == configs.len()));
    changes
}

/// The response: each resource's error code and message, in the request's order.
pub(super) fn encode_alter_configs_response(
    items: &[Item],
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    let responses: Vec<AlterConfigsResourceResponse> = items
        .iter()
        .zip(answers)
        .map(|(i, a)| {
            if let Ok(r) = a {
                assert_eq!(*r, Reply::AlterConfigs, "AlterConfigs answered");
            }
            let (code, message) = code_of(a);
            AlterConfigsResourceResponse::default()
                .with_resource_type(TOPIC)
                .with_resource_name(sb(i.topic.as_deref().unwrap_or("")))
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    assert_eq!(responses.len(), items.len(), "one result per resource");
    assert!(responses
        .iter()
        .zip(answers)
        .all(|(r, a)| (r.error_code == 0) == a.is_ok()));
    let body = IncrementalAlterConfigsResponse::default().with_responses(responses);
    frame(
        ApiKey::IncrementalAlterConfigs,
        version,
        correlation_id,
        &body,
    )
}

/// The request a broker sends for one topic's changes.
pub(super) fn alter_configs_request(
    name: &str,
    changes: &[(String, Option<String>)],
) -> IncrementalAlterConfigsRequest {
    let configs: Vec<AlterableConfig> = changes
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(sb(k))
                .with_config_operation(if v.is_some() { OP_SET } else { OP_DELETE })
                .with_value(v.as_deref().map(sb))
        })
        .collect();
    assert_eq!(configs.len(), changes.len(), "every change sent");
    let resource = AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(sb(name))
        .with_configs(configs);
    assert_eq!(resource.resource_name.as_str(), name);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

/// The answer in a response to [`alter_configs_request`] (one resource).
pub(super) fn decode_alter_configs_answer(
    r: IncrementalAlterConfigsResponse,
) -> Result<Answer, ControllerWireError> {
    let key = ApiKey::IncrementalAlterConfigs;
    if r.responses.len() != 1 {
        let n = r.responses.len();
        return Err(malformed(key, format!("{n} results for one topic")));
    }
    let t = r.responses.into_iter().next().expect("one");
    Ok(if t.error_code == 0 {
        Ok(Reply::AlterConfigs)
    } else {
        Err(Refusal {
            code: t.error_code,
            message: t.error_message.map(|m| m.to_string()).unwrap_or_default(),
        })
    })
}
