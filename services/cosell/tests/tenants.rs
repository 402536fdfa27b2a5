//! The cross-tenant sweep (issue 19, security): another organization's admin tries every
//! resource name of Contoso in every string field of every RPC of the four services and finds
//! nothing of Contoso. Contoso's names are gathered the way its own users see them: every RPC
//! of the suite asked, as Contoso's account admin and referrals admin, about Contoso, and the
//! names in the answers collected (twice, so that names found inside answers are asked about
//! too). Fay, Fabrikam's account admin, first gives herself every referrals role her
//! organization has, so that only the organization tells her apart from Contoso's admins.
//! An answer leaks when it carries an id of a Contoso resource the request did not name; no
//! answer may be `INTERNAL` or `UNKNOWN` either.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cosell_proto::identity as ipb;
use prost::Message;
use prost_reflect::{DynamicMessage, MapKey, MethodDescriptor, Value};
use support::{Server, raw};
use tonic::transport::Channel;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);
/// Names of a kind tried per field: enough to try each kind, few enough to stay quick.
const PER_KIND: usize = 3;
/// Collections that are not a tenant's: the catalog is published to every partner (it names
/// its publisher's organization) and the directory is public reference data.
const SHARED: &[&str] = &["solutions", "entities"];

fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

async fn sign_in(channel: &Channel, email: &str) -> String {
    ipb::token_service_client::TokenServiceClient::new(channel.clone())
        .sign_in_with_email(ipb::SignInWithEmailRequest {
            email: email.into(),
            organization: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

async fn caller(channel: &Channel, token: &str) -> ipb::GetCallerResponse {
    ipb::access_service_client::AccessServiceClient::new(channel.clone())
        .get_caller(authed(token, ipb::GetCallerRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// Every string anywhere in `m`.
fn strings(m: &DynamicMessage, out: &mut Vec<String>) {
    fn value(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Message(m) => strings(m, out),
            Value::List(items) => items.iter().for_each(|i| value(i, out)),
            Value::Map(map) => {
                for (k, v) in map {
                    if let MapKey::String(s) = k {
                        out.push(s.clone());
                    }
                    value(v, out);
                }
            }
            _ => {}
        }
    }
    for (_, v) in m.fields() {
        value(v, out);
    }
}

/// `collection/id/collection/id...`: a resource name, with its kind (`referrals`,
/// `organizations/*/users`, ...) and its ids.
fn resource(s: &str) -> Option<(String, Vec<Uuid>)> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() < 2 || !parts.len().is_multiple_of(2) || s.len() > 300 {
        return None;
    }
    let mut kind = Vec::new();
    let mut ids = Vec::new();
    for pair in parts.chunks(2) {
        if pair[0].is_empty() || !pair[0].chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        kind.push(pair[0]);
        ids.push(Uuid::parse_str(pair[1]).ok()?);
    }
    Some((kind.join("/*/"), ids))
}

/// The answer's strings, when the call was answered with a message.
fn answer_strings(method: &MethodDescriptor, bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(m) = DynamicMessage::decode(method.output(), bytes) {
        strings(&m, &mut out);
    }
    out
}

/// The request with its string field `field` set to `value`, encoded.
fn request(method: &MethodDescriptor, field: &str, value: &str) -> Vec<u8> {
    let mut m = DynamicMessage::new(method.input());
    m.set_field_by_name(field, Value::String(value.to_owned()));
    m.encode_to_vec()
}

fn string_fields(method: &MethodDescriptor) -> Vec<String> {
    method
        .input()
        .fields()
        .filter(|f| f.kind() == prost_reflect::Kind::String && !f.is_list() && !f.is_map())
        .map(|f| f.name().to_owned())
        .collect()
}

/// At most [`PER_KIND`] resource names of each kind among `names`.
fn few_of_each_kind(names: &BTreeSet<String>) -> Vec<String> {
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    names
        .iter()
        .filter(|n| {
            resource(n).is_some_and(|(kind, _)| {
                let seen = by_kind.entry(kind).or_default();
                *seen += 1;
                *seen <= PER_KIND
            })
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_finds_nothing_of_contoso() {
    let server = Server::start().await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ada = sign_in(&channel, "ada.admin@contoso.com").await;
    let rita = sign_in(&channel, "rita.referrals@contoso.com").await;
    let fay = sign_in(&channel, "fay.admin@fabrikam.com").await;
    let contoso = caller(&channel, &ada).await.organization;
    let me = caller(&channel, &fay).await;
    assert_ne!(me.organization, contoso);
    for role in [ipb::Role::ReferralsAdmin, ipb::Role::ReferralsUser] {
        ipb::role_service_client::RoleServiceClient::new(channel.clone())
            .assign_role(authed(
                &fay,
                ipb::AssignRoleRequest {
                    user: me.user.as_ref().unwrap().name.clone(),
                    role: role as i32,
                    mpn_id: String::new(),
                },
            ))
            .await
            .unwrap();
    }
    let pool = raw::pool();
    let methods: Vec<MethodDescriptor> = pool
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect();

    // Contoso's names, as its admins are shown them: what every reading RPC answers about
    // Contoso, then about a few names of each kind found so.
    let reads: Vec<&MethodDescriptor> = methods
        .iter()
        .filter(|m| {
            ["Get", "List", "Search", "BatchGet", "Watch", "Download"]
                .iter()
                .any(|verb| m.name().starts_with(verb))
        })
        .collect();
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut to_ask = vec![contoso.clone()];
    for round in 0..2 {
        for method in &reads {
            for field in string_fields(method) {
                for name in &to_ask {
                    for token in [&ada, &rita] {
                        let body = request(method, &field, name);
                        if let Ok(bytes) =
                            raw::call(&channel, method, Some(token), body, DEADLINE).await
                        {
                            found.extend(answer_strings(method, &bytes));
                        }
                    }
                }
            }
        }
        if round == 0 {
            to_ask = few_of_each_kind(&found);
        }
    }
    let contoso_id = resource(&contoso).unwrap().1[0];
    // By kind, the tenant's own: under Contoso's organization, or a top-level kind of its
    // own (referrals, engagements, ...); never what every partner may see.
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut owned: BTreeSet<Uuid> = BTreeSet::new();
    for name in &found {
        let Some((kind, ids)) = resource(name) else {
            continue;
        };
        let top = kind.split('/').next().unwrap();
        if SHARED.contains(&top) || (top == "organizations" && ids[0] != contoso_id) {
            continue;
        }
        // The organization's own id is public by design (the catalog names publishers).
        owned.extend(ids.iter().filter(|id| **id != contoso_id));
        by_kind.entry(kind).or_default().push(name.clone());
    }
    eprintln!(
        "Contoso's names by kind: {:?}",
        by_kind
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect::<Vec<_>>()
    );
    for kind in [
        "referrals",
        "engagements",
        "organizations/*/users",
        "organizations/*/roleAssignments",
        "organizations/*/pscImports",
    ] {
        assert!(by_kind.contains_key(kind), "no {kind} of Contoso found");
    }

    // Fay tries each of them (and Contoso itself) in every string field of every RPC.
    let mut names: Vec<String> = vec![contoso.clone()];
    for list in by_kind.values() {
        names.extend(list.iter().take(PER_KIND).cloned());
    }
    let (mut cells, mut answered) = (0, 0);
    let mut wrong = Vec::new();
    for method in &methods {
        let path = format!("{}/{}", method.parent_service().name(), method.name());
        for field in string_fields(method) {
            for name in &names {
                cells += 1;
                let body = request(method, &field, name);
                match raw::call(&channel, method, Some(&fay), body, DEADLINE).await {
                    Ok(bytes) => {
                        answered += 1;
                        let strings = answer_strings(method, &bytes);
                        let leaked: Vec<&String> = strings
                            .iter()
                            .filter(|s| {
                                owned.iter().any(|id| {
                                    s.contains(&id.to_string()) && !name.contains(&id.to_string())
                                })
                            })
                            .collect();
                        if !leaked.is_empty() {
                            wrong.push(format!("{path} ({field} = {name}): leaked {leaked:?}"));
                        }
                    }
                    Err(s) if matches!(s.code(), tonic::Code::Internal | tonic::Code::Unknown) => {
                        wrong.push(format!("{path} ({field} = {name}): {s:?}"));
                    }
                    Err(_) => {}
                }
            }
        }
    }
    eprintln!(
        "{cells} calls of Fabrikam's admin with {} of Contoso's names ({} ids); {answered} answered without an error",
        names.len(),
        owned.len()
    );
    assert!(cells > 1000, "only {cells} calls");
    assert!(
        wrong.is_empty(),
        "{} answers were wrong:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
    // Sanity of the detector: Contoso's own admin asking the same is shown its data.
    let get_referral = methods.iter().find(|m| m.name() == "GetReferral").unwrap();
    let referral = &by_kind["referrals"][0];
    let own = raw::call(
        &channel,
        get_referral,
        Some(&rita),
        request(get_referral, "name", referral),
        DEADLINE,
    )
    .await
    .expect("Rita reads her referral");
    let strings = answer_strings(get_referral, &own);
    assert!(
        strings.iter().any(|s| owned
            .iter()
            .any(|id| s.contains(&id.to_string()) && !referral.contains(&id.to_string()))),
        "the answer to Contoso itself carries ids of Contoso's beside the one asked: {strings:?}"
    );
}
