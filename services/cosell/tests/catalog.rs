//! `cosell catalog create|list`: a platform operator seeds a partner's co-sell-ready solution
//! (the step after the services are up, README "Running it for real"), and the partner finds
//! it in the catalog.

mod support;

use support::Server;

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_seeds_a_partners_solution_and_the_partner_lists_it() {
    let server = Server::start().await;
    let token = |email: &str| {
        server
            .cosell(&["dev-token", "--email", email], None)
            .trim()
            .to_owned()
    };
    let oli = token("oli.operator@platform.example");
    let fay = token("fay.admin@fabrikam.com");
    let fabrikam = server
        .cosell(&["whoami", "--field", "organization"], Some(&fay))
        .trim()
        .to_owned();

    // The operator publishes for Fabrikam (by its id alone: the command names it), co-sell
    // ready, with the PSC products it replaces.
    let fabrikam_id = fabrikam.trim_start_matches("organizations/");
    let created = server.cosell(
        &[
            "catalog",
            "create",
            "--name",
            "Fabrikam Field Service",
            "--mpn-id",
            "5000001",
            "--publisher",
            fabrikam_id,
            "--cosell-ready",
            "--incentive-eligible",
            "--legacy-product-id",
            "PSC-FS-1",
            "--legacy-product-id",
            "PSC-FS-2",
        ],
        Some(&oli),
    );
    let name = created.trim();
    assert!(name.starts_with("solutions/"), "{created}");

    // Fabrikam's admin finds it, as published for Fabrikam, with every flag set.
    let listed = json_lines(&server.cosell(
        &["catalog", "list", "--query", "fabrikam field", "--json"],
        Some(&fay),
    ));
    assert_eq!(listed.len(), 1, "{listed:?}");
    let s = &listed[0];
    assert_eq!(s["name"], name);
    assert_eq!(s["display_name"], "Fabrikam Field Service");
    assert_eq!(s["publisher"], fabrikam.as_str());
    assert_eq!(s["kind"], "partner_solution");
    assert_eq!(s["cosell_ready"], true);
    assert_eq!(s["incentive_eligible"], true);
    assert_eq!(s["mpn_id"], "5000001");
    assert_eq!(
        s["legacy_product_ids"],
        serde_json::json!(["PSC-FS-1", "PSC-FS-2"])
    );

    // Only co-sell-ready ones of Fabrikam, as a table: the new one is among them.
    let table = server.cosell(
        &[
            "catalog",
            "list",
            "--publisher",
            &fabrikam,
            "--cosell-ready-only",
        ],
        Some(&fay),
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in\n{table}"));
    assert!(
        row.contains("partner_solution")
            && row.contains("co-sell")
            && row.ends_with("Fabrikam Field Service"),
        "{row}"
    );

    // A partner's own solution: the co-sell flag is the operator's to give, not theirs.
    let args = [
        "catalog",
        "create",
        "--name",
        "Fabrikam Self Service",
        "--mpn-id",
        "5000001",
        "--json",
    ];
    let out = server.cosell_output(&[&args[..], &["--cosell-ready"]].concat(), Some(&fay));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("PERMISSION_DENIED OPERATOR_ONLY"), "{err}");
    let own = json_lines(&server.cosell(&args, Some(&fay)));
    assert_eq!(own[0]["publisher"], fabrikam.as_str());
    assert_eq!(own[0]["cosell_ready"], false, "{own:?}");

    // A field the server refuses is printed as it answered (exit 1); no token is a usage
    // error (2).
    let out = server.cosell_output(
        &["catalog", "create", "--name", "", "--mpn-id", "5000001"],
        Some(&fay),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("INVALID_ARGUMENT"), "{err}");
    let out = server.cosell_output(&["catalog", "list"], None);
    assert_eq!(out.status.code(), Some(2));
}
