//! `cosell catalog create|list`: the solutions catalog from a terminal. A new deployment's
//! catalog is empty, and a partner creates referrals only while one of its own solutions is
//! co-sell ready (D7), which only a platform operator can say: so after the services are up, an
//! operator seeds each partner's solution (and, for the deal migration, the PSC product ids it
//! replaces) with `cosell catalog create`.

use clap::{Args, Subcommand, ValueEnum};
use cosell_proto::deals as pb;

use crate::client::{Connection, call_error, organization_name};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Add a solution (CatalogService/CreateSolution); prints its name, `solutions/{id}`.
    Create(CreateArgs),
    /// List solutions by name, every page.
    List(ListArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// A partner organization's own solution (`--publisher` names it, for operators).
    PartnerSolution,
    /// One of the platform's first-party SKUs (platform operators).
    PlatformSku,
    /// A third party's product (platform operators).
    ThirdParty,
}

impl Kind {
    fn pb(self) -> pb::SolutionKind {
        match self {
            Kind::PartnerSolution => pb::SolutionKind::PartnerSolution,
            Kind::PlatformSku => pb::SolutionKind::PlatformSku,
            Kind::ThirdParty => pb::SolutionKind::ThirdParty,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The name shown in the picker.
    #[arg(long)]
    name: String,
    /// The MPN ID it is attached to: the publisher's vOrg or one of its locations (none for a
    /// platform SKU).
    #[arg(long, default_value = "")]
    mpn_id: String,
    /// What it is.
    #[arg(long, value_enum, default_value = "partner-solution")]
    kind: Kind,
    /// The publishing organization (`organizations/{id}` or its id), when a platform operator
    /// creates a partner's solution; partners always publish for their own.
    #[arg(long, default_value = "")]
    publisher: String,
    /// It may be attached to co-sell referrals (platform operators only).
    #[arg(long)]
    cosell_ready: bool,
    /// It qualifies a won deal for registration (platform operators only).
    #[arg(long)]
    incentive_eligible: bool,
    /// A PSC product id this solution replaces, for the deal migration (repeat it).
    #[arg(long = "legacy-product-id")]
    legacy_product_ids: Vec<String>,
    /// One JSON object instead of the name.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Words the name must have, each as the start of a word; default: every solution.
    #[arg(long, default_value = "")]
    query: String,
    /// Only this publisher: `organizations/{id}` (or its id), or `platform`.
    #[arg(long, default_value = "")]
    publisher: String,
    /// Only co-sell-ready solutions.
    #[arg(long)]
    cosell_ready_only: bool,
    /// One JSON object per solution instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Create(args) => create(args).await,
        CatalogCommand::List(args) => list(args).await,
    }
}

/// `ORG`, `organizations/ORG` or `platform`, as the catalog names publishers.
fn publisher(value: &str) -> String {
    if value.is_empty() || value == "platform" {
        value.to_owned()
    } else {
        organization_name(value)
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let solution = pb::catalog_service_client::CatalogServiceClient::new(channel)
        .create_solution(args.connection.request(pb::CreateSolutionRequest {
            solution: Some(pb::Solution {
                display_name: args.name,
                kind: args.kind.pb() as i32,
                cosell_ready: args.cosell_ready,
                incentive_eligible: args.incentive_eligible,
                mpn_id: args.mpn_id,
                legacy_product_ids: args.legacy_product_ids,
                ..Default::default()
            }),
            publisher: publisher(&args.publisher),
        })?)
        .await
        .map_err(call_error)?
        .into_inner()
        .solution
        .unwrap_or_default();
    if args.json {
        println!("{}", json(&solution));
    } else {
        println!("{}", solution.name);
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let mut client = pb::catalog_service_client::CatalogServiceClient::new(channel);
    let mut page_token = String::new();
    loop {
        let page = client
            .list_solutions(args.connection.request(pb::ListSolutionsRequest {
                query: args.query.clone(),
                publisher: publisher(&args.publisher),
                cosell_ready_only: args.cosell_ready_only,
                page_size: 500,
                page_token,
                ..Default::default()
            })?)
            .await
            .map_err(call_error)?
            .into_inner();
        for s in &page.solutions {
            if args.json {
                println!("{}", json(s));
            } else {
                println!(
                    "{:<20} {:<16} {:<9} {:<22} {}",
                    s.name,
                    kind_name(s.kind),
                    if s.cosell_ready { "co-sell" } else { "-" },
                    s.publisher,
                    s.display_name
                );
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

/// `partner_solution` for `SOLUTION_KIND_PARTNER_SOLUTION`.
fn kind_name(kind: i32) -> String {
    pb::SolutionKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("SOLUTION_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| kind.to_string())
}

fn json(s: &pb::Solution) -> serde_json::Value {
    serde_json::json!({
        "name": s.name, "display_name": s.display_name, "publisher": s.publisher,
        "kind": kind_name(s.kind), "cosell_ready": s.cosell_ready,
        "incentive_eligible": s.incentive_eligible, "mpn_id": s.mpn_id,
        "legacy_product_ids": s.legacy_product_ids, "etag": s.etag,
    })
}
