// An agency's identity provider for tests: the certified `oidc-provider` package, its built-in
// development sign-in pages (any password; the account name picks one of ACCOUNTS), one client
// for Hanchang with PKCE, and the claims Hanchang maps to an agency and a role.
// Usage: PORT=… CLIENT_SECRET=… REDIRECT_URI=… POST_LOGOUT_URI=… node provider.mjs
import Provider from "oidc-provider";

const ACCOUNTS = {
  "kim.sso": { name: "김한창", preferred_username: "kim.sso", email: "kim@mois.go.kr", email_verified: true, agency: "MOIS", roles: ["employee"] },
  "boss.sso": { name: "박관리", preferred_username: "boss.sso", email: "boss@mois.go.kr", agency: "MOIS", roles: ["employee", "ai-admin"] },
  "hong": { name: "홍길동", preferred_username: "hong", email: "hong@mois.go.kr", email_verified: true, agency: "MOIS", roles: ["employee"] },
  "hong.unverified": { name: "홍길동", preferred_username: "hong", email: "hong@mois.go.kr", email_verified: false, agency: "MOIS", roles: ["employee"] },
  // Another person at the provider who calls themselves by kim.sso's name (a second subject).
  "kim.other": { name: "김다른", preferred_username: "kim.sso", email: "kim@mois.go.kr", email_verified: true, agency: "MOIS", roles: ["employee"] },
  "nowhere": { name: "무소속", preferred_username: "nowhere", email: "x@example.org", agency: "NOPE", roles: [] },
};

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: "hanchang",
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: [process.env.POST_LOGOUT_URI],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  scopes: ["openid", "profile", "email", "agency"],
  claims: { openid: ["sub"], profile: ["name", "preferred_username"], email: ["email", "email_verified"], agency: ["agency", "roles"] },
  conformIdTokenClaims: false, // the claims asked for by scope go in the ID token too
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ["hanchang-test-provider-cookie-key"] },
  async findAccount(_ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});
provider.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ issuer })));
