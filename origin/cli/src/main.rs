//! `authz-origin`: serve the API, apply migrations, seed a dataset, validate a deployment, mint
//! a development token.
//!
//! A thin command line over the origin's library and the tool crates. It reads the environment
//! only through the origin's table of variables (`authz_origin::config::vars`), so one table
//! holds every variable the command reads.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use authz_core::UserId;
use authz_core::jwt::{JwtKey, sign_hs256};
use authz_origin::config::{self, Config, Env};
use authz_origin::state::AppState;
use authz_origin::{db, server};
use authz_seed::SeedArgs;
use authz_validate as validate;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "authz-origin",
    version,
    about = "The authorization origin service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (configuration from the environment; see the README).
    Serve {
        /// Apply pending migrations before serving.
        #[arg(long)]
        migrate: bool,
    },
    /// Apply pending migrations to POSTGRES_PRIMARY_URL (or DATABASE_URL).
    Migrate,
    /// Replace the dataset with a generated one (COPY; deterministic for a given seed).
    Seed(SeedArgs),
    /// Validate a deployment: schema, Redis tiers, latency, concurrency and the improvement
    /// over a naive baseline, as ✅/❌ lines; exits non-zero when any check fails. Reads the
    /// origin's environment (REDIS_*, AUTHZ_REDIS_PREFIX, POSTGRES_REPLICA_URL, ...).
    Validate(Box<ValidateArgs>),
    /// Print a development end-user JWT signed with AUTHZ_JWT_SECRET.
    Token {
        /// The user id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3_600)]
        ttl_seconds: i64,
    },
}

/// The arguments of `validate` (see `authz_validate`).
#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// The database (else POSTGRES_PRIMARY_URL, else DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// The running origin to measure, e.g. http://127.0.0.1:8080 (performance, concurrency,
    /// improvement) [env: AUTHZ_ORIGIN_URL, else the deployment guide's API_BASE_URL]
    #[arg(long)]
    origin: Option<String>,
    /// The origin's service token [env: AUTHZ_SERVICE_TOKEN]
    #[arg(long)]
    service_token: Option<String>,
    /// Run only this phase (repeatable); all by default.
    #[arg(long = "phase", value_enum)]
    phases: Vec<validate::Phase>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// performance: sequential requests.
    #[arg(long, default_value_t = 1_000)]
    requests: usize,
    /// concurrency: requests in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// concurrency: requests in all.
    #[arg(long, default_value_t = 2_000)]
    concurrent_requests: usize,
    /// improvement: questions asked of both the baseline and the origin.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// improvement: the least improvement of the mean that passes, in percent.
    #[arg(long, default_value_t = validate::baseline::DEFAULT_BAR_PERCENT)]
    improvement_bar: f64,
    /// The sampling seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// The process environment, read once; every lookup goes through the origin's table of
/// variables ([`Env`]).
fn environment() -> HashMap<String, String> {
    std::env::vars().collect()
}

async fn validate_command(args: ValidateArgs) -> anyhow::Result<bool> {
    let mut vars = environment();
    let env = Env::new(&vars);
    let origin = args
        .origin
        .or_else(|| env.get("AUTHZ_ORIGIN_URL").map(str::to_owned))
        // The deployment guide's name, so its command works as written.
        .or_else(|| env.get("API_BASE_URL").map(str::to_owned));
    let service_token = args
        .service_token
        .or_else(|| env.get("AUTHZ_SERVICE_TOKEN").map(str::to_owned));
    if let Some(url) = args.database_url {
        vars.insert("POSTGRES_PRIMARY_URL".to_owned(), url);
    }
    let mut options = validate::ValidateOptions::new(vars);
    options.origin = origin;
    options.service_token = service_token;
    options.phases = args.phases;
    options.requests = args.requests;
    options.concurrency = args.concurrency;
    options.concurrent_requests = args.concurrent_requests;
    options.samples = args.samples;
    options.improvement_bar_percent = args.improvement_bar;
    options.seed = args.seed;
    let report = validate::run(&options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(report.passed)
}

/// `POSTGRES_PRIMARY_URL`, else `DATABASE_URL`, parsed (the commands that need only a
/// database).
fn database() -> anyhow::Result<authz_origin::postgres_tls::Target> {
    let vars = environment();
    Ok(config::primary_database(Env::new(&vars))?.1)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { migrate } => {
            let config = Config::from_env()?;
            if migrate || config.migrate_on_start {
                let applied = db::migrate::run_on(&config.postgres_primary).await?;
                tracing::info!(?applied, "migrations applied");
            }
            let listener = authz_origin::connection::bind(config.listen)
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            tracing::info!(address = %listener.local_addr()?, ?config, "serving");
            let state = AppState::build(config).await?;
            server::serve(listener, state, server::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let applied = db::migrate::run_on(&database()?).await?;
            println!(
                "applied {} migration(s): {}",
                applied.len(),
                applied.join(", ")
            );
        }
        Command::Seed(args) => {
            let (mut client, driver) = authz_origin::postgres_tls::connect(&database()?).await?;
            let report = authz_seed::run(&mut client, &args.options()).await?;
            driver.abort();
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Validate(args) => {
            if !validate_command(*args).await? {
                std::process::exit(1);
            }
        }
        Command::Token { user, ttl_seconds } => {
            let vars = environment();
            let secret = Env::new(&vars)
                .get("AUTHZ_JWT_SECRET")
                .context("AUTHZ_JWT_SECRET is required")?;
            let key =
                JwtKey::new(secret.as_bytes()).context("AUTHZ_JWT_SECRET must not be empty")?;
            let user = UserId::parse(&user, "user")
                .map_err(|error| anyhow::anyhow!(error.message(&user)))?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let claims = serde_json::json!({
                "sub": user.to_string(),
                "iat": now,
                "exp": i64::try_from(now)? + ttl_seconds,
            });
            println!("{}", sign_hs256(&claims.to_string(), &key));
        }
    }
    Ok(())
}
