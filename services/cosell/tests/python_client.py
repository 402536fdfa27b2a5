"""A Python client generated from proto/ by grpcio-tools, running the whole co-sell story
against `cosell serve --demo`.

Run by clients.rs with the generated code on PYTHONPATH; argument: the server address. Every
step checks what a user would look at, and prints one line of what it saw; a failed check ends
the script with an AssertionError (exit status 1).

The story, in the README's names: Uma signs in and meets "No access"; Rita finds the customer in
the directory and asks the platform's sellers for help (a CO_SELL referral); Sam accepts the
co-sell invitation; Ada imports a PSC export of Contoso (built here) and migrates its users; Rita
migrates the deals, watches the run to its end, reads the report and downloads it as CSV.
"""

import csv
import io
import sys
import uuid

import grpc

from cosell.deals.v1 import catalog_service_pb2 as catalog
from cosell.deals.v1 import catalog_service_pb2_grpc as catalog_grpc
from cosell.deals.v1 import cosell_service_pb2 as cosell
from cosell.deals.v1 import cosell_service_pb2_grpc as cosell_grpc
from cosell.deals.v1 import referral_service_pb2 as referrals
from cosell.deals.v1 import referral_service_pb2_grpc as referrals_grpc
from cosell.deals.v1 import resources_pb2 as deals
from cosell.directory.v1 import directory_service_pb2 as directory
from cosell.directory.v1 import directory_service_pb2_grpc as directory_grpc
from cosell.identity.v1 import access_service_pb2 as access
from cosell.identity.v1 import access_service_pb2_grpc as access_grpc
from cosell.identity.v1 import resources_pb2 as identity
from cosell.identity.v1 import token_service_pb2 as token
from cosell.identity.v1 import token_service_pb2_grpc as token_grpc
from cosell.identity.v1 import user_service_pb2 as users
from cosell.identity.v1 import user_service_pb2_grpc as users_grpc
from cosell.migration.v1 import migration_service_pb2 as migration
from cosell.migration.v1 import migration_service_pb2_grpc as migration_grpc

# A small chunk size, so that every file of the export goes up in several messages.
CHUNK = 200


def expect(actual, wanted, what):
    """Fails the story, saying what was looked at, unless `actual == wanted`."""
    if actual != wanted:
        raise AssertionError(f"{what}: expected {wanted!r}, got {actual!r}")


class Cosell:
    """The server's services, with one signed-in user's token per call."""

    def __init__(self, address):
        channel = grpc.insecure_channel(address)
        self.tokens = token_grpc.TokenServiceStub(channel)
        self.access = access_grpc.AccessServiceStub(channel)
        self.users = users_grpc.UserServiceStub(channel)
        self.directory = directory_grpc.DirectoryServiceStub(channel)
        self.catalog = catalog_grpc.CatalogServiceStub(channel)
        self.referrals = referrals_grpc.ReferralServiceStub(channel)
        self.cosell = cosell_grpc.CoSellServiceStub(channel)
        self.migration = migration_grpc.MigrationServiceStub(channel)

    def sign_in(self, email):
        """TokenService/SignInWithEmail (the demo's development sign-in): call metadata."""
        signed_in = self.tokens.SignInWithEmail(token.SignInWithEmailRequest(email=email))
        expect(signed_in.user.startswith("organizations/"), True, f"{email} signed in")
        return [("authorization", "Bearer " + signed_in.access_token)]

    def caller(self, auth):
        return self.access.GetCaller(access.GetCallerRequest(), metadata=auth)


def grants(caller):
    return {(identity.Role.Name(g.role), g.mpn_id) for g in caller.grants}


def sign_in_and_no_access(api):
    """Uma signs in, sees who she is, and may not manage users."""
    uma = api.sign_in("uma.user@contoso.com")
    me = api.caller(uma)
    expect(me.user.email, "uma.user@contoso.com", "GetCaller's email")
    expect(grants(me), {("ROLE_REFERRALS_USER", "4000002")}, "Uma's grants")
    try:
        api.users.ListUsers(users.ListUsersRequest(parent=me.organization), metadata=uma)
        raise AssertionError("Uma listed the users")
    except grpc.RpcError as e:
        expect(e.code(), grpc.StatusCode.PERMISSION_DENIED, "ListUsers as Uma")
    print("signed in: uma.user@contoso.com, ROLE_REFERRALS_USER at 4000002; ListUsers refused")
    return me.organization


def search_directory(api, auth):
    """Search as you type: a prefix and a typo find the same entity, first."""
    def first(query):
        found = api.directory.SearchEntities(
            directory.SearchEntitiesRequest(query=query, page_size=3), metadata=auth
        )
        expect(len(found.results) > 0, True, f"results for {query!r}")
        return found.results[0].entity

    entity = first("dynatrace glo")
    expect(entity.legal_name, "Dynatrace Global Finance GmbH", "first result")
    expect(entity.address.country_code, "CH", "its country")
    expect(first("Dynatarce Global").name, entity.name, "the typo finds it too")
    print("directory: first result", entity.legal_name, entity.name)
    return entity


def create_cosell_referral(api, rita, customer):
    """Rita asks the platform's sellers for help: a CO_SELL referral, NEW/PENDING."""
    solutions = api.catalog.ListSolutions(
        catalog.ListSolutionsRequest(query="contoso cloud", cosell_ready_only=True), metadata=rita
    ).solutions
    expect(len(solutions) > 0, True, "co-sell-ready solutions")
    contact = deals.Contact(
        first_name="Carla", last_name="Customer", email="carla@customer.example",
        phone="+1 425 555 0100",
    )
    referral = deals.Referral(
        display_name="Lakehouse for the Python client",
        deal_type=deals.DEAL_TYPE_CO_SELL,
        consent_to_share=True,
        customer=deals.Customer(entity=customer.name, contacts=[contact]),
        assistance=deals.Assistance(
            code=deals.ASSISTANCE_CODE_PROOF_OF_CONCEPT_OR_DEMO, notes="a pilot"
        ),
        solutions=[deals.ReferralSolution(solution=solutions[0].name)],
        team=[deals.Contact(
            first_name="Rita", last_name="Referrals", email="rita.referrals@contoso.com",
            phone="+1 425 555 0101",
        )],
        deal_value=deals.Money(currency_code="USD", amount="180000"),
        estimated_close_date="2027-09-30",
        notes="Pilot in Q2.",
    )
    created = api.referrals.CreateReferral(
        referrals.CreateReferralRequest(request_id=str(uuid.uuid4()), referral=referral),
        metadata=rita,
    ).referral
    expect(created.direction, deals.DIRECTION_OUTBOUND, "the new referral's tab")
    expect(created.deal_type, deals.DEAL_TYPE_CO_SELL, "its deal type")
    expect((created.status, created.substatus), (deals.STATUS_NEW, deals.SUBSTATUS_PENDING),
           "a co-sell request waits for a seller")
    expect(created.customer.legal_name, customer.legal_name, "the customer, from the directory")
    expect(created.HasField("seller_contact"), False, "no seller contact before one accepts")
    expect(bool(created.engagement), True, "an engagement")
    print("created", created.name, "CO_SELL NEW/PENDING for", created.customer.legal_name)
    return created


def seller_accepts(api, sam, rita, created):
    """Sam finds the request in his queue and accepts it; Rita then sees how to reach him."""
    queue = api.cosell.ListInvitations(
        cosell.ListInvitationsRequest(page_size=500), metadata=sam
    ).referrals
    invitation = next((r for r in queue if r.engagement == created.engagement), None)
    expect(invitation is not None, True, "the request is in the sellers' queue")
    expect((invitation.party, invitation.substatus),
           (deals.PARTY_PLATFORM, deals.SUBSTATUS_RECEIVED), "the platform's side waits")
    sam_contact = deals.Contact(first_name="Sam", last_name="Seller", phone="+1 206 555 0199")
    accepted = api.cosell.AcceptInvitation(
        cosell.AcceptInvitationRequest(name=invitation.name, seller_contact=sam_contact),
        metadata=sam,
    ).referral
    expect((accepted.status, accepted.substatus),
           (deals.STATUS_ACTIVE, deals.SUBSTATUS_ACCEPTED), "the platform's referral")
    ritas = api.referrals.GetReferral(
        referrals.GetReferralRequest(name=created.name), metadata=rita
    ).referral
    expect((ritas.status, ritas.substatus), (deals.STATUS_ACTIVE, deals.SUBSTATUS_ACCEPTED),
           "Rita's referral after Sam accepted")
    expect(ritas.seller_contact.email, "sam.seller@platform.example", "the seller Rita sees")
    print("accepted by", ritas.seller_contact.email, "; Rita's referral ACTIVE/ACCEPTED")


def export_files(customer):
    """A small PSC export of Contoso (PSC-EXPORT.md): one account at the Seattle location, a new
    hire and a personal address, a co-sell deal whose seller and customer are known, a
    partner-led one, a won one (not eligible) and a row with a bad date (skipped)."""
    city = customer.address.city.replace('"', '""')
    name = customer.legal_name.replace('"', '""')
    deals_csv = (
        "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,"
        "AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactFirstName,"
        "ContactLastName,ContactEmail,DealValue,Currency,EstimatedCloseDate,PartnerNotes\n"
        f'PY-1,"Analytics, from Python",PY-SEA,Open,2021-04-01T09:00:00Z,yes,Partner,'
        f'sam.seller@platform.example,"{name}","{city}",CH,Dana,Data,dana@customer.example,'
        "120000,EUR,2027-06-30,\"Pilot agreed, \"\"phase 1\"\" in Q3\"\n"
        "PY-2,Partner-led renewal,PY-SEA,Open,2022-01-10 08:00:00,no,Partner,,Northwind Traders,"
        ",NO,,,,,,,\n"
        "PY-3,Won already,PY-SEA,Won,2021-01-01T00:00:00Z,no,Partner,,,,,,,,,,,\n"
        "PY-4,Bad date,PY-SEA,Open,31/12/2021,no,Partner,,,,,,,,,,,\n"
    )
    return [
        ("accounts.csv", "PartnerAccountId,PartnerAccountName,MpnId\n"
                         "PY-SEA,Contoso Seattle (Python),4000002\n"),
        ("users.csv", "UserEmail,FirstName,LastName,PartnerAccountId,Role\n"
                      "nia.new@contoso.com,Nia,New,PY-SEA,Seller\n"
                      "nia.home@gmail.com,Nia,New,PY-SEA,Seller\n"),
        ("deals.csv", deals_csv),
        ("deal_products.csv", "DealId,ProductId,ProductName\n"
                              "PY-1,PSC-PROD-ANALYTICS,Contoso Analytics\n"),
        ("deal_team.csv", "DealId,FirstName,LastName,Email,Phone\n"
                          "PY-1,Rita,Referrals,rita.referrals@contoso.com,+1 425 555 0101\n"),
    ]


def upload(organization, files):
    """The client stream: the organization in the first message, then each file's chunks."""
    first = True
    for file_name, text in files:
        data = text.encode("utf-8")
        for start in range(0, len(data), CHUNK):
            yield migration.ImportPscExportRequest(
                organization=organization if first else "",
                file_name=file_name,
                chunk=data[start:start + CHUNK],
            )
            first = False


def deal_status(api, auth, organization):
    return api.migration.GetDealMigrationStatus(
        migration.GetDealMigrationStatusRequest(parent=organization), metadata=auth
    )


def ineligible(status):
    return {migration.IneligibleReason.Name(c.reason): c.deals for c in status.ineligible}


def import_export(api, ada, organization, customer):
    """Ada uploads the export; the good rows are kept, the bad one is listed, and the banner
    counts the new eligible deals."""
    before = deal_status(api, ada, organization)
    response = api.migration.ImportPscExport(
        upload(organization, export_files(customer)), metadata=ada
    )
    done = getattr(response, "import")  # a Python keyword, so not an attribute
    expect((done.accounts, done.users, done.deals_added, done.products, done.team_members),
           (1, 2, 3, 1, 1), "accounts, users, deals added, products, team members")
    expect([(e.file, e.line, e.column, e.id) for e in done.errors],
           [("deals.csv", 5, "CreatedDate", "PY-4")], "the row skipped")
    after = deal_status(api, ada, organization)
    expect(after.eligible, before.eligible + 2, "eligible deals after the import")
    won = ineligible(after).get("INELIGIBLE_REASON_WON", 0)
    expect(won, ineligible(before).get("INELIGIBLE_REASON_WON", 0) + 1, "won deals")
    expect(after.state, migration.DEAL_MIGRATION_STATE_NOT_STARTED, "the banner")
    expect(after.start_enabled, True, "start enabled")
    print(f"imported {done.name}: 3 deals added, 1 row skipped ({done.errors[0].reason});",
          f"{after.eligible} eligible")
    return after


def migrate_users(api, ada, organization):
    """Ada runs the user migration: the new hire becomes a referrals user at Seattle and can
    sign in; the personal address cannot migrate."""
    run = api.migration.RunUserMigration(
        migration.RunUserMigrationRequest(parent=organization), metadata=ada
    )
    rows = {(r.email, r.psc_account_id): r for r in run.rows}
    nia = rows[("nia.new@contoso.com", "PY-SEA")]
    expect(migration.UserMigrationStatus.Name(nia.status), "USER_MIGRATION_STATUS_MIGRATED",
           "Nia's row")
    expect((nia.pc_role, nia.pc_mpn_location), ("ROLE_REFERRALS_USER", "4000002"),
           "Nia's role and location")
    home = rows[("nia.home@gmail.com", "PY-SEA")]
    expect(migration.UserMigrationError.Name(home.error), "USER_MIGRATION_ERROR_CONSUMER_ACCOUNT",
           "the personal address")
    expect(bool(home.error_message), True, "the reason and its remedy")
    expect(run.migrated >= 1, True, "rows migrated by the run")
    me = api.caller(api.sign_in("nia.new@contoso.com"))
    expect(me.principal, nia.user, "Nia signs in as the migrated user")
    expect(grants(me), {("ROLE_REFERRALS_USER", "4000002")}, "Nia's grants")
    print(f"users: {run.migrated} migrated, {run.errors} in error; nia.new@contoso.com signs in")


def migrate_deals(api, rita, organization, eligible):
    """Rita starts the deal migration and watches the run to its end."""
    started = api.migration.StartDealMigration(
        migration.StartDealMigrationRequest(parent=organization), metadata=rita
    ).run
    expect(started.total, eligible, "deals the run takes")
    watch = api.migration.WatchDealMigration(
        migration.WatchDealMigrationRequest(parent=organization), metadata=rita
    )
    seen = [m.status for m in watch]
    expect(len(seen) > 0, True, "messages of the watch")
    percents = [s.percent_done for s in seen]
    expect(percents, sorted(percents), "progress never goes back")
    last = seen[-1]
    expect(last.run.name, started.name, "the run watched")
    expect(last.run.HasField("finish_time"), True, "the run finished")
    expect((last.run.total, last.run.migrated, last.run.failed, last.run.pending),
           (eligible, eligible, 0, 0), "total, migrated, failed, pending")
    expect(last.percent_done, 100, "percent done")
    expect(last.state, migration.DEAL_MIGRATION_STATE_NOTHING_TO_MIGRATE, "the banner after")
    expect(last.start_enabled, False, "start disabled")
    print(f"deal migration: {len(seen)} messages watched, {last.run.migrated} of",
          f"{last.run.total} migrated")
    return last.run


def report_rows(api, rita, organization):
    """MigrationService/ListDealMigrationReport, every page (small pages, to page)."""
    rows, page_token = [], ""
    while True:
        page = api.migration.ListDealMigrationReport(
            migration.ListDealMigrationReportRequest(
                parent=organization, page_size=2, page_token=page_token
            ),
            metadata=rita,
        )
        rows.extend(page.results)
        page_token = page.next_page_token
        if not page_token:
            return rows


def download_report(api, rita, organization):
    """MigrationService/DownloadDealMigrationReport: the CSV file, a server stream of chunks
    appended one to the next; its records."""
    pieces = api.migration.DownloadDealMigrationReport(
        migration.DownloadDealMigrationReportRequest(parent=organization), metadata=rita
    )
    data = b"".join(piece.chunk for piece in pieces)
    expect(data.endswith(b"\n"), True, "the file ends with its last record")
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def check_download(api, rita, organization, rows):
    """The downloaded CSV holds the header and the listed rows, ids without collections."""
    records = download_report(api, rita, organization)
    expect(records[0], ["psc_deal_id", "deal_name", "engagement_id", "referral_id", "deal_type",
                        "direction", "error", "customer_match"], "the CSV header")
    outcome = migration.CustomerMatchOutcome.Name
    listed = [[r.psc_deal_id, r.deal_name, r.engagement.removeprefix("engagements/"),
               r.referral.removeprefix("referrals/"), r.deal_type, r.direction, r.error,
               outcome(r.customer_match).removeprefix("CUSTOMER_MATCH_OUTCOME_")]
              for r in rows]
    expect(records[1:], listed, "the CSV rows, as listed")
    print(f"downloaded: header and {len(records) - 1} rows, as listed")


def check_report(api, rita, organization, run, customer):
    """The report: one row per deal of the run, all migrated; the co-sell deal arrived with
    Sam accepted, the customer from the directory and the catalog's solution."""
    rows = report_rows(api, rita, organization)
    expect(len(rows), run.total, "report rows")
    expect([r.psc_deal_id for r in rows], sorted(r.psc_deal_id for r in rows), "by PSC deal id")
    expect({r.state for r in rows}, {"MIGRATED"}, "every row's state")
    by_id = {r.psc_deal_id: r for r in rows}
    expect("PY-3" in by_id or "PY-4" in by_id, False, "the won and the skipped deals")
    py1, py2 = by_id["PY-1"], by_id["PY-2"]
    expect((py1.deal_name, py1.deal_type, py1.direction, py1.error),
           ("Analytics, from Python", "CO_SELL", "OUTBOUND", ""), "PY-1's row")
    expect((py2.deal_type, py2.direction), ("PARTNER_LED", "OUTBOUND"), "PY-2's row")
    expect(py1.customer_match, migration.CUSTOMER_MATCH_OUTCOME_MATCHED, "PY-1's customer")
    expect(all(r.referral and r.engagement for r in rows), True, "referral and engagement")
    check_download(api, rita, organization, rows)

    got = api.referrals.GetReferral(
        referrals.GetReferralRequest(name=py1.referral), metadata=rita
    ).referral
    expect(got.tracking.psc_deal_id, "PY-1", "the referral's PSC deal id")
    expect(got.engagement, py1.engagement, "its engagement")
    expect((got.deal_type, got.status), (deals.DEAL_TYPE_CO_SELL, deals.STATUS_ACTIVE),
           "the migrated co-sell deal")
    expect(got.seller_contact.email, "sam.seller@platform.example", "accepted in Sam's name")
    expect((got.customer.entity, got.customer.match),
           (customer.name, deals.CUSTOMER_MATCH_MATCHED), "the customer, matched")
    expect([s.display_name for s in got.solutions], ["Contoso Cloud Analytics"],
           "PSC-PROD-ANALYTICS became the catalog's solution")
    print(f"report: {len(rows)} rows, all MIGRATED; PY-1 {py1.referral} CO_SELL OUTBOUND")


def main(address):
    api = Cosell(address)
    organization = sign_in_and_no_access(api)
    rita = api.sign_in("rita.referrals@contoso.com")
    customer = search_directory(api, rita)
    created = create_cosell_referral(api, rita, customer)
    seller_accepts(api, api.sign_in("sam.seller@platform.example"), rita, created)

    ada = api.sign_in("ada.admin@contoso.com")
    status = import_export(api, ada, organization, customer)
    migrate_users(api, ada, organization)
    run = migrate_deals(api, rita, organization, status.eligible)
    check_report(api, rita, organization, run, customer)
    print("python client: the whole story passed")


if __name__ == "__main__":
    main(sys.argv[1])
