//! Customer-matching evaluation (not a test; prints figures): the names of
//! `data/match-eval.csv` (made by `scripts/make_match_set.py` from real GLEIF names typed as
//! salespeople type them: exact, case, legal form abbreviated or dropped, punctuation or
//! accents dropped, "The" in front) matched against every entity of
//! `../shared/data/gleif-entities.csv.gz` (399,203) in the index the service uses, as
//! `MatchEntities` matches them. Per variant: linked right, unlinked, linked wrong, and the
//! share of the names unambiguous in their country that linked. Then the time of a match.
//!
//! Run: `cargo bench -p cosell-directory --bench matching` (COSELL_GLEIF names another file;
//! COSELL_BENCH_REPORT a file for the one table's rows, see `cosell_testkit::bench::report`).

use std::path::PathBuf;
use std::time::Instant;

use cosell_directory::evaluation::{evaluate, read};
use cosell_directory::index::SearchIndex;
use cosell_directory::load::{Row as CsvRow, Rows};
use cosell_testkit::bench::report::{Report, Row};

fn main() -> anyhow::Result<()> {
    let report = Report::from_env("directory/matching");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let gleif = std::env::var("COSELL_GLEIF")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../../../shared/data/gleif-entities.csv.gz"));
    let set = read(&root.join("data/match-eval.csv"))?;

    let index = SearchIndex::open(None)?;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for row in Rows::new(std::fs::File::open(&gleif)?)? {
        if let CsvRow::Entity(e) = row {
            batch.push(e);
            if batch.len() == 10_000 {
                index.upsert(&batch)?;
                batch.clear();
            }
        }
    }
    index.upsert(&batch)?;
    index.commit(1)?;
    index.compact()?;
    println!(
        "indexed {} entities from {} in {:.1} s",
        index.num_docs(),
        gleif.display(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let e = evaluate(&index, &set)?;
    let elapsed = started.elapsed();
    println!("\n{}", e.table());
    let per_match_us = elapsed.as_secs_f64() * 1e6 / set.len().max(1) as f64;
    println!(
        "{} names matched in {:.2} s: {per_match_us:.0} us a name, in process",
        set.len(),
        elapsed.as_secs_f64()
    );
    println!("\ntargets: 0 linked wrong; >= 0.95 of the unambiguous names linked");
    for w in e.wrong.iter().take(20) {
        println!("  wrong: {w}");
    }
    println!("\nunambiguous yet unlinked ({}), first 40:", e.missed.len());
    for m in e.missed.iter().take(40) {
        println!("  {m}");
    }
    let linked = e.all.unambiguous_linked();
    let entities = cosell_testkit::bench::report::thousands(index.num_docs() as f64);
    report.add(
        Row::new(
            format!(
                "customer matching: unambiguous names linked ({} names, {entities} entities)",
                e.all.unambiguous
            ),
            format!(
                "{linked:.3} ({} of {})",
                e.all.unambiguous_right, e.all.unambiguous
            ),
        )
        .value(linked, "share")
        .target(">= 0.95 (issue 21)", linked >= 0.95),
    )?;
    report.add(
        Row::new(
            format!("customer matching: linked wrong ({} names)", e.all.names),
            e.all.wrong.to_string(),
        )
        .value(e.all.wrong as f64, "names")
        .target("0 (issue 21)", e.all.wrong == 0),
    )?;
    Ok(())
}
