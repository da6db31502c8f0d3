//! The join challenge over HTTP: off by default, asked of newcomers once an operator turns it
//! up, verified by any replica, each challenge good for one place, reloads free.

use flash_protocol::challenge::{Challenge, solve, solves};
use flash_protocol::claims::Role;
use flash_protocol::queue::{QueueStats, Ticket};
use flash_protocol::ws::ClosedReason;
use flash_protocol::{EventId, UserId};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestGateway, problem_code, settings, token_for};

async fn set_difficulty(gw: &TestGateway, event: EventId, difficulty: u32) -> reqwest::Response {
    let admin = token_for(UserId::new_v7(), Role::Admin);
    gw.call(
        Method::PATCH,
        &format!("/queue/v1/admin/events/{event}"),
        Some(&admin),
        Some(json!({ "challenge_difficulty": difficulty })),
    )
    .await
}

async fn challenge(gw: &TestGateway, event: EventId, token: &str) -> Challenge {
    let response = gw
        .call(
            Method::GET,
            &format!("/queue/v1/events/{event}/challenge"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("challenge")
}

async fn join_with(
    gw: &TestGateway,
    event: EventId,
    token: &str,
    challenge: &str,
    nonce: &str,
) -> reqwest::Response {
    gw.call(
        Method::POST,
        &format!("/queue/v1/events/{event}/join"),
        Some(token),
        Some(json!({ "challenge": challenge, "nonce": nonce })),
    )
    .await
}

fn solution(challenge: &Challenge) -> String {
    solve(&challenge.challenge, challenge.difficulty, 0)
        .expect("solvable")
        .0
        .to_string()
}

#[tokio::test]
async fn newcomers_solve_the_challenge_once_and_holders_never_again() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(10, 100, 60)).await;
    let early = token_for(UserId::new_v7(), Role::User);
    // Off by default: a join needs no body, and any body is ignored.
    assert_eq!(gw.join(event, &early).await.status(), 200);
    let off = challenge(&gw, event, &early).await;
    assert_eq!(off.difficulty, 0);

    // Out of range is refused and changes nothing.
    assert_eq!(
        problem_code(set_difficulty(&gw, event, 33).await, 422).await,
        "VALIDATION"
    );
    let response = set_difficulty(&gw, event, 10).await;
    assert_eq!(response.status(), 200);
    let stats: QueueStats = response.json().await.expect("stats");
    assert_eq!(stats.challenge_difficulty, 10);

    // Raising it costs nobody their place, and holders join again for free.
    let again: Ticket = gw.join(event, &early).await.json().await.expect("ticket");
    assert_eq!(again.number, Some(1));

    let (user, other) = (
        token_for(UserId::new_v7(), Role::User),
        token_for(UserId::new_v7(), Role::User),
    );
    assert_eq!(
        problem_code(gw.join(event, &user).await, 428).await,
        "CHALLENGE_REQUIRED"
    );
    let issued = challenge(&gw, event, &user).await;
    assert_eq!(issued.difficulty, 10);
    assert!(issued.challenge.len() <= 512 && issued.challenge.is_ascii());
    let nonce = solution(&issued);
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|n| !solves(&issued.challenge, n, 10))
        .expect("a wrong nonce");
    assert_eq!(
        problem_code(
            join_with(&gw, event, &user, &issued.challenge, &wrong).await,
            403
        )
        .await,
        "CHALLENGE_FAILED"
    );
    assert_eq!(
        problem_code(
            join_with(&gw, event, &other, &issued.challenge, &nonce).await,
            403
        )
        .await,
        "CHALLENGE_FAILED",
        "another user's challenge"
    );
    assert_eq!(
        problem_code(
            join_with(&gw, event, &user, &issued.challenge, "007").await,
            422
        )
        .await,
        "VALIDATION"
    );
    let forged = format!("{}x", issued.challenge);
    assert_eq!(
        problem_code(join_with(&gw, event, &user, &forged, &nonce).await, 403).await,
        "CHALLENGE_FAILED"
    );
    // None of the refusals took a place.
    assert_eq!(
        problem_code(gw.status(event, &user).await, 404).await,
        "NOT_IN_QUEUE"
    );

    let response = join_with(&gw, event, &user, &issued.challenge, &nonce).await;
    assert_eq!(response.status(), 200);
    let ticket: Ticket = response.json().await.expect("ticket");
    assert_eq!(ticket.number, Some(2));
    // A reload needs no solving.
    assert_eq!(gw.join(event, &user).await.status(), 200);

    // Leaving does not make a used challenge good again.
    let left = gw
        .call(
            Method::POST,
            &format!("/queue/v1/events/{event}/leave"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(left.status(), 204);
    assert_eq!(
        problem_code(
            join_with(&gw, event, &user, &issued.challenge, &nonce).await,
            403
        )
        .await,
        "CHALLENGE_FAILED"
    );
    let fresh = challenge(&gw, event, &user).await;
    let response = join_with(&gw, event, &user, &fresh.challenge, &solution(&fresh)).await;
    assert_eq!(response.status(), 200, "a new challenge solved joins again");
    gw.running.stop().await;
}

#[tokio::test]
async fn unknown_events_and_closed_queues_answer_before_the_challenge() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(10, 100, 60)).await;
    set_difficulty(&gw, event, 20).await;
    let user = token_for(UserId::new_v7(), Role::User);
    let unknown = EventId::new_v7();
    assert_eq!(
        problem_code(gw.join(unknown, &user).await, 404).await,
        "EVENT_NOT_FOUND"
    );
    let response = gw
        .call(
            Method::GET,
            &format!("/queue/v1/events/{unknown}/challenge"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(problem_code(response, 404).await, "EVENT_NOT_FOUND");
    let response = gw
        .call(
            Method::GET,
            &format!("/queue/v1/events/{event}/challenge"),
            None,
            None,
        )
        .await;
    assert_eq!(problem_code(response, 401).await, "UNAUTHENTICATED");
    gw.room
        .close(event, ClosedReason::SoldOut)
        .await
        .expect("close");
    assert_eq!(
        problem_code(gw.join(event, &user).await, 409).await,
        "QUEUE_CLOSED"
    );
    let response = gw
        .call(
            Method::GET,
            &format!("/queue/v1/events/{event}/challenge"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(problem_code(response, 409).await, "QUEUE_CLOSED");
    gw.running.stop().await;
}

/// A challenge is checked by a MAC every replica can verify on its own, and its use is
/// remembered in the shared Redis: issued by one replica, it is accepted by another, and
/// then refused by both.
#[tokio::test]
async fn any_replica_verifies_a_challenge_and_none_takes_it_twice() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(10, 100, 60)).await;
    assert_eq!(set_difficulty(&gw, event, 8).await.status(), 200);

    let (port, other) = gw.replica().await;
    let client = reqwest::Client::new();
    let at_other = |path: String, token: String, body: Option<serde_json::Value>| {
        let request = client
            .request(
                if body.is_some() {
                    Method::POST
                } else {
                    Method::GET
                },
                format!("http://127.0.0.1:{port}{path}"),
            )
            .bearer_auth(token);
        async move {
            match body {
                Some(body) => request.json(&body),
                None => request,
            }
            .send()
            .await
            .expect("the second replica answers")
        }
    };
    let join_path = format!("/queue/v1/events/{event}/join");

    // Issued by the first replica, used at the second.
    let user = token_for(UserId::new_v7(), Role::User);
    let issued = challenge(&gw, event, &user).await;
    let nonce = solution(&issued);
    let proof = json!({ "challenge": issued.challenge, "nonce": nonce });
    let response = at_other(join_path.clone(), user.clone(), Some(proof.clone())).await;
    assert_eq!(response.status(), 200, "the second replica verifies it");
    let ticket: Ticket = response.json().await.expect("ticket");
    assert_eq!(ticket.number, Some(1));
    let left = gw
        .call(
            Method::POST,
            &format!("/queue/v1/events/{event}/leave"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(left.status(), 204);
    // Used once is used everywhere.
    assert_eq!(
        problem_code(
            join_with(&gw, event, &user, &issued.challenge, &nonce).await,
            403
        )
        .await,
        "CHALLENGE_FAILED"
    );
    assert_eq!(
        problem_code(
            at_other(join_path.clone(), user.clone(), Some(proof)).await,
            403
        )
        .await,
        "CHALLENGE_FAILED"
    );

    // And the other way round.
    let second = token_for(UserId::new_v7(), Role::User);
    let response = at_other(
        format!("/queue/v1/events/{event}/challenge"),
        second.clone(),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let issued: Challenge = response.json().await.expect("challenge");
    assert_eq!(
        issued.difficulty, 8,
        "the replica knows the operator's setting"
    );
    let response = join_with(&gw, event, &second, &issued.challenge, &solution(&issued)).await;
    assert_eq!(response.status(), 200, "the first replica verifies it");
    other.stop().await;
    gw.running.stop().await;
}
