//! Test support: a fresh database per test (cloned from a migrated template), a Redis key
//! prefix per test, the origin served in-process on a free port, and dataset loading with SQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authz_core::dataset::Dataset;
use authz_origin::config::Config;
use authz_origin::state::AppState;
use tokio::sync::{OnceCell, oneshot};
use tokio_postgres::{Client, NoTls};

/// A superuser URL to create databases with.
pub fn admin_url() -> String {
    std::env::var("AUTHZ_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("AUTHZ_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The URL of database `name` on the admin server.
pub fn database_url(name: &str) -> String {
    let mut config: tokio_postgres::Config = admin_url().parse().expect("admin url");
    config.dbname(name);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{name}")
}

/// Connects and drives the connection in the background.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("connect {url}: {error}"));
    tokio::spawn(connection);
    client
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A migrated template database, created once per test process (named after the migrations'
/// content, so a changed migration gets a new template).
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            // The workspace's `migrations/`, found from the package that includes this file
            // (the origin, or the CLI in `origin/cli`).
            let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|dir| dir.join("migrations"))
                .find(|dir| dir.is_dir())
                .expect("migrations folder");
            let mut files: Vec<_> = std::fs::read_dir(folder)
                .expect("migrations folder")
                .map(|entry| entry.expect("entry").path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
                .collect();
            files.sort();
            for file in files {
                for byte in std::fs::read(file).expect("migration") {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            let name = format!("authz_template_{hash:016x}");
            let admin = connect(&admin_url()).await;
            // Serialize template creation across test processes.
            admin
                .execute("SELECT pg_advisory_lock(4242)", &[])
                .await
                .expect("lock");
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .expect("pg_database")
                .is_some();
            if !exists {
                let building = format!("{name}_building");
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
                    .await
                    .expect("drop stale template");
                admin
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .expect("create template");
                authz_origin::db::migrate::run(&database_url(&building))
                    .await
                    .expect("migrate template");
                admin
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .expect("rename template");
            }
            admin
                .execute("SELECT pg_advisory_unlock(4242)", &[])
                .await
                .expect("unlock");
            name
        })
        .await
}

/// A fresh migrated database, dropped when the value is dropped.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Clones the template into a new database.
    pub async fn new() -> Self {
        let template = template().await;
        let name = format!(
            "authz_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..8)
                .unwrap_or("x")
        );
        let admin = connect(&admin_url()).await;
        // CREATE DATABASE ... TEMPLATE fails while another session uses the template; retry.
        let mut attempts = 0;
        loop {
            match admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .await
            {
                Ok(()) => break,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("create test database: {error}"),
            }
        }
        Self {
            url: database_url(&name),
            name,
        }
    }

    /// A new connection to it.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async: use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin_url(), NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix unique to one test; its keys are deleted when dropped.
pub struct TestRedis {
    /// The prefix.
    pub prefix: String,
    /// The server URL.
    pub url: String,
}

impl TestRedis {
    /// A new prefix on the shared test server.
    pub fn new() -> Self {
        Self::on(&redis_url())
    }

    /// A new prefix on the server at `url`.
    pub fn on(url: &str) -> Self {
        Self {
            prefix: format!("authz_test:{}:", uuid::Uuid::new_v4().simple()),
            url: url.to_owned(),
        }
    }

    /// Every key under the prefix.
    pub async fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut connection)
            .await
            .unwrap_or_default()
    }
}

impl TestRedis {
    /// Waits (up to 5 s) until at least `count` keys under the prefix contain `part`, and
    /// returns those keys. Redis writes happen in the background of the answers.
    pub async fn wait_for_keys(&self, count: usize, part: &str) -> Vec<String> {
        let mut matching = Vec::new();
        for _ in 0..500 {
            matching = self
                .keys()
                .await
                .into_iter()
                .filter(|key| key.contains(part))
                .collect();
            if matching.len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        matching
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut connection) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        })
        .join();
    }
}

/// The service token tests use.
pub const SERVICE_TOKEN: &str = "test-service-token-0123456789";
/// The admin token tests use.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The JWT secret tests use.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";

/// The environment of a test origin on `db`, with Redis when given.
pub fn origin_vars(db: &TestDb, redis: Option<&TestRedis>) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("POSTGRES_PRIMARY_URL", db.url.as_str()),
        ("AUTHZ_SERVICE_TOKEN", SERVICE_TOKEN),
        ("AUTHZ_ADMIN_TOKEN", ADMIN_TOKEN),
        ("AUTHZ_JWT_SECRET", JWT_SECRET),
        ("AUTHZ_LISTEN", "127.0.0.1:0"),
        // Tests that want warming turn it on; elsewhere it would race their query counts.
        ("AUTHZ_WARMING_INTERVAL_SECONDS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(redis) = redis {
        vars.insert("REDIS_URL".to_owned(), redis.url.clone());
        vars.insert("AUTHZ_REDIS_PREFIX".to_owned(), redis.prefix.clone());
    }
    vars
}

/// An origin served in-process.
pub struct TestOrigin {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its state (for white-box waits such as "the notice was processed").
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestOrigin {
    /// Serves an origin with `vars` and waits until its change listener is connected.
    pub async fn start(vars: HashMap<String, String>) -> Self {
        let origin = Self::start_without_waiting(vars).await;
        origin.wait_listener().await;
        origin
    }

    /// Serves an origin without waiting for anything but the socket.
    pub async fn start_without_waiting(vars: HashMap<String, String>) -> Self {
        let config = Config::from_vars(&vars).expect("test config");
        let listener = authz_origin::connection::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::build(config).await.expect("state");
        let (sender, receiver) = oneshot::channel::<()>();
        let served = state.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = receiver.await;
            };
            let _ = authz_origin::server::serve(listener, served, shutdown).await;
        });
        Self {
            base,
            state,
            shutdown: Some(sender),
            task: Some(task),
        }
    }

    /// Waits until the change listener is connected.
    pub async fn wait_listener(&self) {
        for _ in 0..200 {
            if self.state.invalidation.is_connected() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the change listener did not connect");
    }

    /// Waits until this origin has processed the notice of `revision`.
    pub async fn wait_revision(&self, revision: i64) {
        let revision = u64::try_from(revision).expect("revision");
        for _ in 0..400 {
            if self.state.invalidation.newest_revision() >= revision {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("revision {revision} was never announced");
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        http_client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// `POST /v1/authorize` with the service token.
    pub async fn authorize(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.post("/v1/authorize", Some(SERVICE_TOKEN), body).await
    }

    /// A POST with an optional bearer token; the status and JSON body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut request = http_client()
            .post(format!("{}{path}", self.base))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// A GET with an optional bearer token; the status and JSON body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = http_client().get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One shared HTTP client.
pub fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("http client")
    })
}

/// Empties the seven decision tables.
pub async fn truncate(client: &Client) {
    client
        .batch_execute(
            "TRUNCATE users, teams, team_members, projects, project_teams, generations, \
             generation_shares CASCADE",
        )
        .await
        .expect("truncate");
}

/// Inserts `data` with plain SQL, shifting every share expiry by `shift_micros`. Team
/// memberships are upserts over the owner's implicit row (created by the trigger).
pub async fn load(client: &Client, data: &Dataset, shift_micros: i64) {
    for user in &data.users {
        client
            .execute(
                "INSERT INTO users (id, email, is_active) VALUES ($1, $2, $3)",
                &[
                    user.id.as_uuid(),
                    &format!("{}@example.test", user.id),
                    &user.is_active,
                ],
            )
            .await
            .expect("insert user");
    }
    for team in &data.teams {
        client
            .execute(
                "INSERT INTO teams (id, name, owner_id, is_active) VALUES ($1, 'team', $2, $3)",
                &[team.id.as_uuid(), team.owner_id.as_uuid(), &team.is_active],
            )
            .await
            .expect("insert team");
    }
    for member in &data.team_members {
        client
            .execute(
                "INSERT INTO team_members (team_id, user_id, role, is_active) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role, is_active = EXCLUDED.is_active",
                &[
                    member.team_id.as_uuid(),
                    member.user_id.as_uuid(),
                    &member.role.as_str(),
                    &member.is_active,
                ],
            )
            .await
            .expect("insert member");
    }
    for project in &data.projects {
        client
            .execute(
                "INSERT INTO projects (id, user_id, name, visibility) VALUES ($1, $2, 'project', $3)",
                &[
                    project.id.as_uuid(),
                    project.user_id.as_uuid(),
                    &project.visibility.as_str(),
                ],
            )
            .await
            .expect("insert project");
    }
    for link in &data.project_teams {
        client
            .execute(
                "INSERT INTO project_teams (project_id, team_id, access_level) VALUES ($1, $2, $3)",
                &[
                    link.project_id.as_uuid(),
                    link.team_id.as_uuid(),
                    &link.access_level.as_str(),
                ],
            )
            .await
            .expect("insert link");
    }
    for generation in &data.generations {
        client
            .execute(
                "INSERT INTO generations (id, user_id, project_id, status) VALUES ($1, $2, $3, $4)",
                &[
                    generation.id.as_uuid(),
                    generation.user_id.as_uuid(),
                    &generation.project_id.map(|id| *id.as_uuid()),
                    &generation.status.as_str(),
                ],
            )
            .await
            .expect("insert generation");
    }
    for share in &data.generation_shares {
        let expires_at = share
            .expires_at
            .map(|at| micros_to_system_time(at.as_micros() + shift_micros));
        client
            .execute(
                "INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level, expires_at, is_active) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    share.generation_id.as_uuid(),
                    share.shared_with_user_id.as_uuid(),
                    &share.permission_level.as_str(),
                    &expires_at,
                    &share.is_active,
                ],
            )
            .await
            .expect("insert share");
    }
}

/// A µs timestamp as `SystemTime` (what tokio-postgres binds to `timestamptz`).
pub fn micros_to_system_time(micros: i64) -> std::time::SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        std::time::UNIX_EPOCH + magnitude
    } else {
        std::time::UNIX_EPOCH - magnitude
    }
}

/// The current revision.
pub async fn current_revision(client: &Client) -> i64 {
    client
        .query_one("SELECT authz_current_revision()", &[])
        .await
        .expect("revision")
        .get(0)
}
