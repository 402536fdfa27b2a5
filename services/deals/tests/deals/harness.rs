//! Identity (demo people), the directory (a few real entities) and deals on one test server,
//! reaching each other over loopback as in `cosell serve`; plus a small catalog.

use std::io::Read;
use std::sync::Arc;

use cosell_platform::auth::{AccessClient, RemoteKeys, ServiceToken, TokenVerifier};
use cosell_proto::deals as pb;
use cosell_proto::directory as dpb;
use cosell_proto::identity as ipb;
use cosell_testkit::{TestDb, TestServer, authed};
use tonic::transport::{Channel, Endpoint};

pub const DEALS_SECRET: &str = "deals-secret-for-tests-00000001";
pub const DIRECTORY_SECRET: &str = "directory-secret-for-tests-0001";
pub const MIGRATION_SECRET: &str = "migration-secret-for-tests-0001";

pub const ADA: &str = "ada.admin@contoso.com";
pub const RITA: &str = "rita.referrals@contoso.com";
pub const LEO: &str = "leo.location@contoso.com";
pub const UMA: &str = "uma.user@contoso.com";
pub const BEA: &str = "bea.profile@contoso.com";
pub const FAY: &str = "fay.admin@fabrikam.com";
pub const SAM: &str = "sam.seller@platform.example";
pub const OLI: &str = "oli.operator@platform.example";

/// Real entities of the bundled sample loaded into the test directory.
pub const ENTITIES: usize = 40;

pub struct Harness {
    pub server: TestServer,
    pub deals: Arc<cosell_deals::Deals>,
    /// `organizations/{id}` of Contoso and Fabrikam.
    pub contoso: String,
    pub fabrikam: String,
    /// Directory entries (`entities/{lei}`) usable as customers, with their legal names.
    pub customers: Vec<(String, String)>,
    /// Contoso's co-sell-ready solution, a platform SKU, and Fabrikam's co-sell-ready solution.
    pub contoso_solution: String,
    pub sku: String,
    pub fabrikam_solution: String,
    /// Tokens signed in so far, by email: one sign-in per user, as a client keeps its token
    /// (sign-in is rate-limited per email).
    tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Between the deals service and its peers, when started [`Harness::start_behind_proxies`].
    pub peers: Option<Peers>,
    _dbs: (TestDb, TestDb, TestDb),
}

/// TCP proxies between the deals service and identity and the directory: a test cuts one to
/// see deals with a peer down, and restores it.
pub struct Peers {
    pub identity: cosell_testkit::proxy::TcpProxy,
    pub directory: cosell_testkit::proxy::TcpProxy,
}

impl Harness {
    /// Deals on the default test database (PostgreSQL when CI says so).
    pub async fn start() -> Self {
        Self::start_on(TestDb::new().await.unwrap()).await
    }

    pub async fn start_on(deals_db: TestDb) -> Self {
        Self::start_with(deals_db, cosell_platform::clock::system()).await
    }

    /// Deals reading "now" from `clock` (a `ManualClock` moves time for the expiry).
    pub async fn start_with(deals_db: TestDb, clock: cosell_platform::clock::SharedClock) -> Self {
        let mut config = cosell_deals::Config::new(deals_db.url.clone());
        config.clock = clock;
        Self::start_configured(deals_db, config).await
    }

    /// Deals with `config` (its database URL is `deals_db`'s).
    pub async fn start_configured(deals_db: TestDb, config: cosell_deals::Config) -> Self {
        Self::start_inner(deals_db, config, false).await
    }

    /// Deals reaching identity and the directory through [`Peers`].
    #[allow(dead_code)]
    pub async fn start_behind_proxies() -> Self {
        let db = TestDb::new().await.unwrap();
        let config = cosell_deals::Config::new(db.url.clone());
        Self::start_inner(db, config, true).await
    }

    async fn start_inner(deals_db: TestDb, config: cosell_deals::Config, proxied: bool) -> Self {
        let identity_db = TestDb::new().await.unwrap();
        let directory_db = TestDb::new().await.unwrap();
        let mut identity = cosell_identity::Config::new(identity_db.url.clone());
        identity.dev_auth = true;
        identity.demo = true;
        identity.service_principals = vec![
            ("directory".into(), DIRECTORY_SECRET.into()),
            ("deals".into(), DEALS_SECRET.into()),
            ("migration".into(), MIGRATION_SECRET.into()),
        ];
        let identity = cosell_identity::start(&identity).await.unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loopback = || -> Channel {
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_lazy()
        };
        let directory_token =
            Arc::new(ServiceToken::new(loopback(), "directory", DIRECTORY_SECRET));
        let directory = cosell_directory::start(
            &cosell_directory::Config::new(directory_db.url.clone()),
            Some(Arc::new(AccessClient::new(loopback(), directory_token))),
        )
        .await
        .unwrap();
        let peers = if proxied {
            Some(Peers {
                identity: cosell_testkit::proxy::TcpProxy::start(addr).await.unwrap(),
                directory: cosell_testkit::proxy::TcpProxy::start(addr).await.unwrap(),
            })
        } else {
            None
        };
        let through = |proxy: Option<&cosell_testkit::proxy::TcpProxy>| -> Channel {
            match proxy {
                Some(p) => Endpoint::from_shared(format!("http://{}", p.addr))
                    .unwrap()
                    .connect_lazy(),
                None => loopback(),
            }
        };
        let identity_link = through(peers.as_ref().map(|p| &p.identity));
        let deals = cosell_deals::start(
            &config,
            cosell_deals::Links {
                identity: identity_link.clone(),
                directory: through(peers.as_ref().map(|p| &p.directory)),
                token: Arc::new(ServiceToken::new(identity_link, "deals", DEALS_SECRET)),
            },
        )
        .await
        .unwrap();
        let verifier = Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(loopback()))));
        let services = identity
            .services
            .merge(directory.services)
            .merge(deals.services);
        let server = TestServer::start_on(listener, services, verifier, Default::default())
            .await
            .unwrap();
        let mut h = Self {
            server,
            deals: deals.deals,
            contoso: String::new(),
            fabrikam: String::new(),
            customers: Vec::new(),
            contoso_solution: String::new(),
            sku: String::new(),
            fabrikam_solution: String::new(),
            tokens: Default::default(),
            peers,
            _dbs: (identity_db, directory_db, deals_db),
        };
        h.contoso = h.organization_of("4000001").await;
        h.fabrikam = h.organization_of("5000001").await;
        // Contoso takes platform sellers' referrals here (SPEC 5.5); Fabrikam is still on PSC.
        h.cut_over(&h.contoso.clone(), true).await.unwrap();
        h.customers = h.load_customers().await;
        h.contoso_solution = h
            .create_solution(
                OLI,
                "Contoso Cloud Analytics",
                pb::SolutionKind::PartnerSolution,
                &h.contoso.clone(),
                "4000001",
                true,
            )
            .await
            .name;
        h.sku = h
            .create_solution(
                OLI,
                "Platform Compute Reserved",
                pb::SolutionKind::PlatformSku,
                "",
                "",
                false,
            )
            .await
            .name;
        h.fabrikam_solution = h
            .create_solution(
                OLI,
                "Fabrikam Data Fabric",
                pb::SolutionKind::PartnerSolution,
                &h.fabrikam.clone(),
                "5000001",
                true,
            )
            .await
            .name;
        h
    }

    pub async fn token(&self, email: &str) -> String {
        if let Some(t) = self.tokens.lock().unwrap().get(email) {
            return t.clone();
        }
        let token = ipb::token_service_client::TokenServiceClient::new(self.server.channel.clone())
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("sign in {email}: {s:?}"))
            .into_inner()
            .access_token;
        self.tokens
            .lock()
            .unwrap()
            .insert(email.to_owned(), token.clone());
        token
    }

    /// Where the deals database is (for the benchmark's plain SQL baseline).
    #[allow(dead_code)]
    pub fn deals_database_url(&self) -> String {
        self._dbs.2.url.clone()
    }

    /// A token of the suite's `migration` service principal.
    pub async fn migration_token(&self) -> String {
        ServiceToken::new(self.server.channel.clone(), "migration", MIGRATION_SECRET)
            .token()
            .await
            .unwrap()
    }

    pub fn referrals(&self) -> pb::referral_service_client::ReferralServiceClient<Channel> {
        pb::referral_service_client::ReferralServiceClient::new(self.server.channel.clone())
    }

    /// Imports `referrals` into Contoso as the migration service does (`ImportReferrals`), with
    /// its `token` ([`Harness::migration_token`]).
    #[allow(dead_code)]
    pub async fn import(
        &self,
        token: &str,
        referrals: Vec<pb::ImportedReferral>,
    ) -> Result<Vec<pb::ImportResult>, tonic::Status> {
        Ok(self
            .referrals()
            .import_referrals(authed(
                token,
                pb::ImportReferralsRequest {
                    organization: self.contoso.clone(),
                    referrals,
                },
            ))
            .await?
            .into_inner()
            .results)
    }

    #[allow(dead_code)]
    pub fn events(&self) -> pb::event_service_client::EventServiceClient<Channel> {
        pb::event_service_client::EventServiceClient::new(self.server.channel.clone())
    }

    /// Another deals service on this one's database, reaching the same identity and directory
    /// (a second replica; or the first one after a restart).
    #[allow(dead_code)]
    pub async fn replica(
        &self,
        clock: cosell_platform::clock::SharedClock,
    ) -> cosell_deals::Started {
        let mut config = cosell_deals::Config::new(self._dbs.2.url.clone());
        config.clock = clock;
        let channel = self.server.channel.clone();
        cosell_deals::start(
            &config,
            cosell_deals::Links {
                identity: channel.clone(),
                directory: channel.clone(),
                token: Arc::new(ServiceToken::new(channel, "deals", DEALS_SECRET)),
            },
        )
        .await
        .unwrap()
    }

    /// `email` declines Inbound referral `name` with `reason` (D3); the referral after it.
    #[allow(dead_code)]
    pub async fn decline(&self, email: &str, name: &str, reason: &str) -> pb::Referral {
        let token = self.token(email).await;
        self.referrals()
            .decline_referral(authed(
                &token,
                pb::DeclineReferralRequest {
                    name: name.to_owned(),
                    reason: reason.to_owned(),
                    etag: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap()
    }

    /// A seller's Inbound referral for Contoso (of `mpn_location`, or org-wide when empty).
    #[allow(dead_code)]
    pub async fn send_inbound(&self, mpn_location: &str) -> pb::Referral {
        let sam = self.token(SAM).await;
        self.cosell()
            .create_inbound_referral(authed(
                &sam,
                pb::CreateInboundReferralRequest {
                    request_id: String::new(),
                    referral: Some(pb::Referral {
                        organization: self.contoso.clone(),
                        mpn_location: mpn_location.into(),
                        display_name: "Migration to the cloud".into(),
                        customer: Some(pb::Customer {
                            entity: self.customers[1].0.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    seller_contact: Some(pb::Contact {
                        first_name: "Sam".into(),
                        last_name: "Seller".into(),
                        email: String::new(),
                        phone: "+1 206 555 0199".into(),
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap()
    }

    pub fn cosell(&self) -> pb::co_sell_service_client::CoSellServiceClient<Channel> {
        pb::co_sell_service_client::CoSellServiceClient::new(self.server.channel.clone())
    }

    pub fn cutovers(&self) -> pb::cutover_service_client::CutoverServiceClient<Channel> {
        pb::cutover_service_client::CutoverServiceClient::new(self.server.channel.clone())
    }

    /// Flips `organization`'s cut-over switch as the platform operator.
    pub async fn cut_over(
        &self,
        organization: &str,
        on: bool,
    ) -> Result<pb::Cutover, tonic::Status> {
        let token = self.token(OLI).await;
        Ok(self
            .cutovers()
            .update_cutover(authed(
                &token,
                pb::UpdateCutoverRequest {
                    parent: organization.into(),
                    routed_to_new_system: on,
                    switched_by: String::new(),
                },
            ))
            .await?
            .into_inner()
            .cutover
            .unwrap())
    }

    pub fn catalog(&self) -> pb::catalog_service_client::CatalogServiceClient<Channel> {
        pb::catalog_service_client::CatalogServiceClient::new(self.server.channel.clone())
    }

    async fn organization_of(&self, mpn: &str) -> String {
        let token = self.token(OLI).await;
        ipb::organization_service_client::OrganizationServiceClient::new(
            self.server.channel.clone(),
        )
        .lookup_mpn_id(authed(
            &token,
            ipb::LookupMpnIdRequest { mpn_id: mpn.into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
    }

    /// Loads the first [`ENTITIES`] rows of the bundled sample into the directory.
    async fn load_customers(&self) -> Vec<(String, String)> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(cosell_directory::SAMPLE)
            .read_to_string(&mut text)
            .unwrap();
        let csv: String = text
            .lines()
            .take(ENTITIES + 1)
            .map(|l| format!("{l}\n"))
            .collect();
        let token = self.token(OLI).await;
        let mut stream =
            dpb::directory_service_client::DirectoryServiceClient::new(self.server.channel.clone())
                .load_entities(authed(
                    &token,
                    tokio_stream::iter(vec![dpb::LoadEntitiesRequest {
                        chunk: csv.clone().into_bytes(),
                        file_name: "customers.csv".into(),
                    }]),
                ))
                .await
                .unwrap()
                .into_inner();
        while stream.message().await.unwrap().is_some() {}
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (format!("entities/{}", &r[0]), r[1].to_owned())
            })
            .collect()
    }

    pub async fn create_solution(
        &self,
        as_user: &str,
        name: &str,
        kind: pb::SolutionKind,
        publisher: &str,
        mpn: &str,
        ready: bool,
    ) -> pb::Solution {
        let token = self.token(as_user).await;
        self.catalog()
            .create_solution(authed(
                &token,
                pb::CreateSolutionRequest {
                    solution: Some(pb::Solution {
                        display_name: name.into(),
                        kind: kind as i32,
                        cosell_ready: ready,
                        incentive_eligible: ready,
                        mpn_id: mpn.into(),
                        ..Default::default()
                    }),
                    publisher: publisher.into(),
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("create solution {name}: {s:?}"))
            .into_inner()
            .solution
            .unwrap()
    }

    /// A referral with every field D6 asks for, for the given solution.
    pub fn complete(&self, deal_type: pb::DealType, solution: &str) -> pb::Referral {
        let person = |first: &str, last: &str, email: &str| pb::Contact {
            first_name: first.into(),
            last_name: last.into(),
            email: email.into(),
            phone: "+1 425 555 0100".into(),
        };
        let co_sell = deal_type == pb::DealType::CoSell;
        pb::Referral {
            display_name: "Data platform renewal".into(),
            deal_type: deal_type as i32,
            customer: Some(pb::Customer {
                entity: self.customers[0].0.clone(),
                size: pb::CustomerSize::CustomerSize251To1000 as i32,
                contacts: vec![person("Carla", "Customer", "carla@customer.example")],
                ..Default::default()
            }),
            consent_to_share: deal_type != pb::DealType::Private,
            assistance: co_sell.then(|| pb::Assistance {
                code: pb::AssistanceCode::TechnicalArchitecture as i32,
                notes: "architecture review".into(),
            }),
            solutions: vec![pb::ReferralSolution {
                solution: solution.into(),
                ..Default::default()
            }],
            team: vec![person("Rita", "Referrals", RITA)],
            deal_value: Some(pb::Money {
                currency_code: "USD".into(),
                amount: "125000.50".into(),
            }),
            estimated_close_date: "2027-03-31".into(),
            notes: "Customer wants a pilot first.".into(),
            ..Default::default()
        }
    }

    /// Creates a referral as `email`; panics on refusal.
    pub async fn create(&self, email: &str, referral: pb::Referral) -> pb::Referral {
        self.try_create(email, referral, "")
            .await
            .unwrap_or_else(|s| panic!("create: {s:?}"))
    }

    pub async fn try_create(
        &self,
        email: &str,
        referral: pb::Referral,
        request_id: &str,
    ) -> Result<pb::Referral, tonic::Status> {
        let token = self.token(email).await;
        Ok(self
            .referrals()
            .create_referral(authed(
                &token,
                pb::CreateReferralRequest {
                    request_id: request_id.into(),
                    referral: Some(referral),
                },
            ))
            .await?
            .into_inner()
            .referral
            .unwrap())
    }

    pub async fn get(&self, email: &str, name: &str) -> Result<pb::Referral, tonic::Status> {
        let token = self.token(email).await;
        Ok(self
            .referrals()
            .get_referral(authed(&token, pb::GetReferralRequest { name: name.into() }))
            .await?
            .into_inner()
            .referral
            .unwrap())
    }

    /// Links referral `name`'s customer to directory entry `entity`, as `email`: one update
    /// of `customer.entity` (D8).
    pub async fn link_customer(
        &self,
        email: &str,
        name: &str,
        entity: &str,
    ) -> Result<pb::Referral, tonic::Status> {
        let token = self.token(email).await;
        let req = pb::UpdateReferralRequest {
            referral: Some(pb::Referral {
                name: name.into(),
                customer: Some(pb::Customer {
                    entity: entity.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["customer.entity".into()],
            }),
        };
        Ok(self
            .referrals()
            .update_referral(authed(&token, req))
            .await?
            .into_inner()
            .referral
            .unwrap())
    }

    pub async fn list(
        &self,
        email: &str,
        req: pb::ListReferralsRequest,
    ) -> Result<pb::ListReferralsResponse, tonic::Status> {
        let token = self.token(email).await;
        Ok(self
            .referrals()
            .list_referrals(authed(&token, req))
            .await?
            .into_inner())
    }

    /// The platform sellers' queue (NEW invitations), every page.
    pub async fn queue(&self) -> Vec<pb::Referral> {
        let token = self.token(SAM).await;
        self.cosell()
            .list_invitations(authed(
                &token,
                pb::ListInvitationsRequest {
                    page_size: 500,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .referrals
    }
}

/// The `ErrorInfo` reason and the field / precondition subjects of an error status.
pub fn details(s: &tonic::Status) -> (String, Vec<String>) {
    use tonic_types::StatusExt;
    let d = s.get_error_details();
    let reason = d.error_info().map(|i| i.reason.clone()).unwrap_or_default();
    let mut fields: Vec<String> = d
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    if let Some(p) = d.precondition_failure() {
        fields.extend(p.violations.iter().map(|v| v.subject.clone()));
    }
    (reason, fields)
}
