//! Whether the assigned seller a PSC deal names is an enabled platform seller: a user of the
//! platform organization, active, holding `ROLE_PLATFORM_SELLER`, as identity says. The export
//! is the partner's own file: an email in it proves nothing, so a migrated co-sell deal's
//! platform referral is accepted, and a seller's contact passed on, only for a seller identity
//! knows (see [`crate::mapping`]).
//!
//! Identity is asked with the service's own token through `UserService/ListUsers` (which
//! services may call) filtered by role and email, in the platform organization, found once
//! through `OrganizationService/ListOrganizations`; once per distinct email per batch.

use std::collections::HashMap;

use cosell_platform::ApiError;
use cosell_proto::identity::{self as ipb, Role, UserState};

use crate::api::{Migration, upstream};

/// What identity says of an assigned seller's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seller {
    /// An enabled platform seller.
    Enabled,
    /// Not one: why, for the report.
    Not(String),
}

/// How an email is compared (identity keeps emails in lower case).
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Lookups in flight per batch.
const CONCURRENCY: usize = 8;

impl Migration {
    /// The platform organization's name, asked of identity the first time.
    async fn platform_organization(&self) -> Result<String, ApiError> {
        self.platform
            .get_or_try_init(|| async {
                let mut organizations =
                    ipb::organization_service_client::OrganizationServiceClient::new(
                        self.identity.clone(),
                    );
                let mut page_token = String::new();
                loop {
                    let req = self
                        .token
                        .request(ipb::ListOrganizationsRequest {
                            page_size: 1000,
                            page_token: page_token.clone(),
                        })
                        .await?;
                    let page = organizations
                        .list_organizations(req)
                        .await
                        .map_err(|s| upstream("identity", &s))?
                        .into_inner();
                    if let Some(o) = page.organizations.into_iter().find(|o| o.platform) {
                        return Ok(o.name);
                    }
                    if page.next_page_token.is_empty() {
                        return Err(ApiError::unavailable(
                            "UPSTREAM_UNAVAILABLE",
                            "identity lists no platform organization",
                        ));
                    }
                    page_token = page.next_page_token;
                }
            })
            .await
            .cloned()
    }

    /// What identity says of each distinct email of `emails` (by [`email_key`]; blank ones
    /// are left out), a few lookups at a time.
    pub(crate) async fn sellers<'a>(
        &self,
        emails: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, Seller>, ApiError> {
        use futures::{StreamExt, TryStreamExt};
        let mut keys: Vec<String> = emails.map(email_key).filter(|e| !e.is_empty()).collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let platform = self.platform_organization().await?;
        let platform = &platform;
        futures::stream::iter(keys)
            .map(|email| async move {
                let seller = self.seller(platform, &email).await?;
                Ok::<_, ApiError>((email, seller))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn seller(&self, platform: &str, email: &str) -> Result<Seller, ApiError> {
        if !cosell_platform::email::is_address(email) {
            return Ok(Seller::Not("is not an email address".into()));
        }
        let req = self
            .token
            .request(ipb::ListUsersRequest {
                parent: platform.to_owned(),
                role: Role::PlatformSeller as i32,
                email: email.to_owned(),
                page_size: 1,
                page_token: String::new(),
            })
            .await?;
        let found = match self.identity_users().list_users(req).await {
            Ok(r) => r.into_inner().users,
            // An email identity does not take is no user of it.
            Err(s) if s.code() == tonic::Code::InvalidArgument => Vec::new(),
            Err(s) => return Err(upstream("identity", &s)),
        };
        Ok(match found.first() {
            Some(u) if u.state() == UserState::Active => Seller::Enabled,
            Some(_) => Seller::Not("is a disabled platform seller".into()),
            None => Seller::Not("is not a platform seller".into()),
        })
    }
}
