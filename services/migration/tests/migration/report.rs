//! `DownloadDealMigrationReport` (SPEC 5.4): the deal migration report as one CSV file, the
//! rows ListDealMigrationReport lists, for the same callers; a download ends with UNAVAILABLE
//! when the server shuts down.

use cosell_proto::migration as pb;
use cosell_testkit::authed;
use tonic_types::StatusExt;

use crate::harness::Harness;

const HEADER: [&str; 8] = [
    "psc_deal_id",
    "deal_name",
    "engagement_id",
    "referral_id",
    "deal_type",
    "direction",
    "error",
    "customer_match",
];

/// A deal name a CSV must quote: a comma, double quotes and a line break.
const AWKWARD: &str = "Lakehouse, \"phase 1\"\nand the rest";

fn client(
    h: &Harness,
) -> pb::migration_service_client::MigrationServiceClient<tonic::transport::Channel> {
    pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone())
}

/// Imports `deals` (id, name) of account A1, all eligible, into Contoso, in 1 MiB messages.
async fn import(h: &Harness, deals: &[(String, String)]) {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "DealId",
        "DealName",
        "PartnerAccountId",
        "Status",
        "CreatedDate",
        "IsCoSell",
        "Source",
    ])
    .unwrap();
    for (id, name) in deals {
        csv.write_record([
            id,
            name,
            "A1",
            "Open",
            "2021-01-05T10:00:00Z",
            "no",
            "Partner",
        ])
        .unwrap();
    }
    let files = [
        (
            "accounts.csv",
            b"PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso US,4000002\n".to_vec(),
        ),
        ("deals.csv", csv.into_inner().unwrap()),
    ];
    let ada = h.token("ada.admin@contoso.com").await;
    let messages = cosell_testkit::upload::messages(&h.contoso, &files, 1 << 20);
    let import = client(h)
        .import_psc_export(authed(&ada, tokio_stream::iter(messages)))
        .await
        .unwrap()
        .into_inner()
        .import
        .unwrap();
    assert_eq!(import.deals_added, deals.len() as i64);
}

/// The report's chunks as `token` downloads them.
async fn download(h: &Harness, token: &str, parent: &str) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let mut stream = client(h)
        .download_deal_migration_report(authed(
            token,
            pb::DownloadDealMigrationReportRequest {
                parent: parent.into(),
            },
        ))
        .await?
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(m) = stream.message().await? {
        chunks.push(m.chunk);
    }
    Ok(chunks)
}

/// Every row of the report, page after page, as `token` lists it.
async fn list(
    h: &Harness,
    token: &str,
    parent: &str,
) -> Result<Vec<pb::DealMigrationResult>, tonic::Status> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client(h)
            .list_deal_migration_report(authed(
                token,
                pb::ListDealMigrationReportRequest {
                    parent: parent.into(),
                    page_size: 700,
                    page_token,
                },
            ))
            .await?
            .into_inner();
        rows.extend(page.results);
        if page.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = page.next_page_token;
    }
}

/// The CSV's header and records.
fn parse(file: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(file);
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let records = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, records)
}

fn reason(s: &tonic::Status) -> String {
    s.get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn fields(s: &tonic::Status) -> Vec<String> {
    s.get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_report_downloads_as_one_csv_of_every_listed_row() {
    let h = Harness::start().await;
    // Three pages of the server's (1,000 rows) and several chunks: 2,101 deals, one with a name
    // a CSV must quote, one whose name is too long for a referral (it fails, with an error).
    let mut deals: Vec<(String, String)> = (1..=2099)
        .map(|i| (format!("D{i:04}"), format!("Deal {i} {}", "x".repeat(80))))
        .collect();
    deals.push(("D0000".into(), AWKWARD.into()));
    deals.push(("D9999".into(), "y".repeat(2000)));
    import(&h, &deals).await;
    h.migrate_deals().await;

    let rita = h.token("rita.referrals@contoso.com").await;
    let chunks = download(&h, &rita, &h.contoso).await.unwrap();
    assert!(chunks.len() > 2, "{} chunks", chunks.len());
    assert!(
        chunks.iter().all(|c| !c.is_empty() && c.len() <= 64 * 1024),
        "{:?}",
        chunks.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let (header, records) = parse(&chunks.concat());
    assert_eq!(header, HEADER);
    assert_eq!(records.len(), deals.len(), "one row per deal the run took");

    // The rows ListDealMigrationReport lists, in its order (by PSC deal id).
    let listed = list(&h, &rita, &h.contoso).await.unwrap();
    let expected: Vec<Vec<String>> = listed
        .iter()
        .map(|r| {
            vec![
                r.psc_deal_id.clone(),
                r.deal_name.clone(),
                r.engagement.trim_start_matches("engagements/").into(),
                r.referral.trim_start_matches("referrals/").into(),
                r.deal_type.clone(),
                r.direction.clone(),
                r.error.clone(),
                r.customer_match()
                    .as_str_name()
                    .trim_start_matches("CUSTOMER_MATCH_OUTCOME_")
                    .into(),
            ]
        })
        .collect();
    assert_eq!(records, expected);
    assert_eq!(records[0][0], "D0000");
    assert_eq!(records[0][1], AWKWARD, "quoted, it reads back as it was");
    let migrated = &records[1];
    assert_eq!(migrated[0], "D0001");
    assert!(
        uuid::Uuid::parse_str(&migrated[2]).is_ok() && uuid::Uuid::parse_str(&migrated[3]).is_ok(),
        "engagement and referral ids: {migrated:?}"
    );
    // PSC named no customer for these deals: the directory was not asked.
    assert_eq!(
        &migrated[4..],
        ["PARTNER_LED", "OUTBOUND", "", "NOT_LOOKED_UP"]
    );
    let failed = records.last().unwrap();
    assert_eq!(failed[0], "D9999");
    assert_eq!(
        failed[7], "NOT_LOOKED_UP",
        "a failed deal's customer outcome too"
    );
    assert!(
        failed[2].is_empty() && failed[3].is_empty() && !failed[6].is_empty(),
        "{failed:?}"
    );

    // The same callers as the list: others are refused alike.
    for (email, code) in [
        ("uma.user@contoso.com", tonic::Code::PermissionDenied),
        ("fay.admin@fabrikam.com", tonic::Code::NotFound),
    ] {
        let token = h.token(email).await;
        let refused = download(&h, &token, &h.contoso).await.unwrap_err();
        assert_eq!(refused.code(), code, "{email}: {refused:?}");
        let listed = list(&h, &token, &h.contoso).await.unwrap_err();
        assert_eq!(listed.code(), code, "{email}: {listed:?}");
    }
    // A malformed or overlong parent names the field.
    for parent in [
        String::new(),
        "contoso".into(),
        format!("organizations/{}", "9".repeat(100)),
    ] {
        let refused = download(&h, &rita, &parent).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{parent}");
        assert_eq!(fields(&refused), ["parent"], "{parent}: {refused:?}");
    }
    // An organization without a report downloads the header alone.
    let fay = h.token("fay.admin@fabrikam.com").await;
    let fabrikam = cosell_proto::identity::access_service_client::AccessServiceClient::new(
        h.server.channel.clone(),
    )
    .get_caller(authed(&fay, cosell_proto::identity::GetCallerRequest {}))
    .await
    .unwrap()
    .into_inner()
    .organization;
    let empty = download(&h, &fay, &fabrikam).await.unwrap().concat();
    assert_eq!(
        String::from_utf8(empty).unwrap(),
        "psc_deal_id,deal_name,engagement_id,referral_id,deal_type,direction,error,customer_match\n"
    );
}

#[tokio::test]
async fn a_download_in_flight_when_the_server_shuts_down_ends_unavailable() {
    let h = Harness::start().await;
    let migration = h.migration.clone().unwrap();
    // A report of 6 MB: more than the client's flow-control window takes unread.
    const DEALS: usize = 150;
    const NAME: usize = 40_000;
    let deals: Vec<(String, String)> = (0..DEALS)
        .map(|i| (format!("D{i:04}"), format!("{i} {}", "n".repeat(NAME))))
        .collect();
    import(&h, &deals).await;
    // The report has its rows once the run starts (each PENDING until done).
    let rita = h.token("rita.referrals@contoso.com").await;
    client(&h)
        .start_deal_migration(authed(
            &rita,
            pb::StartDealMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap();
    let mut stream = client(&h)
        .download_deal_migration_report(authed(
            &rita,
            pb::DownloadDealMigrationReportRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut received = stream.message().await.unwrap().unwrap().chunk.len();
    migration.end_streams();
    let ended = loop {
        match stream.message().await {
            Ok(Some(m)) => received += m.chunk.len(),
            Ok(None) => panic!("the download ended OK after {received} bytes"),
            Err(e) => break e,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert_eq!(reason(&ended), "SHUTTING_DOWN");
    assert!(received < DEALS * NAME, "it ended early: {received} bytes");
    // A new download meanwhile is refused the same way.
    let late = download(&h, &rita, &h.contoso).await.unwrap_err();
    assert_eq!(late.code(), tonic::Code::Unavailable, "{late:?}");
    assert_eq!(reason(&late), "SHUTTING_DOWN");
    migration.release().await;
}
