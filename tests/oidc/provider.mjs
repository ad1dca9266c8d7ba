// A certified OpenID provider (panva's oidc-provider) for the OAuth tests, on loopback.
//
// Configured by the JSON in OIDC_TEST_CONFIG:
//   {"port": 4000, "jwk": {private RSA JWK}, "cookie_key": "...",
//    "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "accounts": {"alice": {"email": "alice@example.com", "email_verified": true}}}
// Its login and consent forms are oidc-provider's development interactions: any login
// named in "accounts" signs in, whatever the password. PKCE (S256) is required.
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [config.jwk] },
  cookies: { keys: [config.cookie_key] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});

// Development interactions log a warning on every start: not an error here.
provider.on('server_error', (ctx, error) => { console.error('server_error', error); });
provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
