//! The customer-organization directory (`cosell.directory.v1`): legal entities with their
//! names, addresses and identifiers, searchable as you type, loaded in bulk from GLEIF-layout CSV.
//!
//! - [`domain`]: the entity, row parsing rules and name normalization.
//! - [`store`]: the database (the source of truth).
//! - [`index`]: the tantivy search index derived from it.
//! - [`matching`]: confident matching of customers named in free text (`MatchEntities`);
//!   [`evaluation`] measures it on real names typed as people type them.
//! - [`load`]: streamed CSV loading.
//! - [`follow`]: each replica's index follows the database (what other replicas loaded).
//! - [`api`]: the gRPC handlers.
//!
//! [`start`] opens the database and index (rebuilding the index when it is missing, catching it
//! up when it is behind), loads the bundled sample into an empty database when asked, and starts
//! following the database.

pub mod api;
pub mod domain;
pub mod evaluation;
pub mod follow;
pub mod index;
pub mod load;
pub mod matching;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::auth::AccessClient;
use cosell_platform::server::ServiceSet;
use cosell_proto::directory as pb;

pub use api::Directory;
use index::SearchIndex;
use store::Store;

/// The sample data set (about 20,000 real legal entities with generated addresses), made by
/// `scripts/make_sample.py`.
pub const SAMPLE: &[u8] = include_bytes!("../data/sample-entities.csv.gz");

/// How often the index looks for what other replicas loaded: one cheap read of the generation;
/// a load through one replica is searchable through the others within about this long.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Rows per page when the index is rebuilt from the database.
const REBUILD_PAGE: u64 = 5000;

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// Where the index lives; `None`: in memory (rebuilt from the database at every start).
    pub index_dir: Option<PathBuf>,
    /// Load [`SAMPLE`] when the database has no entity.
    pub load_sample: bool,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            index_dir: None,
            load_sample: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("directory database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("directory index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("directory sample: {0}")]
    Load(#[from] load::LoadError),
    #[error("directory index: {0}")]
    Follow(#[from] follow::FollowError),
}

pub struct Started {
    pub services: ServiceSet,
    pub directory: Arc<Directory>,
}

/// Opens everything; `access` authorizes loads through identity (`None`: anyone may load).
pub async fn start(
    config: &Config,
    access: Option<Arc<AccessClient>>,
) -> Result<Started, StartError> {
    let db = cosell_platform::db::connect_and_migrate::<store::migration::Migrator>(
        &config.database_url,
    )
    .await?;
    let store = Store::new(db);
    let index = Arc::new(SearchIndex::open(config.index_dir.as_deref())?);
    let generation = store.generation().await?;
    match index.generation() {
        Some(g) if g == generation => {}
        // Behind (a crash between the two writes, or other replicas loaded meanwhile): read
        // what was written since.
        Some(g) if g < generation => {
            let read = follow::catch_up(&store, &index, generation, &[]).await?;
            tracing::info!(
                from = g,
                generation,
                rows = read,
                "directory index caught up"
            );
        }
        // Missing, or ahead of a database that started over.
        _ => {
            rebuild(&store, &index, generation).await?;
            load::compact_in_background(index.clone());
        }
    }
    if config.load_sample && store.count().await? == 0 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (progress, mut progress_rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move { while progress_rx.recv().await.is_some() {} });
        let _ = tx.send(SAMPLE.to_vec()).await;
        drop(tx);
        let done = load::load(&store, &index, rx, progress).await?;
        tracing::info!(loaded = done.loaded, "directory sample loaded");
    }
    let directory = Arc::new(Directory {
        store,
        index,
        access,
        load_lock: tokio::sync::Mutex::new(()),
    });
    follow::spawn_follower(&directory, FOLLOW_EVERY);
    Ok(Started {
        services: service_set(directory.clone()),
        directory,
    })
}

/// Rebuilds the index from the database, page by page.
async fn rebuild(store: &Store, index: &SearchIndex, generation: i64) -> Result<(), StartError> {
    tracing::info!(
        generation,
        "rebuilding the directory index from the database"
    );
    index.clear()?;
    let mut after: Option<String> = None;
    let mut total = 0usize;
    loop {
        let page = store.page_after(after.as_deref(), REBUILD_PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id.clone());
        total += page.len();
        index.upsert(&page)?;
    }
    index.commit(generation)?;
    tracing::info!(entities = total, "directory index rebuilt");
    Ok(())
}

/// The directory's services, ready for a server.
pub fn service_set(directory: Arc<Directory>) -> ServiceSet {
    let mut set = ServiceSet::default();
    set.add("cosell.directory.v1.DirectoryService", move |r| {
        r.add_service(pb::directory_service_server::DirectoryServiceServer::new(
            api::Api(directory),
        ));
    });
    set.descriptor_sets.push(pb::FILE_DESCRIPTOR_SET);
    set
}
