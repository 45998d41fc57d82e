//! The forward-only migrations of `migrations/`, embedded in the binary and applied by refinery.

mod embedded {
    #![allow(missing_docs)]
    refinery::embed_migrations!("../migrations");
}

/// Applies every pending migration to the database at `url`; a second run applies nothing.
pub async fn run(url: &str) -> anyhow::Result<Vec<String>> {
    run_on(&crate::postgres_tls::target(url)?).await
}

/// [`run`] on an already parsed `target`.
pub async fn run_on(target: &crate::postgres_tls::Target) -> anyhow::Result<Vec<String>> {
    let (mut client, driver) = crate::postgres_tls::connect(target).await?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    driver.abort();
    let report = report?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| migration.to_string())
        .collect())
}
