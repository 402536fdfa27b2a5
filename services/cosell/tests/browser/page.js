// A web page's calls to cosell through gRPC-Web, with code generated from proto/ by
// @bufbuild/protoc-gen-es and @connectrpc/connect-web's gRPC-Web transport, loaded by the
// browser as ES modules (browser.rs serves them with an import map). The server's address is
// the page's `server` query parameter. Each step writes a line into <pre id="result">; the last
// line is "browser: passed", or "failed: ..." at the first surprise (a refused origin fails at
// the first call). At the end the lines are posted to `/done` on the page's own origin.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { TokenService } from "./gen/cosell/identity/v1/token_service_pb.js";
import { DirectoryService } from "./gen/cosell/directory/v1/directory_service_pb.js";
import { ReferralService } from "./gen/cosell/deals/v1/referral_service_pb.js";

const result = document.getElementById("result");
const say = (line) => {
  result.textContent += line + "\n";
};

async function main() {
  const baseUrl = new URLSearchParams(location.search).get("server");
  let token = "";
  const transport = createGrpcWebTransport({
    baseUrl,
    interceptors: [
      (next) => async (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return await next(req);
      },
    ],
  });

  const signedIn = await createClient(TokenService, transport).signInWithEmail({
    email: "rita.referrals@contoso.com",
  });
  if (!signedIn.accessToken) throw new Error("no token");
  token = signedIn.accessToken;
  say(`signed in ${signedIn.user}`);

  const found = await createClient(DirectoryService, transport).searchEntities({
    query: "dynatrace glo",
    pageSize: 3,
  });
  say(`directory: ${found.results[0]?.entity?.legalName}`);

  try {
    await createClient(ReferralService, transport).getReferral({
      name: "referrals/00000000-0000-7000-8000-000000000000",
    });
    throw new Error("a referral that does not exist was found");
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code !== Code.NotFound) throw e;
    say(`error: ${Code[e.code]} ${e.rawMessage}`);
  }
  say("browser: passed");
}

// The lines go back to the test through the page's own origin once the work is done.
main()
  .catch((err) => say(`failed: ${err && err.message ? err.message : err}`))
  .finally(() => fetch("/done", { method: "POST", body: result.textContent }));
