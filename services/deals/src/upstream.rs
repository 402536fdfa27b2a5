//! What the deals service asks of the others, with its own service token: the directory (a
//! customer's legal name and address, rule D8) and identity (whether an MPN ID belongs to an
//! organization; whether an organization is a partner, and enrolled in ISV Connect).
//!
//! A customer and an MPN ID's holder are remembered for [`REMEMBER`]: creating a referral asks
//! both, and a partner creates many for the same locations and often for the same customers, so
//! a warm create makes no round trip to either service. Only answers that found something are
//! kept (an unknown entity or MPN ID may be added any moment); a directory load's new name for
//! an entity, or an MPN location moved to another organization (neither happens to a
//! referral's fields after it is made), is seen within that time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cosell_platform::ApiError;
use cosell_platform::auth::ServiceToken;
use cosell_platform::telemetry::TracedChannel;
use cosell_proto::directory as dpb;
use cosell_proto::identity as ipb;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::domain::{Address, Customer};

/// How long a found customer or MPN holder is reused.
pub const REMEMBER: Duration = Duration::from_secs(30);
/// Entries kept per kind; when full, the expired ones go, or else all of them.
const REMEMBERED: usize = 10_000;
/// Names per BatchGetEntities call (the directory takes up to 1,000).
const BATCH_GET: usize = 1000;

pub struct Upstream {
    directory: dpb::directory_service_client::DirectoryServiceClient<TracedChannel>,
    organizations: ipb::organization_service_client::OrganizationServiceClient<TracedChannel>,
    roles: ipb::role_service_client::RoleServiceClient<TracedChannel>,
    token: Arc<ServiceToken>,
    customers: Remembered<String, Customer>,
    mpn_holders: Remembered<String, MpnHolder>,
}

/// Answers kept for `keep` ([`REMEMBER`]), at most [`REMEMBERED`] of them. Expired answers go
/// once per `keep` whether or not new ones come, and the table shrinks with them: a
/// migration's thousands of customers would otherwise hold their memory (4 MB at 10,000) for
/// as long as the service runs.
struct Remembered<K, V> {
    keep: Duration,
    kept: Mutex<Kept<K, V>>,
}

struct Kept<K, V> {
    answers: HashMap<K, (Instant, V)>,
    /// When expired answers last went.
    swept: Instant,
}

impl<K: Eq + Hash, V: Clone> Remembered<K, V> {
    fn new(keep: Duration) -> Self {
        Self {
            keep,
            kept: Mutex::new(Kept {
                answers: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// The answers, swept if due; a panic elsewhere while they were held leaves nothing
    /// half-written in them.
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept<K, V>> {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.swept.elapsed() >= self.keep {
            self.sweep(&mut kept.answers);
            kept.swept = Instant::now();
        }
        kept
    }

    /// Drops the expired answers, and the room they took when it is most of the table's.
    fn sweep(&self, answers: &mut HashMap<K, (Instant, V)>) {
        answers.retain(|_, (at, _)| at.elapsed() < self.keep);
        if answers.capacity() > 2 * answers.len() + 64 {
            answers.shrink_to_fit();
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let kept = self.kept();
        let (at, v) = kept.answers.get(key)?;
        (at.elapsed() < self.keep).then(|| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut kept = self.kept();
        if kept.answers.len() >= REMEMBERED {
            self.sweep(&mut kept.answers);
            if kept.answers.len() >= REMEMBERED {
                kept.answers.clear();
            }
        }
        kept.answers.insert(key, (Instant::now(), value));
    }

    /// Answers held, expired or not, and the table's room.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let kept = self.kept.lock().unwrap();
        (kept.answers.len(), kept.answers.capacity())
    }
}

/// A partner organization, as identity holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// Enrolled in ISV Connect (set by platform operators when they create the organization):
    /// may register deals without a co-sell referral (SPEC 3.8).
    pub isv_connect_enrolled: bool,
}

/// Which part of an organization an MPN ID names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpnHolder {
    /// Nobody holds it.
    Unknown,
    /// The organization's vOrg ID.
    Vorg(Uuid),
    /// One of the organization's locations.
    Location(Uuid),
}

fn unavailable(service: &str, s: &tonic::Status) -> ApiError {
    ApiError::unavailable(
        "UPSTREAM_UNAVAILABLE",
        format!("the {service} service did not answer: {}", s.message()),
    )
}

impl Upstream {
    pub fn new(identity: Channel, directory: Channel, token: Arc<ServiceToken>) -> Self {
        Self {
            directory: dpb::directory_service_client::DirectoryServiceClient::new(directory.into()),
            organizations: ipb::organization_service_client::OrganizationServiceClient::new(
                identity.clone().into(),
            ),
            roles: ipb::role_service_client::RoleServiceClient::new(identity.into()),
            token,
            customers: Remembered::new(REMEMBER),
            mpn_holders: Remembered::new(REMEMBER),
        }
    }

    /// The customer as the directory knows it (`entities/{id}`), `None` when it has no such
    /// entry.
    pub async fn customer(&self, entity: &str) -> Result<Option<Customer>, ApiError> {
        if let Some(known) = self.customers.get(&entity.to_owned()) {
            return Ok(Some(known));
        }
        let req = self
            .token
            .request(dpb::GetEntityRequest {
                name: entity.to_owned(),
            })
            .await?;
        match self.directory.clone().get_entity(req).await {
            Ok(resp) => {
                let customer = customer_of(resp.into_inner().entity.unwrap_or_default());
                self.customers.put(entity.to_owned(), customer.clone());
                Ok(Some(customer))
            }
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => Ok(None),
            Err(s) => Err(unavailable("directory", &s)),
        }
    }

    /// The customers of `entities` the directory has, asked in as few calls as it takes (a
    /// migrated batch's customers: one call instead of one per customer). A call the directory
    /// refuses for an unknown or malformed name finds nothing: [`Upstream::customer`] then says
    /// which, deal by deal.
    pub async fn customers(
        &self,
        entities: &[String],
    ) -> Result<HashMap<String, Customer>, ApiError> {
        let mut found = HashMap::new();
        let mut asked = Vec::new();
        for e in entities {
            match self.customers.get(e) {
                Some(c) => {
                    found.insert(e.clone(), c);
                }
                None => asked.push(e.clone()),
            }
        }
        asked.sort();
        asked.dedup();
        for names in asked.chunks(BATCH_GET) {
            let req = self
                .token
                .request(dpb::BatchGetEntitiesRequest {
                    names: names.to_vec(),
                })
                .await?;
            let entities = match self.directory.clone().batch_get_entities(req).await {
                Ok(resp) => resp.into_inner().entities,
                Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => continue,
                Err(s) => return Err(unavailable("directory", &s)),
            };
            for (name, e) in names.iter().zip(entities) {
                let customer = customer_of(e);
                self.customers.put(name.clone(), customer.clone());
                found.insert(name.clone(), customer);
            }
        }
        Ok(found)
    }

    /// Whether `organization` exists and is a partner's (the platform's own has no vOrg MPN ID).
    pub async fn is_partner_organization(&self, organization: Uuid) -> Result<bool, ApiError> {
        Ok(self.partner(organization).await?.is_some())
    }

    /// What deals needs to know of a partner organization; `None` when `organization` is not
    /// one.
    pub async fn partner(&self, organization: Uuid) -> Result<Option<Partner>, ApiError> {
        let req = self
            .token
            .request(ipb::GetOrganizationRequest {
                name: cosell_platform::names::organization(organization),
            })
            .await?;
        match self.organizations.clone().get_organization(req).await {
            Ok(r) => Ok(r
                .into_inner()
                .organization
                .filter(|o| !o.vorg_mpn_id.is_empty())
                .map(|o| Partner {
                    isv_connect_enrolled: o.isv_connect_enrolled,
                })),
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => Ok(None),
            Err(s) => Err(unavailable("identity", &s)),
        }
    }

    /// Who holds an MPN ID (rule I6).
    pub async fn mpn(&self, mpn_id: &str) -> Result<MpnHolder, ApiError> {
        if let Some(known) = self.mpn_holders.get(&mpn_id.to_owned()) {
            return Ok(known);
        }
        let req = self
            .token
            .request(ipb::LookupMpnIdRequest {
                mpn_id: mpn_id.to_owned(),
            })
            .await?;
        let resp = match self.organizations.clone().lookup_mpn_id(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::InvalidArgument => return Ok(MpnHolder::Unknown),
            Err(s) => return Err(unavailable("identity", &s)),
        };
        if !resp.exists {
            return Ok(MpnHolder::Unknown);
        }
        let org = cosell_platform::names::parse_one(&resp.organization, "organizations")
            .map_err(ApiError::internal)?;
        let holder = match ipb::MpnIdKind::try_from(resp.kind) {
            Ok(ipb::MpnIdKind::Location) => MpnHolder::Location(org),
            _ => MpnHolder::Vorg(org),
        };
        self.mpn_holders.put(mpn_id.to_owned(), holder.clone());
        Ok(holder)
    }

    /// The referrals roles of `organization` (who reads its referrals, and at which scope):
    /// for the notifications' recipients. At most `MAX_HOLDERS` assignments.
    pub async fn referral_roles(&self, organization: Uuid) -> Result<Vec<RoleHolder>, ApiError> {
        /// Enough for any partner's referrals team; the rest are not notified.
        const MAX_HOLDERS: usize = 10_000;
        let mut out = Vec::new();
        for role in [ipb::Role::ReferralsAdmin, ipb::Role::ReferralsUser] {
            let mut page_token = String::new();
            loop {
                let req = self
                    .token
                    .request(ipb::ListRoleAssignmentsRequest {
                        parent: cosell_platform::names::organization(organization),
                        role: role.into(),
                        page_size: 1_000,
                        page_token: page_token.clone(),
                        ..Default::default()
                    })
                    .await?;
                let page = match self.roles.clone().list_role_assignments(req).await {
                    Ok(r) => r.into_inner(),
                    Err(s) if s.code() == Code::NotFound => return Ok(out),
                    Err(s) => return Err(unavailable("identity", &s)),
                };
                out.extend(page.role_assignments.into_iter().map(|a| RoleHolder {
                    user: a.user,
                    email: a.user_email.to_lowercase(),
                    admin: role == ipb::Role::ReferralsAdmin,
                    location: (!a.mpn_id.is_empty()).then_some(a.mpn_id),
                }));
                if page.next_page_token.is_empty() || out.len() >= MAX_HOLDERS {
                    break;
                }
                page_token = page.next_page_token;
            }
        }
        Ok(out)
    }
}

/// A user holding a referrals role of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHolder {
    /// `organizations/{org}/users/{user}`.
    pub user: String,
    /// Lower case.
    pub email: String,
    /// ROLE_REFERRALS_ADMIN (else ROLE_REFERRALS_USER).
    pub admin: bool,
    /// The MPN location the role is scoped to; `None`: the entire organization.
    pub location: Option<String>,
}

/// A directory entry as a referral's customer (D8: its name and address are the directory's).
fn customer_of(e: dpb::LegalEntity) -> Customer {
    let a = e.address.unwrap_or_default();
    Customer {
        entity: Some(e.name),
        legal_name: e.legal_name,
        address: Address {
            lines: a.lines,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country_code: a.country_code,
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_answers_go_and_give_back_their_room_without_new_ones() {
        let remembered = Remembered::new(Duration::from_millis(300));
        for i in 0..5_000 {
            remembered.put(i, i);
        }
        assert_eq!(remembered.get(&7), Some(7));
        let (held, room) = remembered.held();
        assert_eq!(held, 5_000);
        assert!(room >= 5_000);
        std::thread::sleep(Duration::from_millis(350));
        // Only reads come now: the first one past the keeping time sweeps.
        assert_eq!(remembered.get(&7), None, "expired");
        let (held, room) = remembered.held();
        assert_eq!(held, 0, "expired answers went");
        assert!(room < 1_000, "their room went with them: {room}");
    }

    #[test]
    fn a_full_table_makes_room_for_a_new_answer() {
        let remembered = Remembered::new(REMEMBER);
        for i in 0..REMEMBERED {
            remembered.put(i, i);
        }
        remembered.put(REMEMBERED, REMEMBERED);
        assert_eq!(remembered.get(&REMEMBERED), Some(REMEMBERED));
        assert!(remembered.held().0 <= REMEMBERED);
    }
}
