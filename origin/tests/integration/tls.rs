//! TLS to Postgres against a real TLS server: the test makes a CA and a server certificate
//! for `localhost` with the machine's `openssl`, starts its own `postgres` with `ssl=on` on a
//! free port, and connects with each `sslmode`: `verify-full` with the right CA succeeds (the
//! pools, the change listener and migrate all go over TLS); a wrong CA or a host the
//! certificate was not issued for fails, and an origin refuses to start naming the variable;
//! `verify-ca` accepts the other host name; `require` without a CA connects encrypted;
//! `disable` does not encrypt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use authz_origin::config::Config;
use authz_origin::postgres_tls::{Mode, connect, is_tls_refusal, target};
use authz_origin::state::AppState;

use crate::faults::{PgCluster, vars_on};
use crate::support::{self, TestOrigin};

/// A CA, a second unrelated CA, and a server certificate for `localhost` signed by the first.
struct Certificates {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Certificates {
    fn make() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("authz-tls-{}", &id[..12]));
        std::fs::create_dir_all(&dir).expect("certificate dir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let subject = format!("/CN=authz test {ca}");
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            args.extend([
                "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subject,
            ]);
            openssl(&dir, &args);
        }
        let mut request = vec!["req"];
        request.extend(ec);
        request.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&dir, &request);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).expect("read certificate")
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `postgres://postgres@{host}:{port}/{database}?{query}`.
fn url(host: &str, cluster: &PgCluster, database: &str, query: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/{database}?{query}",
        cluster.port()
    )
}

/// Whether the session at `url` is encrypted (`pg_stat_ssl`), or the connection error.
async fn encrypted(url: &str) -> Result<bool, tokio_postgres::Error> {
    let target = target(url).expect("tls settings");
    let (client, _driver) = connect(&target).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn postgres_over_tls_honours_sslmode_and_sslrootcert() {
    let certificates = Certificates::make();
    let cluster = PgCluster::start_with_tls(
        &certificates.read("server.crt"),
        &certificates.read("server.key"),
    )
    .await;
    let ca = format!("sslrootcert={}", certificates.path("ca.crt"));
    let other_ca = format!("sslrootcert={}", certificates.path("other-ca.crt"));

    // verify-full with the right CA and the certificate's host name.
    let full = url(
        "localhost",
        &cluster,
        "postgres",
        &format!("sslmode=verify-full&{ca}"),
    );
    assert_eq!(target(&full).expect("settings").mode, Mode::VerifyFull);
    assert!(
        encrypted(&full)
            .await
            .expect("verify-full with the right CA")
    );
    let admin = support::connect(&url("127.0.0.1", &cluster, "postgres", "sslmode=disable")).await;
    admin
        .batch_execute("CREATE DATABASE authz")
        .await
        .expect("create database");
    let app = url(
        "localhost",
        &cluster,
        "authz",
        &format!("sslmode=verify-full&{ca}"),
    );
    authz_origin::db::migrate::run(&app)
        .await
        .expect("migrate over verify-full");

    // A wrong CA, and a host the certificate does not name: refused by TLS.
    let wrong_ca = url(
        "localhost",
        &cluster,
        "postgres",
        &format!("sslmode=verify-full&{other_ca}"),
    );
    let error = encrypted(&wrong_ca)
        .await
        .expect_err("a wrong CA is refused");
    assert!(is_tls_refusal(&error), "{error}");
    let wrong_host = url(
        "127.0.0.1",
        &cluster,
        "postgres",
        &format!("sslmode=verify-full&{ca}"),
    );
    let error = encrypted(&wrong_host)
        .await
        .expect_err("a wrong host is refused");
    assert!(is_tls_refusal(&error), "{error}");
    // verify-ca checks the chain only, so the other name passes, the other CA does not.
    let chain_only = url(
        "127.0.0.1",
        &cluster,
        "postgres",
        &format!("sslmode=verify-ca&{ca}"),
    );
    assert!(
        encrypted(&chain_only)
            .await
            .expect("verify-ca ignores the host name")
    );
    let chain_wrong = url(
        "127.0.0.1",
        &cluster,
        "postgres",
        &format!("sslmode=verify-ca&{other_ca}"),
    );
    assert!(encrypted(&chain_wrong).await.is_err());
    // require without a CA: encrypted, nothing verified; prefer likewise; disable: plain.
    assert!(
        encrypted(&url("127.0.0.1", &cluster, "postgres", "sslmode=require"))
            .await
            .expect("require")
    );
    assert!(
        encrypted(&url("127.0.0.1", &cluster, "postgres", ""))
            .await
            .expect("prefer")
    );
    assert!(
        !encrypted(&url("127.0.0.1", &cluster, "postgres", "sslmode=disable"))
            .await
            .expect("disable")
    );

    // An origin over a wrong CA does not start, and says which variable is at fault.
    let wrong_app = url(
        "localhost",
        &cluster,
        "authz",
        &format!("sslmode=verify-full&{other_ca}"),
    );
    let config = Config::from_vars(&vars_on(&wrong_app)).expect("config");
    let refused = AppState::build(config).await.expect_err("refused at start");
    let message = format!("{refused:#}");
    assert!(message.contains("POSTGRES_PRIMARY_URL"), "{message}");
    // A root file that does not exist is a configuration error naming the variable.
    let missing = url(
        "localhost",
        &cluster,
        "authz",
        "sslmode=verify-full&sslrootcert=/no/such/ca.pem",
    );
    let error = Config::from_vars(&vars_on(&missing)).expect_err("missing root file");
    assert!(
        error.to_string().contains("POSTGRES_PRIMARY_URL"),
        "{error}"
    );

    // The origin over verify-full: its pools and its change listener speak TLS.
    let origin = TestOrigin::start(vars_on(&app)).await;
    let (status, body) = origin
        .authorize(serde_json::json!({
            "user_id": uuid::Uuid::new_v4(),
            "resource_type": "generation",
            "resource_id": uuid::Uuid::new_v4(),
            "operation": "read",
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["granted"], false);
    let sessions: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.application_name LIKE 'authz-origin/%'",
            &[],
        )
        .await
        .expect("count tls sessions")
        .get(0);
    assert!(
        sessions >= 2,
        "the listener and a pooled connection over TLS: {sessions}"
    );
    let plain: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE NOT s.ssl AND a.application_name LIKE 'authz-origin/%'",
            &[],
        )
        .await
        .expect("count plain sessions")
        .get(0);
    assert_eq!(plain, 0);
    origin.stop().await;
}

/// A `redis-server` serving only TLS (`--port 0 --tls-port`) with the test's certificate.
struct TlsRedis {
    port: u16,
    child: std::process::Child,
}

impl TlsRedis {
    async fn start(certificates: &Certificates) -> Self {
        let port = crate::faults::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--tls-cert-file", &certificates.path("server.crt")])
            .args(["--tls-key-file", &certificates.path("server.key")])
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&certificates.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        // Owned before waiting, so that a failed start still stops it (Drop).
        let server = Self { port, child };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("redis-server --tls-port {port} did not listen");
    }

    fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An origin whose Redis tiers all point at `redis`, trusting `ca`, with its own key prefix.
fn redis_vars(
    db: &support::TestDb,
    redis: &TlsRedis,
    ca: &str,
    prefix: &str,
) -> HashMap<String, String> {
    let mut vars = support::origin_vars(db, None);
    vars.insert("REDIS_URL".to_owned(), redis.url());
    vars.insert("AUTHZ_REDIS_CA_FILE".to_owned(), ca.to_owned());
    vars.insert("AUTHZ_REDIS_PREFIX".to_owned(), prefix.to_owned());
    vars
}

fn question() -> serde_json::Value {
    serde_json::json!({
        "user_id": uuid::Uuid::new_v4(),
        "resource_type": "generation",
        "resource_id": uuid::Uuid::new_v4(),
        "operation": "read",
    })
}

#[tokio::test]
async fn redis_over_tls_with_a_private_ca_and_the_breaker_on_a_refused_certificate() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates).await;
    let db = support::TestDb::new().await;
    let prefix = format!(
        "authz-tls-{}:",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );

    // The right CA: every tier answers over TLS and decisions are written to it. A loaded
    // machine can take longer than the default 50 ms command deadline for a tier's first
    // command (it opens the connection: a TLS handshake), and five misses open the breaker
    // for 30 s: this half gives each command a second, which is not what it tests.
    let mut vars = redis_vars(&db, &redis, &certificates.path("ca.crt"), &prefix);
    vars.insert("AUTHZ_REDIS_TIMEOUT_MS".to_owned(), "1000".to_owned());
    let origin = TestOrigin::start(vars).await;
    let (status, body) = origin.authorize(question()).await;
    assert_eq!(status, 200, "{body}");
    // Each tier's first ping opens its connection: poll, up to 10 s.
    let mut health = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, answer) = origin
            .get("/api/v1/health", Some(support::ADMIN_TOKEN))
            .await;
        assert_eq!(status, 200, "{answer}");
        health = answer;
        if health["status"] == "ok" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(health["status"], "ok", "{health}");
    for tier in ["authorization", "session", "generation", "user"] {
        assert_eq!(
            health["redis"]["tiers"][tier]["reachable"], true,
            "{tier}: {health}"
        );
    }
    let ca = std::fs::read(certificates.dir.join("ca.crt")).expect("ca");
    let client = redis::Client::build_with_tls(
        redis.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .expect("tls client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect over tls");
    let mut written: Vec<String> = Vec::new();
    // The write is in the background, under the command deadline: a write that missed it
    // while the tier's connection was being opened is dropped (Redis is a cache), so each
    // round asks a new question, up to 10 s.
    for _ in 0..100 {
        let (status, body) = origin.authorize(question()).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        written = redis::cmd("KEYS")
            .arg(format!("{prefix}authorization:*"))
            .query_async(&mut connection)
            .await
            .expect("keys");
        if !written.is_empty() {
            break;
        }
    }
    assert!(
        !written.is_empty(),
        "the decision was written to Redis over TLS"
    );
    origin.stop().await;

    // A CA that did not sign the server: Redis is unreachable, the breaker opens, health says
    // degraded, and decisions still come from Postgres.
    let origin = TestOrigin::start(redis_vars(
        &db,
        &redis,
        &certificates.path("other-ca.crt"),
        &prefix,
    ))
    .await;
    for _ in 0..8 {
        let (status, body) = origin.authorize(question()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["source"], "db", "{body}");
    }
    // The tier's prefix cannot be claimed (its marker is unreadable): the tier is skipped, and
    // the failed attempts (one a second) and health pings open the breaker; poll, up to 10 s.
    let mut health = serde_json::Value::Null;
    for _ in 0..100 {
        health = origin
            .get("/api/v1/health", Some(support::ADMIN_TOKEN))
            .await
            .1;
        if health["redis"]["tiers"]["authorization"]["breaker"] == "open" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        health["redis"]["tiers"]["authorization"]["owner"], "unclaimed",
        "{health}"
    );
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["redis"]["tiers"]["authorization"]["reachable"], false,
        "{health}"
    );
    assert_eq!(
        health["redis"]["tiers"]["authorization"]["breaker"], "open",
        "{health}"
    );
    origin.stop().await;
}
