//! The benchmark's own view of the database: pg_stat_statements counters, seeding and plans.

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

/// Our own queries mention pg_stat_statements or carry this marker; they are not counted.
const OURS: &str = "/* todo-bench */";

pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("the benchmark cannot connect to the database")?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&pool)
        .await
        .context("pg_stat_statements is not available (is it in shared_preload_libraries?)")?;
    Ok(pool)
}

/// Statement counters since the last reset.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatementStats {
    /// Statements executed (BEGIN and COMMIT included: track_utility is on by default).
    pub calls: f64,
    /// Of which BEGIN (one per transaction).
    pub begins: f64,
    /// Server-side execution time, in milliseconds.
    pub exec_ms: f64,
    /// The statements, most called first: (calls, mean ms, text).
    pub top: Vec<(f64, f64, String)>,
}

pub async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn stats(pool: &PgPool) -> anyhow::Result<StatementStats> {
    let rows = sqlx::query(
        "SELECT calls::float8 AS calls, total_exec_time AS total, query FROM pg_stat_statements \
         WHERE query NOT ILIKE '%pg_stat_statements%' AND query NOT LIKE '%todo-bench%' \
         ORDER BY calls DESC, total_exec_time DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut s = StatementStats::default();
    for r in rows {
        let calls: f64 = r.try_get("calls")?;
        let total: f64 = r.try_get("total")?;
        let query: String = r.try_get("query")?;
        s.calls += calls;
        s.exec_ms += total;
        if query.trim().eq_ignore_ascii_case("begin") {
            s.begins += calls;
        }
        let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
        s.top.push((calls, total / calls.max(1.0), one_line));
    }
    Ok(s)
}

/// Runs seeding SQL (several statements, no parameters).
pub async fn exec(pool: &PgPool, sql: String) -> anyhow::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!("{OURS} {sql}")))
        .execute(pool)
        .await
        .with_context(|| {
            format!(
                "seeding failed: {}",
                sql.chars().take(200).collect::<String>()
            )
        })?;
    Ok(())
}

/// Rows in the tables the scaling runs grow.
pub async fn table_rows(pool: &PgPool) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for t in [
        "tasks",
        "task_counters",
        "conversations",
        "messages",
        "tool_executions",
    ] {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {t} {OURS}")))
            .fetch_one(pool)
            .await?;
        out.push((t.to_string(), n));
    }
    Ok(out)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of a query with one text parameter and one integer.
pub async fn explain(pool: &PgPool, sql: &str, user: &str, limit: i64) -> anyhow::Result<String> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql} {OURS}"
    )))
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut s = String::new();
    for r in rows {
        let line: String = r.try_get(0)?;
        s.push_str(&line);
        s.push('\n');
    }
    Ok(s)
}

/// Latency of one PostgreSQL round trip (`SELECT 1`, prepared, on a dedicated connection,
/// outside any pool), `n` times in a row, in microseconds.
pub async fn round_trip_us(url: &str, n: usize) -> anyhow::Result<Vec<u64>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = std::time::Instant::now();
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        out.push(t.elapsed().as_micros() as u64);
    }
    conn.close().await?;
    Ok(out)
}
