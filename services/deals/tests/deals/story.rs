//! The co-sell stories of SPEC 3 end to end: a partner's co-sell request through the sellers'
//! queue to a won deal, a seller's decline, and inbound referrals accepted and declined.

use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};
use prost_types::FieldMask;

use crate::harness::*;

fn seller_contact() -> pb::Contact {
    pb::Contact {
        first_name: "Sam".into(),
        last_name: "Seller".into(),
        email: String::new(),
        phone: "+1 206 555 0199".into(),
    }
}

async fn cosell_story(h: Harness) {
    // The partner creates a co-sell referral for a customer from the directory.
    let r = h
        .create(RITA, h.complete(pb::DealType::CoSell, &h.contoso_solution))
        .await;
    assert_eq!(r.status(), pb::Status::New);
    assert_eq!(r.substatus(), pb::Substatus::Pending);
    assert_eq!(r.direction(), pb::Direction::Outbound);
    assert_eq!(r.party(), pb::Party::Partner);
    assert_eq!(r.organization, h.contoso);
    let customer = r.customer.clone().unwrap();
    assert_eq!(
        customer.legal_name, h.customers[0].1,
        "legal name from the directory (D8)"
    );
    assert!(!customer.address.as_ref().unwrap().country_code.is_empty());
    assert_eq!(customer.r#match(), pb::CustomerMatch::Matched);
    assert_eq!(r.solutions[0].display_name, "Contoso Cloud Analytics");
    assert_eq!(r.deal_value.as_ref().unwrap().amount, "125000.50");
    assert!(r.seller_contact.is_none());
    assert!(r.expire_time.is_some());

    // The platform's referral lands in the sellers' queue.
    let queue = h.queue().await;
    let invitation = queue
        .iter()
        .find(|q| q.engagement == r.engagement)
        .expect("the co-sell request is in the queue")
        .clone();
    assert_eq!(invitation.party(), pb::Party::Platform);
    assert_eq!(invitation.status(), pb::Status::New);
    assert_eq!(invitation.substatus(), pb::Substatus::Received);
    assert_eq!(invitation.direction(), pb::Direction::Inbound);
    assert_eq!(invitation.organization, h.contoso);
    assert_eq!(invitation.display_name, r.display_name);
    assert_ne!(invitation.name, r.name);

    // Before a seller accepts, the partner sees no seller (D4).
    let before = h.get(RITA, &r.name).await.unwrap();
    assert!(before.seller_contact.is_none());

    // A seller accepts.
    let sam = h.token(SAM).await;
    let accepted = h
        .cosell()
        .accept_invitation(authed(
            &sam,
            pb::AcceptInvitationRequest {
                name: invitation.name.clone(),
                seller_contact: Some(seller_contact()),
                etag: invitation.etag.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(accepted.status(), pb::Status::Active);
    assert!(
        !h.queue().await.iter().any(|q| q.name == invitation.name),
        "answered invitations leave the queue"
    );

    // The partner now sees the seller.
    let seen = h.get(RITA, &r.name).await.unwrap();
    assert_eq!(seen.status(), pb::Status::Active);
    assert_eq!(seen.substatus(), pb::Substatus::Accepted);
    let seller = seen
        .seller_contact
        .clone()
        .expect("seller visible after accept");
    assert_eq!(seller.email, SAM);
    assert_eq!(seller.first_name, "Sam");
    assert_eq!(seller.phone, "+1 206 555 0199");

    // The partner marks it won.
    let rita = h.token(RITA).await;
    let won = h
        .referrals()
        .mark_referral_won(authed(
            &rita,
            pb::MarkReferralWonRequest {
                name: seen.name.clone(),
                etag: seen.etag.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(won.status(), pb::Status::Closed);
    assert_eq!(won.substatus(), pb::Substatus::Won);
    assert!(won.close_time.is_some());
    let platform_side = h.get(SAM, &invitation.name).await.unwrap();
    assert_eq!(platform_side.substatus(), pb::Substatus::Won);

    // Closed is terminal (D1).
    let err = h
        .referrals()
        .update_referral(authed(
            &rita,
            pb::UpdateReferralRequest {
                referral: Some(pb::Referral {
                    name: won.name.clone(),
                    notes: "late note".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["notes".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(details(&err).0, "REFERRAL_CLOSED");
}

#[tokio::test]
async fn cosell_story_on_sqlite() {
    cosell_story(Harness::start_on(TestDb::sqlite()).await).await;
}

#[tokio::test]
async fn cosell_story_on_the_test_database() {
    cosell_story(Harness::start().await).await;
}

#[tokio::test]
async fn a_declined_cosell_request_goes_on_as_partner_led() {
    let h = Harness::start().await;
    let r = h
        .create(RITA, h.complete(pb::DealType::CoSell, &h.contoso_solution))
        .await;
    let invitation = h
        .queue()
        .await
        .into_iter()
        .find(|q| q.engagement == r.engagement)
        .unwrap();
    let sam = h.token(SAM).await;
    let missing_reason = h
        .cosell()
        .decline_invitation(authed(
            &sam,
            pb::DeclineInvitationRequest {
                name: invitation.name.clone(),
                reason: " ".into(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing_reason.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&missing_reason).1, ["reason"]);
    h.cosell()
        .decline_invitation(authed(
            &sam,
            pb::DeclineInvitationRequest {
                name: invitation.name.clone(),
                reason: "outside our territory".into(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let partner = h.get(RITA, &r.name).await.unwrap();
    assert_eq!(partner.status(), pb::Status::Active);
    assert_eq!(partner.deal_type(), pb::DealType::PartnerLed);
    assert_eq!(partner.status_reason, "outside our territory");
    assert!(partner.seller_contact.is_none());
    let platform = h.get(SAM, &invitation.name).await.unwrap();
    assert_eq!(platform.substatus(), pb::Substatus::Declined);

    // The partner goes on editing; the closed platform side is left as it closed (D1).
    let rita = h.token(RITA).await;
    h.referrals()
        .update_referral(authed(
            &rita,
            pb::UpdateReferralRequest {
                referral: Some(pb::Referral {
                    name: r.name.clone(),
                    display_name: "Renamed after the decline".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let after = h.get(SAM, &invitation.name).await.unwrap();
    assert_eq!(after.etag, platform.etag);
    assert_eq!(after.display_name, platform.display_name);
    assert_eq!(after.deal_type(), pb::DealType::CoSell);

    // Inbound referrals go to partner organizations only.
    let sam = h.token(SAM).await;
    let err = h
        .cosell()
        .create_inbound_referral(authed(
            &sam,
            pb::CreateInboundReferralRequest {
                request_id: String::new(),
                referral: Some(pb::Referral {
                    organization: format!("organizations/{}", uuid::Uuid::new_v4()),
                    display_name: "Nobody's".into(),
                    customer: Some(pb::Customer {
                        entity: h.customers[1].0.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                seller_contact: Some(seller_contact()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&err).1, ["referral.organization"]);
}

async fn send_inbound(h: &Harness, mpn_location: &str) -> pb::Referral {
    let sam = h.token(SAM).await;
    h.cosell()
        .create_inbound_referral(authed(
            &sam,
            pb::CreateInboundReferralRequest {
                request_id: String::new(),
                referral: Some(pb::Referral {
                    organization: h.contoso.clone(),
                    mpn_location: mpn_location.into(),
                    display_name: "Migration to the cloud".into(),
                    customer: Some(pb::Customer {
                        entity: h.customers[1].0.clone(),
                        contacts: vec![pb::Contact {
                            first_name: "Cody".into(),
                            last_name: "Customer".into(),
                            email: "cody@customer.example".into(),
                            phone: String::new(),
                        }],
                        ..Default::default()
                    }),
                    solutions: vec![pb::ReferralSolution {
                        solution: h.sku.clone(),
                        quantity: 100,
                        unit_price: "12.50".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                seller_contact: Some(seller_contact()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap()
}

#[tokio::test]
async fn inbound_referrals_are_accepted_or_declined_by_the_partner() {
    let h = Harness::start().await;
    let sent = send_inbound(&h, "").await;
    assert_eq!(sent.organization, h.contoso);
    assert_eq!(sent.direction(), pb::Direction::Inbound);
    assert_eq!(sent.substatus(), pb::Substatus::Received);

    // It is in the partner's Inbound tab.
    let inbound = h
        .list(
            RITA,
            pb::ListReferralsRequest {
                direction: pb::Direction::Inbound as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mine = inbound
        .referrals
        .iter()
        .find(|r| r.name == sent.name)
        .expect("in the Inbound tab");
    assert_eq!(mine.customer.as_ref().unwrap().legal_name, h.customers[1].1);
    assert_eq!(mine.seller_contact.as_ref().unwrap().email, SAM);
    assert_eq!(mine.solutions[0].unit_price, "12.50");

    // Accepting needs the required fields (D6): each missing one is named.
    let rita = h.token(RITA).await;
    let refused = h
        .referrals()
        .accept_referral(authed(
            &rita,
            pb::AcceptReferralRequest {
                name: sent.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let (reason, fields) = details(&refused);
    assert_eq!(reason, "REQUIRED_FIELDS_MISSING");
    assert_eq!(
        fields,
        ["team", "deal_value", "estimated_close_date", "notes"]
    );

    // The partner completes it and accepts.
    let complete = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    let updated = h
        .referrals()
        .update_referral(authed(
            &rita,
            pb::UpdateReferralRequest {
                referral: Some(pb::Referral {
                    name: sent.name.clone(),
                    ..complete
                }),
                update_mask: Some(FieldMask {
                    paths: vec![
                        "team".into(),
                        "deal_value".into(),
                        "estimated_close_date".into(),
                        "notes".into(),
                    ],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let accepted = h
        .referrals()
        .accept_referral(authed(
            &rita,
            pb::AcceptReferralRequest {
                name: sent.name.clone(),
                etag: updated.etag.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(accepted.status(), pb::Status::Active);
    assert!(accepted.accept_time.is_some());

    // A second one is declined, with a reason the seller sees.
    let second = send_inbound(&h, "4000002").await;
    let declined = h
        .decline(RITA, &second.name, "no capacity this quarter")
        .await;
    assert_eq!(declined.substatus(), pb::Substatus::Declined);
    let sellers_side = h
        .list(
            SAM,
            pb::ListReferralsRequest {
                engagement: second.engagement.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .referrals;
    assert_eq!(sellers_side.len(), 1);
    assert_eq!(sellers_side[0].party(), pb::Party::Platform);
    assert_eq!(sellers_side[0].substatus(), pb::Substatus::Declined);
    assert_eq!(sellers_side[0].status_reason, "no capacity this quarter");
}
