//! What a user's place means: the pure step from a [`Snapshot`] of the queue to the contract's
//! `Ticket` (and the WebSocket frames), shared by polling and WebSocket so they never disagree.

use flash_protocol::queue::{Ticket, TicketState};
use flash_protocol::ws::{ClosedReason, ServerFrame};
use flash_protocol::{EventId, UserId};

use crate::gate::{GateIssuer, GateToken};
use crate::waiting_room::{Place, RawState, Snapshot};

/// Where a user stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    PreQueue,
    Waiting {
        number: u64,
        ahead: u64,
        /// `None` when no honest estimate exists (paused, held, not open, no rate).
        eta_s: Option<u64>,
        /// Orders still being paid while no ticket is left (the queue holds).
        reserved_pending: u64,
    },
    Admitted {
        number: u64,
        admitted_at_ms: i64,
        ends_ms: i64,
    },
    Expired {
        number: u64,
    },
    Closed {
        number: Option<u64>,
        reason: ClosedReason,
    },
}

/// Why there is no standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absent {
    NoSuchQueue,
    NotInQueue,
}

/// Seconds until `ahead + 1` more admissions at `rate` per second, rounded up.
#[must_use]
pub fn eta_seconds(ahead: u64, rate: u32) -> Option<u64> {
    (rate > 0).then(|| (ahead + 1).div_ceil(u64::from(rate)))
}

/// The standing a snapshot describes.
pub fn standing(s: &Snapshot) -> Result<Standing, Absent> {
    let state = s.state.ok_or(Absent::NoSuchQueue)?;
    let place = s.place.ok_or(Absent::NotInQueue)?;
    if state == RawState::Closed {
        return Ok(Standing::Closed {
            number: place.number(),
            reason: s.closed_reason.unwrap_or(ClosedReason::Ended),
        });
    }
    let Place::Number(number) = place else {
        return Ok(Standing::PreQueue);
    };
    if let Some(admitted_at_ms) = s.admitted_at_ms {
        if s.expired {
            return Ok(Standing::Expired { number });
        }
        // Open admission, or one already used for an order (its token stays what it was).
        let ends_ms = s
            .admission_ends_ms
            .unwrap_or(admitted_at_ms + i64::from(s.admission_ttl_s) * 1000);
        return Ok(Standing::Admitted {
            number,
            admitted_at_ms,
            ends_ms,
        });
    }
    let ahead = number.saturating_sub(s.serving).saturating_sub(1);
    let admitting = state == RawState::Open && !s.paused && s.reserved_pending == 0;
    Ok(Standing::Waiting {
        number,
        ahead,
        eta_s: if admitting {
            eta_seconds(ahead, s.admit_per_sec)
        } else {
            None
        },
        reserved_pending: s.reserved_pending,
    })
}

impl Standing {
    #[must_use]
    pub fn state(&self) -> TicketState {
        match self {
            Standing::PreQueue => TicketState::PreQueue,
            Standing::Waiting { .. } => TicketState::Waiting,
            Standing::Admitted { .. } => TicketState::Admitted,
            Standing::Expired { .. } => TicketState::Expired,
            Standing::Closed { .. } => TicketState::Closed,
        }
    }

    #[must_use]
    pub fn number(&self) -> Option<u64> {
        match self {
            Standing::PreQueue => None,
            Standing::Waiting { number, .. }
            | Standing::Admitted { number, .. }
            | Standing::Expired { number } => Some(*number),
            Standing::Closed { number, .. } => *number,
        }
    }

    /// Orders still being paid while no ticket is left, for a waiting buyer (0 otherwise).
    #[must_use]
    pub fn reserved_pending(&self) -> u64 {
        match self {
            Standing::Waiting {
                reserved_pending, ..
            } => *reserved_pending,
            _ => 0,
        }
    }

    fn ahead_and_eta(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Standing::PreQueue | Standing::Closed { .. } | Standing::Expired { .. } => (None, None),
            Standing::Waiting { ahead, eta_s, .. } => (Some(*ahead), *eta_s),
            Standing::Admitted { .. } => (Some(0), Some(0)),
        }
    }

    /// The gate token, for an admitted standing.
    pub fn gate(
        &self,
        issuer: &GateIssuer,
        event: EventId,
        user: UserId,
    ) -> Result<Option<GateToken>, flash_tokens::KeyError> {
        match self {
            Standing::Admitted {
                admitted_at_ms,
                ends_ms,
                ..
            } => issuer
                .issue(event, user, *admitted_at_ms, *ends_ms)
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The contract's `Ticket` of `user`.
    #[must_use]
    pub fn ticket(&self, event: EventId, user: UserId, gate: Option<GateToken>) -> Ticket {
        let (ahead, eta_s) = self.ahead_and_eta();
        let (gate_token, gate_expires_at) = gate.map(|g| (g.token, g.expires_at)).unzip();
        Ticket {
            event_id: event,
            number: self.number(),
            state: self.state(),
            ahead,
            eta_s,
            gate_token,
            gate_expires_at,
            pseudonym: (*self == Standing::PreQueue)
                .then(|| flash_protocol::draw::pseudonym(event, user)),
            reserved_pending: self.reserved_pending(),
        }
    }

    /// The `position` frame of this standing.
    #[must_use]
    pub fn position_frame(&self) -> ServerFrame {
        let (ahead, eta_s) = self.ahead_and_eta();
        ServerFrame::Position {
            state: self.state(),
            number: self.number(),
            ahead,
            eta_s,
            reserved_pending: self.reserved_pending(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            state: Some(RawState::Open),
            paused: false,
            closed_reason: None,
            admit_per_sec: 10,
            admission_ttl_s: 300,
            place: Some(Place::Number(42)),
            serving: 20,
            admission_ends_ms: None,
            admitted_at_ms: None,
            expired: false,
            now_ms: 1_000_000,
            reserved_pending: 0,
        }
    }

    #[test]
    fn waiting_users_see_who_is_ahead_and_an_honest_eta() {
        let s = snapshot();
        assert_eq!(
            standing(&s),
            Ok(Standing::Waiting {
                number: 42,
                ahead: 21,
                eta_s: Some(3),
                reserved_pending: 0,
            })
        );
        // No ticket left while 7 orders are being paid: the place is kept, with no estimate.
        let held = Snapshot {
            reserved_pending: 7,
            ..s
        };
        let standing_held = standing(&held);
        assert_eq!(
            standing_held,
            Ok(Standing::Waiting {
                number: 42,
                ahead: 21,
                eta_s: None,
                reserved_pending: 7,
            })
        );
        let held = standing_held.expect("waiting");
        assert_eq!(
            held.ticket(EventId::new_v7(), UserId::new_v7(), None)
                .reserved_pending,
            7
        );
        assert!(matches!(
            held.position_frame(),
            ServerFrame::Position {
                reserved_pending: 7,
                eta_s: None,
                ..
            }
        ));
        let paused = Snapshot { paused: true, ..s };
        assert!(matches!(
            standing(&paused),
            Ok(Standing::Waiting { eta_s: None, .. })
        ));
        let scheduled = Snapshot {
            state: Some(RawState::Scheduled),
            ..s
        };
        assert!(matches!(
            standing(&scheduled),
            Ok(Standing::Waiting { eta_s: None, .. })
        ));
        let stalled = Snapshot {
            admit_per_sec: 0,
            ..s
        };
        assert!(matches!(
            standing(&stalled),
            Ok(Standing::Waiting { eta_s: None, .. })
        ));
        assert_eq!(eta_seconds(0, 10), Some(1));
        assert_eq!(eta_seconds(9, 10), Some(1));
        assert_eq!(eta_seconds(10, 10), Some(2));
    }

    #[test]
    fn every_state_of_the_contract_is_reachable() {
        let s = snapshot();
        assert_eq!(
            standing(&Snapshot { state: None, ..s }),
            Err(Absent::NoSuchQueue)
        );
        assert_eq!(
            standing(&Snapshot { place: None, ..s }),
            Err(Absent::NotInQueue)
        );
        assert_eq!(
            standing(&Snapshot {
                place: Some(Place::PreQueue),
                ..s
            }),
            Ok(Standing::PreQueue)
        );
        let admitted = Snapshot {
            admitted_at_ms: Some(5),
            admission_ends_ms: Some(300_005),
            ..s
        };
        assert_eq!(
            standing(&admitted),
            Ok(Standing::Admitted {
                number: 42,
                admitted_at_ms: 5,
                ends_ms: 300_005
            })
        );
        let used = Snapshot {
            admitted_at_ms: Some(5),
            ..s
        };
        assert!(matches!(
            standing(&used),
            Ok(Standing::Admitted {
                ends_ms: 300_005,
                ..
            })
        ));
        let lapsed = Snapshot {
            admitted_at_ms: Some(5),
            expired: true,
            ..s
        };
        assert_eq!(standing(&lapsed), Ok(Standing::Expired { number: 42 }));
        let closed = Snapshot {
            state: Some(RawState::Closed),
            closed_reason: Some(ClosedReason::SoldOut),
            ..s
        };
        assert_eq!(
            standing(&closed),
            Ok(Standing::Closed {
                number: Some(42),
                reason: ClosedReason::SoldOut
            })
        );
    }

    #[test]
    fn tickets_carry_the_gate_token_only_when_admitted() {
        let issuer = GateIssuer::new(flash_tokens::SigningKey::generate().expect("key"));
        let (event, user) = (EventId::new_v7(), UserId::new_v7());
        let waiting = standing(&snapshot()).expect("standing");
        assert_eq!(waiting.gate(&issuer, event, user).expect("gate"), None);
        let ticket = waiting.ticket(event, user, None);
        assert_eq!(
            (ticket.state, ticket.number, ticket.ahead),
            (TicketState::Waiting, Some(42), Some(21))
        );
        assert_eq!(ticket.pseudonym, None, "only pre-queue tickets carry it");
        let early = Standing::PreQueue.ticket(event, user, None);
        assert_eq!(
            early.pseudonym,
            Some(flash_protocol::draw::pseudonym(event, user))
        );

        let admitted = Standing::Admitted {
            number: 42,
            admitted_at_ms: 1_700_000_000_000,
            ends_ms: 1_700_000_300_000,
        };
        let gate = admitted.gate(&issuer, event, user).expect("gate");
        let ticket = admitted.ticket(event, user, gate.clone());
        assert_eq!(ticket.state, TicketState::Admitted);
        assert_eq!(ticket.gate_token, gate.map(|g| g.token));
        assert_eq!(
            ticket.gate_expires_at.map(|t| t.unix_timestamp()),
            Some(1_700_000_300)
        );
        assert_eq!(
            Standing::PreQueue.position_frame(),
            ServerFrame::Position {
                state: TicketState::PreQueue,
                number: None,
                ahead: None,
                eta_s: None,
                reserved_pending: 0,
            }
        );
    }
}
