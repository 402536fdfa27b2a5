//! The authorization matrix: each RPC x each kind of caller, plus another organization. A
//! referral of Contoso's MPN location 4000002 is the subject.

use cosell_proto::deals as pb;
use cosell_testkit::authed;
use prost_types::FieldMask;
use tonic::Code::{self, InvalidArgument, NotFound, Ok as Allowed, PermissionDenied};

use crate::harness::*;

const CALLERS: &[&str] = &[RITA, UMA, LEO, ADA, BEA, FAY, SAM, OLI, "migration"];

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Get,
    List,
    Update,
    Favorite,
    Engagement,
    Create,
    Won,
    Queue,
    AnswerInvitation,
    Inbound,
    Import,
    CreateSolution,
}

/// Expected outcome per caller, in the order of [`CALLERS`].
fn expected(rpc: Rpc) -> [Code; 9] {
    use Rpc::*;
    match rpc {
        //                 rita     uma      leo       ada               bea               fay       sam               oli               migration
        Get | Favorite => [
            Allowed,
            Allowed,
            NotFound,
            PermissionDenied,
            PermissionDenied,
            NotFound,
            Allowed,
            Allowed,
            PermissionDenied,
        ],
        Engagement => [
            Allowed, Allowed, NotFound, NotFound, NotFound, NotFound, Allowed, Allowed, NotFound,
        ],
        List => [
            Allowed,
            Allowed,
            Allowed,
            PermissionDenied,
            PermissionDenied,
            Allowed,
            Allowed,
            Allowed,
            PermissionDenied,
        ],
        Update | Won => [
            Allowed,
            Allowed,
            NotFound,
            PermissionDenied,
            PermissionDenied,
            NotFound,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
        ],
        // Leo's role covers another location; Fabrikam may not use Contoso's location.
        Create => [
            Allowed,
            Allowed,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            InvalidArgument,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
        ],
        Queue | AnswerInvitation | Inbound => [
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            Allowed,
            PermissionDenied,
            PermissionDenied,
        ],
        Import => [
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            PermissionDenied,
            Allowed,
        ],
        // Partner admins publish their own solutions; referrals users and sellers do not.
        CreateSolution => [
            Allowed,
            PermissionDenied,
            PermissionDenied,
            Allowed,
            Allowed,
            Allowed,
            PermissionDenied,
            Allowed,
            PermissionDenied,
        ],
    }
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Allowed,
        Err(s) => s.code(),
    }
}

async fn call(h: &Harness, rpc: Rpc, caller: &str) -> Code {
    let token = if caller == "migration" {
        h.migration_token().await
    } else {
        h.token(caller).await
    };
    // A fresh subject per call, so that one caller's write cannot change another's outcome.
    let mut subject = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    subject.mpn_location = "4000002".into();
    let referral = h.create(RITA, subject.clone()).await;
    let invitation = h
        .queue()
        .await
        .into_iter()
        .find(|q| q.engagement == referral.engagement)
        .unwrap();
    let r = h.referrals();
    match rpc {
        Rpc::Get => code(
            r.clone()
                .get_referral(authed(
                    &token,
                    pb::GetReferralRequest {
                        name: referral.name.clone(),
                    },
                ))
                .await,
        ),
        Rpc::List => match r
            .clone()
            .list_referrals(authed(&token, pb::ListReferralsRequest::default()))
            .await
        {
            Ok(resp) => {
                // Whoever may list sees the subject only within their scope.
                let seen = resp
                    .into_inner()
                    .referrals
                    .iter()
                    .any(|x| x.engagement == referral.engagement);
                let should = [RITA, UMA, SAM, OLI].contains(&caller);
                assert_eq!(seen, should, "{caller} listing");
                Allowed
            }
            Err(s) => s.code(),
        },
        Rpc::Update => code(
            r.clone()
                .update_referral(authed(
                    &token,
                    pb::UpdateReferralRequest {
                        referral: Some(pb::Referral {
                            name: referral.name.clone(),
                            notes: "changed".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec!["notes".into()],
                        }),
                    },
                ))
                .await,
        ),
        Rpc::Favorite => code(
            r.clone()
                .set_favorite(authed(
                    &token,
                    pb::SetFavoriteRequest {
                        name: referral.name.clone(),
                        favorite: true,
                    },
                ))
                .await,
        ),
        Rpc::Engagement => code(
            r.clone()
                .get_engagement(authed(
                    &token,
                    pb::GetEngagementRequest {
                        name: referral.engagement.clone(),
                    },
                ))
                .await,
        ),
        Rpc::Create => code(
            r.clone()
                .create_referral(authed(
                    &token,
                    pb::CreateReferralRequest {
                        request_id: String::new(),
                        referral: Some(subject),
                    },
                ))
                .await,
        ),
        Rpc::Won => code(
            r.clone()
                .mark_referral_won(authed(
                    &token,
                    pb::MarkReferralWonRequest {
                        name: referral.name.clone(),
                        etag: String::new(),
                    },
                ))
                .await,
        ),
        Rpc::Queue => code(
            h.cosell()
                .list_invitations(authed(&token, pb::ListInvitationsRequest::default()))
                .await,
        ),
        Rpc::AnswerInvitation => code(
            h.cosell()
                .decline_invitation(authed(
                    &token,
                    pb::DeclineInvitationRequest {
                        name: invitation.name.clone(),
                        reason: "not now".into(),
                        etag: String::new(),
                    },
                ))
                .await,
        ),
        Rpc::Inbound => code(
            h.cosell()
                .create_inbound_referral(authed(
                    &token,
                    pb::CreateInboundReferralRequest {
                        request_id: String::new(),
                        referral: Some(pb::Referral {
                            organization: h.contoso.clone(),
                            display_name: "Inbound".into(),
                            customer: Some(pb::Customer {
                                entity: h.customers[3].0.clone(),
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
                .await,
        ),
        Rpc::Import => code(
            r.clone()
                .import_referrals(authed(
                    &token,
                    pb::ImportReferralsRequest {
                        organization: h.contoso.clone(),
                        referrals: Vec::new(),
                    },
                ))
                .await,
        ),
        Rpc::CreateSolution => {
            let mpn = if caller == FAY { "5000001" } else { "4000001" };
            let publisher = if caller == OLI {
                h.contoso.clone()
            } else {
                String::new()
            };
            code(
                h.catalog()
                    .create_solution(authed(
                        &token,
                        pb::CreateSolutionRequest {
                            solution: Some(pb::Solution {
                                display_name: format!("{caller} solution"),
                                kind: pb::SolutionKind::PartnerSolution as i32,
                                mpn_id: mpn.into(),
                                ..Default::default()
                            }),
                            publisher,
                        },
                    ))
                    .await,
            )
        }
    }
}

#[tokio::test]
async fn every_rpc_for_every_caller() {
    let h = Harness::start().await;
    let mut wrong = Vec::new();
    for rpc in [
        Rpc::Get,
        Rpc::List,
        Rpc::Update,
        Rpc::Favorite,
        Rpc::Engagement,
        Rpc::Create,
        Rpc::Won,
        Rpc::Queue,
        Rpc::AnswerInvitation,
        Rpc::Inbound,
        Rpc::Import,
        Rpc::CreateSolution,
    ] {
        for (caller, want) in CALLERS.iter().zip(expected(rpc)) {
            let got = call(&h, rpc, caller).await;
            if got != want {
                wrong.push(format!("{rpc:?} by {caller}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
