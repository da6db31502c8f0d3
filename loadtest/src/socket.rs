//! WebSocket clients of the waiting room, with small buffers (a load generator holds tens of
//! thousands) and a chosen source address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use flash_protocol::EventId;
use flash_protocol::ws::{ClientFrame, ServerFrame};
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::http::connect_tcp;

pub type Socket = WebSocketStream<TcpStream>;

/// Opens `/queue/v1/events/{event}/ws` on `addr` and authenticates with `token`.
pub async fn open(
    addr: SocketAddr,
    source: Option<IpAddr>,
    event: EventId,
    token: &str,
) -> anyhow::Result<Socket> {
    let stream = connect_tcp(addr, source).await?;
    let url = format!("ws://{addr}/queue/v1/events/{event}/ws");
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let (mut socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .context("upgrade")?;
    let auth = serde_json::to_string(&ClientFrame::Auth {
        token: token.to_owned(),
    })?;
    socket.send(Message::Text(auth.into())).await?;
    Ok(socket)
}

/// The next contract frame (pings skipped) within `within`.
pub async fn next_frame(socket: &mut Socket, within: Duration) -> anyhow::Result<ServerFrame> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no frame in time")?;
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(other)) => bail!("unexpected message {other:?}"),
            Some(Err(error)) => return Err(error.into()),
            None => bail!("connection ended"),
        }
    }
}
