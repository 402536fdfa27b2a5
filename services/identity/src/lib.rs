//! The identity service (`cosell.identity.v1`): partner organizations with their verified
//! domains and MPN IDs, users (members and guests), role assignments, service principals,
//! signing keys and tokens, and the access check every other service relies on.
//!
//! - [`domain`]: types, rules (I1-I6) and the key ring, free of gRPC and SQL.
//! - [`store`]: the database (entities, migrations, queries).
//! - [`api`]: the gRPC handlers and the authorization policy.
//! - [`oidc`]: sign-in through an external OpenID Connect issuer (discovery, JWKS, token checks).
//! - [`operators`]: the first platform operators, named at start.
//! - [`seed`]: the demo data of `cosell serve --demo`.
//!
//! [`start`] opens the database and returns the services ready to mount, as every service's
//! `start` does (the `cosell-identity` binary serves them with
//! `cosell_platform::server::listen_and_serve`); [`serve`] runs them on a listener of the
//! caller's, for benchmarks that embed identity.

pub mod api;
pub mod domain;
pub mod oidc;
pub mod operators;
pub mod seed;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::ApiError;
use cosell_platform::auth::{Caller, ExternalTokens, Principal, TokenVerifier};
use cosell_platform::clock::{self, SharedClock};
use cosell_platform::server::{ServerOptions, ServiceSet};
use tokio::net::TcpListener;

pub use api::Identity;
use domain::keys::{KeyRing, LocalKeys};
use store::Store;

/// Everything identity needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `postgres://...`, `sqlite://file?mode=rwc` or `sqlite::memory:`.
    pub database_url: String,
    /// Allow `SignInWithEmail` (development and demos only).
    pub dev_auth: bool,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// Verified domain of the built-in platform organization.
    pub platform_domain: String,
    /// Service principals to register: (name, client secret).
    pub service_principals: Vec<(String, String)>,
    /// Seed the demo organizations and users (idempotent).
    pub demo: bool,
    /// The external OpenID Connect issuer whose tokens sign users in (production sign-in).
    pub oidc: Option<oidc::OidcConfig>,
    /// Emails made platform operators at start (idempotent; never removes anyone).
    pub platform_operators: Vec<String>,
    /// Where "now" comes from (key roll-over); the system clock but in tests.
    pub clock: SharedClock,
}

impl Config {
    /// A configuration for tests and embedded use.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            dev_auth: false,
            token_ttl: Duration::from_secs(3600),
            platform_domain: "platform.example".into(),
            service_principals: Vec::new(),
            demo: false,
            oidc: None,
            platform_operators: Vec::new(),
            clock: clock::system(),
        }
    }

    /// The sign-in methods this configuration switches on, for the start-up line.
    pub fn sign_in_methods(&self) -> String {
        let mut on = Vec::new();
        if let Some(o) = &self.oidc {
            on.push(format!("OpenID Connect ({})", o.issuer));
        }
        if self.dev_auth {
            on.push("development sign-in by email (--dev-auth; never in production)".into());
        }
        if on.is_empty() {
            "none for people (no --oidc-issuer, no --dev-auth); service principals only".into()
        } else {
            on.join(", ")
        }
    }
}

/// Identity's own check of the external issuer's tokens (other services ask identity's
/// `ExchangeToken`).
struct LocalExchange(Arc<Identity>);

impl ExternalTokens for LocalExchange {
    fn exchange<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Caller, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let (user, expires_at) = self.0.external_user(token, None).await?;
            Ok(Caller {
                principal: Principal::User {
                    organization: user.organization,
                    user: user.id,
                },
                email: Some(user.email),
                expires_at,
            })
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("identity database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("identity: {0}")]
    Identity(#[from] domain::IdentityError),
    #[error("identity server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A started identity: its services, the verifier for its server, and its state (for tests).
pub struct Started {
    pub services: ServiceSet,
    pub verifier: Arc<TokenVerifier>,
    pub identity: Arc<Identity>,
}

/// Opens the database (migrating it), loads the keys, registers service principals and, when
/// asked, seeds the demo data.
pub async fn start(config: &Config) -> Result<Started, StartError> {
    let db = cosell_platform::db::connect_and_migrate::<store::migration::Migrator>(
        &config.database_url,
    )
    .await?;
    let store = Store::new(db);
    let platform_domain = domain::validate::domain(&config.platform_domain)
        .map_err(|e| StartError::Config(format!("platform domain {e}")))?;
    let platform_org = store.ensure_platform_organization(&platform_domain).await?;
    for (name, secret) in &config.service_principals {
        if secret.len() < 16 {
            return Err(StartError::Config(format!(
                "the secret of service principal `{name}` is shorter than 16 characters"
            )));
        }
        store
            .upsert_service_principal(name, &api::tokens::secret_hash(secret))
            .await?;
    }
    let keys = KeyRing::open(store.clone(), config.token_ttl, config.clock.clone()).await?;
    let oidc = config
        .oidc
        .clone()
        .map(|o| oidc::Oidc::new(o, config.clock.clone()))
        .transpose()
        .map_err(StartError::Config)?;
    let identity = Arc::new(Identity::new(
        store.clone(),
        keys,
        platform_org,
        config.dev_auth,
        oidc,
    ));
    if config.demo {
        seed::demo(&identity, &platform_domain).await?;
    }
    operators::ensure(&identity, &platform_domain, &config.platform_operators).await?;
    let external: Option<Arc<dyn ExternalTokens>> = identity
        .oidc
        .is_some()
        .then(|| Arc::new(LocalExchange(identity.clone())) as Arc<dyn ExternalTokens>);
    let verifier = Arc::new(TokenVerifier::with(
        Arc::new(LocalKeys(store, config.clock.clone())),
        external,
        config.clock.clone(),
    ));
    Ok(Started {
        services: api::service_set(identity.clone()),
        verifier,
        identity,
    })
}

/// Serves identity alone on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let started = start(&config).await?;
    cosell_platform::server::serve(
        listener,
        started.services,
        started.verifier,
        options,
        shutdown,
    )
    .await?;
    Ok(())
}
