//! The Connect protocol on `cosell serve --demo`'s one port, from curl (HTTP/1.1 and HTTP/2): the
//! README's curl tour as written; sign in, search, create, get and list in JSON, a get in
//! protobuf; and the errors a caller sees (the code's HTTP status, the Connect error JSON with
//! the `ErrorInfo` and `BadRequest` details), for bad JSON and bodies over the limit as much as
//! for the services' own refusals, in unary calls and at the end of a stream.

mod support;

use std::process::Command;

use prost::Message;
use serde_json::{Value, json};
use support::curl::{Http, call, curl, envelope, envelopes, sign_in};
use support::{Server, readme_tour};

const SEARCH: &str = "/cosell.directory.v1.DirectoryService/SearchEntities";
const SOLUTIONS: &str = "/cosell.deals.v1.CatalogService/ListSolutions";
const CREATE: &str = "/cosell.deals.v1.ReferralService/CreateReferral";
const GET: &str = "/cosell.deals.v1.ReferralService/GetReferral";
const LIST: &str = "/cosell.deals.v1.ReferralService/ListReferrals";

#[tokio::test(flavor = "multi_thread")]
async fn curl_signs_in_searches_creates_and_lists_in_json() {
    let server = Server::start().await;

    let (token, _) = sign_in(&server, "rita.referrals@contoso.com");
    let token = Some(token.as_str());

    let found = call(
        &server,
        Http::Two,
        SEARCH,
        json!({"query": "dynatrace glo", "pageSize": 3}),
        token,
    );
    let entity = &found["results"][0]["entity"];
    assert_eq!(entity["legalName"], "Dynatrace Global Finance GmbH");
    assert_eq!(entity["address"]["countryCode"], "CH");

    let solutions = call(
        &server,
        Http::One,
        SOLUTIONS,
        json!({"query": "contoso cloud", "cosellReadyOnly": true}),
        token,
    );
    let solution = &solutions["solutions"][0];
    let create = json!({
        "requestId": uuid::Uuid::new_v4().to_string(),
        "referral": {
            "displayName": "Analytics rollout from curl",
            "dealType": "DEAL_TYPE_PARTNER_LED",
            "consentToShare": true,
            "customer": {"entity": entity["name"]},
            "solutions": [{"solution": solution["name"]}],
            "dealValue": {"currencyCode": "EUR", "amount": "95000"},
            "estimatedCloseDate": "2027-11-30",
        },
    });
    let created = call(&server, Http::Two, CREATE, create.clone(), token)["referral"].clone();
    assert_eq!(created["dealType"], "DEAL_TYPE_PARTNER_LED");
    assert_eq!(
        (&created["status"], &created["substatus"]),
        (&json!("STATUS_ACTIVE"), &json!("SUBSTATUS_ACCEPTED"))
    );
    assert_eq!(created["customer"]["match"], "CUSTOMER_MATCH_MATCHED");
    assert_eq!(created["dealValue"]["amount"], "95000");
    let retried = call(&server, Http::One, CREATE, create, token);
    assert_eq!(
        retried["referral"]["name"], created["name"],
        "a retry returns the first"
    );

    let got = call(
        &server,
        Http::One,
        GET,
        json!({"name": created["name"]}),
        token,
    );
    assert_eq!(
        got["referral"]["displayName"],
        "Analytics rollout from curl"
    );

    let listed = call(
        &server,
        Http::Two,
        LIST,
        json!({"direction": "DIRECTION_OUTBOUND", "pageSize": 5}),
        token,
    );
    assert_eq!(
        listed["referrals"][0]["name"], created["name"],
        "newest first"
    );

    // The same get in protobuf: the body is the request message's bytes, the reply the
    // referral's.
    let request = cosell_proto::deals::GetReferralRequest {
        name: created["name"].as_str().unwrap().into(),
    };
    let answer = curl(
        &server,
        Http::Two,
        GET,
        "application/proto",
        &request.encode_to_vec(),
        token,
        &[],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.version, "2");
    let referral = cosell_proto::deals::GetReferralResponse::decode(answer.body.as_slice())
        .unwrap()
        .referral
        .unwrap();
    assert_eq!(referral.name, request.name);
    assert_eq!(referral.display_name, "Analytics rollout from curl");

    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_connect_errors_with_their_details() {
    let server = Server::start().await;
    let (token, _) = sign_in(&server, "rita.referrals@contoso.com");
    let token = Some(token.as_str());
    let json_call = |http, path: &str, body: &str, token, headers: &[&str]| {
        curl(
            &server,
            http,
            path,
            "application/json",
            body.as_bytes(),
            token,
            headers,
        )
    };

    // The service's own refusals, with the details it sends over gRPC.
    let missing = r#"{"name": "referrals/00000000-0000-7000-8000-000000000000"}"#;
    let answer = json_call(Http::One, GET, missing, token, &[]);
    assert_eq!(answer.status, 404, "{}", answer.json());
    assert_eq!(answer.json()["code"], "not_found");
    assert_eq!(
        answer.detail("google.rpc.ErrorInfo")["domain"],
        "deals.cosell"
    );

    let answer = json_call(Http::Two, GET, missing, None, &[]);
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["code"], "unauthenticated");

    let answer = json_call(Http::One, CREATE, r#"{"referral": {}}"#, token, &[]);
    assert_eq!(answer.status, 400, "{}", answer.json());
    assert_eq!(answer.json()["code"], "invalid_argument");
    let fields: Vec<String> = answer.detail("google.rpc.BadRequest")["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap().to_string())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("referral.")),
        "{fields:?}"
    );

    // Bodies that are not the request message: named field, never a 500.
    for (path, body, field, reason) in [
        (GET, r#"{"name": "#, "name", "EOF"),
        (GET, r#"{"nmae": "x"}"#, "nmae", "unrecognized field"),
        (LIST, r#"{"pageSize": "lots"}"#, "pageSize", "invalid"),
        (
            LIST,
            r#"{"direction": "SIDEWAYS"}"#,
            "direction",
            "SIDEWAYS",
        ),
        (LIST, r#"[1, 2]"#, "body", "invalid type"),
    ] {
        let answer = json_call(Http::One, path, body, token, &[]);
        assert_eq!(answer.status, 400, "{body}: {}", answer.json());
        let violation = &answer.detail("google.rpc.BadRequest")["fieldViolations"][0];
        assert_eq!(violation["field"], field, "{body}");
        assert!(
            violation["description"].as_str().unwrap().contains(reason),
            "{body}: {violation}"
        );
    }

    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(7 << 20));
    let answer = json_call(Http::Two, GET, &huge, token, &[]);
    assert_eq!(answer.status, 400);
    let violation = &answer.detail("google.rpc.BadRequest")["fieldViolations"][0];
    assert_eq!(violation["field"], "body");
    assert!(
        violation["description"]
            .as_str()
            .unwrap()
            .contains("at most 6291456"),
        "{violation}"
    );

    let answer = json_call(Http::One, LIST, "{}", token, &["connect-timeout-ms: soon"]);
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.detail("google.rpc.BadRequest")["fieldViolations"][0]["field"],
        "connect-timeout-ms"
    );
    let answer = json_call(Http::One, LIST, "{}", token, &["connect-timeout-ms: 5000"]);
    assert_eq!(answer.status, 200, "a deadline that is met changes nothing");

    let answer = json_call(
        Http::One,
        "/cosell.deals.v1.ReferralService/Teleport",
        "{}",
        token,
        &[],
    );
    assert_eq!(answer.status, 501);
    assert_eq!(answer.json()["code"], "unimplemented");

    let answer = json_call(Http::One, LIST, "{}", token, &["content-encoding: gzip"]);
    assert_eq!(answer.status, 501, "compressed bodies are refused");

    // Streams: Connect's envelopes, the end of the stream carrying the error. A watch whose
    // request is not its message ends with the field named; one of another organization with
    // the service's own answer (never saying whether it exists).
    let watch = "/cosell.migration.v1.MigrationService/WatchDealMigration";
    for (request, code, field) in [
        (&br#"{"parent": 7}"#[..], "invalid_argument", Some("parent")),
        (
            br#"{"parent": "organizations/00000000-0000-7000-8000-000000000000"}"#,
            "not_found",
            None,
        ),
    ] {
        let answer = curl(
            &server,
            Http::Two,
            watch,
            "application/connect+json",
            &envelope(0, request),
            token,
            &[],
        );
        assert_eq!(answer.status, 200, "a stream's error is in its end");
        let messages = envelopes(&answer.body);
        let (flags, end) = messages.last().unwrap();
        assert_eq!(*flags, 2, "the last envelope ends the stream");
        assert_eq!(end["error"]["code"], code, "{end}");
        if let Some(field) = field {
            let bad = end["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["type"] == "google.rpc.BadRequest")
                .unwrap();
            assert_eq!(bad["debug"]["fieldViolations"][0]["field"], field);
        }
    }

    // Health answers Connect too, without a token: what a load balancer's HTTP probe calls.
    let answer = json_call(Http::One, "/grpc.health.v1.Health/Check", "{}", None, &[]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "SERVING");

    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_curl_tour_runs_as_written() {
    let server = Server::start().await;
    let tour = readme_tour("curl").replace("localhost:50051", &server.addr);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &tour])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the tour failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("referrals/"), "the referral: {stdout}");
    assert_eq!(lines[1], "SUBSTATUS_ACCEPTED");
    let error: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(error["code"], "not_found");
    assert_eq!(lines[3], "HTTP 404");
    assert_eq!(lines[4], "3", "the demo's eligible deals");
    let watched: Vec<Value> = lines[5..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (end, messages) = watched.split_last().unwrap();
    assert_eq!(end, &json!({}), "the stream ends without an error");
    let last = &messages.last().unwrap()["status"];
    assert_eq!(last["state"], "DEAL_MIGRATION_STATE_NOTHING_TO_MIGRATE");
    assert_eq!(last["run"]["migrated"], "3");
    assert!(server.stop().success());
}

/// A small PSC export as a `.zip`: one account, two open deals.
fn export_zip() -> Vec<u8> {
    use cosell_testkit::zip::{Entry, archive, deflate};
    let files = [
        (
            "accounts.csv",
            "PartnerAccountId,PartnerAccountName,MpnId\nHTTP-SEA,Contoso Seattle (HTTP),4000002\n",
        ),
        (
            "deals.csv",
            "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n\
             HTTP-1,Renewal over HTTP,HTTP-SEA,Open,2022-01-10T08:00:00Z,no,Partner\n\
             HTTP-2,Expansion over HTTP,HTTP-SEA,Open,2022-02-10T08:00:00Z,no,Partner\n",
        ),
    ];
    let compressed: Vec<Vec<u8>> = files.iter().map(|(_, t)| deflate(t.as_bytes())).collect();
    let entries: Vec<Entry> = files
        .iter()
        .zip(&compressed)
        .map(|((name, text), c)| Entry::deflated(name, text.as_bytes(), c))
        .collect();
    archive(&entries)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_psc_export_uploads_as_one_http_post() {
    let server = Server::start().await;
    let (token, organization) = sign_in(&server, "ada.admin@contoso.com");
    let token = Some(token.as_str());
    let zip = export_zip();
    let upload =
        |http, path: &str, token| curl(&server, http, path, "application/zip", &zip, token, &[]);

    // The caller's organization, over HTTP/1.1.
    let answer = upload(Http::One, "/upload/psc-export", token);
    assert_eq!(answer.status, 200, "{}", answer.json());
    let imported = &answer.json()["import"];
    assert!(
        imported["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{organization}/pscImports/")),
        "{imported}"
    );
    assert_eq!(imported["accounts"], "1");
    assert_eq!(imported["dealsAdded"], "2");
    // Named in the query, over HTTP/2: the same bundle again changes nothing.
    let answer = upload(
        Http::Two,
        &format!("/upload/psc-export?organization={organization}"),
        token,
    );
    assert_eq!(answer.status, 200, "{}", answer.json());
    assert_eq!(answer.json()["import"]["dealsUnchanged"], "2");

    // The import's own refusals, and the route's.
    let answer = upload(Http::One, "/upload/psc-export", None);
    assert_eq!(answer.status, 401);
    let other =
        "/upload/psc-export?organization=organizations/00000000-0000-7000-8000-000000000000";
    let answer = upload(Http::One, other, token);
    assert_eq!(answer.json()["code"], "not_found", "{}", answer.json());
    let answer = upload(Http::One, "/upload/psc-export?org=x", token);
    assert_eq!(answer.status, 400);
    let violation = &answer.detail("google.rpc.BadRequest")["fieldViolations"][0];
    assert_eq!(violation["field"], "org");
    let answer = curl(
        &server,
        Http::One,
        "/upload/psc-export",
        "application/zip",
        b"not a zip",
        token,
        &[],
    );
    assert_eq!(answer.status, 400, "{}", answer.json());
    assert_eq!(answer.json()["code"], "invalid_argument");
    assert!(server.stop().success());
}

/// Every unary RPC of one service per package, through curl in JSON, as Ada (an account admin;
/// Rita, a referrals admin, for the referrals):
/// each answers either its response message (read back through the descriptors) or a Connect
/// error of a code a caller can act on, with its `ErrorInfo`; never a 5xx, never "no such
/// procedure". Requests name Ada's organization wherever they have a `parent` or an
/// `organization`, and search for a customer wherever they have a `query`, so that each service
/// answers some of them.
#[tokio::test(flavor = "multi_thread")]
async fn every_unary_rpc_of_a_service_per_package_answers_over_http_json() {
    let server = Server::start().await;
    let (_, organization) = sign_in(&server, "ada.admin@contoso.com");
    let pool = support::raw::pool();
    let mut answered = 0;
    for (service, email) in [
        ("cosell.identity.v1.UserService", "ada.admin@contoso.com"),
        (
            "cosell.directory.v1.DirectoryService",
            "ada.admin@contoso.com",
        ),
        (
            "cosell.deals.v1.ReferralService",
            "rita.referrals@contoso.com",
        ),
        (
            "cosell.migration.v1.MigrationService",
            "ada.admin@contoso.com",
        ),
    ] {
        let (token, _) = sign_in(&server, email);
        let service = pool.get_service_by_name(service).unwrap();
        let mut oks = 0;
        for method in service.methods() {
            if method.is_client_streaming() || method.is_server_streaming() {
                continue;
            }
            let mut request = serde_json::Map::new();
            for field in method.input().fields() {
                let value = match field.name() {
                    "parent" | "organization" => organization.clone(),
                    "query" => "dynatrace".to_string(),
                    _ => continue,
                };
                if field.kind() == prost_reflect::Kind::String && !field.is_list() {
                    request.insert(field.json_name().into(), value.into());
                }
            }
            let path = format!("/{}/{}", service.full_name(), method.name());
            let body = Value::Object(request).to_string();
            let answer = curl(
                &server,
                Http::Two,
                &path,
                "application/json",
                body.as_bytes(),
                Some(&token),
                &[],
            );
            let text = String::from_utf8_lossy(&answer.body).to_string();
            if answer.status == 200 {
                let mut json = serde_json::Deserializer::from_str(&text);
                prost_reflect::DynamicMessage::deserialize(method.output(), &mut json)
                    .unwrap_or_else(|e| {
                        panic!("{path}: not a {}: {e}: {text}", method.output().full_name())
                    });
                oks += 1;
            } else {
                assert!(
                    (400..500).contains(&answer.status),
                    "{path}: {} {text}",
                    answer.status
                );
                assert_ne!(answer.json()["code"], "unimplemented", "{path}");
                answer.detail("google.rpc.ErrorInfo");
            }
            answered += 1;
        }
        assert!(oks > 0, "{}: no call answered 200", service.full_name());
    }
    eprintln!("{answered} unary RPCs answered over HTTP/JSON");
    assert!(server.stop().success());
}
