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

use crate::faults::PgCluster;
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

fn vars(url: &str) -> HashMap<String, String> {
    [
        ("POSTGRES_PRIMARY_URL", url),
        ("AUTHZ_SERVICE_TOKEN", support::SERVICE_TOKEN),
        ("AUTHZ_ADMIN_TOKEN", support::ADMIN_TOKEN),
        ("AUTHZ_JWT_SECRET", support::JWT_SECRET),
        ("AUTHZ_LISTEN", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
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
    let config = Config::from_vars(&vars(&wrong_app)).expect("config");
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
    let error = Config::from_vars(&vars(&missing)).expect_err("missing root file");
    assert!(
        error.to_string().contains("POSTGRES_PRIMARY_URL"),
        "{error}"
    );

    // The origin over verify-full: its pools and its change listener speak TLS.
    let origin = TestOrigin::start(vars(&app)).await;
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
