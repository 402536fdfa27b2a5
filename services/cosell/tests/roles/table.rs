//! Who may call what: one row per RPC of the four services, the request the row sends (proto3
//! JSON, with the placeholders `roles.rs` fills: `$org` is Contoso, `$referral` its co-sell
//! referral at location 4000002, ...), and the expected outcome for each caller, in the order
//! of [`CALLERS`](super::CALLERS):
//!
//! `ada` account + global admin, `rita` referrals admin (org-wide), `uma` referrals user at
//! 4000002, `leo` referrals admin at 4000003, `bea` business profile admin (all of Contoso),
//! `sam` platform seller, `oli` platform operator, `fay` every partner role of Fabrikam (asking
//! about Contoso).
//!
//! - `A`: let through the access check to the resource: `OK`, or an outcome of the resource's
//!   state (`FAILED_PRECONDITION`, `ABORTED`, `ALREADY_EXISTS`).
//! - `D`: `PERMISSION_DENIED` (a role is missing).
//! - `N`: `NOT_FOUND` (not the caller's to see: another organization, another location).
//! - `I`: `INVALID_ARGUMENT` (the request names what the caller may not name: a location or a
//!   publisher of another organization, a partner's feed asked by a platform user).
//! - `U`: `UNAUTHENTICATED` (a credential of the request itself is wrong).
//!
//! The columns of credentials (no token, expired, tampered, another audience, another issuer,
//! unsigned) are the same for every RPC: `authn_sweep.rs` checks each of them on every RPC.
//! Rules: docs/rules.md (roles table of section 2, and each service's section).

/// (RPC, request, expected for ada rita uma leo bea sam oli fay).
#[rustfmt::skip]
pub const TABLE: &[(&str, &str, &str)] = &[
    // Identity: tokens. Signing in and the token exchange ask for no token (the demo has
    // development sign-in, and no OpenID Connect issuer to exchange from).
    ("identity.v1.TokenService/SignInWithEmail", r#"{"email":"ada.admin@contoso.com"}"#, "AAAAAAAA"),
    ("identity.v1.TokenService/ExchangeToken", r#"{"subjectToken":"not-a-token"}"#, "AAAAAAAA"),
    ("identity.v1.TokenService/IssueServiceToken", r#"{"service":"migration","clientSecret":"a-guess"}"#, "UUUUUUUU"),
    ("identity.v1.TokenService/ListSigningKeys", "{}", "AAAAAAAA"),
    ("identity.v1.TokenService/RotateSigningKey", "{}", "DDDDDDAD"),
    // Access: a service's question about someone else; anyone may ask about themselves.
    ("identity.v1.AccessService/CheckAccess", r#"{"principal":"$uma","organization":"$org","anyOfRoles":["ROLE_REFERRALS_USER"]}"#, "DDADDDDD"),
    ("identity.v1.AccessService/GetCaller", "{}", "AAAAAAAA"),
    // Organizations (I3, 2): operators create them; global admins add domains, account admins
    // locations; platform users read every organization.
    ("identity.v1.OrganizationService/CreateOrganization", r#"{"displayName":"Northwind $n","tenantId":"$uuid","verifiedDomains":["northwind$n.example"],"vorgMpnId":"$mpn","accountAdminEmail":"admin@northwind$n.example","accountAdminGivenName":"Nora","accountAdminFamilyName":"North"}"#, "DDDDDDAD"),
    ("identity.v1.OrganizationService/GetOrganization", r#"{"name":"$org"}"#, "AAAAAAAN"),
    ("identity.v1.OrganizationService/ListOrganizations", "{}", "DDDDDAAD"),
    ("identity.v1.OrganizationService/AddVerifiedDomain", r#"{"organization":"$org","domain":"contoso$n.example"}"#, "ADDDDNAN"),
    ("identity.v1.OrganizationService/AddMpnLocation", r#"{"organization":"$org","location":{"mpnId":"$mpn","countryCode":"FR","city":"Paris"}}"#, "ADDDDNAN"),
    ("identity.v1.OrganizationService/LookupMpnId", r#"{"mpnId":"4000002"}"#, "AAAAAAAA"),
    // Users (I2, I4): admins manage them; any member sees a user and the admins to ask.
    ("identity.v1.UserService/CreateUser", r#"{"parent":"$org","email":"new$n@contoso.com","givenName":"New","familyName":"User"}"#, "ADDDDNAN"),
    ("identity.v1.UserService/InviteGuestUser", r#"{"parent":"$org","email":"guest$n@elsewhere.example","givenName":"Gus","familyName":"Guest"}"#, "ADDDDNNN"),
    ("identity.v1.UserService/GetUser", r#"{"name":"$uma"}"#, "AAAAAAAN"),
    ("identity.v1.UserService/ListUsers", r#"{"parent":"$org"}"#, "ADDDDNAN"),
    ("identity.v1.UserService/ListAdmins", r#"{"parent":"$org"}"#, "AAAAAAAN"),
    ("identity.v1.UserService/SetUserState", r#"{"name":"$spare","state":"USER_STATE_ACTIVE"}"#, "ADDDDNAN"),
    // Roles (I3).
    ("identity.v1.RoleService/AssignRole", r#"{"user":"$spare","role":"ROLE_REFERRALS_USER","mpnId":"4000002"}"#, "ADDDDNAN"),
    ("identity.v1.RoleService/RevokeRole", r#"{"name":"$assignment"}"#, "ADDDDNAN"),
    ("identity.v1.RoleService/ListRoleAssignments", r#"{"parent":"$org"}"#, "ADDDDNAN"),
    // Directory: public reference data for every caller; loads are the operators'.
    ("directory.v1.DirectoryService/SearchEntities", r#"{"query":"bank"}"#, "AAAAAAAA"),
    ("directory.v1.DirectoryService/GetEntity", r#"{"name":"$entity"}"#, "AAAAAAAA"),
    ("directory.v1.DirectoryService/BatchGetEntities", r#"{"names":["$entity"]}"#, "AAAAAAAA"),
    ("directory.v1.DirectoryService/MatchEntities", r#"{"customers":[{"name":"Contoso Holding","countryCode":"DE"}]}"#, "AAAAAAAA"),
    ("directory.v1.DirectoryService/LoadEntities", r#"{"fileName":"entities.csv","chunk":"$gleif"}"#, "DDDDDDAD"),
    // Referrals (3.1-3.3): the referrals roles of the referral's location read and write it;
    // platform users read the shared ones and write none; another location's admin and
    // another organization find nothing.
    ("deals.v1.ReferralService/CreateReferral", r#"{"requestId":"$uuid","referral":$new_referral}"#, "DAADDDDI"),
    ("deals.v1.ReferralService/GetReferral", r#"{"name":"$referral"}"#, "DAANDAAN"),
    ("deals.v1.ReferralService/ListReferrals", r#"{"direction":"DIRECTION_OUTBOUND","organization":"$org"}"#, "DAAADAAI"),
    ("deals.v1.ReferralService/UpdateReferral", r#"{"referral":{"name":"$referral","etag":"$etag","notes":"Pilot agreed."},"updateMask":"notes"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/AcceptReferral", r#"{"name":"$referral","etag":"$etag"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/DeclineReferral", r#"{"name":"$referral","reason":"No capacity.","etag":"$etag"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/UpgradeDealType", r#"{"name":"$referral","dealType":"DEAL_TYPE_CO_SELL","etag":"$etag"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/SetFavorite", r#"{"name":"$referral","favorite":true}"#, "DAANDAAN"),
    ("deals.v1.ReferralService/GetEngagement", r#"{"name":"$engagement"}"#, "NAANNAAN"),
    ("deals.v1.ReferralService/MarkReferralWon", r#"{"name":"$referral","etag":"$etag"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/MarkReferralLost", r#"{"name":"$referral","reason":"Budget cut.","etag":"$etag"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/ImportReferrals", r#"{"organization":"$org"}"#, "DDDDDDDD"),
    // Registration (3.8): partners register their won deals; operators review them.
    ("deals.v1.ReferralService/RegisterDeal", r#"{"name":"$referral","etag":"$etag"}"#, "DAANDDDN"),
    ("deals.v1.ReferralService/ListRegistrations", r#"{"organization":"$org"}"#, "DDDDDDAD"),
    ("deals.v1.ReferralService/ReviewRegistration", r#"{"name":"$referral","decision":"REGISTRATION_STATUS_APPROVED","etag":"$etag"}"#, "DDDDDDAD"),
    // Co-sell (D5): the sellers' queue and their referrals to partners.
    ("deals.v1.CoSellService/ListInvitations", "{}", "DDDDDADD"),
    ("deals.v1.CoSellService/AcceptInvitation", r#"{"name":"$platform_referral","sellerContact":$seller}"#, "DDDDDADD"),
    ("deals.v1.CoSellService/DeclineInvitation", r#"{"name":"$platform_referral","reason":"Not our segment."}"#, "DDDDDADD"),
    ("deals.v1.CoSellService/CreateInboundReferral", r#"{"requestId":"$uuid","referral":$inbound_referral,"sellerContact":$seller}"#, "DDDDDADD"),
    // Catalog (3.9): partners' admins publish their own solutions; everyone reads the catalog.
    ("deals.v1.CatalogService/CreateSolution", r#"{"solution":{"displayName":"Contoso Insights $n","kind":"SOLUTION_KIND_PARTNER_SOLUTION","mpnId":"4000001"},"publisher":"$org"}"#, "AADDADAI"),
    ("deals.v1.CatalogService/GetSolution", r#"{"name":"$solution"}"#, "AAAAAAAA"),
    ("deals.v1.CatalogService/UpdateSolution", r#"{"solution":{"name":"$solution","displayName":"Contoso Cloud Analytics"},"updateMask":"displayName"}"#, "AADDADAD"),
    ("deals.v1.CatalogService/ListSolutions", r#"{"publisher":"$org"}"#, "AAAAAAAA"),
    // Cut-over (5.5): account admins, org-wide referrals admins and platform users read it;
    // operators flip it.
    ("deals.v1.CutoverService/GetCutover", r#"{"parent":"$org"}"#, "AADDDAAN"),
    ("deals.v1.CutoverService/UpdateCutover", r#"{"parent":"$org","routedToNewSystem":true}"#, "DDDDDDAD"),
    // The change feed (3.6): an organization's to its referrals roles (a location's, its
    // location's events); platform users follow `platform`, never a partner's.
    ("deals.v1.EventService/ListEvents", r#"{"parent":"$org"}"#, "DAAADIIN"),
    ("deals.v1.EventService/WatchEvents", r#"{"parent":"$org"}"#, "DAAADIIN"),
    ("deals.v1.InsightsService/GetInsights", r#"{"parent":"$org","mpnId":"4000002"}"#, "DAANDAAN"),
    // Notifications: each caller's own; the migration service's announcement is its own.
    ("deals.v1.NotificationService/ListNotifications", "{}", "AAAAAAAA"),
    ("deals.v1.NotificationService/MarkNotificationsRead", r#"{"upToTime":"$now"}"#, "AAAAAAAA"),
    ("deals.v1.NotificationService/NotifyDealMigrationFinished", r#"{"run":"$org/dealMigrationRuns/$uuid","recipient":"$uma"}"#, "DDDDDDDD"),
    // Migration (5.1-5.5): account admins and org-wide referrals admins; the user migration is
    // the account admins', the deal migration the referrals admins'.
    ("migration.v1.MigrationService/ImportPscExport", r#"{"organization":"$org","fileName":"export.zip","chunk":"$export_zip"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/ListPscImports", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/GetMpnCheck", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/CorrectMpnAssociation", r#"{"parent":"$org","accountId":"PSC-ACC-SEA","mpnId":"4000002"}"#, "ADDDDNNN"),
    ("migration.v1.MigrationService/ListUserMigration", r#"{"parent":"$org"}"#, "AADADNNN"),
    ("migration.v1.MigrationService/RunUserMigration", r#"{"parent":"$org"}"#, "ADDDDNNN"),
    ("migration.v1.MigrationService/GetDealMigrationStatus", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/ListDealReadiness", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/StartDealMigration", r#"{"parent":"$org"}"#, "DADDDNNN"),
    ("migration.v1.MigrationService/WatchDealMigration", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/ListDealMigrationReport", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/DownloadDealMigrationReport", r#"{"parent":"$org"}"#, "AADDDNNN"),
    ("migration.v1.MigrationService/GetCutover", r#"{"parent":"$org"}"#, "AADDDAAN"),
    ("migration.v1.MigrationService/UpdateCutover", r#"{"parent":"$org","routedToNewSystem":true}"#, "DDDDDDAD"),
];
