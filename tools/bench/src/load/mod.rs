//! `authz-bench load`: many connections over real HTTP against the origin or the edge, closed
//! loop (each connection asks back to back), open loop (a constant aggregate rate, latency
//! counted from the intended send time) or a burst (every connection asks once, all at once).
//! Questions are picked uniformly or by a Zipf law over a sampled question set; revoking
//! writes and a revocation-lag probe can run alongside. Prints progress, writes JSON and
//! draws SVG charts.

pub mod record;
pub mod writes;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use authz_core::jwt::JwtKey;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::client::{self, Answer, Connection, Prepared, Target};
use crate::questions::{self, Question};
use crate::report::{Report, Workload};
use crate::revocation::{self, Probe};
use record::Recorder;

/// Which questions a run asks and how it picks them (`load` and `naive` alike).
#[derive(Debug, Clone, clap::Args)]
pub struct Picks {
    /// A file of questions (JSON lines) instead of sampling.
    #[arg(long)]
    questions: Option<PathBuf>,
    /// How many questions to sample.
    #[arg(long, default_value_t = 5_000)]
    keys: usize,
    /// How questions are picked.
    #[arg(long, value_enum, default_value = "uniform")]
    workload: Workload,
    /// The Zipf exponent.
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
}

impl Picks {
    /// The questions: the file's, else `keys` sampled from `database_url`.
    pub async fn questions(&self, database_url: Option<&str>) -> anyhow::Result<Vec<Question>> {
        match (&self.questions, database_url) {
            (Some(path), _) => questions::read(path),
            (None, Some(url)) => questions::sample(url, self.keys).await,
            (None, None) => bail!("give --questions or --database-url"),
        }
    }

    /// A picker over `keys` questions.
    pub fn picker(&self, keys: usize, seed: u64) -> anyhow::Result<Picker> {
        Picker::new(self.workload, self.zipf_s, keys, seed)
    }
}

/// Options of `authz-bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Base URL of the service; repeat to spread connections over several (round robin).
    #[arg(long = "url", default_value = "http://127.0.0.1:8080")]
    urls: Vec<String>,
    /// Origin (POST with the service token) or edge (GET with end-user JWTs).
    #[arg(long, value_enum, default_value = "origin")]
    target: Target,
    /// The origin's service token.
    #[arg(long, env = "AUTHZ_SERVICE_TOKEN", default_value = "")]
    service_token: String,
    /// The HS256 secret of end-user JWTs (edge target).
    #[arg(long, env = "AUTHZ_JWT_SECRET")]
    jwt_secret: Option<String>,
    /// The service's database: questions are sampled from it (unless `--questions`), and
    /// writes and the probe go to it.
    #[arg(long, env = "POSTGRES_PRIMARY_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    picks: Picks,
    /// Open connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Aggregate requests per second offered at a constant rate (open loop); 0: closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Every connection sends one request, all at once, and the run ends when all are
    /// answered.
    #[arg(long)]
    burst: bool,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of load before measuring (hit rate "after warm-up").
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// A request with no answer after this long is an error.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Revoking writes per second on the questions' shares (needs the database).
    #[arg(long, default_value_t = 0.0)]
    writes_per_second: f64,
    /// Run a revocation-lag round this often during the run (ms; 0: no probe).
    #[arg(long, default_value_t = 0)]
    probe_interval_ms: u64,
    /// A progress line every this many seconds on stderr (0: none).
    #[arg(long, default_value_t = 5)]
    progress_seconds: u64,
    /// A name for the run, kept in the JSON (e.g. the seed's scale).
    #[arg(long, default_value = "")]
    label: String,
    /// Rows of the dataset (for the cost-growth chart), kept in the JSON.
    #[arg(long)]
    dataset_rows: Option<u64>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw `<prefix>-latency.svg` and `<prefix>-timeline.svg`.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Seed of the question picks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the load and prints the report.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let report = execute(options.clone()).await?;
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &options.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(prefix) = &options.svg {
        crate::chart::latency(&[&report], &with_suffix(prefix, "-latency.svg"))?;
        crate::chart::timeline(&report, &with_suffix(prefix, "-timeline.svg"))?;
    }
    let mut brief = serde_json::to_value(&report)?;
    if let Some(summary) = brief.get_mut("summary").and_then(|s| s.as_object_mut()) {
        summary.remove("timeline");
        summary.remove("spectrum");
    }
    println!("{}", serde_json::to_string_pretty(&brief)?);
    Ok(())
}

fn with_suffix(prefix: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Picks question indices: uniformly, or rank k with probability proportional to 1/k^s.
pub struct Picker {
    rng: SmallRng,
    zipf: Option<Zipf<f64>>,
    keys: usize,
}

impl Picker {
    /// A picker over `keys` questions (at least one), seeded.
    pub fn new(workload: Workload, zipf_s: f64, keys: usize, seed: u64) -> anyhow::Result<Self> {
        if keys == 0 {
            bail!("no questions to pick from");
        }
        let zipf = match workload {
            Workload::Zipf => Some(
                Zipf::new(keys as f64, zipf_s).map_err(|error| anyhow::anyhow!("zipf: {error}"))?,
            ),
            Workload::Uniform => None,
        };
        Ok(Self {
            rng: SmallRng::seed_from_u64(seed),
            zipf,
            keys,
        })
    }

    /// The next question's index.
    pub fn next(&mut self) -> usize {
        match &self.zipf {
            Some(zipf) => (zipf.sample(&mut self.rng) as usize)
                .saturating_sub(1)
                .min(self.keys - 1),
            None => self.rng.random_range(0..self.keys),
        }
    }
}

struct Shared {
    prepared: Vec<Prepared>,
    /// Per question: when it was last answered (µs since the start, plus one; 0: never) and
    /// the longest `ttl_ms` of its answers, for the ideal hit rate.
    last_answered: Vec<AtomicU64>,
    last_ttl_ms: Vec<AtomicU64>,
    recorder: Mutex<Recorder>,
    reconnects: AtomicU64,
    timeout: Duration,
}

impl Shared {
    /// Notes that question `pick` was answered at `received` with `ttl_ms`, and says whether
    /// it was answered before within the longest `ttl_ms` any of its answers carried (about
    /// its TTL policy's): the hit of an ideal cache that renews an entry on every use within
    /// its TTL. First sightings and questions asked less often than their TTL miss in any
    /// cache that honours the TTL.
    fn answered(&self, pick: usize, start: Instant, received: Instant, ttl_ms: u64) -> bool {
        let at = u64::try_from(received.saturating_duration_since(start).as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let before = self.last_answered[pick].swap(at, Ordering::Relaxed);
        let ttl = self.last_ttl_ms[pick]
            .fetch_max(ttl_ms, Ordering::Relaxed)
            .max(ttl_ms);
        before != 0 && at.saturating_sub(before) <= ttl.saturating_mul(1_000)
    }
}

/// Runs one load and returns its report.
pub async fn execute(options: Options) -> anyhow::Result<Report> {
    if options.urls.is_empty() {
        bail!("give at least one --url");
    }
    if options.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let questions = options
        .picks
        .questions(options.database_url.as_deref())
        .await?;
    let key = match (&options.jwt_secret, options.target) {
        (Some(secret), _) => Some(JwtKey::new(secret.as_bytes()).context("empty --jwt-secret")?),
        (None, Target::Edge) => bail!("the edge target needs --jwt-secret"),
        (None, Target::Origin) => None,
    };
    let prepared: Vec<Prepared> = questions
        .iter()
        .map(|question| {
            client::prepare(
                question,
                options.target,
                &options.service_token,
                key.as_ref(),
                None,
            )
        })
        .collect::<anyhow::Result<_>>()?;
    // Checks the workload's parameters before any connection is opened.
    options.picks.picker(prepared.len(), options.seed)?;
    let mut addresses = Vec::new();
    for url in &options.urls {
        addresses.push(client::resolve(url).await?);
    }

    // Open every connection first, a bounded number at a time.
    eprintln!(
        "load: {} questions; opening {} connections to {}",
        prepared.len(),
        options.connections,
        options.urls.join(", ")
    );
    let connect_started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(
        options.connect_concurrency.max(1),
    ));
    let mut opening = Vec::with_capacity(options.connections);
    for index in 0..options.connections {
        let address = addresses[index % addresses.len()];
        let limit = Arc::clone(&limit);
        opening.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut last = None;
            for attempt in 0..5u64 {
                match Connection::open(address).await {
                    Ok(connection) => return Ok(connection),
                    Err(error) => last = Some(error),
                }
                tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
            }
            Err(last.unwrap_or_else(|| anyhow::anyhow!("connect failed")))
        }));
    }
    let mut connections = Vec::with_capacity(options.connections);
    let mut connect_errors = Vec::new();
    for task in opening {
        match task.await? {
            Ok(connection) => connections.push(connection),
            Err(error) => connect_errors.push(error.to_string()),
        }
    }
    let connect_ms = connect_started.elapsed().as_secs_f64() * 1_000.0;
    eprintln!(
        "load: {} connections open in {:.0} ms ({} failed)",
        connections.len(),
        connect_ms,
        connect_errors.len()
    );
    if connections.is_empty() {
        bail!(
            "no connection could be opened: {}",
            connect_errors.first().map_or("", String::as_str)
        );
    }
    let connected = connections.len();

    let warmup = if options.burst {
        Duration::ZERO
    } else {
        Duration::from_secs(options.warmup)
    };
    let start = Instant::now();
    let shared = Arc::new(Shared {
        last_answered: prepared.iter().map(|_| AtomicU64::new(0)).collect(),
        last_ttl_ms: prepared.iter().map(|_| AtomicU64::new(0)).collect(),
        prepared,
        recorder: Mutex::new(Recorder::new(start, warmup)),
        reconnects: AtomicU64::new(0),
        timeout: Duration::from_millis(options.timeout_ms),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let end = start + warmup + Duration::from_secs(options.duration);

    let writer = if options.writes_per_second > 0.0 {
        let url = options
            .database_url
            .clone()
            .context("--writes-per-second needs --database-url")?;
        let (questions, stop, rate) = (
            questions.clone(),
            Arc::clone(&stop),
            options.writes_per_second,
        );
        Some(tokio::spawn(async move {
            writes::run(&url, &questions, rate, stop).await
        }))
    } else {
        None
    };
    let probe = if options.probe_interval_ms > 0 {
        let url = options
            .database_url
            .clone()
            .context("--probe-interval-ms needs --database-url")?;
        let probe = Arc::new(
            Probe::create(
                &url,
                &options.urls[0],
                options.target,
                &options.service_token,
                key.clone(),
            )
            .await?,
        );
        let (stop, interval) = (
            Arc::clone(&stop),
            Duration::from_millis(options.probe_interval_ms),
        );
        Some(tokio::spawn(async move {
            let mut rounds = Vec::new();
            let mut failures = 0u64;
            while !stop.load(Ordering::Acquire) {
                let began = Instant::now();
                match probe.round(2, false).await {
                    Ok(round) => rounds.push(round),
                    Err(error) => {
                        failures += 1;
                        eprintln!("load: probe round failed: {error:#}");
                    }
                }
                tokio::time::sleep(interval.saturating_sub(began.elapsed())).await;
            }
            if let Ok(probe) = Arc::try_unwrap(probe) {
                probe.remove().await?;
            }
            anyhow::Ok((rounds, failures))
        }))
    } else {
        None
    };
    let progress = if options.progress_seconds > 0 && !options.burst {
        let (shared, stop, every) = (
            Arc::clone(&shared),
            Arc::clone(&stop),
            options.progress_seconds,
        );
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            tick.tick().await;
            while !stop.load(Ordering::Acquire) {
                tick.tick().await;
                let t = start.elapsed().as_secs().saturating_sub(1);
                let line = shared
                    .recorder
                    .lock()
                    .ok()
                    .and_then(|recorder| recorder.second(usize::try_from(t).unwrap_or(0)));
                if let Some((requests, errors, p99)) = line {
                    eprintln!(
                        "load: t={t:>4}s  {requests:>7} req/s  {errors:>5} errors  p99 {p99:.2} ms"
                    );
                }
            }
        }))
    } else {
        None
    };

    let go = Arc::new(tokio::sync::Barrier::new(connected));
    let mut workers = Vec::with_capacity(connected);
    for (index, connection) in connections.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let go = Arc::clone(&go);
        let mut picker = options.picks.picker(
            shared.prepared.len(),
            options
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(index as u64),
        )?;
        let address = addresses[index % addresses.len()];
        let (burst, rate, connections) = (options.burst, options.rate, connected);
        workers.push(tokio::spawn(async move {
            let mut connection = Some(connection);
            go.wait().await;
            let began = Instant::now();
            // Open loop: this connection's share of the rate, phase-shifted by its index.
            let interval = (rate > 0.0).then(|| Duration::from_secs_f64(connections as f64 / rate));
            let mut intended = match interval {
                Some(_) => began + Duration::from_secs_f64(index as f64 / rate),
                None => began,
            };
            loop {
                if interval.is_some() {
                    if intended >= end {
                        break;
                    }
                    tokio::time::sleep_until(intended.into()).await;
                } else if !burst && Instant::now() >= end {
                    break;
                }
                let conn = match connection.take() {
                    Some(conn) if conn.is_open() => conn,
                    _ => match Connection::open(address).await {
                        Ok(conn) => {
                            shared.reconnects.fetch_add(1, Ordering::Relaxed);
                            conn
                        }
                        Err(error) => {
                            let now = Instant::now();
                            if let Ok(mut recorder) = shared.recorder.lock() {
                                recorder.record(
                                    intended.min(now),
                                    now,
                                    now,
                                    &Answer::Failed(format!("connect: {error}")),
                                    false,
                                );
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if burst {
                                break;
                            }
                            intended = next(intended, interval);
                            continue;
                        }
                    },
                };
                let mut conn = conn;
                let pick = picker.next();
                let request = &shared.prepared[pick];
                let sent = Instant::now();
                let answer = conn.ask(request, shared.timeout).await;
                let received = Instant::now();
                if !matches!(answer, Answer::Failed(_)) {
                    connection = Some(conn);
                }
                let reusable = match &answer {
                    Answer::Decision { ttl_ms, .. } => {
                        shared.answered(pick, start, received, *ttl_ms)
                    }
                    _ => false,
                };
                if let Ok(mut recorder) = shared.recorder.lock() {
                    recorder.record(
                        if interval.is_some() { intended } else { sent },
                        sent,
                        received,
                        &answer,
                        reusable,
                    );
                }
                if burst {
                    break;
                }
                intended = next(intended, interval);
            }
            (began, Instant::now())
        }));
    }
    let mut last_answer = start;
    let mut first_go: Option<Instant> = None;
    for worker in workers {
        let (began, finished) = worker.await?;
        last_answer = last_answer.max(finished);
        first_go = Some(first_go.map_or(began, |first| first.min(began)));
    }
    let go_at = first_go.unwrap_or(start);
    stop.store(true, Ordering::Release);
    let elapsed = if options.burst {
        last_answer.saturating_duration_since(go_at)
    } else {
        last_answer
            .min(end)
            .saturating_duration_since(start + warmup)
    };
    let writes = match writer {
        Some(task) => task.await??,
        None => 0,
    };
    let revocation = match probe {
        Some(task) => {
            let (rounds, failures) = task.await??;
            if failures > 0 {
                eprintln!("load: {failures} probe rounds failed");
            }
            Some(revocation::summarise(&rounds))
        }
        None => None,
    };
    if let Some(task) = progress {
        task.abort();
    }
    let mut summary = shared
        .recorder
        .lock()
        .map_err(|_| anyhow::anyhow!("a worker panicked while recording"))?
        .summary(elapsed);
    if !options.burst {
        // Answers to requests still in flight at the end land in a last, partial second.
        let horizon = (warmup + Duration::from_secs(options.duration)).as_secs();
        summary.timeline.retain(|second| second.t < horizon);
    }
    Ok(Report {
        label: options.label.clone(),
        dataset_rows: options.dataset_rows,
        target: format!("{:?}", options.target).to_lowercase(),
        urls: options.urls.clone(),
        mode: if options.burst {
            "burst"
        } else if options.rate > 0.0 {
            "open"
        } else {
            "closed"
        }
        .to_owned(),
        workload: options.picks.workload,
        zipf_s: (options.picks.workload == Workload::Zipf).then_some(options.picks.zipf_s),
        keys: shared.prepared.len(),
        connections: options.connections,
        connected,
        connect_ms,
        rate: (options.rate > 0.0).then_some(options.rate),
        burst_ms: options
            .burst
            .then(|| last_answer.saturating_duration_since(go_at).as_secs_f64() * 1_000.0),
        reconnects: shared.reconnects.load(Ordering::Relaxed),
        writes,
        revocation,
        summary,
    })
}

fn next(intended: Instant, interval: Option<Duration>) -> Instant {
    match interval {
        Some(interval) => intended + interval,
        None => Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_picks_favour_the_first_questions_and_uniform_ones_do_not() {
        let count = |workload| {
            let mut picker = Picker::new(workload, 1.0, 1_000, 7).expect("picker");
            let mut counts = vec![0u32; 1_000];
            for _ in 0..100_000 {
                counts[picker.next()] += 1;
            }
            counts
        };
        let zipf = count(Workload::Zipf);
        // Rank 1 carries 1/H(1000) ≈ 13.4 % of the picks, rank 2 half that.
        assert!((12_000..15_000).contains(&zipf[0]), "{}", zipf[0]);
        assert!((5_500..7_900).contains(&zipf[1]), "{}", zipf[1]);
        let uniform = count(Workload::Uniform);
        assert!(uniform.iter().all(|n| (40..180).contains(n)), "{uniform:?}");
        assert!(Picker::new(Workload::Zipf, 1.0, 0, 1).is_err());
    }

    #[test]
    fn an_ideal_cache_hits_only_within_the_longest_ttl_seen() {
        let shared = Shared {
            prepared: Vec::new(),
            last_answered: (0..2).map(|_| AtomicU64::new(0)).collect(),
            last_ttl_ms: (0..2).map(|_| AtomicU64::new(0)).collect(),
            recorder: Mutex::new(Recorder::new(Instant::now(), Duration::ZERO)),
            reconnects: AtomicU64::new(0),
            timeout: Duration::from_secs(1),
        };
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert!(!shared.answered(0, start, at(0), 1_000), "a first sighting");
        assert!(
            shared.answered(0, start, at(900), 100),
            "within the first answer's TTL"
        );
        assert!(
            shared.answered(0, start, at(1_800), 100),
            "the longest TTL counts"
        );
        assert!(
            !shared.answered(0, start, at(2_900), 1_000),
            "over a TTL later"
        );
        assert!(
            !shared.answered(1, start, at(2_900), 1_000),
            "another question"
        );
    }
}
