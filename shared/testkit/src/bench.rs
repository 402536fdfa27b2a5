//! Measurement for the benchmarks (bench binaries print figures; tests never time anything),
//! and [`report`]: the rows each benchmark hands to `cosell-bench`'s one table.

pub mod report;

use std::future::Future;
use std::time::{Duration, Instant};

/// What [`measure`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Calls per second over the whole run.
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl Figures {
    /// `12,345/s  p50 123 us  p99 456 us`.
    pub fn line(&self) -> String {
        format!(
            "{:>7.0}/s  p50 {:>6.0} us  p99 {:>6.0} us",
            self.rate,
            micros(self.p50),
            micros(self.p99)
        )
    }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Makes `calls` calls, `concurrency` at a time, in tasks of their own; call `i` is `call(i)`
/// and returns its own latency (so that set-up inside a call can be left out).
pub async fn measure<F, Fut>(concurrency: usize, calls: usize, call: F) -> Figures
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Duration> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (w..calls).step_by(concurrency) {
                lat.push(call(i).await);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("a measured call panicked"));
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    Figures {
        rate: lat.len() as f64 / secs,
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// A count from the environment (`COSELL_BENCH_CALLS=...`), or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The PostgreSQL server the benchmarks make their databases on: `COSELL_BENCH_DATABASE_URL`, or
/// this machine's, without TLS (it is on the same machine).
pub fn postgres_admin_url() -> String {
    std::env::var("COSELL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}
