//! Redis keys: one hash tag per event, prefixes that cannot break it.

use flash_protocol::EventId;
use flash_protocol::keys::{RedisKeys, hash_tag};
use uuid::Uuid;

#[test]
fn every_queue_key_shares_the_event_hash_tag() {
    let event = EventId(Uuid::now_v7());
    let keys = RedisKeys::new("t:abc:").expect("valid prefix").queue(event);
    let tag = event.to_string();
    for key in keys.all().into_iter().chain([keys.channel.as_str()]) {
        assert_eq!(hash_tag(key), tag, "{key}");
        assert!(key.starts_with("t:abc:"), "{key}");
    }
    let mut distinct: Vec<&str> = keys.all().to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.all().len(), "keys must not collide");
}

#[test]
fn different_events_and_prefixes_never_share_keys() {
    let a = EventId(Uuid::now_v7());
    let b = EventId(Uuid::now_v7());
    let one = RedisKeys::new("one:").expect("prefix");
    let two = RedisKeys::new("two:").expect("prefix");
    assert_ne!(one.queue(a).seq, one.queue(b).seq);
    assert_ne!(one.queue(a).seq, two.queue(a).seq);
}

#[test]
fn channels_name_their_event() {
    use flash_protocol::keys::{channel_pattern, event_of_channel};
    let event = EventId(Uuid::now_v7());
    let keys = RedisKeys::new("p:").expect("prefix");
    assert_eq!(event_of_channel(&keys.queue(event).channel), Some(event));
    assert_eq!(event_of_channel("p:q:{not-a-uuid}:notify"), None);
    assert_eq!(event_of_channel("no tag"), None);
    assert_eq!(channel_pattern("p:"), "p:q:*:notify");
}

#[test]
fn prefixes_with_braces_are_refused() {
    assert!(RedisKeys::new("bad{tag}:").is_err());
    assert!(RedisKeys::new("bad}").is_err());
    assert_eq!(RedisKeys::default().prefix(), "flash:");
}

#[test]
fn hash_tag_follows_redis_cluster_rules() {
    assert_eq!(hash_tag("a{b}c"), "b");
    assert_eq!(hash_tag("a{}c"), "a{}c");
    assert_eq!(hash_tag("plain"), "plain");
    assert_eq!(hash_tag("{x}{y}"), "x");
    assert_eq!(hash_tag("a{unclosed"), "a{unclosed");
}

#[test]
fn every_limit_key_is_a_hash_tag_of_its_own_that_a_subject_cannot_break() {
    let keys = RedisKeys::new("p:").expect("prefix");
    let by_address = keys.limit("login-address", "203.0.113.7");
    assert_eq!(by_address, "p:rl:{login-address:203.0.113.7}");
    assert_eq!(hash_tag(&by_address), "login-address:203.0.113.7");
    let hostile = keys.limit("leave-user", "a}b{c");
    assert_eq!(hash_tag(&hostile), "leave-user:a_b_c");
    assert_ne!(
        keys.limit("login-address", "x"),
        keys.limit("signup-address", "x")
    );
    let known = keys.known_addresses("0a1b");
    assert_eq!(known, "p:known:{0a1b}");
    assert_eq!(hash_tag(&keys.known_addresses("}{")), "__");
}
