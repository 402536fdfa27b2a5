//! Insights (SPEC 3.7): the figures GetInsights answers, checked against figures the test
//! computes itself from the referrals it made (read back one by one), on an injected clock:
//! several stages, deal types and currencies, Inbound referrals accepted, declined and about
//! to expire, another organization's referrals left out, and the MPN location filter.

use std::collections::BTreeMap;

use cosell_platform::clock::{Clock, ManualClock};
use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};

use crate::harness::*;

fn money(currency: &str, amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: currency.into(),
        amount: amount.into(),
    })
}

/// What GetInsights should answer for `referrals` (the partner's, as read back), `now`.
struct Expected {
    count: i64,
    value: BTreeMap<String, i64>,
    by_stage: BTreeMap<(i32, i32), i64>,
    by_deal_type: BTreeMap<i32, i64>,
    win_rate: f64,
    acceptance: f64,
    average_seconds: f64,
    expiring: i64,
}

fn cents(amount: &str) -> i64 {
    cosell_platform::money::parse_amount(amount).unwrap()
}

fn expected(referrals: &[pb::Referral], now: i64) -> Expected {
    let mut e = Expected {
        count: referrals.len() as i64,
        value: BTreeMap::new(),
        by_stage: BTreeMap::new(),
        by_deal_type: BTreeMap::new(),
        win_rate: 0.0,
        acceptance: 0.0,
        average_seconds: 0.0,
        expiring: 0,
    };
    let (mut won, mut lost, mut accepted, mut refused, mut seconds) = (0, 0, 0, 0, 0i64);
    for r in referrals {
        if let Some(m) = &r.deal_value {
            *e.value.entry(m.currency_code.clone()).or_default() += cents(&m.amount);
        }
        *e.by_stage.entry((r.status, r.substatus)).or_default() += 1;
        *e.by_deal_type.entry(r.deal_type).or_default() += 1;
        match r.substatus() {
            pb::Substatus::Won => won += 1,
            pb::Substatus::Lost => lost += 1,
            _ => {}
        }
        if r.direction() == pb::Direction::Inbound {
            if let Some(a) = &r.accept_time {
                accepted += 1;
                seconds += a.seconds - r.create_time.as_ref().unwrap().seconds;
            } else if matches!(
                r.substatus(),
                pb::Substatus::Declined | pb::Substatus::Expired
            ) {
                refused += 1;
            }
        }
        if r.status() == pb::Status::New
            && let Some(x) = &r.expire_time
            && x.seconds >= now
            && x.seconds < now + 7 * 86_400
        {
            e.expiring += 1;
        }
    }
    // The contract's 0 when there is nothing to divide by.
    let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    e.win_rate = ratio(won, won + lost);
    e.acceptance = ratio(accepted, accepted + refused);
    e.average_seconds = ratio(seconds, accepted);
    e
}

fn check(got: &pb::GetInsightsResponse, e: &Expected, what: &str) {
    let total = got.total.as_ref().unwrap();
    assert_eq!(total.count, e.count, "{what}: count");
    let value: BTreeMap<String, i64> = total
        .value
        .iter()
        .map(|v| (v.currency_code.clone(), cents(&v.amount)))
        .collect();
    assert_eq!(value, e.value, "{what}: value");
    let by_stage: BTreeMap<(i32, i32), i64> = got
        .by_stage
        .iter()
        .map(|s| ((s.status, s.substatus), s.tally.as_ref().unwrap().count))
        .collect();
    assert_eq!(by_stage, e.by_stage, "{what}: by stage");
    let by_deal_type: BTreeMap<i32, i64> = got
        .by_deal_type
        .iter()
        .map(|t| (t.deal_type, t.tally.as_ref().unwrap().count))
        .collect();
    assert_eq!(by_deal_type, e.by_deal_type, "{what}: by deal type");
    assert!(
        (got.win_rate - e.win_rate).abs() < 1e-9,
        "{what}: win rate {}",
        got.win_rate
    );
    assert!(
        (got.inbound_acceptance_rate - e.acceptance).abs() < 1e-9,
        "{what}: acceptance {}",
        got.inbound_acceptance_rate
    );
    // SQLite computes the interval from Julian days (a double): within a second.
    assert!(
        (got.average_seconds_to_accept - e.average_seconds).abs() < 1.0,
        "{what}: average {} vs {}",
        got.average_seconds_to_accept,
        e.average_seconds
    );
    assert_eq!(got.expiring_within_7_days, e.expiring, "{what}: expiring");
}

async fn insights(
    h: &Harness,
    email: &str,
    parent: &str,
    mpn_id: &str,
) -> Result<pb::GetInsightsResponse, tonic::Status> {
    let token = h.token(email).await;
    Ok(
        pb::insights_service_client::InsightsServiceClient::new(h.server.channel.clone())
            .get_insights(authed(
                &token,
                pb::GetInsightsRequest {
                    parent: parent.into(),
                    mpn_id: mpn_id.into(),
                },
            ))
            .await?
            .into_inner(),
    )
}

/// A seller's referral for Contoso with every field D6 asks for (so that Rita can accept it).
async fn inbound(h: &Harness, title: &str, value: Option<pb::Money>) -> pb::Referral {
    let sam = h.token(SAM).await;
    let mut r = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    r.organization = h.contoso.clone();
    r.display_name = title.into();
    r.deal_value = value;
    h.cosell()
        .create_inbound_referral(authed(
            &sam,
            pb::CreateInboundReferralRequest {
                request_id: String::new(),
                referral: Some(r),
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

#[tokio::test]
async fn figures_match_the_referrals_made() {
    let clock = ManualClock::new();
    let h = Harness::start_with(TestDb::new().await.unwrap(), clock.clone()).await;
    let hour = chrono::Duration::hours(1);
    let rita = h.token(RITA).await;

    // An Inbound referral left waiting, without a deal value: after 8 days it expires within 7.
    let waiting = inbound(&h, "Waiting", None).await;
    clock.advance(chrono::Duration::days(8));

    // Outbound: several deal types, currencies and outcomes.
    let mut made = vec![waiting.name.clone()];
    let outbound = |deal_type: pb::DealType, value: Option<pb::Money>, mpn: &str| {
        let mut r = h.complete(deal_type, &h.contoso_solution);
        r.deal_value = value;
        r.mpn_location = mpn.into();
        r
    };
    let private = h
        .create(
            RITA,
            outbound(pb::DealType::Private, money("USD", "1000.25"), ""),
        )
        .await;
    let euro = h
        .create(
            RITA,
            outbound(pb::DealType::PartnerLed, money("EUR", "500"), ""),
        )
        .await;
    let yen = h
        .create(
            RITA,
            outbound(pb::DealType::PartnerLed, money("JPY", "70000"), "4000002"),
        )
        .await;
    let request = h
        .create(
            RITA,
            outbound(pb::DealType::CoSell, money("USD", "99.99"), "4000002"),
        )
        .await;
    let lost = h
        .create(
            RITA,
            outbound(pb::DealType::PartnerLed, money("USD", "12"), ""),
        )
        .await;
    made.extend([&private, &euro, &yen, &request, &lost].map(|r| r.name.clone()));
    let referrals = h.referrals();
    referrals
        .clone()
        .mark_referral_won(authed(
            &rita,
            pb::MarkReferralWonRequest {
                name: euro.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    referrals
        .clone()
        .mark_referral_won(authed(
            &rita,
            pb::MarkReferralWonRequest {
                name: yen.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    referrals
        .clone()
        .mark_referral_lost(authed(
            &rita,
            pb::MarkReferralLostRequest {
                name: lost.name.clone(),
                reason: "budget".into(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();

    // Inbound: accepted after 2 and 5 hours, one declined.
    let fast = inbound(&h, "Fast", money("USD", "300")).await;
    let slow = inbound(&h, "Slow", money("USD", "7.50")).await;
    let declined = inbound(&h, "Declined", money("EUR", "40")).await;
    made.extend([&fast, &slow, &declined].map(|r| r.name.clone()));
    clock.advance(hour * 2);
    referrals
        .clone()
        .accept_referral(authed(
            &rita,
            pb::AcceptReferralRequest {
                name: fast.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    clock.advance(hour * 3);
    referrals
        .clone()
        .accept_referral(authed(
            &rita,
            pb::AcceptReferralRequest {
                name: slow.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    h.decline(RITA, &declined.name, "no capacity").await;

    // Fabrikam's referrals count for Fabrikam only.
    h.create(
        FAY,
        h.complete(pb::DealType::PartnerLed, &h.fabrikam_solution),
    )
    .await;

    // The test's own figures, from the referrals as they are now.
    let mut all = Vec::new();
    for name in &made {
        all.push(h.get(RITA, name).await.unwrap());
    }
    let now = clock.now().timestamp();
    let got = insights(&h, RITA, &h.contoso, "").await.unwrap();
    check(&got, &expected(&all, now), "Contoso");
    assert_eq!(got.expiring_within_7_days, 1);
    assert!((got.average_seconds_to_accept - 3.5 * 3600.0).abs() < 1.0);
    // The same once the changes' counters are folded into the totals, and folding twice
    // counts nothing twice.
    for _ in 0..2 {
        h.deals.store.fold_insight_deltas().await.unwrap();
        let folded = insights(&h, RITA, &h.contoso, "").await.unwrap();
        check(&folded, &expected(&all, now), "Contoso, folded");
        assert_eq!(folded.expiring_within_7_days, 1);
    }

    // One location: asked for by an org-wide user, or all a location-scoped user sees.
    let location: Vec<pb::Referral> = all
        .iter()
        .filter(|r| r.mpn_location == "4000002")
        .cloned()
        .collect();
    assert_eq!(location.len(), 2);
    let e = expected(&location, now);
    check(
        &insights(&h, RITA, &h.contoso, "4000002").await.unwrap(),
        &e,
        "4000002",
    );
    check(&insights(&h, UMA, &h.contoso, "").await.unwrap(), &e, "Uma");
    assert_eq!(
        insights(&h, UMA, &h.contoso, "4000003")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    // An MPN ID that is not one of Contoso's locations is a bad argument.
    let err = insights(&h, RITA, &h.contoso, "5000001").await.unwrap_err();
    assert_eq!(details(&err).1, ["mpn_id"]);

    // Platform users never count a PRIVATE referral; another partner hears NOT_FOUND.
    let shared: Vec<pb::Referral> = all
        .iter()
        .filter(|r| r.deal_type() != pb::DealType::Private)
        .cloned()
        .collect();
    check(
        &insights(&h, SAM, &h.contoso, "").await.unwrap(),
        &expected(&shared, now),
        "Sam",
    );
    assert_eq!(
        insights(&h, FAY, &h.contoso, "").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let fabrikam = insights(&h, FAY, &h.fabrikam, "").await.unwrap();
    assert_eq!(fabrikam.total.unwrap().count, 1);
}
