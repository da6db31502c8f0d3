//! The operators' audit log (`GET /api/v1/admin/audit`): who changed a sale, when, and what
//! changed, as `{"field": [before, after]}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{EventId, UserId};

/// What an operator did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AuditAction {
    /// An event was created (every field set, as `[null, value]`).
    #[serde(rename = "event.create")]
    EventCreate,
    /// An event's fields changed in the api.
    #[serde(rename = "event.update")]
    EventUpdate,
    /// A queue's settings changed in the gateway (rate, active buyers, window, pause, bot
    /// check).
    #[serde(rename = "queue.update")]
    QueueUpdate,
    /// An account was made an admin.
    #[serde(rename = "admin.grant")]
    AdminGrant,
}

impl AuditAction {
    /// The name on the wire and in the database.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EventCreate => "event.create",
            Self::EventUpdate => "event.update",
            Self::QueueUpdate => "queue.update",
            Self::AdminGrant => "admin.grant",
        }
    }

    /// The action named `text`, if any.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::EventCreate,
            Self::EventUpdate,
            Self::QueueUpdate,
            Self::AdminGrant,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// `{"field": [before, after]}`, fields in name order; queue fields dotted
/// (`queue.max_active`).
pub type Changes = BTreeMap<String, [Value; 2]>;

/// What changed between two descriptions of the same thing (each a list of fields and
/// values; a field missing from `before` was `null`). Unchanged fields are left out.
#[must_use]
pub fn changes(before: &[(&str, Value)], after: &[(&str, Value)]) -> Changes {
    after
        .iter()
        .filter_map(|(field, now)| {
            let was = before
                .iter()
                .find(|(f, _)| f == field)
                .map_or(Value::Null, |(_, v)| v.clone());
            (was != *now).then(|| ((*field).to_owned(), [was, now.clone()]))
        })
        .collect()
}

/// One record of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Increasing in the order records were written; `before={id}` pages further back.
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The operator; `null` for the command line.
    pub actor: Option<UserId>,
    pub actor_email: Option<String>,
    pub action: AuditAction,
    pub event_id: Option<EventId>,
    /// `{"field": [before, after]}`.
    #[schema(value_type = Object)]
    pub changes: Changes,
}

/// How many records one page of the log holds (`limit`).
pub const LIMIT: std::ops::RangeInclusive<u32> = 1..=1000;

/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_changed_is_recorded_as_before_and_after() {
        let before = [("name", json!("A")), ("queue.max_active", json!(10))];
        let after = [("name", json!("A")), ("queue.max_active", json!(20))];
        let diff = changes(&before, &after);
        assert_eq!(
            serde_json::to_value(&diff).expect("json"),
            json!({"queue.max_active": [10, 20]})
        );
        assert!(changes(&after, &after).is_empty(), "no change, no record");
        // A creation: everything from null.
        let created = changes(&[], &after);
        assert_eq!(created["name"], [Value::Null, json!("A")]);
        assert_eq!(created.len(), 2);
    }

    #[test]
    fn actions_have_one_name_each() {
        for action in [
            AuditAction::EventCreate,
            AuditAction::EventUpdate,
            AuditAction::QueueUpdate,
            AuditAction::AdminGrant,
        ] {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            assert_eq!(
                serde_json::to_value(action).expect("json"),
                json!(action.as_str())
            );
        }
        assert_eq!(AuditAction::parse("event.delete"), None);
    }
}
