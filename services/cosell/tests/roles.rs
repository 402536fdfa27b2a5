//! The authorization table (issue 19's security table): every RPC of the four services, called
//! on `cosell serve --demo` by each kind of caller, own organization and another, with a request
//! that names Contoso's resources, answers with the code its cell of `roles/table.rs` expects.
//! The table must have a row for every RPC of the services' descriptor sets, so that a new RPC
//! cannot ship without saying who may call it. The credential columns (no token, expired,
//! tampered, another audience) are `authn_sweep.rs`'s; the cross-tenant sweep of every resource
//! name is `tenants.rs`'s.

mod roles {
    pub mod table;
}
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use roles::table::TABLE;
use support::{Server, raw};
use tonic::Code;
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(20);

/// The table's columns.
const CALLERS: [&str; 8] = [
    "ada.admin@contoso.com",
    "rita.referrals@contoso.com",
    "uma.user@contoso.com",
    "leo.location@contoso.com",
    "bea.profile@contoso.com",
    "sam.seller@platform.example",
    "oli.operator@platform.example",
    "fay.admin@fabrikam.com",
];

/// A complete co-sell referral of Contoso's location 4000002 (D6), before its placeholders.
const NEW_REFERRAL: &str = r#"{"displayName":"Data platform renewal","dealType":"DEAL_TYPE_CO_SELL","mpnLocation":"4000002","customer":{"entity":"$entity","size":"CUSTOMER_SIZE_251_TO_1000","contacts":[{"firstName":"Carla","lastName":"Customer","email":"carla@customer.example","phone":"+1 425 555 0100"}]},"consentToShare":true,"assistance":{"code":"ASSISTANCE_CODE_TECHNICAL_ARCHITECTURE","notes":"architecture review"},"solutions":[{"solution":"$solution"}],"team":[{"firstName":"Rita","lastName":"Referrals","email":"rita.referrals@contoso.com","phone":"+1 425 555 0100"}],"dealValue":{"currencyCode":"USD","amount":"125000.50"},"estimatedCloseDate":"2027-03-31","notes":"Customer wants a pilot first."}"#;
/// A platform seller's referral for Contoso's location 4000002.
const INBOUND_REFERRAL: &str = r#"{"organization":"$org","mpnLocation":"4000002","displayName":"Contoso expansion","dealType":"DEAL_TYPE_CO_SELL","customer":{"entity":"$entity","size":"CUSTOMER_SIZE_251_TO_1000","contacts":[{"firstName":"Carla","lastName":"Customer","email":"carla@customer.example","phone":"+1 425 555 0100"}]},"consentToShare":true,"dealValue":{"currencyCode":"USD","amount":"50000"},"estimatedCloseDate":"2027-06-30","notes":"From the account team."}"#;
const SELLER: &str = r#"{"firstName":"Sam","lastName":"Seller","email":"sam.seller@platform.example","phone":"+1 425 555 0101"}"#;

fn method(pool: &DescriptorPool, rpc: &str) -> MethodDescriptor {
    let (service, name) = rpc.split_once('/').unwrap();
    pool.get_service_by_name(&format!("cosell.{service}"))
        .and_then(|s| s.methods().find(|m| m.name() == name))
        .unwrap_or_else(|| panic!("the table names {rpc}, which no service has"))
}

/// The request of `json` for `method`, encoded.
fn encode(method: &MethodDescriptor, json: &str) -> Vec<u8> {
    let mut de = serde_json::Deserializer::from_str(json);
    DynamicMessage::deserialize(method.input(), &mut de)
        .unwrap_or_else(|e| panic!("{}: {e}: {json}", method.full_name()))
        .encode_to_vec()
}

fn decode(method: &MethodDescriptor, bytes: &[u8]) -> DynamicMessage {
    DynamicMessage::decode(method.output(), bytes).unwrap()
}

/// The string at `path` (field names, dot-separated) of `m`.
fn text(m: &DynamicMessage, path: &str) -> String {
    let mut m = m.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = m.get_field_by_name(part).unwrap().into_owned();
        match (value, parts.peek()) {
            (Value::Message(inner), Some(_)) => m = inner,
            (Value::String(s), None) => return s,
            (other, _) => panic!("{path}: {other:?}"),
        }
    }
    unreachable!()
}

/// The letter of an answer (see `roles/table.rs`); `None` for one no cell may have.
fn letter(answer: &Result<Vec<u8>, tonic::Status>) -> Option<char> {
    match answer {
        Ok(_) => Some('A'),
        Err(s) => match s.code() {
            Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => Some('A'),
            Code::PermissionDenied => Some('D'),
            Code::NotFound => Some('N'),
            Code::InvalidArgument => Some('I'),
            Code::Unauthenticated => Some('U'),
            _ => None,
        },
    }
}

/// The demo's names a row may use, and the calls that make fresh ones.
struct Names {
    channel: Channel,
    pool: DescriptorPool,
    tokens: Vec<String>,
    fixed: Vec<(&'static str, String)>,
    counter: AtomicU64,
}

impl Names {
    /// `$key` stands for `value`, a string inside the JSON (escaped as one).
    fn set(&mut self, key: &'static str, value: &str) {
        let quoted = serde_json::to_string(value).unwrap();
        self.set_json(key, &quoted[1..quoted.len() - 1]);
    }

    /// `$key` stands for `json`, a piece of JSON.
    fn set_json(&mut self, key: &'static str, json: &str) {
        self.fixed.retain(|(k, _)| *k != key);
        self.fixed.push((key, json.to_owned()));
    }

    async fn call(&self, rpc: &str, as_caller: usize, json: &str) -> DynamicMessage {
        let m = method(&self.pool, rpc);
        let json = self.fill(json);
        let bytes = raw::call(
            &self.channel,
            &m,
            Some(&self.tokens[as_caller]),
            encode(&m, &json),
            DEADLINE,
        )
        .await
        .unwrap_or_else(|s| panic!("setting up with {rpc}: {s:?}"));
        decode(&m, &bytes)
    }

    /// `json` with every placeholder filled; `$n`, `$mpn` and `$uuid` are new at each call.
    fn fill(&self, json: &str) -> String {
        let mut out = json.to_owned();
        // The longer placeholders first: `$referral` is the end of `$platform_referral`, and
        // `$new_referral`'s value has placeholders of its own.
        let mut fixed: Vec<&(&str, String)> = self.fixed.iter().collect();
        fixed.sort_by_key(|(key, _)| std::cmp::Reverse(key.len()));
        for (key, value) in fixed {
            out = out.replace(key, value);
        }
        while out.contains("$uuid") {
            out = out.replacen("$uuid", &uuid::Uuid::new_v4().to_string(), 1);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        out.replace("$mpn", &format!("{}", 6_100_000 + n))
            .replace("$now", &chrono::Utc::now().to_rfc3339())
            .replace("$n", &n.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_each_caller_as_the_table_says() {
    let server = Server::start().await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let pool = raw::pool();
    let mut tokens = Vec::new();
    let sign_in = method(&pool, "identity.v1.TokenService/SignInWithEmail");
    for email in CALLERS {
        let body = encode(&sign_in, &format!(r#"{{"email":"{email}"}}"#));
        let bytes = raw::call(&channel, &sign_in, None, body, DEADLINE)
            .await
            .unwrap();
        tokens.push(text(&decode(&sign_in, &bytes), "access_token"));
    }
    let mut names = Names {
        channel: channel.clone(),
        pool: pool.clone(),
        tokens,
        fixed: Vec::new(),
        counter: AtomicU64::new(0),
    };
    let (ada, rita, uma, sam) = (0, 1, 2, 5);
    let org = text(
        &names
            .call("identity.v1.AccessService/GetCaller", ada, "{}")
            .await,
        "organization",
    );
    let uma_name = text(
        &names
            .call("identity.v1.AccessService/GetCaller", uma, "{}")
            .await,
        "user.name",
    );
    names.set("$org", &org);
    names.set("$uma", &uma_name);
    let spare = names
        .call(
            "identity.v1.UserService/CreateUser",
            ada,
            r#"{"parent":"$org","email":"spare@contoso.com","givenName":"Spare","familyName":"User"}"#,
        )
        .await;
    names.set("$spare", &text(&spare, "user.name"));
    let found = names
        .call(
            "directory.v1.DirectoryService/SearchEntities",
            rita,
            r#"{"query":"bank","pageSize":1}"#,
        )
        .await;
    let Value::List(results) = found.get_field_by_name("results").unwrap().into_owned() else {
        panic!("no results");
    };
    let first = results[0].as_message().unwrap();
    names.set("$entity", &text(first, "entity.name"));
    let solutions = names
        .call(
            "deals.v1.CatalogService/ListSolutions",
            rita,
            r#"{"query":"Contoso Cloud Analytics"}"#,
        )
        .await;
    let Value::List(solutions) = solutions
        .get_field_by_name("solutions")
        .unwrap()
        .into_owned()
    else {
        panic!("no solutions");
    };
    names.set(
        "$solution",
        &text(solutions[0].as_message().unwrap(), "name"),
    );
    names.set_json("$new_referral", NEW_REFERRAL);
    names.set_json("$inbound_referral", INBOUND_REFERRAL);
    names.set_json("$seller", SELLER);
    let referral = names
        .call(
            "deals.v1.ReferralService/CreateReferral",
            rita,
            r#"{"requestId":"$uuid","referral":$new_referral}"#,
        )
        .await;
    let engagement = text(&referral, "referral.engagement");
    names.set("$referral", &text(&referral, "referral.name"));
    names.set("$etag", &text(&referral, "referral.etag"));
    names.set("$engagement", &engagement);
    // The platform's side of the engagement, in the sellers' queue.
    let queue = names
        .call(
            "deals.v1.CoSellService/ListInvitations",
            sam,
            r#"{"pageSize":100}"#,
        )
        .await;
    let Value::List(queue) = queue.get_field_by_name("referrals").unwrap().into_owned() else {
        panic!("no queue");
    };
    let platform = queue
        .iter()
        .map(|r| r.as_message().unwrap())
        .find(|r| text(r, "engagement") == engagement)
        .map(|r| text(r, "name"))
        .expect("the co-sell request in the sellers' queue");
    names.set("$platform_referral", &platform);
    names.set("$gleif", &STANDARD.encode(gleif_csv()));
    names.set("$export_zip", &STANDARD.encode(demo_export_zip()));

    // Every RPC has its row, once.
    let rows: Vec<&str> = TABLE.iter().map(|(rpc, _, _)| *rpc).collect();
    let unique: BTreeSet<&str> = rows.iter().copied().collect();
    assert_eq!(unique.len(), rows.len(), "a row is there twice");
    let every: BTreeSet<String> = pool
        .services()
        .flat_map(|s| {
            s.methods()
                .map(|m| {
                    format!(
                        "{}/{}",
                        s.full_name().trim_start_matches("cosell."),
                        m.name()
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<&String> = every
        .iter()
        .filter(|r| !unique.contains(r.as_str()))
        .collect();
    assert!(missing.is_empty(), "RPCs without a row: {missing:?}");

    let mut wrong = Vec::new();
    let mut cells = 0;
    for (rpc, request, expected) in TABLE {
        let m = method(&pool, rpc);
        assert_eq!(expected.len(), CALLERS.len(), "{rpc}: a cell per caller");
        for (i, want) in expected.chars().enumerate() {
            cells += 1;
            // A role assignment of the spare user to revoke, new for each caller.
            if request.contains("$assignment") {
                let made = names
                    .call(
                        "identity.v1.RoleService/AssignRole",
                        ada,
                        r#"{"user":"$spare","role":"ROLE_REFERRALS_USER","mpnId":"4000003"}"#,
                    )
                    .await;
                let name = text(&made, "role_assignment.name");
                names.set("$assignment", &name);
            }
            let body = encode(&m, &names.fill(request));
            let answer = raw::call(&channel, &m, Some(&names.tokens[i]), body, DEADLINE).await;
            if letter(&answer) != Some(want) {
                let got = match &answer {
                    Ok(_) => "OK".to_owned(),
                    Err(s) => format!("{:?}: {}", s.code(), s.message()),
                };
                wrong.push(format!("{rpc} as {}: want {want}, got {got}", CALLERS[i]));
            }
        }
    }
    eprintln!("{cells} cells of {} RPCs", TABLE.len());
    assert!(
        wrong.is_empty(),
        "{} cells differ from the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// One entity in the directory's load format (GLEIF's columns), as an operator would load it.
fn gleif_csv() -> Vec<u8> {
    b"LEI,Entity.LegalName,Entity.LegalAddress.City,Entity.LegalAddress.Country\n\
      529900ROLESTABLE0001,Roles Table Holding GmbH,Berlin,DE\n"
        .to_vec()
}

/// The demo PSC export as one zip, as `cosell psc import` would upload it.
fn demo_export_zip() -> Vec<u8> {
    let dir = support::workspace_root().join("services/migration/data/demo-export");
    let files: Vec<(String, Vec<u8>, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let deflated = cosell_testkit::zip::deflate(&bytes);
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
                deflated,
            )
        })
        .collect();
    let entries: Vec<cosell_testkit::zip::Entry> = files
        .iter()
        .map(|(name, bytes, deflated)| cosell_testkit::zip::Entry::deflated(name, bytes, deflated))
        .collect();
    cosell_testkit::zip::archive(&entries)
}
