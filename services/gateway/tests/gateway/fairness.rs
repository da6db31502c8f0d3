//! The published draw over HTTP: the commitment from the start, the seed and the participants
//! file from the opening, and every pre-queue buyer numbered as the rule says.

use flash_gateway::waiting_room::{EventAnnouncement, Settings};
use flash_protocol::claims::Role;
use flash_protocol::draw::{ALGORITHM, Fairness, Seed, participants_path, pseudonym, verify};
use flash_protocol::event::EventStatus;
use flash_protocol::queue::{Ticket, TicketState};
use flash_protocol::{EventId, UserId};
use reqwest::Method;
use time::OffsetDateTime;

use crate::helpers::{TestGateway, problem_code, settings, token_for};

async fn fairness(gw: &TestGateway, event: EventId) -> Fairness {
    let response = gw
        .call(
            Method::GET,
            &format!("/queue/v1/events/{event}/fairness"),
            None,
            None,
        )
        .await;
    assert_eq!(response.status(), 200, "public, no token");
    response.json().await.expect("fairness")
}

async fn participants(gw: &TestGateway, event: EventId) -> reqwest::Response {
    gw.call(Method::GET, &participants_path(event), None, None)
        .await
}

#[tokio::test]
async fn the_draw_is_committed_then_revealed_and_every_early_buyer_can_check_their_number() {
    let gw = TestGateway::spawn().await;
    let queue = settings(1000, 1000, 60);
    let event = gw
        .announce(EventStatus::Scheduled, time::Duration::hours(1), queue)
        .await;

    // Before opening: the commitment only.
    let sealed = fairness(&gw, event).await;
    assert_eq!(sealed.algorithm, ALGORITHM);
    let commitment = sealed.commitment.clone().expect("a commitment");
    assert_eq!(commitment.len(), 64);
    assert_eq!(
        (
            &sealed.seed,
            sealed.opened_at,
            sealed.participants_count,
            &sealed.participants_sha256,
            &sealed.participants_url
        ),
        (&None, None, None, &None, &None)
    );
    assert_eq!(
        problem_code(participants(&gw, event).await, 404).await,
        "EVENT_NOT_FOUND"
    );

    // The pre-queue: tickets carry the pseudonym, no number; one leaves before opening.
    let users: Vec<UserId> = (0..40).map(|_| UserId::new_v7()).collect();
    let tokens: Vec<String> = users.iter().map(|u| token_for(*u, Role::User)).collect();
    for (user, token) in users.iter().zip(&tokens) {
        let ticket: Ticket = gw.join(event, token).await.json().await.expect("ticket");
        assert_eq!((ticket.state, ticket.number), (TicketState::PreQueue, None));
        assert_eq!(ticket.pseudonym, Some(pseudonym(event, *user)));
    }
    let left = gw
        .call(
            Method::POST,
            &format!("/queue/v1/events/{event}/leave"),
            Some(&tokens[0]),
            None,
        )
        .await;
    assert_eq!(left.status(), 204);
    assert_eq!(
        fairness(&gw, event).await,
        sealed,
        "nothing changes before opening"
    );

    // Opening.
    gw.room
        .upsert(&EventAnnouncement {
            event,
            name: "Test".into(),
            sale_opens_at: OffsetDateTime::now_utc(),
            status: EventStatus::OnSale,
            settings: Settings::Initial(queue),
            remaining: None,
        })
        .await
        .expect("upsert");
    let last = gw
        .wait_for_state(event, &tokens[1], TicketState::Admitted)
        .await;
    assert!(
        last.pseudonym.is_none(),
        "numbered tickets need no pseudonym"
    );
    let revealed = fairness(&gw, event).await;
    assert_eq!(revealed.commitment.as_deref(), Some(commitment.as_str()));
    let seed = Seed::parse_hex(revealed.seed.as_deref().expect("the seed")).expect("hex");
    assert_eq!(
        seed.commitment(),
        commitment,
        "the seed is the committed one"
    );
    assert!(revealed.opened_at.is_some());
    assert_eq!(revealed.participants_count, Some(39));
    assert_eq!(
        revealed.participants_url.as_deref(),
        Some(participants_path(event).as_str())
    );

    let response = participants(&gw, event).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain")
    );
    assert!(response.headers().contains_key("etag"));
    let file = response.bytes().await.expect("file");
    let order = verify(&revealed, &file).expect("the draw verifies");
    assert_eq!(order.len(), 39);
    assert!(
        !order.contains(&pseudonym(event, users[0])),
        "who left before opening is not drawn"
    );
    // Every early buyer holds the number of their line.
    for (user, token) in users.iter().zip(&tokens).skip(1) {
        let ticket: Ticket = gw.status(event, token).await.json().await.expect("ticket");
        let line = order
            .iter()
            .position(|p| *p == pseudonym(event, *user))
            .expect("drawn");
        assert_eq!(ticket.number, Some(line as u64 + 1));
    }

    // Later arrivals and leavers change nothing of what was published.
    let late = token_for(UserId::new_v7(), Role::User);
    let ticket: Ticket = gw.join(event, &late).await.json().await.expect("ticket");
    assert_eq!(ticket.number, Some(40));
    gw.call(
        Method::POST,
        &format!("/queue/v1/events/{event}/leave"),
        Some(&tokens[5]),
        None,
    )
    .await;
    assert_eq!(fairness(&gw, event).await, revealed);
    let again = participants(&gw, event).await.bytes().await.expect("file");
    assert_eq!(again, file);
    gw.running.stop().await;
}

#[tokio::test]
async fn unknown_events_have_no_draw() {
    let gw = TestGateway::spawn().await;
    let unknown = EventId::new_v7();
    let response = gw
        .call(
            Method::GET,
            &format!("/queue/v1/events/{unknown}/fairness"),
            None,
            None,
        )
        .await;
    assert_eq!(problem_code(response, 404).await, "EVENT_NOT_FOUND");
    assert_eq!(
        problem_code(participants(&gw, unknown).await, 404).await,
        "EVENT_NOT_FOUND"
    );
    gw.running.stop().await;
}
