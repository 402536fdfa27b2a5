//! The cut-over routes the platform sellers' referrals (SPEC 5.5): an organization still on
//! PSC gets none here, one cut over does, and partners' own referrals never depend on it.

use cosell_proto::deals as pb;
use cosell_testkit::authed;

use crate::harness::*;

async fn send_inbound(h: &Harness, organization: &str) -> Result<pb::Referral, tonic::Status> {
    let sam = h.token(SAM).await;
    Ok(h.cosell()
        .create_inbound_referral(authed(
            &sam,
            pb::CreateInboundReferralRequest {
                request_id: String::new(),
                referral: Some(pb::Referral {
                    organization: organization.into(),
                    display_name: "Routed by the switch".into(),
                    customer: Some(pb::Customer {
                        entity: h.customers[2].0.clone(),
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
        .await?
        .into_inner()
        .referral
        .unwrap())
}

async fn inbound_of(h: &Harness, email: &str) -> Vec<pb::Referral> {
    h.list(
        email,
        pb::ListReferralsRequest {
            direction: pb::Direction::Inbound as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .referrals
}

#[tokio::test]
async fn a_seller_referral_waits_for_the_cut_over() {
    let h = Harness::start().await;

    // Fabrikam is still on PSC: refused, and nothing lands in its Inbound tab.
    let err = send_inbound(&h, &h.fabrikam).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(details(&err).0, "ORGANIZATION_ON_PSC");
    assert!(
        err.message().contains("still takes referrals in PSC"),
        "{err:?}"
    );
    assert!(inbound_of(&h, FAY).await.is_empty());

    // Its own referrals do not depend on the switch.
    let own = h
        .create(
            FAY,
            h.complete(pb::DealType::PartnerLed, &h.fabrikam_solution),
        )
        .await;
    assert_eq!(own.direction(), pb::Direction::Outbound);

    // Once an operator cuts it over, the seller's referral lands in its Inbound tab.
    let on = h.cut_over(&h.fabrikam, true).await.unwrap();
    assert!(on.routed_to_new_system);
    assert_eq!(on.switched_by, OLI);
    assert!(on.switch_time.is_some());
    let sent = send_inbound(&h, &h.fabrikam).await.unwrap();
    assert_eq!(sent.substatus(), pb::Substatus::Received);
    let inbound = inbound_of(&h, FAY).await;
    assert_eq!(
        inbound.iter().map(|r| &r.name).collect::<Vec<_>>(),
        [&sent.name]
    );

    // Undone, the organization is back on PSC.
    h.cut_over(&h.contoso, false).await.unwrap();
    let err = send_inbound(&h, &h.contoso).await.unwrap_err();
    assert_eq!(details(&err).0, "ORGANIZATION_ON_PSC");
}

#[tokio::test]
async fn who_reads_and_flips_the_switch() {
    let h = Harness::start().await;
    let get = |email: &'static str, parent: String| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            h.cutovers()
                .get_cutover(authed(&token, pb::GetCutoverRequest { parent }))
                .await
                .map(|r| r.into_inner().cutover.unwrap())
        }
    };
    // The partner's own people and platform users read it; another partner hears NOT_FOUND.
    let fabrikam = get(FAY, h.fabrikam.clone()).await.unwrap();
    assert!(!fabrikam.routed_to_new_system);
    assert!(fabrikam.switch_time.is_none());
    assert_eq!(fabrikam.name, format!("{}/cutover", h.fabrikam));
    assert!(
        get(RITA, h.contoso.clone())
            .await
            .unwrap()
            .routed_to_new_system
    );
    assert!(
        get(SAM, h.contoso.clone())
            .await
            .unwrap()
            .routed_to_new_system
    );
    assert_eq!(
        get(FAY, h.contoso.clone()).await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    // Only operators (and the migration service, for one) flip it; only for a partner.
    let rita = h.token(RITA).await;
    let err = h
        .cutovers()
        .update_cutover(authed(
            &rita,
            pb::UpdateCutoverRequest {
                parent: h.contoso.clone(),
                routed_to_new_system: false,
                switched_by: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let nobody = format!("organizations/{}", uuid::Uuid::new_v4());
    assert_eq!(
        h.cut_over(&nobody, true).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let migration = h.migration_token().await;
    let flip = |switched_by: &str| {
        authed(
            &migration,
            pb::UpdateCutoverRequest {
                parent: h.fabrikam.clone(),
                routed_to_new_system: true,
                switched_by: switched_by.into(),
            },
        )
    };
    let err = h.cutovers().update_cutover(flip("")).await.unwrap_err();
    assert_eq!(details(&err).1, ["switched_by"]);
    let on = h
        .cutovers()
        .update_cutover(flip(OLI))
        .await
        .unwrap()
        .into_inner()
        .cutover
        .unwrap();
    assert_eq!(
        (on.routed_to_new_system, on.switched_by.as_str()),
        (true, OLI)
    );
    assert!(
        get(FAY, h.fabrikam.clone())
            .await
            .unwrap()
            .routed_to_new_system
    );
}
