//! Test helpers (feature `testing`): every test gets its own database, Redis key prefix and
//! broker names, so tests run in parallel against one set of real stores and leave nothing
//! behind (each helper cleans up on drop, also when the test panics). [`peer`] holds the
//! proptest strategies for what peers send (AMQP deliveries, message bodies, instants).

pub mod peer;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use flash_protocol::keys::RedisKeys;
use flash_protocol::messages::Names;
use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// Postgres server used by tests (`DATABASE_URL`; any database on it).
#[must_use]
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis used by tests (`REDIS_URL`).
#[must_use]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// RabbitMQ used by tests (`AMQP_URL`).
#[must_use]
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A short random name part, unique per call.
#[must_use]
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// `url` with its path (database name) replaced by `database`.
///
/// # Panics
/// When `url` is not a URL: a broken test environment.
#[must_use]
pub fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("DATABASE_URL is a URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// Runs `work` to completion on a private runtime in a new thread: for cleanup in `Drop`,
/// which may run inside or outside a runtime.
fn run_detached<F>(work: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(work()),
            Err(error) => eprintln!("cleanup runtime: {error}"),
        }
    });
    drop(thread.join());
}

/// A database of its own, migrated by whoever uses it, dropped (with force) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    /// URL of the new database.
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database `flash_test_<random>` on the test server.
    ///
    /// # Panics
    /// When Postgres is unreachable: the test cannot run.
    pub async fn create() -> Self {
        let admin_url = with_database(&database_url(), "postgres");
        let name = format!("flash_test_{}", unique_suffix());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("postgres reachable for tests (make deps)");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create test database");
        drop(admin.close().await);
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        run_detached(move || async move {
            let Ok(mut admin) = PgConnection::connect(&admin_url).await else {
                return;
            };
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(error) = sqlx::query(&sql).execute(&mut admin).await {
                eprintln!("drop test database {name}: {error}");
            }
        });
    }
}

/// A Redis key prefix of its own; every key under it is deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    #[must_use]
    pub fn new() -> Self {
        Self {
            url: redis_url(),
            prefix: format!("test:{}:", unique_suffix()),
        }
    }

    /// Key builders under this test's prefix.
    ///
    /// # Panics
    /// Never: the generated prefix has no braces.
    #[must_use]
    pub fn keys(&self) -> RedisKeys {
        RedisKeys::new(self.prefix.clone()).expect("generated prefix is valid")
    }

    /// A service's Redis settings for this test's prefix (one node).
    #[must_use]
    pub fn config(&self) -> crate::stores::RedisConfig {
        crate::stores::RedisConfig {
            url: self.url.clone(),
            mode: crate::stores::RedisMode::Node,
            key_prefix: self.prefix.clone(),
        }
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        drop(delete_prefixed(&mut conn, &self.prefix));
    }
}

/// Keys asked of Redis per `SCAN` call when looking for one prefix's keys. A shared Redis may
/// hold far more keys than a test's own (a `make up` beside the tests keeps its buyers' keys
/// for days); with Redis's default of 10 per call, a cleanup over 400,000 keys takes 40,000
/// round trips and starves the tests running beside it.
pub const SCAN_COUNT: usize = 10_000;

/// What [`delete_prefixed`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Keys deleted.
    pub keys: usize,
    /// `SCAN` calls made to find them.
    pub scans: usize,
}

/// Deletes every key under `prefix` (the keys found by `SCAN … MATCH prefix* COUNT`
/// [`SCAN_COUNT`], deleted in chunks).
///
/// # Errors
/// When Redis fails a call.
pub fn delete_prefixed(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<Deleted> {
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut deleted = Deleted { keys: 0, scans: 0 };
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(conn)?;
        deleted.scans += 1;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(&keys).exec(conn)?;
            deleted.keys += keys.len();
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// A Redis Cluster of its own (three primaries on free loopback ports, `redis-server` and
/// `redis-cli` from `PATH`) for tests of the cluster client; stopped and deleted on drop.
pub struct TestRedisCluster {
    /// Every node, as a cluster-mode `REDIS_URL` lists them (comma-separated).
    pub url: String,
    pub prefix: String,
    nodes: Vec<std::process::Child>,
    dir: std::path::PathBuf,
}

impl TestRedisCluster {
    /// Starts the nodes, joins them into one cluster covering every slot and waits until
    /// each says the cluster is ok.
    ///
    /// # Panics
    /// When the cluster does not start (no `redis-server` or `redis-cli`, no free ports).
    pub async fn start() -> Self {
        let ports = free_cluster_ports(3);
        let dir = std::env::temp_dir().join(format!("flash-test-cluster-{}", unique_suffix()));
        let mut cluster = Self {
            url: ports
                .iter()
                .map(|port| format!("redis://127.0.0.1:{port}"))
                .collect::<Vec<_>>()
                .join(","),
            prefix: format!("test:{}:", unique_suffix()),
            nodes: Vec::new(),
            dir,
        };
        for port in &ports {
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("cluster node directory");
            let node = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&node_dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server starts a cluster node");
            cluster.nodes.push(node);
        }
        for port in &ports {
            wait_for_node(*port, "PING", "PONG").await;
        }
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        for port in &ports {
            wait_for_node(*port, "CLUSTER INFO", "cluster_state:ok").await;
        }
        cluster
    }

    /// Key builders under this test's prefix.
    ///
    /// # Panics
    /// Never: the generated prefix has no braces.
    #[must_use]
    pub fn keys(&self) -> RedisKeys {
        RedisKeys::new(self.prefix.clone()).expect("generated prefix is valid")
    }
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            drop(node.kill());
            drop(node.wait());
        }
        drop(std::fs::remove_dir_all(&self.dir));
    }
}

/// `count` consecutive ports that are free, and so are their cluster bus ports (+10,000).
fn free_cluster_ports(count: u16) -> Vec<u16> {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    for _ in 0..200 {
        let random = uuid::Uuid::new_v4().as_u128();
        let base = 20_000 + u16::try_from(random % 20_000).unwrap_or(0);
        let ports: Vec<u16> = (base..base + count).collect();
        if ports.iter().all(|&port| free(port) && free(port + 10_000)) {
            return ports;
        }
    }
    panic!("no free ports for a test cluster");
}

/// Waits until the node on `port` answers `command` with a reply containing `expect`.
async fn wait_for_node(port: u16, command: &str, expect: &str) {
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..200 {
        let reply = redis::Client::open(url.as_str())
            .and_then(|client| client.get_connection())
            .and_then(|mut conn| {
                let mut words = command.split(' ');
                let mut cmd = redis::cmd(words.next().unwrap_or_default());
                for word in words {
                    cmd.arg(word);
                }
                cmd.query::<String>(&mut conn)
            });
        if reply.is_ok_and(|text| text.contains(expect)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cluster node {port} never answered {command} with {expect}");
}

/// Broker names of its own (a unique prefix on every exchange and queue); deleted on drop.
#[derive(Debug)]
pub struct TestAmqp {
    pub url: String,
    pub names: Names,
}

impl TestAmqp {
    #[must_use]
    pub fn new() -> Self {
        Self {
            url: amqp_url(),
            names: Names::new(format!("test.{}.", unique_suffix())),
        }
    }
}

impl Default for TestAmqp {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestAmqp {
    fn drop(&mut self) {
        let url = self.url.clone();
        let names = self.names.clone();
        run_detached(move || async move {
            let Ok(connection) =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
            else {
                return;
            };
            if let Ok(channel) = connection.create_channel().await {
                drop(crate::amqp::remove_topology(&channel, &names).await);
            }
            drop(connection.close(200, "test cleanup".into()).await);
        });
    }
}

/// A TCP proxy in front of a real store, so a test can cut the store off (listener closed,
/// every connection dropped) and bring it back on the same address, or hold its answers back
/// for a while — an outage or a stall without stopping the store other tests share.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    generation: Mutex<CancellationToken>,
    /// Until when the store's bytes wait before they are passed on.
    held_until: Arc<Mutex<Option<tokio::time::Instant>>>,
}

/// Passes `from`'s bytes to `to`, each read waiting while the proxy holds answers back.
async fn pass_on(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    held_until: Option<&Mutex<Option<tokio::time::Instant>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        let until = held_until.and_then(|held| {
            *held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        to.write_all(&buffer[..read]).await?;
    }
}

impl TcpProxy {
    /// Starts forwarding a new local port to `target`.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(target: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = Arc::new(Self {
            addr,
            target,
            generation: Mutex::new(CancellationToken::new()),
            held_until: Arc::default(),
        });
        proxy.spawn_accept(listener);
        proxy
    }

    /// The address clients should connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` with its host and port replaced by the proxy's.
    ///
    /// # Panics
    /// When `url` is not a URL with a host.
    #[must_use]
    pub fn url_for(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("store URL");
        parsed
            .set_host(Some(&self.addr.ip().to_string()))
            .expect("URL with a host");
        parsed
            .set_port(Some(self.addr.port()))
            .expect("URL with a port");
        parsed.to_string()
    }

    fn current(&self) -> CancellationToken {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn spawn_accept(&self, listener: TcpListener) {
        let stop = self.current();
        let target = self.target;
        let held_until = Arc::clone(&self.held_until);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((inbound, _)) = accepted else {
                    continue;
                };
                let (stop, held_until) = (stop.clone(), Arc::clone(&held_until));
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_reads, client_writes) = inbound.into_split();
                    let (store_reads, store_writes) = outbound.into_split();
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = async {
                            tokio::join!(
                                pass_on(client_reads, store_writes, None),
                                pass_on(store_reads, client_writes, Some(&held_until)),
                            )
                        } => {}
                    }
                });
            }
        });
    }

    /// Holds every byte the store sends back for `duration` from now, then passes it on: the
    /// requests reach the store at once, their answers come late.
    pub fn hold_answers(&self, duration: std::time::Duration) {
        *self
            .held_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(tokio::time::Instant::now() + duration);
    }

    /// Closes the listener and every proxied connection.
    pub fn cut(&self) {
        self.current().cancel();
    }

    /// Listens again on the same address.
    ///
    /// # Panics
    /// When the port cannot be bound again.
    pub async fn restore(&self) {
        {
            let mut generation = self
                .generation
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *generation = CancellationToken::new();
        }
        let mut last_error = None;
        for _ in 0..50 {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            match socket.bind(self.addr).and_then(|()| socket.listen(1024)) {
                Ok(listener) => {
                    self.spawn_accept(listener);
                    return;
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("cannot re-bind proxy on {}: {last_error:?}", self.addr);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.current().cancel();
    }
}

/// A service running in the test's runtime on a free port, reachable over real TCP.
#[derive(Debug)]
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Spawns `run(shutdown)` for a service bound to `port`.
    pub fn spawn<F>(port: u16, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(shutdown.clone()));
        Self {
            base: format!("http://127.0.0.1:{port}"),
            shutdown,
            server,
        }
    }

    /// `GET` a path of the service.
    ///
    /// # Panics
    /// When the service does not answer at all.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `/ready`: status and report.
    ///
    /// # Panics
    /// When the body is not a readiness report.
    pub async fn ready(&self) -> (u16, crate::ops::ReadyReport) {
        let response = self.get("/ready").await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a readiness report"))
    }

    /// Polls `/ready` until it answers `status` (at most 10 s).
    ///
    /// # Panics
    /// When it does not within the time.
    pub async fn wait_ready(&self, status: u16) -> crate::ops::ReadyReport {
        let mut last = None;
        for _ in 0..100 {
            let (actual, report) = self.ready().await;
            if actual == status {
                return report;
            }
            last = Some((actual, report));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("/ready never answered {status}; last: {last:?}");
    }

    /// Polls `/ready` until it names `store` as degraded, still answering 200 (at most 10 s).
    ///
    /// # Panics
    /// When it does not within the time, or answers anything but 200 meanwhile.
    pub async fn wait_degraded(&self, store: &str) -> crate::ops::ReadyReport {
        for _ in 0..100 {
            let (status, report) = self.ready().await;
            assert_eq!(status, 200, "a degraded service stays ready: {report:?}");
            if report.degraded.iter().any(|name| name == store) {
                return report;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("/ready never named {store} as degraded");
    }

    /// Fires the shutdown and waits for a clean stop (at most 10 s).
    ///
    /// # Panics
    /// When the service does not stop in time or stops with an error.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), self.server)
            .await
            .expect("stops within 10 s");
        stopped
            .expect("server task")
            .expect("server stopped cleanly");
    }
}

/// A generated document as it is committed: pretty JSON ending with a newline.
///
/// # Panics
/// When `document` cannot be serialised.
#[must_use]
pub fn pretty_json<T: serde::Serialize>(document: &T) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("the document serialises");
    text.push('\n');
    text
}

/// Checks that `actual` is the committed file at `path` (a document generated from the code,
/// such as an OpenAPI document); with `BLESS=1` in the environment the file is rewritten
/// instead, to be reviewed and committed.
///
/// # Panics
/// When they differ (naming the first differing line) or the file cannot be read or written.
pub fn assert_golden(path: &std::path::Path, actual: &str) {
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the golden file's folder");
        }
        std::fs::write(path, actual).expect("write the golden file");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != actual {
        let line = committed
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(actual.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} differs from what the code generates (first at line {line}: committed {:?}, \
             generated {:?}); run the test with BLESS=1 to rewrite it, then review and commit it",
            path.display(),
            committed.lines().nth(line - 1).unwrap_or(""),
            actual.lines().nth(line - 1).unwrap_or(""),
        );
    }
}
