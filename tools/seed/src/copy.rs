//! `COPY ... FROM STDIN` in text format: [`Fields`] encodes rows (ids, numbers, booleans,
//! timestamps, fixed vocabulary) without a formatter, and [`CopyWriter`] streams them to the
//! server in chunks. Numbers are written with the core's decimal writer and dates with the
//! core's calendar arithmetic, so the seeder has no date or number code of its own.

use std::pin::Pin;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use authz_core::time::civil_from_days;
use authz_core::wire::push_decimal;
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::SinkExt as _;
use indicatif::ProgressBar;
use tokio_postgres::{CopyInSink, Transaction};
use uuid::Uuid;

/// The size of one `CopyData` message sent to the server.
const CHUNK_BYTES: usize = 64 * 1024;

/// The text of rows being built. Field writers append to the current row; callers only pass
/// values that need no escaping (ids, numbers, fixed vocabulary, ASCII names).
pub(crate) struct Fields {
    buf: BytesMut,
    /// Scratch text for numbers and timestamps (kept to avoid an allocation per field).
    text: String,
}

impl Fields {
    fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(CHUNK_BYTES + 1024),
            text: String::with_capacity(32),
        }
    }

    pub(crate) fn raw(&mut self, text: &str) {
        self.buf.put_slice(text.as_bytes());
    }

    pub(crate) fn separator(&mut self) {
        self.buf.put_u8(b'\t');
    }

    pub(crate) fn null(&mut self) {
        self.buf.put_slice(b"\\N");
    }

    pub(crate) fn boolean(&mut self, value: bool) {
        self.buf.put_u8(if value { b't' } else { b'f' });
    }

    pub(crate) fn uuid(&mut self, id: &Uuid) {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.buf
            .put_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
    }

    pub(crate) fn number(&mut self, value: u64) {
        self.text.clear();
        push_decimal(&mut self.text, value);
        self.buf.put_slice(self.text.as_bytes());
    }

    /// A `timestamptz` in UTC, from seconds since the Unix epoch.
    pub(crate) fn timestamp(&mut self, unix_seconds: i64) {
        self.text.clear();
        format_timestamp(unix_seconds, &mut self.text);
        self.buf.put_slice(self.text.as_bytes());
    }
}

/// One `COPY <table> FROM STDIN` in text format, sent in chunks of [`CHUNK_BYTES`]. Its rows
/// are written through [`Fields`] (it dereferences to them), each ended by
/// [`end_row`](Self::end_row).
pub(crate) struct CopyWriter {
    table: &'static str,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    fields: Fields,
    rows: u64,
    unreported: u64,
    progress: ProgressBar,
    started: Instant,
}

impl std::ops::Deref for CopyWriter {
    type Target = Fields;

    fn deref(&self) -> &Fields {
        &self.fields
    }
}

impl std::ops::DerefMut for CopyWriter {
    fn deref_mut(&mut self) -> &mut Fields {
        &mut self.fields
    }
}

impl CopyWriter {
    pub(crate) async fn start(
        tx: &Transaction<'_>,
        table: &'static str,
        columns: &str,
        progress: &ProgressBar,
    ) -> Result<Self> {
        // FREEZE: the table was truncated in this transaction, so its rows may be written
        // frozen (no hint-bit rewrite of every page on first read).
        let statement = format!("COPY {table} ({columns}) FROM STDIN WITH (FORMAT text, FREEZE)");
        let sink = tx
            .copy_in(statement.as_str())
            .await
            .with_context(|| format!("starting COPY into {table}"))?;
        progress.set_message(table);
        Ok(Self {
            table,
            sink: Box::pin(sink),
            fields: Fields::new(),
            rows: 0,
            unreported: 0,
            progress: progress.clone(),
            started: Instant::now(),
        })
    }

    pub(crate) async fn end_row(&mut self) -> Result<()> {
        self.fields.buf.put_u8(b'\n');
        self.rows += 1;
        self.unreported += 1;
        if self.fields.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.fields.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.fields.buf.split().freeze();
        self.sink
            .feed(chunk)
            .await
            .with_context(|| format!("streaming rows into {}", self.table))?;
        self.progress.inc(self.unreported);
        self.unreported = 0;
        self.fields.buf.reserve(CHUNK_BYTES + 1024);
        Ok(())
    }

    /// Ends the COPY and checks that the server stored every row sent.
    pub(crate) async fn finish(mut self) -> Result<u64> {
        self.flush().await?;
        let stored = self
            .sink
            .as_mut()
            .finish()
            .await
            .with_context(|| format!("finishing COPY into {}", self.table))?;
        ensure!(
            stored == self.rows,
            "COPY into {} stored {stored} rows but {} were sent",
            self.table,
            self.rows
        );
        tracing::debug!(
            table = self.table,
            rows = stored,
            elapsed_ms = self.started.elapsed().as_millis(),
            "table loaded"
        );
        Ok(stored)
    }
}

/// Appends `value` in decimal, left-padded with zeros to `width` digits.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = 1;
    let mut rest = value / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    for _ in digits..width {
        out.push('0');
    }
    push_decimal(out, value);
}

/// Appends `YYYY-MM-DD HH:MM:SS+00` for `unix_seconds` (the form Postgres prints a
/// `timestamptz` in UTC). Years outside 0..=9999 are clamped (the seeder only writes dates near
/// now).
fn format_timestamp(unix_seconds: i64, out: &mut String) {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let fields = [
        (year.clamp(0, 9999), 4, '-'),
        (month, 2, '-'),
        (day, 2, ' '),
        (second_of_day / 3600, 2, ':'),
        (second_of_day / 60 % 60, 2, ':'),
        (second_of_day % 60, 2, '+'),
    ];
    for (value, width, separator) in fields {
        // Every field is in 0..=9999 here.
        push_padded(out, value.unsigned_abs(), width);
        out.push(separator);
    }
    out.push_str("00");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamp(seconds: i64) -> String {
        let mut out = String::new();
        format_timestamp(seconds, &mut out);
        out
    }

    fn number(value: u64) -> Vec<u8> {
        let mut fields = Fields::new();
        fields.number(value);
        fields.buf.to_vec()
    }

    #[test]
    fn timestamps_are_formatted_in_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00+00");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00+00");
        assert_eq!(timestamp(1_709_251_199), "2024-02-29 23:59:59+00");
        assert_eq!(timestamp(1_767_225_600), "2026-01-01 00:00:00+00");
        assert_eq!(timestamp(-1), "1969-12-31 23:59:59+00");
    }

    #[test]
    fn decimals() {
        assert_eq!(number(0), b"0");
        assert_eq!(number(1_000_007), b"1000007");
        assert_eq!(number(u64::MAX), b"18446744073709551615");
    }
}
