import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateIdentityPem, identityFromPem } from '../../crypto/index.js';
import { CliError, EXIT_CANT_CREATE } from './exit-codes.js';

/** 32 random bytes: well past the config's minimum, and URL-safe to paste into YAML. */
const TOKEN_BYTES = 32;

export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/**
 * Writes a new Ed25519 identity key (PKCS#8 PEM, mode 0600) and returns its public key
 * in base64, the value a peer may pin as `identity_key`. Never overwrites a key unless
 * told to: a server's identity is pinned by its peers.
 */
export function writeIdentityKey(file: string, overwrite = false): string {
  if (existsSync(file) && !overwrite) {
    throw new CliError(`${file} already exists; peers may have pinned it. Use --force to replace it`, EXIT_CANT_CREATE);
  }
  const pem = generateIdentityPem();
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, pem, { mode: 0o600 });
  } catch (error) {
    throw new CliError(`cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, EXIT_CANT_CREATE);
  }
  return Buffer.from(identityFromPem(pem).publicKey).toString('base64');
}
