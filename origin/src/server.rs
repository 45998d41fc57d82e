//! Serving: serves the router on its connections (`crate::connection`, with the timeouts and
//! the connection limit) with graceful shutdown, and runs the background tasks.

use std::future::Future;

use tokio::net::TcpListener;

use crate::routes::router;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let background = state.spawn_background();
    let limits = state.config.server;
    let app = router(state);
    let result = crate::connection::serve(listener, app, limits, shutdown).await;
    for task in background {
        task.abort();
    }
    result
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
