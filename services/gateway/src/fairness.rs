//! The published draw (`sha256-commit-reveal-v1`, [`flash_protocol::draw`]): the fairness
//! record of a queue and its participants file, made from what Redis holds.
//!
//! The participants file is the draw's sorted set read in chunks, each member written as its
//! pseudonym: nothing is kept per replica but the file's hash, which the first replica to
//! compute it stores beside the queue (the set never changes after opening). Computing it is
//! one pass at a time per replica, so a crowd asking at once costs one pass, not one each.

use axum::body::Bytes;
use flash_protocol::EventId;
use flash_protocol::draw::{ALGORITHM, Fairness, PARTICIPANT_LINE, participants_path, pseudonym};
use futures::{Stream, StreamExt as _};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::waiting_room::{DrawState, RoomError, WaitingRoom};

/// Participants read from Redis per call (about 1 MB of members, 650 KB of file).
pub const CHUNK: u64 = 10_000;

/// Makes fairness records; one per gateway.
#[derive(Default)]
pub struct Draws {
    /// Held while a participants file's hash is computed.
    hashing: Mutex<()>,
}

/// What a queue's draw shows, or why it shows nothing yet.
pub enum Published {
    /// No queue for this event.
    Missing,
    /// The fairness record (with the file's count and hash once opened).
    Record(Fairness),
}

impl Draws {
    /// The fairness record of `event`'s draw.
    pub async fn record(&self, room: &WaitingRoom, event: EventId) -> Result<Published, RoomError> {
        let Some(mut draw) = room.draw_state(event).await? else {
            return Ok(Published::Missing);
        };
        let mut record = Fairness {
            event_id: event,
            algorithm: ALGORITHM.into(),
            commitment: draw.seed.map(|seed| seed.commitment()),
            seed: None,
            opened_at: None,
            participants_count: None,
            participants_sha256: None,
            participants_url: None,
        };
        let (Some(seed), Some(opened_at_ms)) = (draw.seed, draw.opened_at_ms) else {
            return Ok(Published::Record(record));
        };
        if draw.participants_sha256.is_none() {
            let _one_at_a_time = self.hashing.lock().await;
            // Another request may have computed it meanwhile, here or on another replica.
            draw = room.draw_state(event).await?.unwrap_or(draw);
            if draw.participants_sha256.is_none() {
                let sha = file_hash(room, event, &draw).await?;
                room.keep_participants_hash(event, &sha).await?;
                draw.participants_sha256 = Some(sha);
            }
        }
        record.seed = Some(seed.to_hex());
        record.opened_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(opened_at_ms) * 1_000_000).ok();
        record.participants_count = Some(draw.participants);
        record.participants_sha256 = draw.participants_sha256;
        record.participants_url = Some(participants_path(event));
        Ok(Published::Record(record))
    }
}

/// Lines `from..from + count` of the participants file.
async fn lines(
    room: &WaitingRoom,
    event: EventId,
    from: u64,
    count: u64,
) -> Result<Vec<u8>, RoomError> {
    let users = room.participants(event, from, count).await?;
    let mut out = Vec::with_capacity(users.len() * PARTICIPANT_LINE);
    for user in users {
        out.extend_from_slice(pseudonym(event, user).as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// The SHA-256 of the participants file, read as it would be sent.
async fn file_hash(
    room: &WaitingRoom,
    event: EventId,
    draw: &DrawState,
) -> Result<String, RoomError> {
    let mut hasher = Sha256::new();
    let mut chunks = std::pin::pin!(file(room.clone(), event, draw.participants));
    while let Some(chunk) = chunks.next().await {
        hasher.update(chunk?);
    }
    Ok(flash_protocol::draw::hex(&hasher.finalize()))
}

/// The participants file of an opened draw of `total` participants, read as it is sent.
pub fn file(
    room: WaitingRoom,
    event: EventId,
    total: u64,
) -> impl Stream<Item = Result<Bytes, RoomError>> {
    futures::stream::try_unfold(0u64, move |from| {
        let room = room.clone();
        async move {
            if from >= total {
                return Ok(None);
            }
            let chunk = lines(&room, event, from, CHUNK.min(total - from)).await?;
            Ok(Some((Bytes::from(chunk), from + CHUNK)))
        }
    })
}
