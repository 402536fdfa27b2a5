//! Tracing and metrics proven on real processes: identity, the directory, deals and migration
//! each run as their own binary (the ones cargo built beside `cosell-migration`; the
//! workspace's `cargo test --workspace` builds them all) on databases of their own (PostgreSQL
//! when `COSELL_TEST_DATABASE_URL` is set, else SQLite files), exporting
//! to a collector this test runs. A co-sell referral created through deals is one trace across
//! the deals, identity and directory processes with every parent in it; a deal migration run's
//! batch links to the trace of the StartDealMigration call; and each service counts its calls
//! by method and status.

use std::time::Duration;

use cosell_proto::deals as dpb;
use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::otlp::common::v1::any_value::Value;
use cosell_testkit::otlp::metrics::v1::{metric::Data, number_data_point};
use cosell_testkit::otlp::trace::v1::span::SpanKind;
use cosell_testkit::otlp::{Collector, ReceivedSpan, attribute, string_attribute};
use cosell_testkit::{DATABASE_URL_VAR, TestDb, authed};
use tonic::transport::{Channel, Endpoint};

use crate::crash::{Replica, binary};
use crate::harness::{
    DEALS_SECRET, DIRECTORY_SECRET, MIGRATION_SECRET, create_contoso_solution, load_customers,
    sign_in,
};

/// How long the test waits for the collector to receive what it looks for: the exporters
/// send every 200 ms (spans) and 500 ms (metrics).
const PATIENCE: Duration = Duration::from_secs(30);

async fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The four services as processes, exporting to `collector`.
struct Services {
    identity: Replica,
    directory: Replica,
    deals: Replica,
    migration: Replica,
    _logs: tempfile::TempDir,
    _dbs: Vec<TestDb>,
}

impl Services {
    /// On PostgreSQL databases of their own when `COSELL_TEST_DATABASE_URL` is set, else on
    /// SQLite files in a folder of the test's.
    async fn start(collector: &Collector) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let mut dbs = Vec::new();
        let admin_url = std::env::var(DATABASE_URL_VAR).ok();
        // `cosell-NAME` on its own database, exporting to the collector, with `args`.
        let mut process = async |name: &str, args: &[&str]| {
            let url = match &admin_url {
                Some(admin_url) => {
                    let db = TestDb::postgres(admin_url).await.unwrap();
                    let url = db.url.clone();
                    dbs.push(db);
                    url
                }
                None => format!(
                    "sqlite://{}?mode=rwc",
                    logs.path().join(format!("{name}.db")).display()
                ),
            };
            let mut all = vec!["--database-url", &url, "--shutdown-drain-ms", "0"];
            all.extend_from_slice(args);
            let binary = binary(&format!("cosell-{name}"));
            let mut process =
                Replica::service(&binary, &all, logs.path().join(format!("{name}.log")))
                    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
                    .env("OTEL_BSP_SCHEDULE_DELAY", "200")
                    .env("OTEL_METRIC_EXPORT_INTERVAL", "500");
            process.start().await;
            process
        };
        let principals = format!(
            "deals={DEALS_SECRET},directory={DIRECTORY_SECRET},migration={MIGRATION_SECRET}"
        );
        let identity = process("identity", &["--demo", "--service-principal", &principals]).await;
        let index = logs.path().join("directory-index");
        let directory = process(
            "directory",
            &[
                "--index-dir",
                index.to_str().unwrap(),
                "--identity-url",
                &identity.url,
                "--service-secret",
                DIRECTORY_SECRET,
            ],
        )
        .await;
        let deals = process(
            "deals",
            &[
                "--identity-url",
                &identity.url,
                "--directory-url",
                &directory.url,
                "--service-secret",
                DEALS_SECRET,
            ],
        )
        .await;
        let migration = process(
            "migration",
            &[
                "--identity-url",
                &identity.url,
                "--deals-url",
                &deals.url,
                "--directory-url",
                &directory.url,
                "--service-secret",
                MIGRATION_SECRET,
            ],
        )
        .await;
        Self {
            identity,
            directory,
            deals,
            migration,
            _logs: logs,
            _dbs: dbs,
        }
    }

    /// The last lines each process logged, for a failure's message.
    fn logs(&self) -> String {
        [
            ("identity", &self.identity),
            ("directory", &self.directory),
            ("deals", &self.deals),
            ("migration", &self.migration),
        ]
        .iter()
        .map(|(name, p)| format!("--- {name}\n{}", p.log_tail()))
        .collect::<Vec<_>>()
        .join("\n")
    }
}

/// The server span of `method` (`/package.Service/Method`) that `service` exported.
fn server_span<'a>(
    spans: &'a [ReceivedSpan],
    service: &str,
    method: &str,
) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| {
        s.service == service
            && s.span.kind == SpanKind::Server as i32
            && string_attribute(&s.span.attributes, "rpc.method") == Some(method)
    })
}

/// The spans of one trace, once every span in it has its parent in it too (a span exported
/// later than its children is waited for) and the processes of `services` all took part.
fn whole_trace(
    spans: &[ReceivedSpan],
    trace_id: &[u8],
    services: &[&str],
) -> Option<Vec<ReceivedSpan>> {
    let trace: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|s| s.span.trace_id == trace_id)
        .cloned()
        .collect();
    let parents_there = trace.iter().all(|s| {
        s.span.parent_span_id.is_empty()
            || trace
                .iter()
                .any(|p| p.span.span_id == s.span.parent_span_id)
    });
    let all_took_part = services
        .iter()
        .all(|service| trace.iter().any(|s| s.service == *service));
    (parents_there && all_took_part).then_some(trace)
}

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(trace: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let mut parent = span.span.parent_span_id.clone();
    while !parent.is_empty() {
        if parent == ancestor.span.span_id {
            return true;
        }
        parent = trace
            .iter()
            .find(|s| s.span.span_id == parent)
            .map(|s| s.span.parent_span_id.clone())
            .unwrap_or_default();
    }
    false
}

/// The count of calls of `method` (`package.Service/Method`) answered with `status` that
/// `service` exported last (the counter is cumulative).
fn calls(collector: &Collector, service: &str, method: &str, status: i64) -> Option<i64> {
    collector
        .metrics()
        .iter()
        .rev()
        .filter(|m| m.service == service && m.metric.name == "rpc.server.calls")
        .find_map(|m| {
            let Some(Data::Sum(sum)) = &m.metric.data else {
                return None;
            };
            sum.data_points.iter().find_map(|p| {
                let of_method = matches!(
                    attribute(&p.attributes, "rpc.method"),
                    Some(Value::StringValue(m)) if m == method
                );
                let of_status = matches!(
                    attribute(&p.attributes, "rpc.grpc.status_code"),
                    Some(Value::IntValue(s)) if *s == status
                );
                match p.value {
                    Some(number_data_point::Value::AsInt(n)) if of_method && of_status => Some(n),
                    _ => None,
                }
            })
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_across_four_processes_batch_links_and_rpc_metrics() {
    let _turn = crate::crash::processes_turn().await;
    let collector = Collector::start().await.unwrap();
    let services = Services::start(&collector).await;
    let identity = channel(&services.identity.url).await;
    let oli = sign_in(identity.clone(), "oli.operator@platform.example").await;
    let rita = sign_in(identity.clone(), "rita.referrals@contoso.com").await;
    let ada = sign_in(identity.clone(), "ada.admin@contoso.com").await;
    let contoso = ipb::access_service_client::AccessServiceClient::new(identity.clone())
        .get_caller(authed(&ada, ipb::GetCallerRequest {}))
        .await
        .unwrap()
        .into_inner()
        .organization;

    // The customers, and Contoso's co-sell ready solution (its legacy PSC product P-1).
    load_customers(channel(&services.directory.url).await, &oli).await;
    let deals = channel(&services.deals.url).await;
    let solution = create_contoso_solution(deals.clone(), &oli, &contoso)
        .await
        .name;

    // Rita creates a co-sell referral through deals, which asks identity and the directory.
    let person = |first: &str, last: &str, email: &str| dpb::Contact {
        first_name: first.into(),
        last_name: last.into(),
        email: email.into(),
        phone: "+1 425 555 0100".into(),
    };
    let mut referrals = dpb::referral_service_client::ReferralServiceClient::new(deals.clone());
    referrals
        .create_referral(authed(
            &rita,
            dpb::CreateReferralRequest {
                request_id: String::new(),
                referral: Some(dpb::Referral {
                    display_name: "Data platform renewal".into(),
                    deal_type: dpb::DealType::CoSell as i32,
                    customer: Some(dpb::Customer {
                        entity: "entities/5493001KJTIIGC8Y1R12".into(),
                        size: dpb::CustomerSize::CustomerSize251To1000 as i32,
                        contacts: vec![person("Carla", "Customer", "carla@customer.example")],
                        ..Default::default()
                    }),
                    consent_to_share: true,
                    assistance: Some(dpb::Assistance {
                        code: dpb::AssistanceCode::TechnicalArchitecture as i32,
                        notes: "architecture review".into(),
                    }),
                    solutions: vec![dpb::ReferralSolution {
                        solution,
                        ..Default::default()
                    }],
                    team: vec![person("Rita", "Referrals", "rita.referrals@contoso.com")],
                    deal_value: Some(dpb::Money {
                        currency_code: "USD".into(),
                        amount: "125000.50".into(),
                    }),
                    estimated_close_date: "2027-03-31".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_or_else(|s| panic!("create: {s:?}\n{}", services.logs()));
    // And a call without a token, refused.
    let refused = referrals
        .list_referrals(dpb::ListReferralsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // Ada imports a small PSC export; Rita starts its deal migration.
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
    let deals_csv = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail,DealValue,Currency,PartnerNotes,CustomerOutcome,DealRole\n\
        E1,Co-sell with a seller,A1,Open,2021-01-05T10:00:00Z,yes,Partner,sam.seller@platform.example,Northwind Traders AS,Oslo,NO,cy@northwind.example,1200.50,USD,pilot first,won the pilot,Influencer\n";
    let products = "DealId,ProductId\nE1,P-1\n";
    let mut migration = pb::migration_service_client::MigrationServiceClient::new(
        channel(&services.migration.url).await,
    );
    migration
        .import_psc_export(authed(
            &ada,
            tokio_stream::iter(cosell_testkit::upload::messages(
                &contoso,
                &[
                    ("accounts.csv", accounts.as_bytes().to_vec()),
                    ("deals.csv", deals_csv.as_bytes().to_vec()),
                    ("deal_products.csv", products.as_bytes().to_vec()),
                ],
                1 << 20,
            )),
        ))
        .await
        .unwrap_or_else(|s| panic!("import: {s:?}\n{}", services.logs()));
    migration
        .start_deal_migration(authed(
            &rita,
            pb::StartDealMigrationRequest {
                parent: contoso.clone(),
            },
        ))
        .await
        .unwrap_or_else(|s| panic!("start: {s:?}\n{}", services.logs()));

    // One trace: the deals server span of CreateReferral, its client spans to identity and the
    // directory, and their server spans in those processes, each the child of a client span.
    let (create, trace) = collector
        .wait_for(PATIENCE, "the whole trace of CreateReferral", |c| {
            let spans = c.spans();
            let create = server_span(
                &spans,
                "cosell-deals",
                "/cosell.deals.v1.ReferralService/CreateReferral",
            )?
            .clone();
            let trace = whole_trace(
                &spans,
                &create.span.trace_id,
                &["cosell-deals", "cosell-identity", "cosell-directory"],
            )?;
            Some((create, trace))
        })
        .await;
    assert!(
        create.span.parent_span_id.is_empty(),
        "the caller sent no trace"
    );
    let mut callees = Vec::new();
    for span in trace.iter().filter(|s| s.service != "cosell-deals") {
        assert_eq!(span.span.kind, SpanKind::Server as i32, "{span:?}");
        let parent = trace
            .iter()
            .find(|p| p.span.span_id == span.span.parent_span_id)
            .unwrap();
        assert_eq!(
            parent.span.kind,
            SpanKind::Client as i32,
            "a callee's server span is a client span's child: {span:?}"
        );
        if parent.service == "cosell-deals" {
            assert!(
                descends_from(&trace, parent, &create),
                "deals calls out from within its server span: {parent:?}"
            );
            callees.push(span.service.clone());
        }
    }
    callees.sort();
    callees.dedup();
    assert_eq!(callees, ["cosell-directory", "cosell-identity"]);

    // The batch of the run: a trace of its own, linked to StartDealMigration's.
    let start = collector
        .wait_for(PATIENCE, "the server span of StartDealMigration", |c| {
            server_span(
                &c.spans(),
                "cosell-migration",
                "/cosell.migration.v1.MigrationService/StartDealMigration",
            )
            .cloned()
        })
        .await;
    let batch = collector
        .wait_for(PATIENCE, "a batch span", |c| {
            c.spans()
                .into_iter()
                .find(|s| s.service == "cosell-migration" && s.span.name == "deal_migration.batch")
        })
        .await;
    assert_ne!(batch.span.trace_id, start.span.trace_id);
    assert!(
        batch
            .span
            .links
            .iter()
            .any(|l| l.trace_id == start.span.trace_id && l.span_id == start.span.span_id),
        "the batch links to the StartDealMigration call: {:?}",
        batch.span.links
    );
    collector
        .wait_for(PATIENCE, "the deals import in the batch's trace", |c| {
            let spans = c.spans();
            let import = server_span(
                &spans,
                "cosell-deals",
                "/cosell.deals.v1.ReferralService/ImportReferrals",
            )?;
            (import.span.trace_id == batch.span.trace_id).then_some(())
        })
        .await;

    // Each service counts its calls by method and status.
    for (service, method, status) in [
        (
            "cosell-deals",
            "cosell.deals.v1.ReferralService/CreateReferral",
            0,
        ),
        (
            "cosell-deals",
            "cosell.deals.v1.ReferralService/ListReferrals",
            16,
        ),
        (
            "cosell-identity",
            "cosell.identity.v1.TokenService/SignInWithEmail",
            0,
        ),
        (
            "cosell-directory",
            "cosell.directory.v1.DirectoryService/GetEntity",
            0,
        ),
        (
            "cosell-migration",
            "cosell.migration.v1.MigrationService/StartDealMigration",
            0,
        ),
    ] {
        let counted = collector
            .wait_for(
                PATIENCE,
                &format!("{service}'s count of {method} {status}"),
                |c| calls(c, service, method, status),
            )
            .await;
        assert!(counted >= 1);
    }
    assert_eq!(
        calls(
            &collector,
            "cosell-deals",
            "cosell.deals.v1.ReferralService/CreateReferral",
            0
        ),
        Some(1)
    );
}
