//! Slow clients (issue 15, item 2): connections that trickle their headers or their body, or
//! say nothing, are closed after the server's timeouts, a normal client keeps its answers and
//! its latency meanwhile, and the descriptors come back. A test binary of its own, so that no
//! other test shares the process while the normal client's latency is compared (cargo runs
//! test binaries one after the other) and the descriptor count is this test's alone.

#[path = "integration/support.rs"]
#[allow(
    dead_code,
    reason = "the integration tests' helpers; this binary uses a few"
)]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{TestDb, TestOrigin};

const OWNER: &str = "a0000000-0000-4000-8000-000000000001";
const STRANGER: &str = "a0000000-0000-4000-8000-000000000003";
const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";
/// Connections trickling their headers, and as many trickling their body.
const EACH: usize = 1_000;
/// The header and body timeouts of this test's origin.
const TIMEOUT: Duration = Duration::from_secs(4);
/// A trickler's pace: one byte per period.
const PACE: Duration = Duration::from_secs(2);

fn question(user: &str) -> Value {
    json!({
        "user_id": user,
        "resource_type": "generation",
        "resource_id": GENERATION,
        "operation": "read",
    })
}

async fn origin(idle_ms: &str) -> (TestDb, TestOrigin) {
    let db = TestDb::new().await;
    let client = db.client().await;
    let dataset = serde_json::from_value(json!({
        "users": [{"id": OWNER}, {"id": STRANGER}],
        "generations": [{"id": GENERATION, "user_id": OWNER, "status": "completed"}],
    }))
    .expect("dataset");
    support::load(&client, &dataset, 0).await;
    let mut vars = support::origin_vars(&db, None);
    let timeout = TIMEOUT.as_millis().to_string();
    for (name, value) in [
        ("AUTHZ_HEADER_READ_TIMEOUT_MS", timeout.as_str()),
        ("AUTHZ_BODY_READ_TIMEOUT_MS", timeout.as_str()),
        ("AUTHZ_IDLE_TIMEOUT_MS", idle_ms),
    ] {
        vars.insert(name.to_owned(), value.to_owned());
    }
    let origin = TestOrigin::start(vars).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    (db, origin)
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// `count` sequential questions, alternately granted and denied; their latencies, sorted.
/// Every answer must be right.
async fn ask(origin: &TestOrigin, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let (user, expected) = if n % 2 == 0 {
            (OWNER, true)
        } else {
            (STRANGER, false)
        };
        let started = Instant::now();
        let (status, body) = origin.authorize(question(user)).await;
        latencies.push(started.elapsed());
        assert_eq!(
            (status, body["granted"].as_bool()),
            (200, Some(expected)),
            "{body}"
        );
    }
    latencies.sort();
    latencies
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// How a slow connection ended.
#[derive(Debug)]
struct Ended {
    /// From its connect to the server's close (None: still open after 3 timeouts).
    after: Option<Duration>,
    /// What the server sent before closing.
    reply: String,
}

/// A connection that sends `prefix`, then one byte of `trickle` per [`PACE`], reading what
/// the server says, until the server closes it.
async fn trickle(address: String, prefix: String, trickle: u8, phase: Duration) -> Ended {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(&address).await else {
        return Ended {
            after: None,
            reply: "connect failed".to_owned(),
        };
    };
    let mut reply = Vec::new();
    let _ = stream.write_all(prefix.as_bytes()).await;
    let mut buffer = [0_u8; 512];
    // Each connection's bytes at its own point of the period, not all at once.
    let mut wait = phase;
    while started.elapsed() < TIMEOUT * 3 {
        let read = tokio::time::timeout(wait, stream.read(&mut buffer)).await;
        wait = PACE;
        match read {
            Ok(Ok(0) | Err(_)) => {
                return Ended {
                    after: Some(started.elapsed()),
                    reply: String::from_utf8_lossy(&reply).into_owned(),
                };
            }
            Ok(Ok(n)) => reply.extend_from_slice(&buffer[..n]),
            Err(_) => {
                // The server said nothing for a period: one more byte. A write to a socket the
                // server closed can fail; the read above then reports the close.
                let _ = stream.write_all(&[trickle]).await;
            }
        }
    }
    Ended {
        after: None,
        reply: String::from_utf8_lossy(&reply).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_closed_after_the_timeouts_and_cost_a_normal_client_nothing() {
    let (_db, origin) = origin("30000").await;
    let address = origin.base.trim_start_matches("http://").to_owned();
    // Warm: the questions are answered from L1 from now on.
    ask(&origin, 20).await;
    let unloaded = ask(&origin, 600).await;
    let before = open_descriptors();

    let body = serde_json::to_string(&question(OWNER)).expect("json");
    // The slow clients run on a runtime of their own (as if on another host; the machine's
    // cores are still shared), so their tasks do not queue behind the server's or the normal
    // client's on one scheduler.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("clients' runtime");
    let clients = runtime.handle().clone();
    let mut slow = Vec::with_capacity(2 * EACH);
    for n in 0..2 * EACH {
        let (prefix, byte) = if n % 2 == 0 {
            // Headers that never end.
            (
                format!("POST /v1/authorize HTTP/1.1\r\nHost: {address}\r\nX-Slow: "),
                b'a',
            )
        } else {
            // Whole headers, then a body one byte at a time.
            (
                format!(
                    "POST /v1/authorize HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer \
                     {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    support::SERVICE_TOKEN,
                    body.len() + 10_000
                ),
                b' ',
            )
        };
        let phase = PACE.mul_f64(n as f64 / (2 * EACH) as f64);
        slow.push(clients.spawn(trickle(address.clone(), prefix, byte, phase)));
    }
    let opened = Instant::now();
    // Every slow connection connected and accepted (both ends are descriptors of this
    // process) before the normal client measures.
    let mut during = open_descriptors();
    while during < before + 4 * EACH && opened.elapsed() < TIMEOUT / 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        during = open_descriptors();
    }
    // Let the server read what each sent on connecting (1,000 requests reach the router and
    // wait for their bodies), so that the normal client meets the steady trickle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = ask(&origin, 600).await;
    let measured_within = opened.elapsed();

    let mut ends = Vec::with_capacity(slow.len());
    for task in slow {
        ends.push(task.await.expect("trickler"));
    }
    runtime.shutdown_background();
    // Every trickler has dropped its socket; the server's side must be gone too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = open_descriptors();

    let (unloaded_p99, loaded_p99) = (p99(&unloaded), p99(&loaded));
    let header_closes: Vec<Duration> = ends.iter().step_by(2).filter_map(|e| e.after).collect();
    let body_closes: Vec<Duration> = ends
        .iter()
        .skip(1)
        .step_by(2)
        .filter_map(|e| e.after)
        .collect();
    let body_408 = ends
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|e| e.reply.starts_with("HTTP/1.1 408") && e.reply.contains("request_timeout"))
        .count();
    let slowest = |closes: &[Duration]| closes.iter().max().copied().unwrap_or_default();
    println!(
        "slow clients: descriptors {before} before, {during} with {} slow connections, {after} \
         after; normal client p99 {unloaded_p99:?} unloaded, {loaded_p99:?} loaded (measured \
         within {measured_within:?} of the connects); closed: {} of {EACH} header tricklers \
         (slowest {:?}), {} of {EACH} body tricklers (slowest {:?}, {body_408} with a 408)",
        2 * EACH,
        header_closes.len(),
        slowest(&header_closes),
        body_closes.len(),
        slowest(&body_closes),
    );
    assert!(
        during >= before + 4 * EACH,
        "the slow connections were not all open and accepted: {during} descriptors, {before} \
         before"
    );
    assert!(
        measured_within < TIMEOUT,
        "the loaded measurement outlasted the slow connections"
    );
    assert_eq!(header_closes.len(), EACH, "header tricklers left open");
    assert_eq!(body_closes.len(), EACH, "body tricklers left open");
    for closed in header_closes.iter().chain(&body_closes) {
        assert!(
            *closed >= TIMEOUT - Duration::from_millis(100) && *closed < TIMEOUT * 2,
            "closed after {closed:?}, the timeout is {TIMEOUT:?}"
        );
    }
    assert_eq!(body_408, EACH, "a body trickler got no 408 request_timeout");
    // A leak of the server's side would be 2,000; the pools may have opened a few.
    assert!(
        after < before + 50,
        "descriptors did not come back: {before} before, {after} after"
    );
    assert!(
        loaded_p99 <= unloaded_p99.max(Duration::from_millis(1)) * 2,
        "the normal client's p99 went from {unloaded_p99:?} to {loaded_p99:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let (_db, origin) = origin("1500").await;
    let address = origin.base.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    // One request, then nothing: keep-alive, closed once idle for 1.5 s.
    let body = serde_json::to_string(&question(OWNER)).expect("json");
    let request = format!(
        "POST /v1/authorize HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        support::SERVICE_TOKEN,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => reply.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the idle connection was not closed within 10 s"),
        }
    };
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"granted\":true"), "{reply}");
    assert!(
        closed >= Duration::from_millis(1_400) && closed < Duration::from_secs(4),
        "closed after {closed:?}, the idle timeout is 1.5 s"
    );
}
