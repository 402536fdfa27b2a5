//! Search-quality evaluation (not a test; prints figures): the query set of
//! `data/eval-queries.csv` (made by `scripts/make_queries.py` from real names: prefixes, one
//! typo, lower case, accents removed, legal-form suffix removed) against every entity of
//! `../shared/data/gleif-entities.csv.gz` (399,203), in the index the service uses.
//!
//! A query hits at k when the entity it was made from is among the first k results. GLEIF
//! holds distinct entities with the very same name; a result with the same normalized name as
//! the source is indistinguishable to a user, so that count ("same name") is printed beside the
//! strict one. Then the latency of each kind of query, timed in repeats on the index compacted
//! into one segment (as the service compacts after a load).
//!
//! Run: `cargo bench -p cosell-directory --bench quality` (COSELL_GLEIF names another file;
//! COSELL_BENCH_ONLY=typo runs only the queries of that kind, as when profiling one;
//! COSELL_BENCH_REPORT a file for the one table's row, see `cosell_testkit::bench::report`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cosell_directory::domain::normalize::words;
use cosell_directory::index::{SearchIndex, SearchQuery};
use cosell_directory::load::{Row as CsvRow, Rows};
use cosell_testkit::bench::report::{self, Report, Row};

/// Times each query is repeated for the latency figures (its first answer is the one judged).
const TIMED_REPEATS: usize = 20;

fn main() -> anyhow::Result<()> {
    let report = Report::from_env("directory/quality");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let gleif = std::env::var("COSELL_GLEIF")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../../../shared/data/gleif-entities.csv.gz"));
    let queries = root.join("data/eval-queries.csv");

    let index = SearchIndex::open(None)?;
    let started = Instant::now();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut batch = Vec::with_capacity(10_000);
    let mut bad = 0usize;
    for row in Rows::new(std::fs::File::open(&gleif)?)? {
        match row {
            CsvRow::Entity(e) => {
                names.insert(e.id.clone(), e.legal_name.clone());
                batch.push(e);
                if batch.len() == 10_000 {
                    index.upsert(&batch)?;
                    batch.clear();
                }
            }
            CsvRow::Error(_) => bad += 1,
        }
    }
    index.upsert(&batch)?;
    index.commit(1)?;
    // The service compacts after a load; timings of a many-segment index would mislead.
    index.compact()?;
    println!(
        "indexed {} entities ({} rows refused) from {} in {:.1} s ({} segment)",
        index.num_docs(),
        bad,
        gleif.display(),
        started.elapsed().as_secs_f64(),
        index.segments()
    );

    let mut reader = csv::Reader::from_path(&queries)?;
    // kind -> [queries, strict@1, strict@5, same-name@1, same-name@5]
    let mut by_kind: Vec<(String, [usize; 5])> = Vec::new();
    let mut misses = Vec::new();
    // kind -> latencies of its queries
    let mut latencies: Vec<(String, Vec<Duration>)> = Vec::new();
    let only = std::env::var("COSELL_BENCH_ONLY").ok();
    for rec in reader.records() {
        let rec = rec?;
        let (kind, query, lei) = (&rec[0], &rec[1], &rec[2]);
        if only.as_deref().is_some_and(|k| k != kind) {
            continue;
        }
        let search = || {
            index.search(&SearchQuery {
                text: query.to_owned(),
                limit: 5,
                ..SearchQuery::default()
            })
        };
        // The first answer is the one judged; the repeats time it with warm caches.
        let found = search()?;
        let mut times = Vec::with_capacity(TIMED_REPEATS);
        for _ in 0..TIMED_REPEATS {
            let t = Instant::now();
            search()?;
            times.push(t.elapsed());
        }
        match latencies.iter_mut().find(|(k, _)| k == kind) {
            Some((_, l)) => l.extend(times),
            None => latencies.push((kind.to_owned(), times)),
        }
        let source_name = names.get(lei).map(|n| words(n)).unwrap_or_default();
        let strict: Vec<bool> = found.iter().map(|(e, _)| e.id == lei).collect();
        let same: Vec<bool> = found
            .iter()
            .map(|(e, _)| e.id == lei || words(&e.legal_name) == source_name)
            .collect();
        let slot = match by_kind.iter().position(|(k, _)| k == kind) {
            Some(i) => i,
            None => {
                by_kind.push((kind.to_owned(), [0; 5]));
                by_kind.len() - 1
            }
        };
        let c = &mut by_kind[slot].1;
        c[0] += 1;
        c[1] += strict.first().copied().unwrap_or(false) as usize;
        c[2] += strict.iter().any(|&b| b) as usize;
        c[3] += same.first().copied().unwrap_or(false) as usize;
        c[4] += same.iter().any(|&b| b) as usize;
        if !same.iter().any(|&b| b) {
            let top = found
                .first()
                .map(|(e, _)| e.legal_name.clone())
                .unwrap_or_default();
            misses.push(format!(
                "{kind:<9} {query:?} (source: {:?}; first result: {top:?})",
                names.get(lei).cloned().unwrap_or_default()
            ));
        }
    }
    let mut total = [0usize; 5];
    println!();
    println!(
        "{:<10} {:>7} {:>10} {:>10} {:>12} {:>12}",
        "kind", "queries", "recall@1", "recall@5", "same-name@1", "same-name@5"
    );
    let pct = |n: usize, d: usize| n as f64 / d.max(1) as f64;
    for (kind, c) in &by_kind {
        for i in 0..5 {
            total[i] += c[i];
        }
        println!(
            "{kind:<10} {:>7} {:>10.3} {:>10.3} {:>12.3} {:>12.3}",
            c[0],
            pct(c[1], c[0]),
            pct(c[2], c[0]),
            pct(c[3], c[0]),
            pct(c[4], c[0])
        );
    }
    println!(
        "{:<10} {:>7} {:>10.3} {:>10.3} {:>12.3} {:>12.3}",
        "all",
        total[0],
        pct(total[1], total[0]),
        pct(total[2], total[0]),
        pct(total[3], total[0]),
        pct(total[4], total[0])
    );
    println!("\ntarget recall@5 >= 0.97");
    // The one table's row: the whole query set only (a kind alone is a profiling run).
    if only.is_none() {
        let recall5 = pct(total[2], total[0]);
        report.add(
            Row::new(
                format!(
                    "directory search recall@5 ({} queries, {} entities)",
                    total[0],
                    report::thousands(index.num_docs() as f64)
                ),
                format!("{recall5:.3} (recall@1 {:.3})", pct(total[1], total[0])),
            )
            .value(recall5, "recall")
            .target(">= 0.97", recall5 >= 0.97),
        )?;
    }
    println!("\nin-process search latency ({TIMED_REPEATS} timed repeats of each query):");
    println!(
        "{:<10} {:>8} {:>8} {:>8}",
        "kind", "p50 us", "p99 us", "mean us"
    );
    let all: Vec<Duration> = latencies.iter().flat_map(|(_, l)| l.clone()).collect();
    latencies.push(("all".into(), all));
    for (kind, l) in &mut latencies {
        l.sort();
        let mean = l.iter().sum::<Duration>() / l.len().max(1) as u32;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{kind:<10} {:>8.0} {:>8.0} {:>8.0}",
            us(l[l.len() / 2]),
            us(l[l.len() * 99 / 100]),
            us(mean)
        );
    }
    if !misses.is_empty() {
        println!("\nmisses ({}):", misses.len());
        for m in misses.iter().take(40) {
            println!("  {m}");
        }
    }
    Ok(())
}
