//! `cosell psc import DIR_OR_ZIP`: uploads a PSC export bundle and prints its report.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use cosell_proto::migration as pb;

use crate::client::{Connection, call_error, own_organization};

#[derive(Debug, Subcommand)]
pub enum PscCommand {
    /// Import a PSC export: a folder with its CSV files, or a `.zip` of one. Prints every row
    /// problem (file, line, column, deal or user id, reason) and the warnings.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The folder or the `.zip`.
    path: PathBuf,
    /// `organizations/{id}`; default: the caller's own.
    #[arg(long)]
    organization: Option<String>,
    /// One JSON object per line (the summary, then each problem) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Bytes per upload message.
const CHUNK: usize = 1024 * 1024;

pub async fn run(command: PscCommand) -> anyhow::Result<()> {
    match command {
        PscCommand::Import(args) => import(args).await,
    }
}

/// The files to upload, by name: the bundle's CSV files of a folder, or the zip itself. Each is
/// opened here, so that one that cannot be read stops the import before anything is sent.
fn files(path: &std::path::Path) -> anyhow::Result<Vec<(String, std::fs::File)>> {
    let open = |p: &std::path::Path| {
        std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))
    };
    if path.is_dir() {
        let mut out = Vec::new();
        for name in cosell_migration::upload::BUNDLE_FILES {
            let p = path.join(name);
            if p.exists() {
                out.push((name.to_string(), open(&p)?));
            }
        }
        anyhow::ensure!(
            !out.is_empty(),
            "{} holds none of the PSC export files ({})",
            path.display(),
            cosell_migration::upload::BUNDLE_FILES.join(", ")
        );
        Ok(out)
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(vec![(name, open(path)?)])
    }
}

/// The upload's messages, read from `files` a chunk at a time on a thread of their own while
/// they are sent, so that an export of any size takes a few chunks of memory. A read error ends
/// the messages and arrives on the second receiver first.
fn upload_messages(
    files: Vec<(String, std::fs::File)>,
    organization: String,
) -> (
    tokio_stream::wrappers::ReceiverStream<pb::ImportPscExportRequest>,
    tokio::sync::oneshot::Receiver<anyhow::Error>,
) {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (failed_tx, failed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut organization = Some(organization);
        for (name, file) in files {
            let mut file = std::io::BufReader::new(file);
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                if let Err(e) = (&mut file).take(CHUNK as u64).read_to_end(&mut chunk) {
                    let _ = failed_tx
                        .send(anyhow::Error::new(e).context(format!("cannot read {name}")));
                    return;
                }
                if chunk.is_empty() {
                    break;
                }
                let last = chunk.len() < CHUNK;
                let message = pb::ImportPscExportRequest {
                    organization: organization.take().unwrap_or_default(),
                    file_name: name.clone(),
                    chunk,
                };
                if tx.blocking_send(message).is_err() {
                    return; // the call ended
                }
                if last {
                    break;
                }
            }
        }
    });
    (tokio_stream::wrappers::ReceiverStream::new(rx), failed)
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let files = files(&args.path)?;
    let channel = args.connection.channel().await?;
    let organization = match args.organization.clone() {
        Some(o) => o,
        None => own_organization(&args.connection, &channel).await?,
    };
    let (messages, failed) = upload_messages(files, organization);
    let mut client = pb::migration_service_client::MigrationServiceClient::new(channel);
    let call = client.import_psc_export(args.connection.request(messages)?);
    let response = tokio::select! {
        biased;
        // Dropping the call cancels the upload: the server keeps nothing of it.
        Ok(e) = failed => return Err(e),
        response = call => response.map_err(call_error)?,
    };
    let import = response.into_inner().import.unwrap_or_default();
    if args.json {
        let issue = |kind: &str, i: &pb::PscIssue| {
            serde_json::json!({
                "kind": kind, "file": i.file, "line": i.line, "column": i.column,
                "id": i.id, "reason": i.reason,
            })
        };
        println!(
            "{}",
            serde_json::json!({
                "kind": "summary", "import": import.name, "accounts": import.accounts,
                "users": import.users, "deals_added": import.deals_added,
                "deals_updated": import.deals_updated, "deals_unchanged": import.deals_unchanged,
                "products": import.products, "team_members": import.team_members,
                "errors": import.errors.len(), "warnings": import.warnings.len(),
            })
        );
        for i in &import.errors {
            println!("{}", issue("error", i));
        }
        for i in &import.warnings {
            println!("{}", issue("warning", i));
        }
        return Ok(());
    }
    println!(
        "imported {}: {} accounts, {} users, deals {} new / {} updated / {} unchanged, {} products, {} team members",
        import.name,
        import.accounts,
        import.users,
        import.deals_added,
        import.deals_updated,
        import.deals_unchanged,
        import.products,
        import.team_members
    );
    let table = |title: &str, issues: &[pb::PscIssue]| {
        if issues.is_empty() {
            return;
        }
        println!();
        println!("{title} ({}):", issues.len());
        println!(
            "{:<18} {:>6}  {:<22} {:<24} reason",
            "file", "line", "column", "deal or user"
        );
        for i in issues {
            println!(
                "{:<18} {:>6}  {:<22} {:<24} {}",
                i.file, i.line, i.column, i.id, i.reason
            );
        }
    };
    table("rows skipped", &import.errors);
    table("warnings", &import.warnings);
    if !import.errors.is_empty() && std::io::stdout().is_terminal() {
        eprintln!(
            "\nfix these rows in PSC (or the export) and import again: imports are idempotent"
        );
    }
    Ok(())
}
