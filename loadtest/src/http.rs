//! A lean HTTP/1.1 client: one keep-alive connection per worker, so the load generator
//! spends its CPU on requests rather than on pooling.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// Opens a TCP connection to `addr`, from `source` when given (to spread many connections
/// over several loopback addresses).
pub async fn connect_tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let stream = connect_tcp(addr, source)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Whether the server closed the connection (a pooled connection is then dropped).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.request_with(method, path, bearer, json, &[]).await
    }

    /// [`request`](Self::request) that must be answered `expected`; otherwise fails with
    /// `what`, the status and the answer's body.
    pub async fn expect(
        &mut self,
        what: &str,
        expected: StatusCode,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        let (status, body) = self.request(method, path, bearer, json).await?;
        if status != expected {
            anyhow::bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }

    /// [`request`](Self::request) with extra headers.
    pub async fn request_with(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        json: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = bearer {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match json {
            Some(json) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .sender
            .send_request(request.body(body).context("request")?)
            .await
            .context("sending")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("body")?
            .to_bytes();
        Ok((status, body))
    }
}
