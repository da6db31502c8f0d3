//! The waiting room's invariants against real Redis: idempotent joins, FIFO, the pre-queue
//! shuffle, rate and capacity bounds with many tickers, pause, expiry, consumption, closing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use flash_gateway::coalesce::MAX_BATCH;
use flash_gateway::waiting_room::{
    EventAnnouncement, Joined, Patched, Place, Settings, Snapshot, USERS_PER_CALL, WaitingRoom,
};
use flash_kit::stores::{RedisMode, connect_redis_in};
use flash_kit::testing::{TestRedis, TestRedisCluster};
use flash_protocol::event::{EventStatus, QueueSettings};

use crate::helpers::settings;
use flash_protocol::queue::{QueuePatch, QueueState};
use flash_protocol::ws::ClosedReason;
use flash_protocol::{EventId, UserId};
use time::OffsetDateTime;

/// The store behind a fixture: a key prefix on the shared Redis, or a cluster of its own.
enum Store {
    /// Held for its drop too, which deletes the test's keys.
    Node(TestRedis),
    Cluster(TestRedisCluster),
}

struct Fixture {
    room: WaitingRoom,
    store: Store,
}

async fn fixture() -> Fixture {
    let redis = TestRedis::new();
    let conn = connect_redis_in(&redis.url, RedisMode::Node)
        .await
        .expect("redis");
    Fixture {
        room: WaitingRoom::new(conn, redis.keys()),
        store: Store::Node(redis),
    }
}

async fn cluster_fixture() -> Fixture {
    let cluster = TestRedisCluster::start().await;
    let conn = connect_redis_in(&cluster.url, RedisMode::Cluster)
        .await
        .expect("redis cluster");
    Fixture {
        room: WaitingRoom::new(conn, cluster.keys()),
        store: Store::Cluster(cluster),
    }
}

impl Fixture {
    fn url(&self) -> &str {
        match &self.store {
            Store::Node(redis) => &redis.url,
            Store::Cluster(cluster) => &cluster.url,
        }
    }

    async fn announce(
        &self,
        status: EventStatus,
        opens_in: time::Duration,
        queue: QueueSettings,
    ) -> EventId {
        let event = EventId::new_v7();
        self.reannounce(event, status, opens_in, queue).await;
        event
    }

    async fn reannounce(
        &self,
        event: EventId,
        status: EventStatus,
        opens_in: time::Duration,
        queue: QueueSettings,
    ) {
        self.room
            .upsert(&EventAnnouncement {
                event,
                name: "Test".into(),
                sale_opens_at: OffsetDateTime::now_utc() + opens_in,
                status,
                settings: Settings::Initial(queue),
                remaining: None,
            })
            .await
            .expect("upsert");
    }

    async fn open_event(&self, queue: QueueSettings) -> EventId {
        let event = self
            .announce(EventStatus::OnSale, time::Duration::ZERO, queue)
            .await;
        self.room.tick(event).await.expect("opening tick");
        event
    }

    async fn number_of(&self, event: EventId, user: UserId) -> Option<u64> {
        match self.room.join(event, user).await.expect("join").0 {
            Joined::Place { place, .. } => place.number(),
            other => panic!("not in queue: {other:?}"),
        }
    }
}

/// The numbers each user's joins were given, and how many of the joins took a new place.
async fn numbered(
    joins: Vec<tokio::task::JoinHandle<(UserId, Joined)>>,
) -> (HashMap<UserId, BTreeSet<u64>>, usize) {
    let mut numbers: HashMap<UserId, BTreeSet<u64>> = HashMap::new();
    let mut new_places = 0;
    for join in joins {
        let (user, joined) = join.await.expect("task");
        let Joined::Place {
            place: Place::Number(n),
            new,
        } = joined
        else {
            panic!("unexpected {joined:?}");
        };
        new_places += usize::from(new);
        numbers.entry(user).or_default().insert(n);
    }
    (numbers, new_places)
}

fn users(n: usize) -> Vec<UserId> {
    (0..n).map(|_| UserId::new_v7()).collect()
}

#[tokio::test]
async fn joins_in_one_call_are_numbered_in_their_order_and_stay_idempotent() {
    let f = fixture().await;
    let event = f.open_event(settings(10, 10, 60)).await;
    let crowd = users(5);
    // The third user twice in the same call: one place.
    let batch = [crowd[0], crowd[1], crowd[2], crowd[2], crowd[3], crowd[4]];
    let answers = f.room.join_many(event, &batch).await.expect("join_many");
    let numbers: Vec<(u64, bool)> = answers
        .iter()
        .map(|(joined, snapshot)| match joined {
            Joined::Place {
                place: Place::Number(n),
                new,
            } => {
                assert_eq!(snapshot.place, Some(Place::Number(*n)));
                (*n, *new)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        numbers,
        [
            (1, true),
            (2, true),
            (3, true),
            (3, false),
            (4, true),
            (5, true)
        ]
    );
    // The second naming's view is the place's own: not admitted, not expired.
    assert_eq!(
        answers[3].1,
        Snapshot {
            now_ms: answers[3].1.now_ms,
            ..answers[2].1
        }
    );
    // Several places read in one call are each what a read of its own gives: admitted or
    // not, a user named twice, an outsider.
    let until = Instant::now() + Duration::from_secs(10);
    while f.room.tick(event).await.expect("tick").serving == 0 {
        assert!(Instant::now() < until, "nobody admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outsider = UserId::new_v7();
    let asked = [crowd[0], crowd[4], outsider, crowd[2], crowd[0]];
    let together = f.room.snapshots(event, &asked).await.expect("snapshots");
    assert_eq!(together.len(), asked.len());
    for (user, read) in asked.iter().zip(&together) {
        let alone = f.room.snapshot(event, *user).await.expect("snapshot");
        assert_eq!(
            *read,
            Snapshot {
                now_ms: read.now_ms,
                ..alone
            }
        );
    }
    assert!(
        together[0].admission_ends_ms.is_some(),
        "the first was admitted"
    );
    assert_eq!(together[2].place, None);
    assert!(f.room.snapshots(event, &[]).await.expect("none").is_empty());
    // Unknown events and closed queues answer each user of a call.
    let unknown = f
        .room
        .join_many(EventId::new_v7(), &crowd[..2])
        .await
        .expect("join_many");
    assert!(unknown.iter().all(|(j, _)| *j == Joined::Missing));
    f.room
        .close(event, ClosedReason::SoldOut)
        .await
        .expect("close");
    let late = users(2);
    let after = f
        .room
        .join_many(event, &[crowd[0], late[0], late[1]])
        .await
        .expect("join_many");
    let outcomes: Vec<&Joined> = after.iter().map(|(j, _)| j).collect();
    assert_eq!(
        outcomes,
        [
            &Joined::Place {
                place: Place::Number(1),
                new: false
            },
            &Joined::Closed,
            &Joined::Closed
        ]
    );
}

#[tokio::test]
async fn concurrent_joins_share_script_calls_and_keep_every_guarantee() {
    let f = fixture().await;
    let event = f.open_event(settings(10, 10, 60)).await;
    let joins = std::sync::Arc::new(flash_gateway::coalesce::Joins::default());
    let crowd = users(300);
    // Every user twice, all at once, through the coalescer.
    let tasks = crowd
        .iter()
        .chain(crowd.iter())
        .map(|user| {
            let (joins, room, user) = (std::sync::Arc::clone(&joins), f.room.clone(), *user);
            tokio::spawn(async move {
                (
                    user,
                    joins
                        .call(&room, event, (user, flash_gateway::challenge::Proof::None))
                        .await
                        .expect("join")
                        .0,
                )
            })
        })
        .collect::<Vec<_>>();
    let (numbers, new_places) = numbered(tasks).await;
    assert_eq!(new_places, 300, "one new place per user");
    assert!(
        numbers.values().all(|n| n.len() == 1),
        "a user got two numbers"
    );
    let all: BTreeSet<u64> = numbers.values().flatten().copied().collect();
    assert_eq!(all, (1..=300).collect(), "numbers 1..=300, each once");
    assert!(
        joins.calls() < 600,
        "600 joins at once took {} script calls",
        joins.calls()
    );
    // Status polls of everyone at once, and of a user who left just before: each reads its
    // own place, read after it was asked for.
    let gone = crowd[0];
    assert!(f.room.leave(event, gone).await.expect("leave"));
    let statuses = std::sync::Arc::new(flash_gateway::coalesce::Statuses::default());
    let polls = crowd
        .iter()
        .map(|user| {
            let (statuses, room, user) = (std::sync::Arc::clone(&statuses), f.room.clone(), *user);
            tokio::spawn(async move {
                (
                    user,
                    statuses.call(&room, event, user).await.expect("status"),
                )
            })
        })
        .collect::<Vec<_>>();
    for poll in polls {
        let (user, snapshot) = poll.await.expect("task");
        if user == gone {
            assert_eq!(snapshot.place, None, "a left place is never shown");
        } else {
            let number = numbers[&user].first().copied();
            assert_eq!(snapshot.place.and_then(|p| p.number()), number);
        }
    }
    assert!(
        statuses.calls() < 300,
        "300 polls took {} calls",
        statuses.calls()
    );
}

/// A Redis that answers after the connection's 2 s response timeout: the coalescer makes a
/// late call once more before refusing its requests, and the late call's work is not done
/// twice.
#[tokio::test]
async fn a_call_answered_too_late_is_made_once_more_before_its_requests_are_refused() {
    let redis = TestRedis::new();
    let proxy =
        flash_kit::testing::TcpProxy::start("127.0.0.1:6379".parse().expect("redis address")).await;
    let conn = connect_redis_in(&proxy.url_for(&redis.url), RedisMode::Node)
        .await
        .expect("redis through the proxy");
    let f = Fixture {
        room: WaitingRoom::new(conn, redis.keys()),
        store: Store::Node(redis),
    };
    let event = f.open_event(settings(10, 10, 60)).await;
    let joins = std::sync::Arc::new(flash_gateway::coalesce::Joins::default());
    let join_all = |crowd: Vec<UserId>| {
        crowd
            .into_iter()
            .map(|user| {
                let (joins, room) = (std::sync::Arc::clone(&joins), f.room.clone());
                tokio::spawn(async move {
                    let joined = joins
                        .call(&room, event, (user, flash_gateway::challenge::Proof::None))
                        .await;
                    (user, joined)
                })
            })
            .collect::<Vec<_>>()
    };

    // Answers held 2.6 s: the first call times out at 2 s, the second is answered.
    let crowd = users(20);
    proxy.hold_answers(Duration::from_millis(2_600));
    let started = Instant::now();
    let mut numbers = BTreeSet::new();
    for task in join_all(crowd.clone()) {
        let (user, joined) = task.await.expect("task");
        match joined.expect("a late answer still places the user").0 {
            Joined::Place {
                place: Place::Number(n),
                new: true,
            } => assert!(numbers.insert(n), "{user} got {n} twice"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "no stall");
    assert_eq!(numbers, (1..=20).collect(), "each number once");

    // Answers held 4.5 s: both calls time out, and every request is refused.
    let late = users(5);
    proxy.hold_answers(Duration::from_millis(4_500));
    for task in join_all(late.clone()) {
        let (user, joined) = task.await.expect("task");
        let error = joined.expect_err("two late answers refuse the join");
        assert!(error.is_timeout(), "{user}: {error}");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Redis ran the late calls all the same: their users hold places 21..=25, once each, and
    // the connection's later answers are still its own.
    let mut again = BTreeSet::new();
    for user in crowd.iter().chain(&late) {
        again.insert(f.number_of(event, *user).await.expect("a place"));
    }
    assert_eq!(again, (1..=25).collect());
}

#[tokio::test]
async fn joining_is_idempotent_under_concurrency() {
    joining_is_idempotent_under_concurrency_on(&fixture().await).await;
}

async fn joining_is_idempotent_under_concurrency_on(f: &Fixture) {
    let event = f.open_event(settings(10, 10, 60)).await;
    let crowd = users(100);
    // Every user joins three times at once.
    let joins = crowd
        .iter()
        .cycle()
        .take(300)
        .map(|user| {
            let room = f.room.clone();
            let user = *user;
            tokio::spawn(async move { (user, room.join(event, user).await.expect("join").0) })
        })
        .collect::<Vec<_>>();
    let (numbers, new_places) = numbered(joins).await;
    assert_eq!(new_places, 100, "one new place per user");
    assert!(
        numbers.values().all(|n| n.len() == 1),
        "a user got two numbers"
    );
    let all: BTreeSet<u64> = numbers.values().flatten().copied().collect();
    assert_eq!(
        all,
        (1..=100).collect(),
        "numbers 1..=100 without gaps or duplicates"
    );
}

#[tokio::test]
async fn unknown_events_and_closed_queues_refuse_newcomers() {
    unknown_events_and_closed_queues_refuse_newcomers_on(&fixture().await).await;
}

async fn unknown_events_and_closed_queues_refuse_newcomers_on(f: &Fixture) {
    assert_eq!(
        f.room
            .join(EventId::new_v7(), UserId::new_v7())
            .await
            .expect("join")
            .0,
        Joined::Missing
    );
    let event = f.open_event(settings(10, 10, 60)).await;
    let early = UserId::new_v7();
    let n = f.number_of(event, early).await;
    let before = f.room.stats(event).await.expect("stats").expect("exists");
    assert_eq!(before.waiting, 1);
    assert!(
        f.room
            .close(event, ClosedReason::SoldOut)
            .await
            .expect("close")
    );
    assert!(
        !f.room
            .close(event, ClosedReason::SoldOut)
            .await
            .expect("close"),
        "closes once"
    );
    assert_eq!(
        f.room.join(event, UserId::new_v7()).await.expect("join").0,
        Joined::Closed
    );
    // A user who held a place keeps it (and sees the queue closed).
    assert_eq!(f.number_of(event, early).await, n);
    let snapshot = f.room.snapshot(event, early).await.expect("snapshot");
    assert_eq!(snapshot.closed_reason, Some(ClosedReason::SoldOut));
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!(tick.admitted, 0, "a closed queue admits nobody");
    // Nobody waits for a closed queue: they have been told the sale is over.
    let after = f.room.stats(event).await.expect("stats").expect("exists");
    assert_eq!(after.state, QueueState::Closed);
    assert_eq!(after.waiting, 0);
    assert_eq!(
        after.last_number, before.last_number,
        "the numbers stay on record"
    );
}

#[tokio::test]
async fn admission_follows_join_order_after_opening() {
    admission_follows_join_order_after_opening_on(&fixture().await).await;
}

async fn admission_follows_join_order_after_opening_on(f: &Fixture) {
    let event = f.open_event(settings(1000, 1000, 60)).await;
    let crowd = users(50);
    for user in &crowd {
        f.number_of(event, *user).await;
    }
    let mut admitted_order = Vec::new();
    while admitted_order.len() < crowd.len() {
        let tick = f.room.tick(event).await.expect("tick");
        for number in tick.from + 1..=tick.serving {
            admitted_order.push(number);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(admitted_order, (1..=50).collect::<Vec<u64>>());
    let first = f.room.snapshot(event, crowd[0]).await.expect("snapshot");
    let last = f.room.snapshot(event, crowd[49]).await.expect("snapshot");
    assert!(first.admitted_at_ms <= last.admitted_at_ms);
    assert!(first.admission_ends_ms.is_some());
}

#[tokio::test]
async fn the_pre_queue_is_drawn_once_in_the_published_order_with_many_tickers() {
    the_pre_queue_is_drawn_once_in_the_published_order_with_many_tickers_on(&fixture().await).await;
}

/// The numbers the draw's rule gives `users` (in that order): their ranks by key.
async fn drawn_numbers(f: &Fixture, event: EventId, users: &[UserId]) -> Vec<u64> {
    let seed = f
        .room
        .seed(event)
        .await
        .expect("seed")
        .expect("a drawn queue");
    let mut by_key: Vec<(flash_protocol::draw::DrawKey, UserId)> = users
        .iter()
        .map(|&user| (seed.key_of(event, user), user))
        .collect();
    by_key.sort();
    let rank: HashMap<UserId, u64> = by_key
        .iter()
        .zip(1..)
        .map(|((_, user), number)| (*user, number))
        .collect();
    users.iter().map(|user| rank[user]).collect()
}

async fn the_pre_queue_is_drawn_once_in_the_published_order_with_many_tickers_on(f: &Fixture) {
    let event = f
        .announce(
            EventStatus::Scheduled,
            time::Duration::hours(1),
            settings(100, 100, 60),
        )
        .await;
    let early = users(500);
    for user in &early {
        assert_eq!(
            f.number_of(event, *user).await,
            None,
            "pre-queue has no number"
        );
    }
    // Many replicas tick before opening: nothing happens.
    assert_eq!(f.room.tick(event).await.expect("tick").opened, None);
    // The opening time comes; eight replicas tick at once.
    f.reannounce(
        event,
        EventStatus::Scheduled,
        time::Duration::ZERO,
        settings(100, 100, 60),
    )
    .await;
    let tickers: Vec<_> = (0..8)
        .map(|_| {
            let room = f.room.clone();
            tokio::spawn(async move { room.tick(event).await.expect("tick") })
        })
        .collect();
    let mut openings = Vec::new();
    for ticker in tickers {
        if let Some(opened) = ticker.await.expect("task").opened {
            openings.push(opened);
        }
    }
    assert_eq!(
        openings,
        [500],
        "exactly one tick opened the queue, freezing everyone"
    );
    let mut numbers = Vec::new();
    for user in &early {
        numbers.push(
            f.number_of(event, *user)
                .await
                .expect("numbered at opening"),
        );
    }
    assert_eq!(
        numbers,
        drawn_numbers(f, event, &early).await,
        "numbered 1..500 in ascending order of the draw's keys"
    );
    let in_join_order = numbers.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(
        (150..350).contains(&in_join_order),
        "order looks unshuffled: {in_join_order} of 499 neighbours kept join order"
    );
    // Later arrivals are FIFO after everyone from the pre-queue.
    let late = UserId::new_v7();
    assert_eq!(f.number_of(event, late).await, Some(501));
}

#[tokio::test]
async fn a_large_pre_queue_is_numbered_in_chunks_and_nobody_is_admitted_past_the_numbers() {
    let f = fixture().await;
    let chunk = u64::from(flash_gateway::waiting_room::OPENING_CHUNK);
    let queue = settings(10_000, 100_000, 60);
    let event = f
        .announce(EventStatus::Scheduled, time::Duration::hours(1), queue)
        .await;
    let early = users(usize::try_from(2 * chunk + chunk / 2).expect("small"));
    for batch in early.chunks(250) {
        f.room.join_many(event, batch).await.expect("join_many");
    }
    // A place left before opening leaves the draw.
    assert!(f.room.leave(event, early[0]).await.expect("leave"));
    let frozen = &early[1..];
    let expected = drawn_numbers(&f, event, frozen).await;
    let total = frozen.len() as u64;
    assert_eq!(
        f.room
            .stats(event)
            .await
            .expect("stats")
            .expect("queue")
            .waiting,
        total
    );

    f.reannounce(event, EventStatus::Scheduled, time::Duration::ZERO, queue)
        .await;
    let first = f.room.tick(event).await.expect("tick");
    assert_eq!(first.opened, Some(total));
    assert_eq!(first.numbering, Some(chunk), "one chunk per call");
    // Arriving while numbering is under way: after the whole pre-queue.
    let late = UserId::new_v7();
    assert_eq!(f.number_of(event, late).await, Some(total + 1));
    // A place drawn into the last chunk is left meanwhile: its number goes to nobody.
    let leaver_index = expected
        .iter()
        .position(|&n| n > 2 * chunk)
        .expect("someone in the last chunk");
    let leaver = frozen[leaver_index];
    assert!(f.room.leave(event, leaver).await.expect("leave"));

    // A second's credit is more than the numbers given: admissions stop at the last one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = f.room.tick(event).await.expect("tick");
    assert_eq!(second.numbering, Some(2 * chunk));
    assert_eq!(
        second.serving,
        2 * chunk,
        "admitted through the numbers given, no further"
    );
    let third = f.room.tick(event).await.expect("tick");
    assert_eq!(
        third.numbering, None,
        "everyone frozen at opening is numbered"
    );
    assert_eq!(third.opened, None);

    for (user, want) in frozen.iter().zip(&expected) {
        let place = f.room.snapshot(event, *user).await.expect("snapshot").place;
        if *user == leaver {
            assert_eq!(place, None);
        } else {
            assert_eq!(place, Some(Place::Number(*want)), "the draw's number");
        }
    }
    assert_eq!(
        f.room
            .snapshot(event, early[0])
            .await
            .expect("snapshot")
            .place,
        None
    );
    // Ticks admit on, skipping the left place, up to the late arrival.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = f.room.tick(event).await.expect("tick");
    assert_eq!(after.serving, total + 1);
    assert_eq!(
        third.admitted + after.admitted,
        total + 1 - 2 * chunk - 1,
        "everyone after the numbers given at the second tick, but the leaver"
    );
}

#[tokio::test]
async fn a_queue_created_before_the_draw_numbers_its_pre_queue_at_random_as_before() {
    let f = fixture().await;
    let event = f
        .announce(
            EventStatus::Scheduled,
            time::Duration::hours(1),
            settings(100, 100, 60),
        )
        .await;
    // As a queue created by an earlier version: no seed.
    let mut redis = redis::Client::open(f.url())
        .and_then(|client| client.get_connection())
        .expect("redis");
    let config = f.room.keys().queue(event).config;
    let _: i64 = redis::cmd("HDEL")
        .arg(&config)
        .arg("seed")
        .query(&mut redis)
        .expect("hdel");
    assert_eq!(f.room.seed(event).await.expect("seed"), None);
    let early = users(300);
    f.room.join_many(event, &early).await.expect("join_many");
    let draw: i64 = redis::cmd("ZCARD")
        .arg(f.room.keys().queue(event).draw)
        .query(&mut redis)
        .expect("zcard");
    assert_eq!(draw, 0, "no draw without a seed");
    f.reannounce(
        event,
        EventStatus::Scheduled,
        time::Duration::ZERO,
        settings(100, 100, 60),
    )
    .await;
    let mut tick = f.room.tick(event).await.expect("tick");
    assert_eq!(tick.opened, Some(300));
    assert_eq!(
        tick.numbering,
        Some(u64::from(flash_gateway::waiting_room::OPENING_CHUNK)).filter(|&chunk| chunk < 300),
        "numbered in chunks too"
    );
    while tick.numbering.is_some() {
        tick = f.room.tick(event).await.expect("tick");
    }
    let mut numbers = Vec::new();
    for user in &early {
        numbers.push(f.number_of(event, *user).await.expect("numbered"));
    }
    let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct, (1..=300).collect(), "a permutation");
    let in_join_order = numbers.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(
        (90..210).contains(&in_join_order),
        "order looks unshuffled: {in_join_order} of 299 neighbours kept join order"
    );
}

#[tokio::test]
async fn a_queue_closed_before_it_opened_numbers_its_pre_queue_when_back_on_sale() {
    let f = fixture().await;
    let queue = settings(100, 100, 60);
    let event = f
        .announce(EventStatus::Scheduled, time::Duration::hours(1), queue)
        .await;
    let early = users(20);
    f.room.join_many(event, &early).await.expect("join_many");
    f.room
        .close(event, ClosedReason::SoldOut)
        .await
        .expect("close");
    f.reannounce(event, EventStatus::OnSale, time::Duration::hours(1), queue)
        .await;
    let mut numbers = Vec::new();
    for user in &early {
        numbers.push(f.number_of(event, *user).await.expect("numbered"));
    }
    assert_eq!(numbers, drawn_numbers(&f, event, &early).await);
}

#[tokio::test]
async fn rate_and_capacity_hold_with_several_tick_runners() {
    let f = fixture().await;
    let rate = 40;
    let event = f.open_event(settings(rate, 10_000, 60)).await;
    for user in users(400) {
        f.number_of(event, user).await;
    }
    // Credit built up while the crowd joined (at most a second's worth) is spent here, so
    // what follows is admitted at the rate alone.
    f.room.tick(event).await.expect("tick");
    let before = f
        .room
        .stats(event)
        .await
        .expect("stats")
        .expect("exists")
        .serving;
    let started = Instant::now();
    let run_for = Duration::from_millis(1500);
    let runners: Vec<_> = (0..4)
        .map(|_| {
            let room = f.room.clone();
            tokio::spawn(async move {
                while started.elapsed() < run_for {
                    room.tick(event).await.expect("tick");
                    tokio::time::sleep(Duration::from_millis(7)).await;
                }
            })
        })
        .collect();
    for runner in runners {
        runner.await.expect("runner");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = f.room.stats(event).await.expect("stats").expect("exists");
    let ceiling = f64::from(rate) * (elapsed + 0.2);
    let admitted = stats.serving - before;
    assert!(
        (admitted as f64) <= ceiling,
        "admitted {admitted} in {elapsed:.2}s at {rate}/s (ceiling {ceiling:.0})",
    );
    assert!(
        admitted >= u64::from(rate) / 2,
        "admission made progress: {admitted}"
    );
    assert_eq!(stats.waiting, 400 - stats.serving);

    // Capacity: a fast rate stops at max_active.
    let capped = f.open_event(settings(10_000, 7, 60)).await;
    for user in users(30) {
        f.number_of(capped, user).await;
    }
    for _ in 0..10 {
        f.room.tick(capped).await.expect("tick");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = f.room.stats(capped).await.expect("stats").expect("exists");
    assert_eq!((stats.admitted_active, stats.serving), (7, 7));
}

/// A change whose audit record has no room (the relay is stuck: 10,000 records wait) is not
/// made: the queue runs as before and nothing goes unrecorded.
#[tokio::test]
async fn a_change_without_room_for_its_record_is_not_made() {
    let redis = TestRedis::new();
    let mut conn = connect_redis_in(&redis.url, RedisMode::Node)
        .await
        .expect("redis");
    let f = Fixture {
        room: WaitingRoom::new(conn.clone(), redis.keys()),
        store: Store::Node(redis),
    };
    let event = f.open_event(settings(100, 100, 60)).await;
    let waiting = vec!["{}"; flash_gateway::audit::MOST_WAITING as usize];
    let _: i64 = redis::cmd("RPUSH")
        .arg(f.room.keys().queue(event).audit)
        .arg(waiting)
        .query_async(&mut conn)
        .await
        .expect("rpush");
    let throttle = QueuePatch {
        admit_per_sec: Some(3),
        ..QueuePatch::default()
    };
    assert_eq!(
        f.room
            .patch(event, UserId::new_v7(), &throttle)
            .await
            .expect("patch"),
        Patched::AuditBacklog
    );
    let stats = f.room.stats(event).await.expect("stats").expect("exists");
    assert_eq!(stats.admit_per_sec, 100, "unchanged");
    assert_eq!(
        f.room
            .audit_records(event, 20_000)
            .await
            .expect("records")
            .len(),
        flash_gateway::audit::MOST_WAITING as usize
    );
}

#[tokio::test]
async fn pause_stops_admissions_and_resume_restarts_them() {
    pause_stops_admissions_and_resume_restarts_them_on(&fixture().await).await;
}

async fn pause_stops_admissions_and_resume_restarts_them_on(f: &Fixture) {
    let event = f.open_event(settings(1000, 1000, 60)).await;
    let operator = UserId::new_v7();
    let pause = |paused| QueuePatch {
        paused: Some(paused),
        ..QueuePatch::default()
    };
    assert_eq!(
        f.room
            .patch(event, operator, &pause(true))
            .await
            .expect("patch"),
        Patched::Done { recorded: true }
    );
    for user in users(20) {
        f.number_of(event, user).await;
    }
    for _ in 0..5 {
        assert_eq!(f.room.tick(event).await.expect("tick").admitted, 0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = f.room.stats(event).await.expect("stats").expect("exists");
    assert_eq!(stats.state, QueueState::Paused);
    f.room
        .patch(event, operator, &pause(false))
        .await
        .expect("patch");
    let mut admitted = 0;
    for _ in 0..50 {
        admitted += f.room.tick(event).await.expect("tick").admitted;
        if admitted == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(admitted, 20);

    // Each change wrote its audit record with the change, in order; a change that changes
    // nothing writes none.
    assert_eq!(
        f.room
            .patch(event, operator, &pause(false))
            .await
            .expect("patch"),
        Patched::Done { recorded: false }
    );
    let records = f.room.audit_records(event, 10).await.expect("records");
    assert_eq!(records.len(), 2, "{records:?}");
    let first: serde_json::Value = serde_json::from_str(&records[0]).expect("json");
    assert_eq!(
        first["changes"],
        serde_json::json!({"queue.paused": [false, true]})
    );
    assert_eq!(first["actor"], operator.to_string());
    assert_eq!(first["event_id"], event.to_string());
    let second: serde_json::Value = serde_json::from_str(&records[1]).expect("json");
    assert_eq!(
        second["changes"],
        serde_json::json!({"queue.paused": [true, false]})
    );
    assert_ne!(first["id"], second["id"]);
    f.room
        .drop_audit_record(event, &records[0])
        .await
        .expect("drop");
    assert_eq!(
        f.room.audit_records(event, 10).await.expect("records"),
        records[1..].to_vec(),
        "only the relayed record is taken off"
    );
    assert_eq!(
        f.room
            .patch(EventId::new_v7(), operator, &QueuePatch::default())
            .await
            .expect("patch"),
        Patched::Missing,
        "unknown event"
    );
}

/// A replica asks what Redis recorded of every socket it holds once many are admitted at once
/// (a resume, a high rate), or of its every pre-queue socket at the opening: more users in one
/// ask than Lua's `unpack` takes in one call.
#[tokio::test]
async fn places_and_admissions_of_thousands_are_read_in_one_ask() {
    let f = fixture().await;
    let event = f.open_event(settings(100_000, 100_000, 60)).await;
    let crowd = users(USERS_PER_CALL * 9 + 1);
    for batch in crowd.chunks(MAX_BATCH) {
        f.room.join_many(event, batch).await.expect("join_many");
    }
    let until = Instant::now() + Duration::from_secs(30);
    while f.room.tick(event).await.expect("tick").serving < crowd.len() as u64 {
        assert!(Instant::now() < until, "not everyone admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outsider = UserId::new_v7();
    let asked: Vec<UserId> = crowd.iter().copied().chain([outsider]).collect();
    let recorded = f.room.admissions(event, &asked).await.expect("admissions");
    assert_eq!(recorded.len(), asked.len());
    // Joined in one line, numbered in its order: each user's admission at their own number.
    for (number, read) in (1..).zip(&recorded[..crowd.len()]) {
        let (at, ends) = read
            .admission_at(number, 60)
            .unwrap_or_else(|| panic!("number {number}: {read:?}"));
        assert!(at < ends, "number {number}");
        assert_eq!(read.admission_at(number + 1, 60), None);
    }
    assert_eq!(recorded[crowd.len()].place, None, "the outsider");
    assert!(
        f.room
            .admissions(event, &[])
            .await
            .expect("none")
            .is_empty()
    );
    // The places alone, as a replica reads its pre-queue sockets' numbers: the same, in order.
    let places = f.room.places(event, &asked).await.expect("places");
    assert_eq!(places, recorded.iter().map(|r| r.place).collect::<Vec<_>>());
}

#[tokio::test]
async fn expiry_and_consumption_free_capacity() {
    expiry_and_consumption_free_capacity_on(&fixture().await).await;
}

async fn expiry_and_consumption_free_capacity_on(f: &Fixture) {
    let event = f.open_event(settings(1000, 3, 1)).await;
    let crowd = users(9);
    for user in &crowd {
        f.number_of(event, *user).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(f.room.tick(event).await.expect("tick").admitted, 3);
    assert_eq!(f.room.tick(event).await.expect("tick").admitted, 0, "full");

    // One buyer orders: their place goes to the next one.
    let admitted_at = f
        .room
        .admitted_at(event, crowd[0])
        .await
        .expect("read")
        .expect("admitted");
    assert!(
        !f.room
            .consume(event, crowd[0], Some(admitted_at - 1), None)
            .await
            .expect("consume"),
        "the token of another admission frees nothing"
    );
    assert!(
        f.room
            .consume(event, crowd[0], Some(admitted_at), None)
            .await
            .expect("consume")
    );
    assert!(
        !f.room
            .consume(event, crowd[0], Some(admitted_at), None)
            .await
            .expect("consume"),
        "duplicate message"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(f.room.tick(event).await.expect("tick").admitted, 1);

    // The others let their admission run out: expired, and their places are reused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!(tick.expired, 3);
    assert_eq!(tick.admitted, 3);
    let lapsed = f.room.snapshot(event, crowd[1]).await.expect("snapshot");
    assert!(lapsed.expired);
    assert_eq!(lapsed.admission_ends_ms, None);
    let buyer = f.room.snapshot(event, crowd[0]).await.expect("snapshot");
    assert!(!buyer.expired && buyer.admitted_at_ms.is_some());

    // Read together, waiting places (whose admissions are not read) between admitted, lapsed
    // and used ones: each gets its own.
    let asked = [crowd[8], crowd[1], crowd[7], crowd[4], crowd[0]];
    let together = f.room.snapshots(event, &asked).await.expect("snapshots");
    let admissions: Vec<_> = together
        .iter()
        .map(|s| {
            (
                s.admission_ends_ms.is_some(),
                s.admitted_at_ms.is_some(),
                s.expired,
            )
        })
        .collect();
    assert_eq!(
        admissions,
        [
            (false, false, false),
            (false, true, true),
            (false, false, false),
            (true, true, false),
            (false, true, false)
        ]
    );
    assert_eq!(
        together[1],
        Snapshot {
            now_ms: together[1].now_ms,
            ..lapsed
        }
    );
}

#[tokio::test]
async fn leaving_frees_places_and_skips_numbers() {
    leaving_frees_places_and_skips_numbers_on(&fixture().await).await;
}

async fn leaving_frees_places_and_skips_numbers_on(f: &Fixture) {
    let event = f.open_event(settings(1000, 1000, 60)).await;
    let crowd = users(5);
    for user in &crowd {
        f.number_of(event, *user).await;
    }
    assert!(f.room.leave(event, crowd[1]).await.expect("leave"));
    assert!(
        !f.room.leave(event, crowd[1]).await.expect("leave"),
        "not in the queue any more"
    );
    let stats = f.room.stats(event).await.expect("stats").expect("exists");
    assert_eq!((stats.waiting, stats.last_number), (4, 5));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!((tick.admitted, tick.serving), (4, 5), "number 2 skipped");
    assert_eq!(tick.waits_ms.len(), 4);
    // Each wait runs from the join (kept in the number's entry) to the admission.
    assert!(
        tick.waits_ms.iter().all(|w| (20..60_000).contains(w)),
        "{:?}",
        tick.waits_ms
    );
    let stats = f.room.stats(event).await.expect("stats").expect("exists");
    assert_eq!((stats.waiting, stats.admitted_active), (0, 4));
    // Leaving and joining again puts the user at the back.
    assert!(f.room.leave(event, crowd[0]).await.expect("leave"));
    assert_eq!(f.number_of(event, crowd[0]).await, Some(6));
    let pre = f
        .announce(
            EventStatus::Scheduled,
            time::Duration::hours(1),
            settings(1, 1, 1),
        )
        .await;
    f.number_of(pre, crowd[0]).await;
    assert!(f.room.leave(pre, crowd[0]).await.expect("leave"));
    assert_eq!(
        f.room
            .stats(pre)
            .await
            .expect("stats")
            .expect("exists")
            .waiting,
        0
    );
}

/// The size of a list or hash (`LLEN`, `HLEN`).
fn count(redis: &mut redis::Connection, command: &str, key: &str) -> i64 {
    redis::cmd(command).arg(key).query(redis).expect("count")
}

/// From opening on, joins append their numbers to the numbers list; admission reads it a run
/// at a time and skips a number its user no longer holds (left, or left and joined again). A
/// join by a replica of an earlier version (which writes the by_number hash) puts the list out
/// of step: later joins write the hash too, and admission still follows the numbers.
#[tokio::test]
async fn numbers_are_listed_and_admission_skips_places_no_longer_held() {
    let f = fixture().await;
    let mut redis = redis::Client::open(f.url())
        .and_then(|client| client.get_connection())
        .expect("redis");
    let event = f.open_event(settings(1000, 1000, 60)).await;
    let k = f.room.keys().queue(event);
    let crowd = users(8);
    for (i, user) in (1..).zip(&crowd) {
        assert_eq!(f.number_of(event, *user).await, Some(i));
    }
    assert_eq!(count(&mut redis, "LLEN", &k.numbers), 8);
    assert_eq!(count(&mut redis, "HLEN", &k.by_number), 0);
    assert!(f.room.leave(event, crowd[1]).await.expect("leave"));
    assert!(f.room.leave(event, crowd[3]).await.expect("leave"));
    assert_eq!(f.number_of(event, crowd[3]).await, Some(9));
    // A join by an earlier version: number 10 in the hash only.
    let old = UserId::new_v7();
    let _: () = redis::pipe()
        .cmd("INCR")
        .arg(&k.seq)
        .ignore()
        .cmd("HSET")
        .arg(&k.users)
        .arg(old.to_string())
        .arg(10)
        .ignore()
        .cmd("HSET")
        .arg(&k.by_number)
        .arg(10)
        .arg(format!("{old} 0"))
        .ignore()
        .query(&mut redis)
        .expect("an earlier version's join");
    let late = UserId::new_v7();
    assert_eq!(f.number_of(event, late).await, Some(11));
    assert_eq!(
        count(&mut redis, "LLEN", &k.numbers),
        9,
        "the list is out of step"
    );
    assert_eq!(
        count(&mut redis, "HLEN", &k.by_number),
        2,
        "numbers 10 and 11"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!(
        (tick.admitted, tick.serving),
        (9, 11),
        "numbers 2 and 4 skipped, 9, 10 and 11 admitted"
    );
    let expected: Vec<UserId> = [0, 2, 3, 4, 5, 6, 7]
        .iter()
        .map(|&i| crowd[i])
        .chain([old, late])
        .collect();
    for user in expected {
        let snapshot = f.room.snapshot(event, user).await.expect("snapshot");
        assert!(snapshot.admission_ends_ms.is_some(), "{user} not admitted");
    }

    // Many places left in a row: admission reads past them, run after run.
    let event = f.open_event(settings(1000, 1000, 60)).await;
    let crowd = users(100);
    f.room.join_many(event, &crowd).await.expect("join_many");
    for user in crowd.iter().take(90) {
        assert!(f.room.leave(event, *user).await.expect("leave"));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!((tick.admitted, tick.serving), (10, 100));
}

/// A queue opened by an earlier version (no `numbers_from`), or by a replica told not to list
/// (`QUEUE_NUMBERS_LIST=false`), keeps its numbers in the by_number hash, and admits in their
/// order.
#[tokio::test]
async fn queues_opened_before_the_list_or_without_it_keep_the_hash() {
    let f = fixture().await;
    let event = f.open_event(settings(1000, 1000, 60)).await;
    let k = f.room.keys().queue(event);
    let mut redis = redis::Client::open(f.url())
        .and_then(|client| client.get_connection())
        .expect("redis");
    let _: i64 = redis::cmd("HDEL")
        .arg(&k.config)
        .arg("numbers_from")
        .query(&mut redis)
        .expect("hdel");
    let crowd = users(5);
    for (i, user) in (1..).zip(&crowd) {
        assert_eq!(f.number_of(event, *user).await, Some(i));
    }
    assert!(f.room.leave(event, crowd[2]).await.expect("leave"));
    assert_eq!(count(&mut redis, "LLEN", &k.numbers), 0);
    assert_eq!(count(&mut redis, "HLEN", &k.by_number), 4);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!((tick.admitted, tick.serving), (4, 5), "number 3 skipped");

    // A replica told not to list opens queues the same way (its room keeps f's keys, which
    // f's store removes; the fixture's own store holds nothing).
    let unlisted = Fixture {
        room: f.room.clone().listing_numbers(false),
        store: Store::Node(TestRedis::new()),
    };
    let event = unlisted.open_event(settings(1000, 1000, 60)).await;
    let k = unlisted.room.keys().queue(event);
    for (i, user) in (1..).zip(&users(3)) {
        assert_eq!(
            f.number_of(event, *user).await,
            Some(i),
            "joined on a listing replica"
        );
    }
    assert_eq!(count(&mut redis, "LLEN", &k.numbers), 0);
    assert_eq!(count(&mut redis, "HLEN", &k.by_number), 3);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tick = f.room.tick(event).await.expect("tick");
    assert_eq!((tick.admitted, tick.serving), (3, 3));
}

/// The same operations on a Redis Cluster (as ElastiCache runs in cluster mode): every script
/// and pipeline keeps to its event's slot, and the events spread over the nodes.
#[tokio::test]
async fn the_queues_keep_their_invariants_on_a_redis_cluster() {
    let f = cluster_fixture().await;
    joining_is_idempotent_under_concurrency_on(&f).await;
    unknown_events_and_closed_queues_refuse_newcomers_on(&f).await;
    admission_follows_join_order_after_opening_on(&f).await;
    the_pre_queue_is_drawn_once_in_the_published_order_with_many_tickers_on(&f).await;
    pause_stops_admissions_and_resume_restarts_them_on(&f).await;
    expiry_and_consumption_free_capacity_on(&f).await;
    leaving_frees_places_and_skips_numbers_on(&f).await;
    let Store::Cluster(cluster) = &f.store else {
        unreachable!("a cluster fixture")
    };
    let mut nodes_in_use = 0;
    for node in flash_kit::stores::redis_nodes(&cluster.url) {
        let mut conn = redis::Client::open(node)
            .and_then(|client| client.get_connection())
            .expect("node");
        let keys: i64 = redis::cmd("DBSIZE").query(&mut conn).expect("dbsize");
        nodes_in_use += usize::from(keys > 0);
    }
    assert!(
        nodes_in_use >= 2,
        "the queues spread over the cluster's nodes"
    );
}
