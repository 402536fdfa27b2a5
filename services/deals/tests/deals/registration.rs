//! Deal registration (SPEC 3.8): what `MarkReferralWon` says about it, each condition alone,
//! the 72-hour warning on an injected clock, the ISV Connect rule, and the operators' review.

use cosell_platform::clock::ManualClock;
use cosell_proto::deals as pb;
use cosell_proto::identity as ipb;
use cosell_testkit::{TestDb, authed};

use crate::harness::*;

/// A won referral and what MarkReferralWon said about registering it.
async fn win(h: &Harness, email: &str, r: &pb::Referral) -> (pb::Referral, pb::RegistrationCheck) {
    let token = h.token(email).await;
    let won = h
        .referrals()
        .mark_referral_won(authed(
            &token,
            pb::MarkReferralWonRequest {
                name: r.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_or_else(|s| panic!("won: {s:?}"))
        .into_inner();
    (won.referral.unwrap(), won.registration_check.unwrap())
}

fn blockers(c: &pb::RegistrationCheck) -> Vec<pb::RegistrationBlocker> {
    c.issues.iter().map(|i| i.blocker()).collect()
}

/// A CO_SELL referral of Rita's carrying `solution`, whose co-sell request a seller accepted.
async fn accepted_cosell(h: &Harness, solution: &str) -> pb::Referral {
    let r = h
        .create(RITA, h.complete(pb::DealType::CoSell, solution))
        .await;
    let invitation = h
        .queue()
        .await
        .into_iter()
        .find(|q| q.engagement == r.engagement)
        .unwrap();
    let sam = h.token(SAM).await;
    h.cosell()
        .accept_invitation(authed(
            &sam,
            pb::AcceptInvitationRequest {
                name: invitation.name,
                seller_contact: Some(pb::Contact {
                    first_name: "Sam".into(),
                    last_name: "Seller".into(),
                    email: String::new(),
                    phone: "+1 206 555 0199".into(),
                }),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    r
}

async fn register(
    h: &Harness,
    email: &str,
    r: &pb::Referral,
) -> Result<pb::RegisterDealResponse, tonic::Status> {
    let token = h.token(email).await;
    Ok(h.referrals()
        .register_deal(authed(
            &token,
            pb::RegisterDealRequest {
                name: r.name.clone(),
                etag: String::new(),
            },
        ))
        .await?
        .into_inner())
}

/// The violation types of a NOT_REGISTRABLE refusal.
fn refused_for(s: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
    assert_eq!(details(s).0, "NOT_REGISTRABLE");
    s.get_error_details()
        .precondition_failure()
        .map(|p| p.violations.iter().map(|v| v.r#type.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn each_registration_condition_alone() {
    let h = Harness::start().await;
    use pb::RegistrationBlocker as B;

    // Qualifies: CO_SELL, a seller accepted, an incentive-eligible solution.
    let good = accepted_cosell(&h, &h.contoso_solution).await;
    let (won, check) = win(&h, RITA, &good).await;
    assert!(check.registrable, "{check:?}");
    assert!(check.issues.is_empty());
    assert_eq!(
        won.registration_status(),
        pb::RegistrationStatus::Unspecified
    );

    // Only a platform SKU, which is not incentive eligible.
    let sku_only = accepted_cosell(&h, &h.sku).await;
    let (_, check) = win(&h, RITA, &sku_only).await;
    assert_eq!(blockers(&check), [B::NoIncentiveEligibleSolution]);
    assert!(!check.registrable);

    // CO_SELL, but no seller answered: the partner's win closes the request, unanswered.
    let unanswered = h
        .create(RITA, h.complete(pb::DealType::CoSell, &h.contoso_solution))
        .await;
    let (_, check) = win(&h, RITA, &unanswered).await;
    assert_eq!(blockers(&check), [B::CosellNotAccepted]);

    // PRIVATE.
    let private = h
        .create(RITA, h.complete(pb::DealType::Private, &h.contoso_solution))
        .await;
    let (_, check) = win(&h, RITA, &private).await;
    assert_eq!(blockers(&check), [B::Private]);

    // No co-sell referral, and Contoso is not enrolled in ISV Connect.
    let partner_led = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    let (_, check) = win(&h, RITA, &partner_led).await;
    assert_eq!(blockers(&check), [B::NotIsvConnect]);
    assert!(check.issues[0].description.contains("ISV Connect"));

    // RegisterDeal refuses each with its reason, and writes nothing.
    for (r, reason) in [
        (&sku_only, "NO_INCENTIVE_ELIGIBLE_SOLUTION"),
        (&unanswered, "COSELL_NOT_ACCEPTED"),
        (&private, "PRIVATE"),
        (&partner_led, "NOT_ISV_CONNECT"),
    ] {
        let err = register(&h, RITA, r).await.unwrap_err();
        assert_eq!(refused_for(&err), [reason]);
        let after = h.get(RITA, &r.name).await.unwrap();
        assert!(after.registration.is_none(), "{reason}: {after:?}");
    }
    // An open referral is not won yet.
    let open = h
        .create(RITA, h.complete(pb::DealType::Private, &h.contoso_solution))
        .await;
    assert_eq!(
        refused_for(&register(&h, RITA, &open).await.unwrap_err()),
        ["NOT_WON", "PRIVATE"]
    );

    // The qualifying one goes to review, once.
    let registered = register(&h, RITA, &good).await.unwrap();
    let referral = registered.referral.unwrap();
    assert_eq!(
        referral.registration_status(),
        pb::RegistrationStatus::ReviewPending
    );
    assert!(referral.registration.unwrap().register_time.is_some());
    assert_eq!(
        refused_for(&register(&h, RITA, &good).await.unwrap_err()),
        ["ALREADY_REGISTERED"]
    );
    // Another organization's user does not even see it.
    assert_eq!(
        register(&h, FAY, &good).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn the_72_hour_warning_ends_at_72_hours() {
    let clock = ManualClock::new();
    let h = Harness::start_with(TestDb::new().await.unwrap(), clock.clone()).await;
    let minute = chrono::Duration::minutes(1);

    let early = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    clock.advance(chrono::Duration::hours(72) - minute);
    let (won, check) = win(&h, RITA, &early).await;
    assert!(check.won_within_72_hours, "won at 71:59");
    let (created, closed) = (won.create_time.unwrap(), won.close_time.unwrap());
    assert_eq!(closed.seconds - created.seconds, 72 * 3600 - 60);

    let on_time = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    clock.advance(chrono::Duration::hours(72));
    let (_, check) = win(&h, RITA, &on_time).await;
    assert!(!check.won_within_72_hours, "won at 72:00");
}

#[tokio::test]
async fn isv_connect_organizations_register_without_a_cosell_referral() {
    let h = Harness::start().await;
    // An operator creates an organization enrolled in ISV Connect; its account admin makes
    // itself a referrals admin.
    let oli = h.token(OLI).await;
    let orgs =
        ipb::organization_service_client::OrganizationServiceClient::new(h.server.channel.clone());
    let org = orgs
        .clone()
        .create_organization(authed(
            &oli,
            ipb::CreateOrganizationRequest {
                display_name: "Northwind ISV".into(),
                verified_domains: vec!["northwind-isv.example".into()],
                vorg_mpn_id: "6100001".into(),
                isv_connect_enrolled: true,
                account_admin_email: "ian.admin@northwind-isv.example".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ian = org.account_admin.unwrap();
    let organization = org.organization.unwrap().name;
    let ian_token = h.token(&ian.email).await;
    ipb::role_service_client::RoleServiceClient::new(h.server.channel.clone())
        .assign_role(authed(
            &ian_token,
            ipb::AssignRoleRequest {
                user: ian.name.clone(),
                role: ipb::Role::ReferralsAdmin as i32,
                mpn_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let solution = h
        .create_solution(
            OLI,
            "Northwind Ledger",
            pb::SolutionKind::PartnerSolution,
            &organization,
            "6100001",
            true,
        )
        .await
        .name;
    let deal = h
        .create(&ian.email, h.complete(pb::DealType::PartnerLed, &solution))
        .await;
    let (_, check) = win(&h, &ian.email, &deal).await;
    assert!(check.registrable, "{check:?}");
    let registered = register(&h, &ian.email, &deal).await.unwrap();
    assert_eq!(
        registered.referral.unwrap().registration_status(),
        pb::RegistrationStatus::ReviewPending
    );
}

#[tokio::test]
async fn platform_operators_review_with_a_reason_to_reject() {
    let h = Harness::start().await;
    let deal = accepted_cosell(&h, &h.contoso_solution).await;
    win(&h, RITA, &deal).await;
    register(&h, RITA, &deal).await.unwrap();
    let second = accepted_cosell(&h, &h.contoso_solution).await;
    win(&h, RITA, &second).await;
    register(&h, RITA, &second).await.unwrap();

    let review = |email: &'static str,
                  name: String,
                  decision: pb::RegistrationStatus,
                  reason: &'static str| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            h.referrals()
                .review_registration(authed(
                    &token,
                    pb::ReviewRegistrationRequest {
                        name,
                        decision: decision as i32,
                        reason: reason.into(),
                        etag: String::new(),
                    },
                ))
                .await
                .map(|r| r.into_inner().referral.unwrap())
        }
    };
    let queue = |status: pb::RegistrationStatus| {
        let h = &h;
        async move {
            let token = h.token(OLI).await;
            h.referrals()
                .list_registrations(authed(
                    &token,
                    pb::ListRegistrationsRequest {
                        registration_status: status as i32,
                        page_size: 1,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    use pb::RegistrationStatus as S;

    // Only operators list the queue and review; sellers and partners are refused.
    for email in [RITA, SAM] {
        let token = h.token(email).await;
        let err = h
            .referrals()
            .list_registrations(authed(&token, pb::ListRegistrationsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let err = review(email, deal.name.clone(), S::Approved, "")
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{email}");
    }

    // The queue, oldest registration first, one per page.
    let first = queue(S::ReviewPending).await;
    assert_eq!(first.referrals.len(), 1);
    assert_eq!(first.referrals[0].name, deal.name);
    assert!(!first.next_page_token.is_empty());

    // A rejection needs a reason.
    let err = review(OLI, deal.name.clone(), S::Rejected, "  ")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&err).1, ["reason"]);
    let rejected = review(
        OLI,
        deal.name.clone(),
        S::Rejected,
        "Duplicate of an earlier claim.",
    )
    .await
    .unwrap();
    assert_eq!(rejected.registration_status(), S::Rejected);
    let approved = review(OLI, second.name.clone(), S::Approved, "")
        .await
        .unwrap();
    assert_eq!(approved.registration_status(), S::Approved);

    // The partner sees the outcome and the reason; a review is final.
    let seen = h.get(RITA, &deal.name).await.unwrap();
    let g = seen.registration.unwrap();
    assert_eq!(
        (g.status(), g.reviewed_by.as_str(), g.review_reason.as_str()),
        (S::Rejected, OLI, "Duplicate of an earlier claim.")
    );
    assert!(g.review_time.is_some());
    let err = review(OLI, deal.name.clone(), S::Approved, "")
        .await
        .unwrap_err();
    assert_eq!(details(&err).0, "NOT_PENDING_REVIEW");
    assert!(queue(S::ReviewPending).await.referrals.is_empty());
    assert_eq!(queue(S::Rejected).await.referrals[0].name, deal.name);
}

#[tokio::test]
async fn each_registration_step_is_an_event_of_the_feed() {
    let h = Harness::start().await;
    let deal = accepted_cosell(&h, &h.contoso_solution).await;
    win(&h, RITA, &deal).await;
    register(&h, RITA, &deal).await.unwrap();
    let oli = h.token(OLI).await;
    h.referrals()
        .review_registration(authed(
            &oli,
            pb::ReviewRegistrationRequest {
                name: deal.name.clone(),
                decision: pb::RegistrationStatus::Approved as i32,
                reason: String::new(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();

    let rita = h.token(RITA).await;
    let feed = h
        .events()
        .list_events(authed(
            &rita,
            pb::ListEventsRequest {
                parent: h.contoso.clone(),
                after: String::new(),
                page_size: 1_000,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // The registration and the review, in order, each carrying the referral as it was left.
    let steps: Vec<pb::RegistrationStatus> = feed
        .events
        .iter()
        .filter(|e| e.referral.as_ref().unwrap().name == deal.name)
        .filter(|e| e.kind() == pb::EventKind::RegistrationChanged)
        .map(|e| e.referral.as_ref().unwrap().registration_status())
        .collect();
    assert_eq!(
        steps,
        vec![
            pb::RegistrationStatus::ReviewPending,
            pb::RegistrationStatus::Approved
        ]
    );
}
