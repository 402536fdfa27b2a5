//! The customers of the generated export in the benchmark's directory, and what matching them
//! costs a run: the run asks the directory's MatchEntities once per batch of leased deals, for
//! the batch's distinct customers. The same calls, replayed after the run against the same
//! directory at the run's concurrency, take the wall time matching adds to it at most (in the
//! run they overlap with the other workers' calls to the deals service).

use std::time::{Duration, Instant};

use cosell_migration::psc::synthetic;
use cosell_proto::directory as dirpb;
use cosell_testkit::authed;
use futures::{StreamExt, TryStreamExt};
use tonic::transport::Channel;

/// Deals a run leases at a time, and its workers.
const RUN_BATCH: usize = cosell_migration::runs::BATCH as usize;
const RUN_WORKERS: usize = cosell_migration::runs::WORKERS;

type Client = dirpb::directory_service_client::DirectoryServiceClient<Channel>;

/// Loads the entities of the export's customers (`synthetic::write_customers`), as the operator
/// of `token`; how many entities the directory took.
pub async fn load(directory: Channel, token: &str, deals: usize) -> anyhow::Result<i64> {
    let mut file = Vec::new();
    synthetic::write_customers(&mut file, deals)?;
    let messages: Vec<dirpb::LoadEntitiesRequest> = file
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, chunk)| dirpb::LoadEntitiesRequest {
            chunk: chunk.to_vec(),
            file_name: if i == 0 {
                "customers.csv".into()
            } else {
                String::new()
            },
        })
        .collect();
    let mut load = Client::new(directory)
        .load_entities(authed(token, tokio_stream::iter(messages)))
        .await?
        .into_inner();
    let mut last = dirpb::LoadEntitiesResponse::default();
    while let Some(m) = load.message().await? {
        last = m;
    }
    anyhow::ensure!(
        last.done && last.failed == 0,
        "customers not loaded: {last:?}"
    );
    Ok(last.loaded)
}

/// What replaying a run's matching took, and how its customers came out.
pub struct Replay {
    pub elapsed: Duration,
    pub calls: usize,
    /// Distinct customers asked, summed over the batches.
    pub asked: usize,
    pub matched: usize,
    pub ambiguous: usize,
    pub not_found: usize,
}

/// Asks the directory about the customers of the eligible deals of a `deals`-deal export as
/// the run does: per batch of leased deals, its distinct customers in one call, batches
/// `RUN_WORKERS` at a time.
pub async fn replay(directory: Channel, token: &str, deals: usize) -> anyhow::Result<Replay> {
    let eligible: Vec<usize> = (0..deals).filter(|i| synthetic::eligible(*i)).collect();
    let batches: Vec<Vec<dirpb::CustomerName>> = eligible
        .chunks(RUN_BATCH)
        .map(|batch| {
            let mut names: Vec<(String, &str, &str)> =
                batch.iter().map(|i| synthetic::customer(*i)).collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .map(|(name, city, country)| dirpb::CustomerName {
                    name,
                    country_code: country.into(),
                    city: city.into(),
                })
                .collect()
        })
        .collect();
    let asked = batches.iter().map(Vec::len).sum();
    let calls = batches.len();
    let client = Client::new(directory);
    let started = Instant::now();
    let answers: Vec<Vec<dirpb::EntityMatch>> = futures::stream::iter(batches)
        .map(|customers| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .match_entities(authed(token, dirpb::MatchEntitiesRequest { customers }))
                    .await?;
                Ok::<_, tonic::Status>(answer.into_inner().matches)
            }
        })
        .buffer_unordered(RUN_WORKERS)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    let outcomes: Vec<dirpb::MatchOutcome> =
        answers.iter().flatten().map(|m| m.outcome()).collect();
    let count = |o: dirpb::MatchOutcome| outcomes.iter().filter(|x| **x == o).count();
    Ok(Replay {
        elapsed,
        calls,
        asked,
        matched: count(dirpb::MatchOutcome::Matched),
        ambiguous: count(dirpb::MatchOutcome::Ambiguous),
        not_found: count(dirpb::MatchOutcome::NotFound),
    })
}
