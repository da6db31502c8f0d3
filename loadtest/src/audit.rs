//! The database audit a drill ends with (when given the api's database URL): the invariants
//! of one event's sale, read in one statement so they describe one consistent snapshot.
//!
//! Checked: stock never below zero and never oversold; stock accounting adds up (remaining +
//! tickets in live orders = inventory); no buyer over `max_per_user`; each buyer's holdings
//! row agrees with their live orders; every order has exactly one idempotency key and one
//! consumed gate token (no key made two orders, no token bought twice); every payment
//! approved after its order stopped waiting was asked to be refunded exactly once; and, when
//! asked, every order and every refund has reached a final state.

use std::io::Write as _;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// What the database says about one event's sale.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Ledger {
    pub inventory: i64,
    pub remaining: i64,
    /// Tickets in orders pending payment or paid.
    pub live_tickets: i64,
    pub orders: i64,
    pub pending: i64,
    pub paid: i64,
    pub failed: i64,
    pub expired: i64,
    /// Buyers holding more than `max_per_user`.
    pub over_limit_buyers: i64,
    /// Buyers whose holdings row disagrees with their live orders.
    pub holdings_mismatches: i64,
    /// Orders without exactly one idempotency key.
    pub orders_without_one_key: i64,
    /// Orders without exactly one consumed gate token.
    pub orders_without_one_token: i64,
    /// Payments approved after their order stopped waiting (money taken, no ticket).
    #[serde(default)]
    pub late_approvals: i64,
    /// Of those, the ones not asked to be refunded exactly once.
    #[serde(default)]
    pub late_approvals_without_one_refund: i64,
    /// Refunds waiting for the provider.
    #[serde(default)]
    pub refunds_pending: i64,
    #[serde(default)]
    pub refunded: i64,
    /// Refunds the provider refused.
    #[serde(default)]
    pub refunds_failed: i64,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// Whether orders still pending payment count as a violation (after the drill's deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    Allowed,
    Violation,
}

/// Reads the ledger of `event`; `None` when the event does not exist.
pub async fn ledger(pool: &PgPool, event: Uuid) -> Result<Option<Ledger>, sqlx::Error> {
    sqlx::query_as(
        "WITH o AS (SELECT * FROM orders WHERE event_id = $1), \
         live AS (SELECT user_id, sum(quantity) AS held FROM o \
                  WHERE status IN ('pending_payment', 'paid') GROUP BY user_id), \
         late AS (SELECT o.* FROM o JOIN payment_results r ON r.payment_id = o.payment_id \
                  WHERE r.outcome = 'approved' AND o.status <> 'paid'), \
         asked AS (SELECT (payload->>'payment_id')::uuid AS payment_id, count(*) AS n \
                   FROM outbox WHERE message_type = 'payment.refund_requested' \
                     AND (payload->>'payment_id')::uuid IN (SELECT payment_id FROM late) \
                   GROUP BY 1) \
         SELECT e.inventory::bigint AS inventory, s.remaining::bigint AS remaining, \
           (SELECT coalesce(sum(held), 0)::bigint FROM live) AS live_tickets, \
           (SELECT count(*) FROM o) AS orders, \
           (SELECT count(*) FROM o WHERE status = 'pending_payment') AS pending, \
           (SELECT count(*) FROM o WHERE status = 'paid') AS paid, \
           (SELECT count(*) FROM o WHERE status = 'payment_failed') AS failed, \
           (SELECT count(*) FROM o WHERE status = 'expired') AS expired, \
           (SELECT count(*) FROM live WHERE held > e.max_per_user) AS over_limit_buyers, \
           (SELECT count(*) FROM live FULL JOIN \
              (SELECT user_id, held FROM holdings WHERE event_id = $1 AND held > 0) h \
              USING (user_id) \
            WHERE live.held IS DISTINCT FROM h.held) AS holdings_mismatches, \
           (SELECT count(*) FROM o LEFT JOIN \
              (SELECT order_id, count(*) AS n FROM idempotency_keys \
               WHERE order_id IN (SELECT id FROM o) GROUP BY order_id) k ON k.order_id = o.id \
            WHERE k.n IS DISTINCT FROM 1) AS orders_without_one_key, \
           (SELECT count(*) FROM o LEFT JOIN \
              (SELECT order_id, count(*) AS n FROM consumed_gate_tokens \
               WHERE order_id IN (SELECT id FROM o) GROUP BY order_id) c ON c.order_id = o.id \
            WHERE c.n IS DISTINCT FROM 1) AS orders_without_one_token, \
           (SELECT count(*) FROM late) AS late_approvals, \
           (SELECT count(*) FROM late LEFT JOIN asked USING (payment_id) \
            WHERE late.refund_status IS NULL OR asked.n IS DISTINCT FROM 1) \
             AS late_approvals_without_one_refund, \
           (SELECT count(*) FROM o WHERE refund_status = 'pending') AS refunds_pending, \
           (SELECT count(*) FROM o WHERE refund_status = 'refunded') AS refunded, \
           (SELECT count(*) FROM o WHERE refund_status = 'failed') AS refunds_failed \
         FROM events e JOIN event_stock s ON s.event_id = e.id WHERE e.id = $1",
    )
    .bind(event)
    .fetch_optional(pool)
    .await
}

/// The invariants `ledger` breaks.
#[must_use]
pub fn violations(ledger: &Ledger, pending: Pending) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut check = |broken: bool, invariant: &'static str, detail: String| {
        if broken {
            found.push(Violation { invariant, detail });
        }
    };
    check(
        ledger.remaining < 0 || ledger.live_tickets > ledger.inventory,
        "no oversell",
        format!(
            "{} tickets in live orders, {} remaining, inventory {}",
            ledger.live_tickets, ledger.remaining, ledger.inventory
        ),
    );
    check(
        ledger.remaining + ledger.live_tickets != ledger.inventory,
        "stock accounting adds up",
        format!(
            "remaining {} + live {} = {} ≠ inventory {}",
            ledger.remaining,
            ledger.live_tickets,
            ledger.remaining + ledger.live_tickets,
            ledger.inventory
        ),
    );
    check(
        ledger.over_limit_buyers > 0,
        "max_per_user holds",
        format!("{} buyers over the limit", ledger.over_limit_buyers),
    );
    check(
        ledger.holdings_mismatches > 0,
        "holdings match live orders",
        format!("{} buyers disagree", ledger.holdings_mismatches),
    );
    check(
        ledger.orders_without_one_key > 0,
        "one order per idempotency key",
        format!(
            "{} orders without exactly one key",
            ledger.orders_without_one_key
        ),
    );
    check(
        ledger.orders_without_one_token > 0,
        "one order per gate token",
        format!(
            "{} orders without exactly one consumed gate token",
            ledger.orders_without_one_token
        ),
    );
    check(
        pending == Pending::Violation && ledger.pending > 0,
        "every order reaches a final state",
        format!("{} orders still pending payment", ledger.pending),
    );
    check(
        ledger.late_approvals_without_one_refund > 0,
        "a payment approved too late is refunded once",
        format!(
            "{} of {} payments approved after their hold not asked to be refunded exactly once",
            ledger.late_approvals_without_one_refund, ledger.late_approvals
        ),
    );
    check(
        pending == Pending::Violation && ledger.refunds_pending > 0,
        "every refund is settled",
        format!(
            "{} refunds still waiting for the provider",
            ledger.refunds_pending
        ),
    );
    found
}

/// `flash-drill audit`: audits one event in the api's database.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The api's database.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The event to audit.
    #[arg(long)]
    pub event: Uuid,
    /// Orders still pending payment are a violation (the sale is over).
    #[arg(long)]
    pub final_states: bool,
    /// Print the ledger and violations as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the audit; fails when the event is missing or an invariant is broken.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let pool = flash_kit::stores::connect_postgres(&args.database_url, 1).await?;
    let found = ledger(&pool, args.event).await?;
    pool.close().await;
    let Some(ledger) = found else {
        anyhow::bail!("event {} is not in the database", args.event);
    };
    let pending = if args.final_states {
        Pending::Violation
    } else {
        Pending::Allowed
    };
    let broken = violations(&ledger, pending);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "ledger": ledger, "violations": broken })
        )?;
    } else {
        writeln!(
            out,
            "event {}: inventory {}, remaining {}, live tickets {}; orders {} (pending {}, paid {}, failed {}, expired {})",
            args.event,
            ledger.inventory,
            ledger.remaining,
            ledger.live_tickets,
            ledger.orders,
            ledger.pending,
            ledger.paid,
            ledger.failed,
            ledger.expired
        )?;
        for violation in &broken {
            writeln!(
                out,
                "VIOLATED {}: {}",
                violation.invariant, violation.detail
            )?;
        }
        if broken.is_empty() {
            writeln!(out, "every invariant holds")?;
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} invariants violated", broken.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sound() -> Ledger {
        Ledger {
            inventory: 10,
            remaining: 4,
            live_tickets: 6,
            orders: 7,
            pending: 1,
            paid: 5,
            failed: 1,
            ..Ledger::default()
        }
    }

    fn broken(ledger: &Ledger, pending: Pending) -> Vec<&'static str> {
        violations(ledger, pending)
            .into_iter()
            .map(|v| v.invariant)
            .collect()
    }

    #[test]
    fn a_sound_ledger_breaks_nothing_until_pending_orders_must_be_final() {
        assert!(broken(&sound(), Pending::Allowed).is_empty());
        assert_eq!(
            broken(&sound(), Pending::Violation),
            ["every order reaches a final state"]
        );
    }

    #[test]
    fn oversell_and_lost_stock_are_named() {
        let oversold = Ledger {
            remaining: 0,
            live_tickets: 11,
            ..sound()
        };
        assert_eq!(
            broken(&oversold, Pending::Allowed),
            ["no oversell", "stock accounting adds up"]
        );
        let leaked = Ledger {
            remaining: 3,
            ..sound()
        };
        assert_eq!(
            broken(&leaked, Pending::Allowed),
            ["stock accounting adds up"]
        );
        let duplicated = Ledger {
            orders_without_one_key: 2,
            orders_without_one_token: 1,
            over_limit_buyers: 1,
            holdings_mismatches: 1,
            ..sound()
        };
        assert_eq!(
            broken(&duplicated, Pending::Allowed),
            [
                "max_per_user holds",
                "holdings match live orders",
                "one order per idempotency key",
                "one order per gate token"
            ]
        );
    }

    #[test]
    fn a_late_approval_must_be_refunded_once_and_refunds_settled_at_the_end() {
        let refunding = Ledger {
            pending: 0,
            late_approvals: 3,
            refunds_pending: 1,
            refunded: 2,
            ..sound()
        };
        assert!(broken(&refunding, Pending::Allowed).is_empty());
        assert_eq!(
            broken(&refunding, Pending::Violation),
            ["every refund is settled"]
        );
        let unrefunded = Ledger {
            late_approvals_without_one_refund: 1,
            ..refunding
        };
        assert_eq!(
            broken(&unrefunded, Pending::Allowed),
            ["a payment approved too late is refunded once"]
        );
    }
}
