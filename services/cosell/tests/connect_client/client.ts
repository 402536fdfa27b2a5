// A TypeScript client generated from proto/ alone by @bufbuild/protoc-gen-es, calling
// `cosell serve --demo` through @connectrpc/connect-node: the Connect protocol, JSON, unary calls
// over HTTP/1.1 and streams over HTTP/2 (Node's HTTP/1.1 cannot send a request stream).
//
// Compiled by tsc and run by connect_clients.rs; argument: the server address. Rita signs in,
// searches the directory, creates a referral and finds it listed; a call for a referral that does
// not exist fails with its details; Ada uploads a small PSC export (a client stream) and Rita
// starts the deal migration and watches it to its end (a server stream). Each step checks what a
// user would look at and prints one line; a failed check exits 1.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

import { TokenService } from "./gen/cosell/identity/v1/token_service_pb";
import { DirectoryService } from "./gen/cosell/directory/v1/directory_service_pb";
import { CatalogService } from "./gen/cosell/deals/v1/catalog_service_pb";
import { ReferralService } from "./gen/cosell/deals/v1/referral_service_pb";
import { CustomerMatch, DealType, Direction, Status, Substatus } from "./gen/cosell/deals/v1/resources_pb";
import { MigrationService } from "./gen/cosell/migration/v1/migration_service_pb";

type Http = "1.1" | "2";

function transport(address: string, httpVersion: Http, token?: string): Transport {
  const bearer: Interceptor = (next) => async (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return await next(req);
  };
  return createConnectTransport({
    baseUrl: `http://${address}`,
    httpVersion,
    useBinaryFormat: false,
    interceptors: [bearer],
  });
}

async function signIn(address: string, email: string) {
  const tokens = createClient(TokenService, transport(address, "1.1"));
  const signedIn = await tokens.signInWithEmail({ email });
  assert.match(signedIn.user, /^organizations\/[^/]+\/users\//, "the signed-in user");
  assert.ok(signedIn.accessToken, "a token");
  console.log("signed in", email, signedIn.user);
  return { token: signedIn.accessToken, organization: signedIn.user.split("/users/")[0] };
}

async function searchCreateList(address: string, token: string) {
  const directory = createClient(DirectoryService, transport(address, "1.1", token));
  const found = await directory.searchEntities({ query: "dynatrace glo", pageSize: 3 });
  const entity = found.results[0]?.entity;
  assert.equal(entity?.legalName, "Dynatrace Global Finance GmbH", "the first result");
  assert.equal(entity?.address?.countryCode, "CH", "its country");
  console.log("directory: first result", entity.legalName, entity.name);

  const catalog = createClient(CatalogService, transport(address, "1.1", token));
  const { solutions } = await catalog.listSolutions({ query: "contoso cloud", cosellReadyOnly: true });
  assert.ok(solutions.length > 0, "a co-sell-ready solution");

  const referrals = createClient(ReferralService, transport(address, "1.1", token));
  const request = {
    requestId: randomUUID(),
    referral: {
      displayName: "Analytics rollout from TypeScript",
      dealType: DealType.PARTNER_LED,
      consentToShare: true,
      customer: { entity: entity.name },
      solutions: [{ solution: solutions[0].name }],
      dealValue: { currencyCode: "EUR", amount: "95000" },
      estimatedCloseDate: "2027-11-30",
    },
  };
  const { referral } = await referrals.createReferral(request);
  assert.ok(referral, "the referral");
  assert.equal(referral.dealType, DealType.PARTNER_LED, "its deal type");
  assert.deepEqual([referral.status, referral.substatus], [Status.ACTIVE, Substatus.ACCEPTED], "active, accepted");
  assert.equal(referral.customer?.match, CustomerMatch.MATCHED, "matched to the directory");
  const retried = await referrals.createReferral(request);
  assert.equal(retried.referral?.name, referral.name, "a retry returns the first referral");
  console.log("created", referral.name, "PARTNER_LED ACTIVE/ACCEPTED; a retry created nothing");

  const outbound = await referrals.listReferrals({ direction: Direction.OUTBOUND, pageSize: 5 });
  assert.equal(outbound.referrals[0]?.name, referral.name, "newest first");
  console.log(`listed: newest of ${outbound.referrals.length} Outbound`);

  try {
    await referrals.getReferral({ name: "referrals/00000000-0000-7000-8000-000000000000" });
    assert.fail("a referral that does not exist");
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(e.code, Code.NotFound, `not found: ${e.message}`);
    const info = e.details.find((d) => "type" in d && d.type === "google.rpc.ErrorInfo");
    assert.ok(info && "debug" in info, "an ErrorInfo detail");
    assert.equal((info.debug as { domain?: string }).domain, "deals.cosell", "its domain");
    console.log("error:", Code[e.code], e.rawMessage, "with", e.details.length, "detail(s)");
  }

  try {
    await referrals.createReferral({ requestId: randomUUID(), referral: { displayName: "" } });
    assert.fail("an empty referral");
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(e.code, Code.InvalidArgument, e.message);
    const bad = e.details.find((d) => "type" in d && d.type === "google.rpc.BadRequest");
    const fields = ((bad as { debug?: { fieldViolations?: { field: string }[] } })?.debug?.fieldViolations ?? [])
      .map((v) => v.field);
    assert.ok(fields.some((f) => f.startsWith("referral.")), `the fields named: ${fields}`);
    console.log("error:", Code[e.code], "fields", fields.join(", "));
  }
}

/// A small PSC export (PSC-EXPORT.md): one account, one user, two open deals.
function exportFiles(): [string, string][] {
  return [
    ["accounts.csv", "PartnerAccountId,PartnerAccountName,MpnId\nTS-SEA,Contoso Seattle (TypeScript),4000002\n"],
    ["users.csv", "UserEmail,FirstName,LastName,PartnerAccountId,Role\ntess.script@contoso.com,Tess,Script,TS-SEA,Seller\n"],
    [
      "deals.csv",
      "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n" +
        "TS-1,Renewal from TypeScript,TS-SEA,Open,2022-01-10T08:00:00Z,no,Partner\n" +
        "TS-2,Expansion from TypeScript,TS-SEA,Open,2022-02-10T08:00:00Z,no,Partner\n",
    ],
    ["deal_products.csv", "DealId,ProductId,ProductName\n"],
    ["deal_team.csv", "DealId,FirstName,LastName,Email,Phone\n"],
  ];
}

async function importAndMigrate(address: string, admin: string, rita: string, organization: string) {
  const migration = createClient(MigrationService, transport(address, "2", admin));
  async function* upload() {
    let first = true;
    for (const [fileName, text] of exportFiles()) {
      yield { organization: first ? organization : "", fileName, chunk: new TextEncoder().encode(text) };
      first = false;
    }
  }
  const imported = (await migration.importPscExport(upload())).import;
  assert.equal(imported?.dealsAdded, 2n, "deals added");
  assert.equal(imported?.errors.length, 0, "no row skipped");
  console.log("imported", imported?.name, "2 deals added (a client stream)");

  const ritas = createClient(MigrationService, transport(address, "2", rita));
  const before = await ritas.getDealMigrationStatus({ parent: organization });
  assert.ok(before.eligible >= 2n, `eligible deals: ${before.eligible}`);
  const { run } = await ritas.startDealMigration({ parent: organization });
  assert.equal(run?.total, before.eligible, "the run takes every eligible deal");

  const seen = [];
  for await (const message of ritas.watchDealMigration({ parent: organization })) {
    seen.push(message.status);
  }
  assert.ok(seen.length > 0, "messages of the watch");
  const percents = seen.map((s) => s?.percentDone ?? 0);
  assert.deepEqual(percents, [...percents].sort((a, b) => a - b), "progress never goes back");
  const last = seen[seen.length - 1]?.run;
  assert.equal(last?.name, run?.name, "the run watched");
  assert.ok(last?.finishTime, "the run finished");
  assert.deepEqual([last?.migrated, last?.failed, last?.pending], [run?.total, 0n, 0n], "all migrated");
  console.log(`deal migration: ${seen.length} messages watched (a server stream), ${last?.migrated} migrated`);
}

async function main(address: string) {
  const rita = await signIn(address, "rita.referrals@contoso.com");
  await searchCreateList(address, rita.token);
  const ada = await signIn(address, "ada.admin@contoso.com");
  await importAndMigrate(address, ada.token, rita.token, rita.organization);
  console.log("typescript client: sign in, search, create, list, errors, import and watch passed");
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(1);
});
