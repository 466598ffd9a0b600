// HS256 JSON Web Tokens for tests (node:crypto only): hs256({sub: 'alice'}, secret) -> token.
// `exp` defaults to one hour from now.

import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function hs256(claims, secret) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
  return `${header}.${body}.${sig}`;
}
