// A Node.js client: @grpc/grpc-js with @grpc/proto-loader, loading proto/ at run time (no code
// generation), driving `cosell serve --demo`.
//
// Run by clients.rs with the npm packages on NODE_PATH; argument: the server address. Rita signs
// in, finds the customer in the directory, creates a partner-led referral (and retries the create
// with the same request id), and finds it in her Outbound tab. Each step checks what a user would
// look at and prints one line; a failed check exits 1.

'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.join(__dirname, '..', '..', '..', 'proto');

/// The packages of the proto files, field names as the protos spell them, enums as their names.
function loadProtos() {
  const files = [
    'cosell/identity/v1/token_service.proto',
    'cosell/directory/v1/directory_service.proto',
    'cosell/deals/v1/catalog_service.proto',
    'cosell/deals/v1/referral_service.proto',
  ];
  const definition = protoLoader.loadSync(files, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).cosell;
}

/// One service's client whose unary calls return promises; `auth` is the call metadata.
function service(Client, address, auth) {
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Proxy(client, {
    get(target, method) {
      return (request) =>
        new Promise((resolve, reject) =>
          target[method](request, auth || new grpc.Metadata(), (err, response) =>
            err ? reject(err) : resolve(response),
          ),
        );
    },
  });
}

async function signIn(cosell, address, email) {
  const tokens = service(cosell.identity.v1.TokenService, address);
  const signedIn = await tokens.SignInWithEmail({ email });
  assert.match(signedIn.user, /^organizations\/[^/]+\/users\//, 'the signed-in user');
  assert.ok(signedIn.access_token, 'a token');
  const auth = new grpc.Metadata();
  auth.set('authorization', `Bearer ${signedIn.access_token}`);
  console.log('signed in', email, signedIn.user);
  return auth;
}

async function searchDirectory(directory) {
  const found = await directory.SearchEntities({ query: 'dynatrace glo', page_size: 3 });
  assert.ok(found.results.length > 0, 'results');
  const entity = found.results[0].entity;
  assert.equal(entity.legal_name, 'Dynatrace Global Finance GmbH', 'the first result');
  assert.equal(entity.address.country_code, 'CH', 'its country');
  console.log('directory: first result', entity.legal_name, entity.name);
  return entity;
}

async function createReferral(catalog, referrals, customer) {
  const { solutions } = await catalog.ListSolutions({
    query: 'contoso cloud',
    cosell_ready_only: true,
  });
  assert.ok(solutions.length > 0, 'a co-sell-ready solution');
  const request = {
    request_id: crypto.randomUUID(),
    referral: {
      display_name: 'Analytics rollout from Node.js',
      deal_type: 'DEAL_TYPE_PARTNER_LED',
      consent_to_share: true,
      customer: { entity: customer.name },
      solutions: [{ solution: solutions[0].name }],
      deal_value: { currency_code: 'EUR', amount: '95000' },
      estimated_close_date: '2027-11-30',
    },
  };
  const { referral } = await referrals.CreateReferral(request);
  assert.equal(referral.deal_type, 'DEAL_TYPE_PARTNER_LED', 'its deal type');
  assert.equal(referral.direction, 'DIRECTION_OUTBOUND', 'its tab');
  assert.deepEqual(
    [referral.status, referral.substatus],
    ['STATUS_ACTIVE', 'SUBSTATUS_ACCEPTED'],
    'a partner-led referral starts active',
  );
  assert.equal(referral.customer.legal_name, customer.legal_name, 'the customer, from the directory');
  assert.equal(referral.customer.match, 'CUSTOMER_MATCH_MATCHED', 'matched to the directory');
  assert.deepEqual(
    referral.solutions.map((s) => s.display_name),
    [solutions[0].display_name],
    'its solution',
  );
  const retried = await referrals.CreateReferral(request);
  assert.equal(retried.referral.name, referral.name, 'a retry returns the first referral');
  console.log('created', referral.name, 'PARTNER_LED ACTIVE/ACCEPTED; a retry created nothing');
  return referral;
}

async function listReferrals(referrals, created) {
  const outbound = await referrals.ListReferrals({
    direction: 'DIRECTION_OUTBOUND',
    page_size: 5,
  });
  assert.ok(outbound.referrals.length > 1, 'the demo and the new referral');
  assert.equal(outbound.referrals[0].name, created.name, 'newest first');
  for (const r of outbound.referrals) {
    assert.equal(r.direction, 'DIRECTION_OUTBOUND', `${r.name} in the Outbound tab`);
  }
  const mine = await referrals.ListReferrals({
    customer_name: 'dynatrace global',
    deal_type: 'DEAL_TYPE_PARTNER_LED',
  });
  assert.ok(mine.referrals.some((r) => r.name === created.name), 'the filters find it');
  for (const r of mine.referrals) {
    assert.equal(r.deal_type, 'DEAL_TYPE_PARTNER_LED', `${r.name}'s deal type`);
    assert.match(r.customer.legal_name, /dynatrace global/i, `${r.name}'s customer`);
  }
  console.log(`listed: newest of ${outbound.referrals.length} Outbound; the filters find it`);
}

async function main(address) {
  const cosell = loadProtos();
  const rita = await signIn(cosell, address, 'rita.referrals@contoso.com');
  const directory = service(cosell.directory.v1.DirectoryService, address, rita);
  const catalog = service(cosell.deals.v1.CatalogService, address, rita);
  const referrals = service(cosell.deals.v1.ReferralService, address, rita);

  const customer = await searchDirectory(directory);
  const created = await createReferral(catalog, referrals, customer);
  await listReferrals(referrals, created);
  console.log('node client: sign in, search, create and list passed');
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(1);
});
