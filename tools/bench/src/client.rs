//! One HTTP/1.1 connection per load connection (hyper's low-level client), so that the number
//! of open connections is exactly what the run asks for, and requests prepared once per
//! question.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use authz_core::jwt::{JwtKey, sign_hs256};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::questions::Question;

/// Where the load goes and how it authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The origin: `POST /v1/authorize` with the service token and `user_id` in the body.
    Origin,
    /// The edge: `GET /v1/authorize?…` with an end-user JWT per principal.
    Edge,
}

/// A request prepared once: everything but the optional `min_revision`.
#[derive(Debug, Clone)]
pub struct Prepared {
    method: Method,
    path: String,
    authorization: String,
    body: Bytes,
}

/// How the service answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 200 decision, with the tier that answered (`source`, or the edge's `X-Authz-Cache`).
    Decision {
        /// `granted`.
        granted: bool,
        /// `l1`, `l2`, `db`, `edge` (a KV hit) or `edge-miss`/`edge-bypass`.
        tier: String,
        /// `ttl_ms`: how long the decision may be cached (0 when absent).
        ttl_ms: u64,
    },
    /// Any other status.
    Status(u16),
    /// No answer: connection error or timeout.
    Failed(String),
}

#[derive(Deserialize)]
struct DecisionBody {
    granted: bool,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    ttl_ms: Option<u64>,
}

/// Prepares the request of `question` for `target`. `key` signs edge JWTs; `token` is the
/// origin's service token.
pub fn prepare(
    question: &Question,
    target: Target,
    token: &str,
    key: Option<&JwtKey>,
    min_revision: Option<u64>,
) -> anyhow::Result<Prepared> {
    match target {
        Target::Origin => {
            let mut body = serde_json::to_value(question)?;
            if let (Some(revision), Some(object)) = (min_revision, body.as_object_mut()) {
                object.insert("min_revision".to_owned(), revision.into());
            }
            Ok(Prepared {
                method: Method::POST,
                path: "/v1/authorize".to_owned(),
                authorization: format!("Bearer {token}"),
                body: Bytes::from(serde_json::to_vec(&body)?),
            })
        }
        Target::Edge => {
            let key = key.context("the edge target needs --jwt-secret")?;
            let user = question
                .user_id
                .context("the edge target asks as a user: an anonymous question has no token")?;
            let claims = serde_json::json!({
                "sub": user,
                "exp": 4_102_444_800_i64, // 2100-01-01: tokens outlive any run
            });
            let mut path = format!(
                "/v1/authorize?resource_type={}&resource_id={}&operation={}",
                question.resource_type, question.resource_id, question.operation
            );
            if let Some(revision) = min_revision {
                path.push_str(&format!("&min_revision={revision}"));
            }
            Ok(Prepared {
                method: Method::GET,
                path,
                authorization: format!("Bearer {}", sign_hs256(&claims.to_string(), key)),
                body: Bytes::new(),
            })
        }
    }
}

impl Prepared {
    /// The path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Authorization` header's value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }
}

/// One open connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    /// Opens a connection to `address` (TCP_NODELAY, HTTP/1.1 keep-alive).
    pub async fn open(address: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: address.to_string(),
        })
    }

    /// Sends one request and reads its answer, within `timeout`. A failed or timed-out
    /// exchange leaves the connection unusable: the caller reopens it.
    pub async fn ask(&mut self, request: &Prepared, timeout: Duration) -> Answer {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => Answer::Failed(error.to_string()),
            Err(_) => Answer::Failed("timeout".to_owned()),
        }
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    async fn exchange(&mut self, prepared: &Prepared) -> anyhow::Result<Answer> {
        self.sender.ready().await?;
        let mut builder = Request::builder()
            .method(prepared.method.clone())
            .uri(prepared.path.as_str())
            .header(hyper::header::HOST, self.host.as_str())
            .header(
                hyper::header::AUTHORIZATION,
                prepared.authorization.as_str(),
            );
        if prepared.method == Method::POST {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder.body(Full::new(prepared.body.clone()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let edge_cache = response
            .headers()
            .get("x-authz-cache")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        if status != 200 {
            return Ok(Answer::Status(status));
        }
        let Ok(decision) = serde_json::from_slice::<DecisionBody>(&body) else {
            bail!("a 200 that is not a decision");
        };
        let tier = match edge_cache.as_deref() {
            Some("hit") => "edge".to_owned(),
            Some(other) => format!("edge-{other}"),
            None => decision.source.unwrap_or_else(|| "unknown".to_owned()),
        };
        Ok(Answer::Decision {
            granted: decision.granted,
            tier,
            ttl_ms: decision.ttl_ms.unwrap_or(0),
        })
    }
}

/// Resolves `url` (`http://host:port`, no path) to a socket address.
pub async fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let Some(authority) = url.strip_prefix("http://") else {
        bail!("{url}: only http:// URLs are supported");
    };
    let authority = authority.trim_end_matches('/');
    tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))
}
