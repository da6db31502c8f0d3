//! What a benchmark prepares outside its measured window: users' access tokens and events.

use flash_kit::amqp::publish;
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, Role};
use flash_protocol::event::{EventStatus, QueueSettings};
use flash_protocol::messages::{EventCreated, EventQueueInfo, Names};
use flash_protocol::{EventId, UserId};
use flash_tokens::SigningKey;
use time::OffsetDateTime;

/// Access tokens signed with the api's local development key, as a suite started with
/// `FLASH_DEV_KEYS=true` accepts them. Benchmarks of the gateway alone use these; drills of the
/// whole suite log in through the api.
pub struct DevTokens {
    key: SigningKey,
}

impl DevTokens {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            key: SigningKey::dev(flash_tokens::keys::DEV_ACCESS_KEY)?,
        })
    }

    /// A token for `user` valid for `ttl_s` seconds.
    pub fn token(&self, user: UserId, role: Role, ttl_s: i64) -> anyhow::Result<String> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Ok(self.key.sign(&AccessClaims {
            sub: user,
            role,
            iss: ACCESS_ISSUER.into(),
            aud: ACCESS_AUDIENCE.into(),
            iat: now,
            exp: now + ttl_s,
        })?)
    }
}

/// Announces an on-sale event on `flash.events` as the api would, so the gateway opens its
/// queue.
pub async fn announce_event(
    amqp_url: &str,
    names: &Names,
    queue: QueueSettings,
) -> anyhow::Result<EventId> {
    let connection =
        lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    let event = EventId::new_v7();
    let now = OffsetDateTime::now_utc();
    let message = EventCreated {
        event: EventQueueInfo {
            event_id: event,
            name: format!("bench {event}"),
            sale_opens_at: now,
            starts_at: now + time::Duration::days(1),
            status: EventStatus::OnSale,
        },
        queue,
    };
    publish(&channel, names, &event.to_string(), &message).await?;
    drop(connection.close(200, "announced".into()).await);
    Ok(event)
}
