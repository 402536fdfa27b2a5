//! Concurrent writers (D9) and paging while referrals are being created (SPEC 3.4).

use std::collections::HashSet;

use cosell_proto::deals as pb;
use cosell_testkit::authed;
use prost_types::FieldMask;

use crate::harness::*;

#[tokio::test]
async fn sixty_four_concurrent_updates_with_etags_lose_none() {
    let h = Harness::start().await;
    let r = h
        .create(RITA, h.complete(pb::DealType::Private, &h.contoso_solution))
        .await;
    let token = h.token(RITA).await;
    let writers = (0..64).map(|i| {
        let client = h.referrals();
        let token = token.clone();
        let name = r.name.clone();
        async move {
            // Read, append this writer's line, write back with the etag read; on ABORTED read
            // again, as a client following D9 does.
            let mut aborted = 0;
            loop {
                let current = client
                    .clone()
                    .get_referral(authed(
                        &token,
                        pb::GetReferralRequest { name: name.clone() },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .referral
                    .unwrap();
                let notes = format!("{}\nwriter {i}", current.notes);
                let result = client
                    .clone()
                    .update_referral(authed(
                        &token,
                        pb::UpdateReferralRequest {
                            referral: Some(pb::Referral {
                                name: name.clone(),
                                etag: current.etag.clone(),
                                notes,
                                ..Default::default()
                            }),
                            update_mask: Some(FieldMask {
                                paths: vec!["notes".into()],
                            }),
                        },
                    ))
                    .await;
                match result {
                    Ok(_) => return aborted,
                    Err(s) if s.code() == tonic::Code::Aborted => aborted += 1,
                    Err(s) => panic!("writer {i}: {s:?}"),
                }
            }
        }
    });
    let aborted: usize = futures::future::join_all(writers).await.into_iter().sum();
    let done = h.get(RITA, &r.name).await.unwrap();
    let lines: HashSet<&str> = done
        .notes
        .lines()
        .filter(|l| l.starts_with("writer"))
        .collect();
    assert_eq!(lines.len(), 64, "every writer's line is there");
    for i in 0..64 {
        assert!(lines.contains(format!("writer {i}").as_str()));
    }
    // Version 1 at create, one bump per successful write.
    assert_eq!(done.etag, format!("\"{}\"", 1 + 64));
    eprintln!("{aborted} stale writes were refused and retried");
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_while_referrals_are_created() {
    let h = Harness::start().await;
    let mut before = HashSet::new();
    for i in 0..30 {
        let mut r = h.complete(pb::DealType::Private, &h.contoso_solution);
        r.display_name = format!("Deal {i:02}");
        before.insert(h.create(RITA, r).await.name);
    }
    let creator = async {
        for i in 0..20 {
            let mut r = h.complete(pb::DealType::Private, &h.contoso_solution);
            r.display_name = format!("New deal {i:02}");
            h.create(RITA, r).await;
        }
    };
    let pager = async {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = h
                .list(
                    RITA,
                    pb::ListReferralsRequest {
                        page_size: 7,
                        page_token: token.clone(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            seen.extend(page.referrals.into_iter().map(|r| r.name));
            if page.next_page_token.is_empty() {
                return seen;
            }
            token = page.next_page_token;
        }
    };
    let ((), seen) = tokio::join!(creator, pager);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no referral repeated");
    for name in &before {
        assert!(unique.contains(name), "{name} skipped");
    }
    // A page token belongs to its filters.
    let first = h
        .list(
            RITA,
            pb::ListReferralsRequest {
                page_size: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = h
        .list(
            RITA,
            pb::ListReferralsRequest {
                page_size: 5,
                page_token: first.next_page_token,
                deal_type: pb::DealType::CoSell as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(details(&err).1, ["page_token"]);
}

#[tokio::test]
async fn list_filters() {
    let h = Harness::start().await;
    let mut a = h.complete(pb::DealType::Private, &h.contoso_solution);
    a.mpn_location = "4000002".into();
    a.team[0].email = "Team.Mate@Contoso.com".into();
    let a = h.create(RITA, a).await;
    let mut b = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    b.customer.as_mut().unwrap().entity = h.customers[5].0.clone();
    let b = h.create(RITA, b).await;
    let rita = h.token(RITA).await;
    h.referrals()
        .set_favorite(authed(
            &rita,
            pb::SetFavoriteRequest {
                name: b.name.clone(),
                favorite: true,
            },
        ))
        .await
        .unwrap();
    let names = |req: pb::ListReferralsRequest| async {
        h.list(RITA, req)
            .await
            .unwrap()
            .referrals
            .into_iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
    };
    // Newest first.
    assert_eq!(
        names(Default::default()).await,
        [b.name.clone(), a.name.clone()]
    );
    let only_a = [a.name.clone()];
    let only_b = [b.name.clone()];
    assert_eq!(
        names(pb::ListReferralsRequest {
            mpn_location: "4000002".into(),
            ..Default::default()
        })
        .await,
        only_a
    );
    assert_eq!(
        names(pb::ListReferralsRequest {
            team_member_email: "team.mate@contoso.com".into(),
            ..Default::default()
        })
        .await,
        only_a
    );
    assert_eq!(
        names(pb::ListReferralsRequest {
            favorites_only: true,
            ..Default::default()
        })
        .await,
        only_b
    );
    assert_eq!(
        names(pb::ListReferralsRequest {
            deal_type: pb::DealType::CoSell as i32,
            ..Default::default()
        })
        .await,
        only_b
    );
    assert_eq!(
        names(pb::ListReferralsRequest {
            substatus: pb::Substatus::Pending as i32,
            ..Default::default()
        })
        .await,
        only_b
    );
    let fragment: String = h.customers[5]
        .1
        .to_lowercase()
        .chars()
        .skip(2)
        .take(6)
        .collect();
    assert_eq!(
        names(pb::ListReferralsRequest {
            customer_name: fragment,
            ..Default::default()
        })
        .await,
        only_b
    );
    assert_eq!(
        names(pb::ListReferralsRequest {
            engagement: a.engagement.clone(),
            ..Default::default()
        })
        .await,
        only_a
    );
    assert!(
        names(pb::ListReferralsRequest {
            direction: pb::Direction::Inbound as i32,
            ..Default::default()
        })
        .await
        .is_empty()
    );
    // Case folds beyond ASCII, on every database.
    let mut c = h.complete(pb::DealType::Private, &h.contoso_solution);
    c.customer.as_mut().unwrap().entity = h.customers[4].0.clone();
    assert!(h.customers[4].1.contains("SÀRL"), "{}", h.customers[4].1);
    let c = h.create(RITA, c).await;
    assert_eq!(
        names(pb::ListReferralsRequest {
            customer_name: "sàrl".into(),
            ..Default::default()
        })
        .await,
        vec![c.name]
    );
    // A location-scoped user sees only the location's referrals.
    let uma: Vec<String> = h
        .list(UMA, Default::default())
        .await
        .unwrap()
        .referrals
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(uma, only_a);
    // Favorites are per user and shown on the referral, read alone or in a list.
    assert!(h.get(RITA, &b.name).await.unwrap().favorite);
    assert!(!h.get(UMA, &a.name).await.unwrap().favorite);
    let flags: Vec<(String, bool)> = h
        .list(RITA, Default::default())
        .await
        .unwrap()
        .referrals
        .into_iter()
        .filter(|r| r.name == a.name || r.name == b.name)
        .map(|r| (r.name, r.favorite))
        .collect();
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(
        flags
            .iter()
            .all(|(name, favorite)| *favorite == (*name == b.name)),
        "{flags:?}"
    );
}

#[tokio::test]
async fn concurrent_gets_each_see_their_own_referral_and_favorite() {
    // On PostgreSQL the gets that wait together share statements: each must still get the
    // referral it asked for, with its own caller's favorite flag, and another organization's
    // caller nothing.
    let h = Harness::start().await;
    let mut names = Vec::new();
    for _ in 0..6 {
        let mut r = h.complete(pb::DealType::Private, &h.contoso_solution);
        r.mpn_location = "4000002".into();
        names.push(h.create(RITA, r).await.name);
    }
    // Rita marks the even ones, Uma the odd ones.
    for (i, name) in names.iter().enumerate() {
        let email = if i % 2 == 0 { RITA } else { UMA };
        h.referrals()
            .set_favorite(authed(
                &h.token(email).await,
                pb::SetFavoriteRequest {
                    name: name.clone(),
                    favorite: true,
                },
            ))
            .await
            .unwrap();
    }
    let tokens = [
        (RITA, h.token(RITA).await),
        (UMA, h.token(UMA).await),
        (FAY, h.token(FAY).await),
    ];
    let gets = (0..240).map(|i| {
        let (email, token) = tokens[i % 3].clone();
        let name = names[(i / 3) % names.len()].clone();
        let client = h.referrals();
        async move {
            let got = client
                .clone()
                .get_referral(authed(
                    &token,
                    pb::GetReferralRequest { name: name.clone() },
                ))
                .await;
            (email, name, got)
        }
    });
    for (email, name, got) in futures::future::join_all(gets).await {
        let index = names.iter().position(|n| *n == name).unwrap();
        match email {
            FAY => assert_eq!(
                got.unwrap_err().code(),
                tonic::Code::NotFound,
                "{email} {name}"
            ),
            _ => {
                let r = got.unwrap().into_inner().referral.unwrap();
                assert_eq!(r.name, name);
                let marked_by = if index % 2 == 0 { RITA } else { UMA };
                assert_eq!(r.favorite, email == marked_by, "{email} {name}");
            }
        }
    }
}
