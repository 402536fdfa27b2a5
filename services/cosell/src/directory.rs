//! `cosell directory import|search`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use cosell_proto::directory as pb;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{Connection, call_error};

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Load legal entities from a GLEIF-layout CSV file (`.csv` or `.csv.gz`), with progress.
    Import(ImportArgs),
    /// Search legal entities by name.
    Search(SearchArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file.
    file: PathBuf,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to search for (the last word counts as a prefix).
    query: String,
    /// Only this country (ISO 3166-1 alpha-2).
    #[arg(long, default_value = "")]
    country: String,
    /// Only this region.
    #[arg(long, default_value = "")]
    region: String,
    /// Only this city.
    #[arg(long, default_value = "")]
    city: String,
    /// At most this many results.
    #[arg(long, default_value_t = 10)]
    limit: i32,
    /// One JSON object per result.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(command: DirectoryCommand) -> anyhow::Result<()> {
    match command {
        DirectoryCommand::Import(args) => import(args).await,
        DirectoryCommand::Search(args) => search(args).await,
    }
}

/// Bytes per upload message.
const CHUNK: usize = 1024 * 1024;

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let name = args.file.display().to_string();
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} sent  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Read the file on a blocking thread and stream it in chunks: constant memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::LoadEntitiesRequest>(4);
    let reader_bar = bar.clone();
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut first = true;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            reader_bar.inc(n as u64);
            let msg = pb::LoadEntitiesRequest {
                chunk: buf,
                file_name: if first { name.clone() } else { String::new() },
            };
            first = false;
            if tx.blocking_send(msg).is_err() {
                return Ok(());
            }
        }
    });
    let mut client =
        pb::directory_service_client::DirectoryServiceClient::new(args.connection.channel().await?);
    let mut responses = client
        .load_entities(
            args.connection
                .request(tokio_stream::wrappers::ReceiverStream::new(rx))?,
        )
        .await
        .map_err(call_error)?
        .into_inner();
    let mut last = pb::LoadEntitiesResponse::default();
    let mut errors = Vec::new();
    while let Some(p) = responses.message().await.map_err(call_error)? {
        bar.set_message(format!(
            "{} read, {} loaded, {} failed",
            p.rows_read, p.loaded, p.failed
        ));
        errors.extend(p.errors.iter().cloned());
        last = p;
    }
    bar.finish();
    reader.await??;
    for e in &errors {
        let column = if e.column.is_empty() {
            String::new()
        } else {
            format!(" {}", e.column)
        };
        eprintln!("line {}{}: {}", e.line, column, e.reason);
    }
    if (errors.len() as i64) < last.failed {
        eprintln!(
            "({} more row errors not listed)",
            last.failed - errors.len() as i64
        );
    }
    println!(
        "{} rows read, {} loaded, {} failed",
        last.rows_read, last.loaded, last.failed
    );
    anyhow::ensure!(last.done, "the load did not finish");
    Ok(())
}

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let mut client =
        pb::directory_service_client::DirectoryServiceClient::new(args.connection.channel().await?);
    let results = client
        .search_entities(args.connection.request(pb::SearchEntitiesRequest {
            query: args.query.clone(),
            country_code: args.country.clone(),
            region: args.region.clone(),
            city: args.city.clone(),
            page_size: args.limit,
        })?)
        .await
        .map_err(call_error)?
        .into_inner()
        .results;
    for r in results {
        let Some(e) = r.entity else { continue };
        let address = e.address.unwrap_or_default();
        let id = e
            .name
            .strip_prefix("entities/")
            .unwrap_or(&e.name)
            .to_owned();
        let lei = e
            .identifiers
            .iter()
            .find(|i| i.scheme == "LEI")
            .map(|i| i.value.clone())
            .unwrap_or_default();
        if args.json {
            let line = serde_json::json!({
                "id": id,
                "lei": lei,
                "legal_name": e.legal_name,
                "country": address.country_code,
                "region": address.region,
                "city": address.city,
                "address_lines": address.lines,
                "postal_code": address.postal_code,
                "address_generated": e.address_generated,
                "score": r.score,
            });
            println!("{line}");
        } else {
            let generated = if e.address_generated {
                " (generated address)"
            } else {
                ""
            };
            println!(
                "{:<20}  {:<60}  {} {}{}",
                id, e.legal_name, address.country_code, address.city, generated
            );
        }
    }
    Ok(())
}
