//! `cosell-bench`: every benchmark of the workspace at one size, one after the other, and one
//! table of their figures: figure, the baseline measured in the same run, the ratio, the
//! target, met or not.
//!
//! Each benchmark is a `cargo bench` target of its service and prints its own figures as it
//! always has (they pass through); this builds them all (`cargo bench --no-run`), then runs
//! each built executable as `cargo bench` would, with the size's settings (the environment
//! variables each benchmark reads) and `COSELL_BENCH_REPORT` naming a file, to which the
//! benchmark appends its rows as JSON lines (`cosell_testkit::bench::report`). At the end the
//! rows of every benchmark are printed as one Markdown table and written, with the rows, under
//! `target/cosell-bench/` (`latest.md` and a file per run).
//!
//! ```bash
//! cargo run -p cosell-bench -- --size small           # minutes: a check that all runs
//! cargo run -p cosell-bench -- --size full            # the sizes the targets are set at
//! cargo run -p cosell-bench -- --size small --only deals/api --only migration
//! cargo run -p cosell-bench -- --list                 # the benchmarks and their settings
//! ```
//!
//! A benchmark that fails is a row of its own (`failed`) and the run goes on; the exit status
//! is 1 when one failed. A target that is missed is not a failure: the table says so.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};

/// The file the benchmarks append their rows to (see `cosell_testkit::bench::report`).
const REPORT_VAR: &str = "COSELL_BENCH_REPORT";

#[derive(Parser, Debug)]
#[command(
    name = "cosell-bench",
    about = "Runs every benchmark at one size and prints one table: figure, same-run baseline, ratio, target, met."
)]
struct Args {
    /// `small`: every benchmark in minutes, to check that all of them run (the targets are set
    /// at `full`'s sizes); `full`: the sizes the targets are set at (about half an hour or more
    /// on 2 cores).
    #[arg(long, value_enum, required_unless_present = "list")]
    size: Option<Size>,
    /// Runs only these benchmarks (a name as `--list` prints it, or its service: `deals`).
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Where the table and the rows are written (`latest.md`, and a file per run).
    #[arg(long, value_name = "DIR", default_value = "target/cosell-bench")]
    out: PathBuf,
    /// Lists the benchmarks and their settings at each size, and runs nothing.
    #[arg(long)]
    list: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Size {
    Small,
    Full,
}

impl Size {
    fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Full => "full",
        }
    }
}

/// One benchmark: a `cargo bench` target, and its settings at each size.
struct Bench {
    /// Its name in the table, `service/target`.
    name: &'static str,
    package: &'static str,
    target: &'static str,
    /// What it measures, for `--list`.
    what: &'static str,
    small: &'static [(&'static str, &'static str)],
    full: &'static [(&'static str, &'static str)],
}

impl Bench {
    fn settings(&self, size: Size) -> &'static [(&'static str, &'static str)] {
        match size {
            Size::Small => self.small,
            Size::Full => self.full,
        }
    }

    /// The package's folder in the workspace (`cosell-deals`: `services/deals`).
    fn folder(&self) -> String {
        format!("services/{}", self.package.trim_start_matches("cosell-"))
    }

    fn command(&self) -> String {
        format!("cargo bench -p {} --bench {}", self.package, self.target)
    }

    fn selected(&self, only: &[String]) -> bool {
        only.is_empty()
            || only.iter().any(|o| {
                self.name == o || self.name.split('/').next() == Some(o.trim_end_matches('/'))
            })
    }
}

/// Every benchmark, in the order they run. The `full` settings are the sizes of the targets
/// (issues 3, 4, 5, 17, 19 and 20; `docs/benchmarks.md`); `small` keeps each to a minute or so.
const BENCHES: &[Bench] = &[
    Bench {
        name: "identity/access",
        package: "cosell-identity",
        target: "access",
        what: "the token and access check's cost on a trivial call (identity on in-memory SQLite)",
        small: &[("COSELL_BENCH_CALLS", "3000")],
        full: &[("COSELL_BENCH_CALLS", "20000")],
    },
    Bench {
        name: "directory/quality",
        package: "cosell-directory",
        target: "quality",
        what: "search recall on 350 queries made from real GLEIF names, all 399,203 entities at every size",
        small: &[],
        full: &[],
    },
    Bench {
        name: "directory/matching",
        package: "cosell-directory",
        target: "matching",
        what: "customer matching on 3,500 real GLEIF names typed as salespeople type them, all 399,203 entities at every size",
        small: &[],
        full: &[],
    },
    Bench {
        name: "directory/scale",
        package: "cosell-directory",
        target: "scale",
        what: "load, memory and search through gRPC vs a trivial call and pg_trgm",
        small: &[
            ("COSELL_BENCH_ENTITIES", "100000"),
            ("COSELL_BENCH_CALLS", "1000"),
            ("COSELL_BENCH_SETTLE_SECS", "5"),
        ],
        full: &[
            ("COSELL_BENCH_ENTITIES", "1000000"),
            ("COSELL_BENCH_CALLS", "4000"),
            ("COSELL_BENCH_SETTLE_SECS", "20"),
        ],
    },
    Bench {
        name: "deals/api",
        package: "cosell-deals",
        target: "api",
        what: "create, get and list through gRPC vs plain SQL and a trivial call",
        small: &[
            ("COSELL_BENCH_CALLS", "2000"),
            ("COSELL_BENCH_REFERRALS", "10000"),
        ],
        full: &[
            ("COSELL_BENCH_CALLS", "10000"),
            ("COSELL_BENCH_REFERRALS", "100000"),
        ],
    },
    Bench {
        name: "deals/http",
        package: "cosell-deals",
        target: "http",
        what: "GetReferral over HTTP/JSON (HTTP/1.1 and HTTP/2) vs the same get through gRPC",
        small: &[("COSELL_BENCH_CALLS", "2000")],
        full: &[("COSELL_BENCH_CALLS", "10000")],
    },
    Bench {
        name: "deals/feed",
        package: "cosell-deals",
        target: "feed",
        what: "creates with 16 clients watching the feed vs nobody watching; the expiry sweeper",
        small: &[("COSELL_BENCH_CALLS", "1000"), ("COSELL_BENCH_DUE", "5000")],
        full: &[
            ("COSELL_BENCH_CALLS", "6000"),
            ("COSELL_BENCH_DUE", "100000"),
        ],
    },
    Bench {
        name: "deals/insights",
        package: "cosell-deals",
        target: "insights",
        what: "GetInsights vs counting when asked",
        small: &[
            ("COSELL_BENCH_CALLS", "100"),
            ("COSELL_BENCH_REFERRALS", "10000"),
        ],
        full: &[
            ("COSELL_BENCH_CALLS", "500"),
            ("COSELL_BENCH_REFERRALS", "100000"),
        ],
    },
    Bench {
        name: "migration/migrate",
        package: "cosell-migration",
        target: "migrate",
        what: "PSC import, run and report end to end vs plain batched inserts; memory as the export grows",
        small: &[("COSELL_BENCH_DEALS", "2000,10000")],
        full: &[("COSELL_BENCH_DEALS", "100000,1000000")],
    },
];

/// Variables the size sets for one benchmark and must not leak into another, or that would
/// change what a benchmark measures.
const CLEARED: &[&str] = &[
    "COSELL_BENCH_CALLS",
    "COSELL_BENCH_ENTITIES",
    "COSELL_BENCH_SETTLE_SECS",
    "COSELL_BENCH_REFERRALS",
    "COSELL_BENCH_DUE",
    "COSELL_BENCH_DEALS",
    "COSELL_BENCH_ONLY",
];

/// A row as a benchmark wrote it.
#[derive(Debug, serde::Deserialize)]
struct Row {
    bench: String,
    figure: String,
    measured: String,
    baseline: Option<String>,
    ratio_text: Option<String>,
    target: Option<String>,
    met: Option<bool>,
}

/// How one benchmark's run ended.
struct Ran {
    name: &'static str,
    took: Duration,
    /// `None`: it succeeded; else how it failed.
    failure: Option<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cosell-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !BENCHES.iter().any(|b| b.selected(std::slice::from_ref(o))))
    {
        anyhow::bail!("no benchmark is named {unknown:?} (see --list)");
    }
    if args.list {
        list();
        return Ok(ExitCode::SUCCESS);
    }
    let size = args.size.context("--size is required")?;
    let root = workspace_root();
    let out = root.join(&args.out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let benches: Vec<&Bench> = BENCHES.iter().filter(|b| b.selected(&args.only)).collect();

    // Build every benchmark first, then run what was built: a compile error shows before any
    // benchmark has run, and no benchmark shares the machine with a build (not even one that
    // `cargo bench` would start for a source file edited meanwhile).
    let built = build(&root)?;
    let executables = benches
        .iter()
        .map(|b| {
            executable(&built, b.target)
                .with_context(|| format!("cargo named no executable for {}", b.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    // The run's date and files: from when the first benchmark starts.
    let started = chrono::Utc::now();
    let stem = format!("{}-{}", started.format("%Y%m%dT%H%M%SZ"), size.name());
    let rows_file = out.join(format!("{stem}.jsonl"));
    let clock = Instant::now();
    let mut ran = Vec::new();
    for (b, executable) in benches.iter().zip(&executables) {
        let settings = b.settings(size);
        println!();
        println!(
            "== {} ({}){}{}",
            b.name,
            b.command(),
            if settings.is_empty() { "" } else { " with " },
            shown(settings)
        );
        // As `cargo bench` runs it: in its package's folder, with `--bench`.
        let mut command = Command::new(executable);
        command
            .arg("--bench")
            .current_dir(root.join(b.folder()))
            .env(REPORT_VAR, &rows_file);
        for var in CLEARED {
            command.env_remove(var);
        }
        if b.name == "identity/access" {
            // There the variable names identity's own database (in-memory SQLite when unset),
            // not the PostgreSQL server the others make their databases on.
            command.env_remove("COSELL_BENCH_DATABASE_URL");
        }
        command.envs(settings.iter().copied());
        let t = Instant::now();
        let failure = match command.status() {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!("failed ({status})")),
            Err(e) => Some(format!("did not start ({e})")),
        };
        let took = t.elapsed();
        println!(
            "== {} {} in {:.1} s",
            b.name,
            failure.as_deref().unwrap_or("done"),
            took.as_secs_f64()
        );
        ran.push(Ran {
            name: b.name,
            took,
            failure,
        });
    }

    let rows = read_rows(&rows_file)?;
    let table = table(&rows, &ran, size, started, clock.elapsed(), &root);
    let file = out.join(format!("{stem}.md"));
    std::fs::write(&file, &table).with_context(|| format!("writing {}", file.display()))?;
    std::fs::write(out.join("latest.md"), &table)?;
    println!();
    println!("{table}");
    println!(
        "(written to {}; the rows to {})",
        file.display(),
        rows_file.display()
    );
    Ok(if ran.iter().any(|r| r.failure.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn list() {
    for b in BENCHES {
        println!("{:<18} {}", b.name, b.command());
        println!("{:<18} {}", "", b.what);
        for size in [Size::Small, Size::Full] {
            let settings = b.settings(size);
            println!(
                "{:<18} {:<5}: {}",
                "",
                size.name(),
                if settings.is_empty() {
                    "(one size)".to_owned()
                } else {
                    shown(settings)
                }
            );
        }
    }
}

/// Builds every benchmark in one `cargo bench --no-run` and returns cargo's JSON messages.
/// Always all of them, whatever `--only` says: cargo unifies the dependencies' features over
/// the packages it builds, so building one package alone would rebuild many dependencies with
/// other features (and the next build of all of them again).
fn build(root: &Path) -> anyhow::Result<String> {
    let mut packages: Vec<&str> = BENCHES.iter().map(|b| b.package).collect();
    packages.dedup();
    eprintln!(
        "== building every benchmark: cargo bench --no-run -p {} --benches",
        packages.join(" -p ")
    );
    let mut command = cargo(root);
    command.args([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for p in &packages {
        command.args(["-p", p]);
    }
    let output = command
        .arg("--benches")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo")?;
    anyhow::ensure!(output.status.success(), "the benchmarks did not build");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The executable of bench target `target` among cargo's JSON messages.
fn executable(messages: &str, target: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == target)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// `cargo`, as the one running this (`CARGO`), in the workspace.
fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root);
    c
}

/// This crate sits at `shared/bench` in the workspace.
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// `COSELL_BENCH_CALLS=2000 COSELL_BENCH_REFERRALS=10000`.
fn shown(settings: &[(&str, &str)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{} line {}", path.display(), i + 1))?,
        );
    }
    Ok(rows)
}

/// The Markdown table: a line on the run, then the rows of each benchmark in the order they
/// ran, then each benchmark's settings and time.
fn table(
    rows: &[Row],
    ran: &[Ran],
    size: Size,
    started: chrono::DateTime<chrono::Utc>,
    took: Duration,
    root: &Path,
) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!(
        "Benchmarks at size `{}`, {}, {}, {cores} cores, {:.0} min (`cargo run -p cosell-bench -- --size {}`):\n\n",
        size.name(),
        started.format("%Y-%m-%d %H:%M UTC"),
        commit(root),
        took.as_secs_f64() / 60.0,
        size.name(),
    );
    out.push_str(
        "| benchmark | figure | measured | baseline in the same run | ratio | target | met |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    let mut by_bench: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        by_bench.entry(row.bench.as_str()).or_default().push(row);
    }
    for r in ran {
        let mine = by_bench.remove(r.name).unwrap_or_default();
        for row in &mine {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {met} |\n",
                cell(&row.bench),
                cell(&row.figure),
                cell(&row.measured),
                cell(row.baseline.as_deref().unwrap_or("")),
                cell(row.ratio_text.as_deref().unwrap_or("")),
                cell(row.target.as_deref().unwrap_or("")),
            ));
        }
        if let Some(failure) = &r.failure {
            out.push_str(&format!(
                "| {} | the benchmark {} (its output is above) | | | | | **no** |\n",
                r.name,
                cell(failure)
            ));
        } else if mine.is_empty() {
            out.push_str(&format!("| {} | no figures reported | | | | | |\n", r.name));
        }
    }
    // Rows of a benchmark this run did not start (a file shared by hand): shown, not lost.
    for (bench, rows) in by_bench {
        for row in rows {
            out.push_str(&format!(
                "| {} | {} | {} | | | | |\n",
                cell(bench),
                cell(&row.figure),
                cell(&row.measured)
            ));
        }
    }
    out.push('\n');
    out.push_str("Settings and time of each: ");
    let each: Vec<String> = ran
        .iter()
        .map(|r| {
            let settings = BENCHES
                .iter()
                .find(|b| b.name == r.name)
                .map(|b| shown(b.settings(size)))
                .unwrap_or_default();
            let settings = if settings.is_empty() {
                String::new()
            } else {
                format!("`{settings}`, ")
            };
            format!("{} ({settings}{:.0} s)", r.name, r.took.as_secs_f64())
        })
        .collect();
    out.push_str(&each.join("; "));
    out.push_str(".\n");
    out
}

/// `commit d19d707`, and whether the tree had changes the commit does not hold.
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("commit `{hash}` with uncommitted changes")
            } else {
                format!("commit `{hash}`")
            }
        }
        None => "commit unknown".to_owned(),
    }
}

/// Text fit for a Markdown cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_name_selects_its_benchmarks() {
        let only = |o: &[&str]| -> Vec<&str> {
            let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            BENCHES
                .iter()
                .filter(|b| b.selected(&o))
                .map(|b| b.name)
                .collect()
        };
        assert_eq!(only(&[]).len(), BENCHES.len());
        assert_eq!(
            only(&["deals"]),
            ["deals/api", "deals/http", "deals/feed", "deals/insights"]
        );
        assert_eq!(
            only(&["deals/api", "migration"]),
            ["deals/api", "migration/migrate"]
        );
        assert!(only(&["deal"]).is_empty());
    }

    #[test]
    fn the_bench_executable_is_found_among_cargos_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"api"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["bench"],"name":"feed"},"executable":"/t/feed-1"}
{"reason":"compiler-artifact","target":{"kind":["bench"],"name":"api"},"executable":"/t/api-2"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(executable(messages, "api"), Some(PathBuf::from("/t/api-2")));
        assert_eq!(executable(messages, "quality"), None);
    }

    #[test]
    fn every_benchmark_sits_in_its_service_folder() {
        let root = workspace_root();
        for b in BENCHES {
            let bench = root
                .join(b.folder())
                .join(format!("benches/{}.rs", b.target));
            assert!(bench.is_file(), "{}", bench.display());
        }
    }

    #[test]
    fn every_benchmark_sets_the_same_variables_at_both_sizes() {
        for b in BENCHES {
            let names = |s: Size| b.settings(s).iter().map(|(k, _)| *k).collect::<Vec<_>>();
            assert_eq!(names(Size::Small), names(Size::Full), "{}", b.name);
            for (k, _) in b.full {
                assert!(CLEARED.contains(k), "{k} is not cleared between benchmarks");
            }
        }
    }

    #[test]
    fn the_table_has_a_row_per_figure_and_one_per_failure() {
        let rows: Vec<Row> = [
            r#"{"bench":"deals/api","figure":"get","measured":"9,116/s","value":9116.0,"unit":"/s","baseline":"floor | 19,456/s","baseline_value":19456.0,"ratio":0.47,"ratio_text":"0.47","target":">= 0.7","met":false}"#,
            r#"{"bench":"deals/feed","figure":"sweeper","measured":"95.4 s","value":95.4,"unit":"s","baseline":null,"baseline_value":null,"ratio":null,"ratio_text":null,"target":null,"met":null}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let ran = [
            Ran {
                name: "deals/api",
                took: Duration::from_secs(60),
                failure: None,
            },
            Ran {
                name: "deals/feed",
                took: Duration::from_secs(60),
                failure: None,
            },
            Ran {
                name: "migration/migrate",
                took: Duration::from_secs(1),
                failure: Some("failed (exit status: 101)".into()),
            },
        ];
        let t = table(
            &rows,
            &ran,
            Size::Small,
            chrono::Utc::now(),
            Duration::from_secs(121),
            Path::new("/nonexistent"),
        );
        assert!(t.contains(
            "| deals/api | get | 9,116/s | floor \\| 19,456/s | 0.47 | >= 0.7 | **no** |"
        ));
        assert!(t.contains("| deals/feed | sweeper | 95.4 s |  |  |  |  |"));
        assert!(t.contains("| migration/migrate | the benchmark failed (exit status: 101)"));
        assert!(
            t.contains("deals/api (`COSELL_BENCH_CALLS=2000 COSELL_BENCH_REFERRALS=10000`, 60 s)")
        );
    }
}
