//! The forward-only migrations of `migrations/`, embedded in the binary and applied by refinery.

use tokio_postgres::NoTls;

mod embedded {
    #![allow(missing_docs)]
    refinery::embed_migrations!("../migrations");
}

/// Applies every pending migration to the database at `url`; a second run applies nothing.
pub async fn run(url: &str) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let report = embedded::migrations::runner().run_async(&mut client).await;
    driver.abort();
    let report = report?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| migration.to_string())
        .collect())
}
