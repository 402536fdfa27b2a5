//! The deals part of `cosell serve --demo`: a small catalog and Contoso referrals in each state
//! a user can reach today (private, partner-led, a co-sell request waiting in the sellers' queue,
//! one accepted by a seller, one declined, inbound ones received, accepted, declined, expired
//! and expiring soon, won, lost, a won one whose registration waits for review), Contoso cut
//! over to this system (Fabrikam still on PSC), and Contoso's PSC export imported into the
//! migration service (every case of the migration). Made through gRPC as the demo people would,
//! so it passes every rule a user meets.
//! Seeding again finds the catalog (and the import) in place and changes nothing.

use cosell_proto::deals as pb;
use cosell_proto::directory as dpb;
use cosell_proto::identity as ipb;
use prost_types::FieldMask;
use tonic::transport::Channel;

const RITA: &str = "rita.referrals@contoso.com";
const SAM: &str = "sam.seller@platform.example";
const OLI: &str = "oli.operator@platform.example";
/// The demo catalog's first entry; its presence says the demo was seeded before.
const CONTOSO_SOLUTION: &str = "Contoso Cloud Analytics";

fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

struct Demo {
    channel: Channel,
}

impl Demo {
    async fn token(&self, email: &str) -> anyhow::Result<String> {
        Ok(
            ipb::token_service_client::TokenServiceClient::new(self.channel.clone())
                .sign_in_with_email(ipb::SignInWithEmailRequest {
                    email: email.into(),
                    organization: String::new(),
                })
                .await?
                .into_inner()
                .access_token,
        )
    }

    fn referrals(&self) -> pb::referral_service_client::ReferralServiceClient<Channel> {
        pb::referral_service_client::ReferralServiceClient::new(self.channel.clone())
    }

    fn cosell(&self) -> pb::co_sell_service_client::CoSellServiceClient<Channel> {
        pb::co_sell_service_client::CoSellServiceClient::new(self.channel.clone())
    }

    async fn solution(
        &self,
        token: &str,
        name: &str,
        kind: pb::SolutionKind,
        publisher: &str,
        mpn: &str,
        legacy_product_ids: &[&str],
    ) -> anyhow::Result<String> {
        let ready = kind != pb::SolutionKind::PlatformSku;
        Ok(
            pb::catalog_service_client::CatalogServiceClient::new(self.channel.clone())
                .create_solution(authed(
                    token,
                    pb::CreateSolutionRequest {
                        solution: Some(pb::Solution {
                            display_name: name.into(),
                            kind: kind as i32,
                            cosell_ready: ready,
                            incentive_eligible: ready,
                            mpn_id: mpn.into(),
                            legacy_product_ids: legacy_product_ids
                                .iter()
                                .map(|s| s.to_string())
                                .collect(),
                            ..Default::default()
                        }),
                        publisher: publisher.into(),
                    },
                ))
                .await?
                .into_inner()
                .solution
                .unwrap_or_default()
                .name,
        )
    }
}

fn person(first: &str, last: &str, email: &str) -> pb::Contact {
    pb::Contact {
        first_name: first.into(),
        last_name: last.into(),
        email: email.into(),
        phone: "+1 425 555 0100".into(),
    }
}

/// A referral with every field the rules ask for.
fn complete(name: &str, deal_type: pb::DealType, customer: &str, solution: &str) -> pb::Referral {
    let co_sell = deal_type == pb::DealType::CoSell;
    pb::Referral {
        display_name: name.into(),
        deal_type: deal_type as i32,
        customer: Some(pb::Customer {
            entity: customer.into(),
            size: pb::CustomerSize::CustomerSize251To1000 as i32,
            contacts: vec![person("Carla", "Customer", "carla@customer.example")],
            ..Default::default()
        }),
        consent_to_share: deal_type != pb::DealType::Private,
        assistance: co_sell.then(|| pb::Assistance {
            code: pb::AssistanceCode::TechnicalArchitecture as i32,
            notes: "an architecture review with the customer".into(),
        }),
        solutions: vec![pb::ReferralSolution {
            solution: solution.into(),
            ..Default::default()
        }],
        team: vec![person("Rita", "Referrals", RITA)],
        deal_value: Some(pb::Money {
            currency_code: "USD".into(),
            amount: "250000".into(),
        }),
        estimated_close_date: "2027-06-30".into(),
        notes: "Demo deal.".into(),
        ..Default::default()
    }
}

/// The demo PSC export of Contoso (`services/migration/data/demo-export`): every case of the
/// migration, from each ineligibility reason to each user error.
const DEMO_EXPORT: &[(&str, &str)] = &[
    (
        "accounts.csv",
        include_str!("../../migration/data/demo-export/accounts.csv"),
    ),
    (
        "users.csv",
        include_str!("../../migration/data/demo-export/users.csv"),
    ),
    (
        "deals.csv",
        include_str!("../../migration/data/demo-export/deals.csv"),
    ),
    (
        "deal_products.csv",
        include_str!("../../migration/data/demo-export/deal_products.csv"),
    ),
    (
        "deal_team.csv",
        include_str!("../../migration/data/demo-export/deal_team.csv"),
    ),
];

/// Imports the demo PSC export into Contoso (as Ada, its account admin), once.
pub async fn seed_psc_export(channel: Channel) -> anyhow::Result<()> {
    use cosell_proto::migration as mpb;
    let d = Demo { channel };
    let ada = d.token("ada.admin@contoso.com").await?;
    let organization = ipb::access_service_client::AccessServiceClient::new(d.channel.clone())
        .get_caller(authed(&ada, ipb::GetCallerRequest {}))
        .await?
        .into_inner()
        .organization;
    let client = mpb::migration_service_client::MigrationServiceClient::new(d.channel.clone());
    let imported = client
        .clone()
        .list_psc_imports(authed(
            &ada,
            mpb::ListPscImportsRequest {
                parent: organization.clone(),
            },
        ))
        .await?
        .into_inner()
        .imports;
    if !imported.is_empty() {
        return Ok(());
    }
    let messages: Vec<mpb::ImportPscExportRequest> = DEMO_EXPORT
        .iter()
        .enumerate()
        .map(|(i, (name, text))| mpb::ImportPscExportRequest {
            organization: if i == 0 {
                organization.clone()
            } else {
                String::new()
            },
            file_name: name.to_string(),
            chunk: text.as_bytes().to_vec(),
        })
        .collect();
    client
        .clone()
        .import_psc_export(authed(&ada, tokio_stream::iter(messages)))
        .await?;
    Ok(())
}

/// Seeds the demo deals over `channel` (the suite's own address). Needs development sign-in.
/// The demo's Inbound referrals nobody answers: `cosell serve` moves their expiry times (into
/// the past, and within the notice) so that the sweeper expires one and announces the other.
#[derive(Debug, Default)]
pub struct Unanswered {
    /// `referrals/{id}`.
    pub expired: String,
    pub expiring: String,
}

/// Seeds the demo deals; the unanswered Inbound referrals, when it made them now.
pub async fn seed(channel: Channel) -> anyhow::Result<Option<Unanswered>> {
    let d = Demo { channel };
    let oli = d.token(OLI).await?;
    let rita = d.token(RITA).await?;
    let sam = d.token(SAM).await?;
    let catalog = pb::catalog_service_client::CatalogServiceClient::new(d.channel.clone());
    let existing = catalog
        .clone()
        .list_solutions(authed(
            &oli,
            pb::ListSolutionsRequest {
                query: CONTOSO_SOLUTION.into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .solutions;
    if !existing.is_empty() {
        return Ok(None);
    }
    let organizations =
        ipb::organization_service_client::OrganizationServiceClient::new(d.channel.clone());
    let org_of = |mpn: &str| {
        let mut organizations = organizations.clone();
        let req = authed(&oli, ipb::LookupMpnIdRequest { mpn_id: mpn.into() });
        async move {
            anyhow::Ok(
                organizations
                    .lookup_mpn_id(req)
                    .await?
                    .into_inner()
                    .organization,
            )
        }
    };
    let contoso = org_of("4000001").await?;
    let fabrikam = org_of("5000001").await?;
    let contoso_solution = d
        .solution(
            &oli,
            CONTOSO_SOLUTION,
            pb::SolutionKind::PartnerSolution,
            &contoso,
            "4000001",
            &["PSC-PROD-ANALYTICS"],
        )
        .await?;
    d.solution(
        &oli,
        "Contoso Edge Security",
        pb::SolutionKind::PartnerSolution,
        &contoso,
        "4000002",
        &[],
    )
    .await?;
    d.solution(
        &oli,
        "Fabrikam Data Fabric",
        pb::SolutionKind::PartnerSolution,
        &fabrikam,
        "5000001",
        &[],
    )
    .await?;
    let sku = d
        .solution(
            &oli,
            "Platform Compute Reserved Instances",
            pb::SolutionKind::PlatformSku,
            "",
            "",
            &[],
        )
        .await?;
    d.solution(
        &oli,
        "Platform Database Managed",
        pb::SolutionKind::PlatformSku,
        "",
        "",
        &[],
    )
    .await?;

    // Customers: real entries of the directory's sample.
    let found = dpb::directory_service_client::DirectoryServiceClient::new(d.channel.clone())
        .search_entities(authed(
            &rita,
            dpb::SearchEntitiesRequest {
                query: "bank".into(),
                page_size: 10,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .results;
    let customers: Vec<String> = found
        .into_iter()
        .filter_map(|r| r.entity.map(|e| e.name))
        .collect();
    anyhow::ensure!(
        customers.len() >= 8,
        "the directory has too few entities for the demo deals (load the sample)"
    );

    let create = |name: &str, deal_type: pb::DealType, customer: usize| {
        let req = authed(
            &rita,
            pb::CreateReferralRequest {
                request_id: String::new(),
                referral: Some(complete(
                    name,
                    deal_type,
                    &customers[customer],
                    &contoso_solution,
                )),
            },
        );
        let mut client = d.referrals();
        async move {
            anyhow::Ok(
                client
                    .create_referral(req)
                    .await?
                    .into_inner()
                    .referral
                    .unwrap_or_default(),
            )
        }
    };
    create("Data warehouse refresh", pb::DealType::Private, 0).await?;
    create(
        "Analytics rollout (partner-led)",
        pb::DealType::PartnerLed,
        1,
    )
    .await?;
    create(
        "Lakehouse pilot (waiting for a seller)",
        pb::DealType::CoSell,
        2,
    )
    .await?;
    let accepted = create("Security modernization (co-sell)", pb::DealType::CoSell, 3).await?;
    let declined = create("Edge rollout (seller declined)", pb::DealType::CoSell, 4).await?;
    let won = create("Reporting upgrade (won)", pb::DealType::Private, 5).await?;
    let lost = create("Archive migration (lost)", pb::DealType::PartnerLed, 6).await?;
    let registered = create(
        "Identity rollout (won, registration in review)",
        pb::DealType::CoSell,
        7,
    )
    .await?;

    let queue = d
        .cosell()
        .list_invitations(authed(&sam, pb::ListInvitationsRequest::default()))
        .await?
        .into_inner()
        .referrals;
    let invitation = |r: &pb::Referral| {
        queue
            .iter()
            .find(|q| q.engagement == r.engagement)
            .map(|q| q.name.clone())
            .unwrap_or_default()
    };
    let seller = pb::Contact {
        first_name: "Sam".into(),
        last_name: "Seller".into(),
        email: String::new(),
        phone: "+1 206 555 0199".into(),
    };
    d.cosell()
        .accept_invitation(authed(
            &sam,
            pb::AcceptInvitationRequest {
                name: invitation(&accepted),
                seller_contact: Some(seller.clone()),
                etag: String::new(),
            },
        ))
        .await?;
    d.cosell()
        .accept_invitation(authed(
            &sam,
            pb::AcceptInvitationRequest {
                name: invitation(&registered),
                seller_contact: Some(seller.clone()),
                etag: String::new(),
            },
        ))
        .await?;
    d.cosell()
        .decline_invitation(authed(
            &sam,
            pb::DeclineInvitationRequest {
                name: invitation(&declined),
                reason: "The customer is served by another team this year.".into(),
                etag: String::new(),
            },
        ))
        .await?;
    d.referrals()
        .mark_referral_won(authed(
            &rita,
            pb::MarkReferralWonRequest {
                name: won.name,
                etag: String::new(),
            },
        ))
        .await?;
    // Won with a seller's help and an incentive-eligible solution: registered, waiting for a
    // platform operator's review (SPEC 3.8).
    d.referrals()
        .mark_referral_won(authed(
            &rita,
            pb::MarkReferralWonRequest {
                name: registered.name.clone(),
                etag: String::new(),
            },
        ))
        .await?;
    d.referrals()
        .register_deal(authed(
            &rita,
            pb::RegisterDealRequest {
                name: registered.name,
                etag: String::new(),
            },
        ))
        .await?;
    d.referrals()
        .mark_referral_lost(authed(
            &rita,
            pb::MarkReferralLostRequest {
                name: lost.name,
                reason: "Budget moved to next year.".into(),
                etag: String::new(),
            },
        ))
        .await?;

    // Contoso is cut over: platform sellers' referrals for it come here, not to PSC (SPEC 5.5).
    // Fabrikam is not: a seller's referral for it is refused (`ORGANIZATION_ON_PSC`). The
    // operator flips it where an operator would, in the migration service.
    cosell_proto::migration::migration_service_client::MigrationServiceClient::new(
        d.channel.clone(),
    )
    .update_cutover(authed(
        &oli,
        cosell_proto::migration::UpdateCutoverRequest {
            parent: contoso.clone(),
            routed_to_new_system: true,
        },
    ))
    .await?;

    // Inbound: one waiting, one accepted (after Rita completed it), one declined.
    let mut inbound = Vec::new();
    for (i, title) in [
        "Cloud migration (inbound)",
        "Backup renewal (inbound)",
        "Call center (inbound)",
        "Security review (inbound, expired)",
        "Data platform (inbound, expiring soon)",
    ]
    .into_iter()
    .enumerate()
    {
        let sent = d
            .cosell()
            .create_inbound_referral(authed(
                &sam,
                pb::CreateInboundReferralRequest {
                    request_id: String::new(),
                    referral: Some(pb::Referral {
                        organization: contoso.clone(),
                        mpn_location: if i == 0 {
                            "4000002".into()
                        } else {
                            String::new()
                        },
                        display_name: title.into(),
                        customer: Some(pb::Customer {
                            entity: customers[7 - i % 2].clone(),
                            contacts: vec![person("Cody", "Customer", "cody@customer.example")],
                            ..Default::default()
                        }),
                        solutions: vec![pb::ReferralSolution {
                            solution: sku.clone(),
                            quantity: 100,
                            unit_price: "12.50".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    seller_contact: Some(seller.clone()),
                },
            ))
            .await?
            .into_inner()
            .referral
            .unwrap_or_default();
        inbound.push(sent);
    }
    let fields = complete("", pb::DealType::CoSell, "", "");
    d.referrals()
        .update_referral(authed(
            &rita,
            pb::UpdateReferralRequest {
                referral: Some(pb::Referral {
                    name: inbound[1].name.clone(),
                    ..fields
                }),
                update_mask: Some(FieldMask {
                    paths: ["team", "deal_value", "estimated_close_date", "notes"]
                        .map(String::from)
                        .to_vec(),
                }),
            },
        ))
        .await?;
    d.referrals()
        .accept_referral(authed(
            &rita,
            pb::AcceptReferralRequest {
                name: inbound[1].name.clone(),
                etag: String::new(),
            },
        ))
        .await?;
    d.referrals()
        .decline_referral(authed(
            &rita,
            pb::DeclineReferralRequest {
                name: inbound[2].name.clone(),
                reason: "No capacity this quarter.".into(),
                etag: String::new(),
            },
        ))
        .await?;
    Ok(Some(Unanswered {
        expired: inbound[3].name.clone(),
        expiring: inbound[4].name.clone(),
    }))
}
