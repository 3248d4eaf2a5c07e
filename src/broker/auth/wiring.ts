/**
 * Builds the per-user identity policy from the `access` section (called by the wiring point, src/server.ts):
 * reads the HMAC secret and the PEM public keys once at start, so a missing file or variable stops the start
 * with its config path instead of refusing every client later.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config/load.js';
import { jwtConfigured, type AccessSection, type JwtSection } from '../../config/schema.js';
import type { AccessPolicy, ConfigAccessPolicy } from '../access.js';
import type { BrokerStats } from '../stats.js';
import { ConnectHook, type FetchLike } from './connect-hook.js';
import { completeRules } from './identity.js';
import type { JwtOptions } from './jwt.js';
import { IdentityAccessPolicy } from './policy.js';

export interface IdentityWiring {
  env?: NodeJS.ProcessEnv;
  /** The connect hook's fetch (Node's own by default). */
  fetch?: FetchLike;
}

/**
 * `configured` alone when neither access.jwt nor access.connectHook is set; else the identity policy over it.
 * The JWT verifier (and jose with it) is imported only when access.jwt is configured: a broker without it
 * keeps that code out of its heap, which every major GC walks (bench/results.md, "Heap at start").
 */
export async function identityPolicyFrom(section: AccessSection, configured: ConfigAccessPolicy, stats: BrokerStats, wiring: IdentityWiring = {}): Promise<AccessPolicy> {
  let jwt = null;
  if (jwtConfigured(section.jwt)) {
    const options = jwtOptionsFrom(section.jwt, wiring.env ?? process.env);
    const { JwtVerifier } = await import('./jwt.js');
    jwt = new JwtVerifier(options);
  }
  const hookSection = section.connectHook;
  const hook = hookSection.url.length > 0 ? new ConnectHook(hookSection, stats, wiring.fetch) : null;
  if (jwt === null && hook === null) return configured;
  return new IdentityAccessPolicy(configured, jwt, hook, stats, section.maxFramesWhileAdmitting, section.maxBytesWhileAdmitting);
}

export function jwtOptionsFrom(section: JwtSection, env: NodeJS.ProcessEnv): JwtOptions {
  const problems: string[] = [];
  let secret: Uint8Array | null = null;
  if (section.secret.length > 0) secret = Buffer.from(section.secret, 'utf8');
  else if (section.secretFile.length > 0) {
    try {
      // A trailing newline (echo > file) is not part of the secret.
      secret = Buffer.from(readFileSync(section.secretFile, 'utf8').replace(/\r?\n$/, ''), 'utf8');
    } catch (error) {
      problems.push(`access.jwt.secretFile: cannot read ${section.secretFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else if (section.secretEnv.length > 0) {
    const value = env[section.secretEnv];
    if (value === undefined || value.length === 0) problems.push(`access.jwt.secretEnv: the variable ${section.secretEnv} is not set`);
    else secret = Buffer.from(value, 'utf8');
  }
  if (secret !== null && secret.length < 32) problems.push('access.jwt: the HMAC secret needs at least 32 bytes');
  const publicKeys: KeyObject[] = [];
  section.publicKeyFiles.forEach((file, i) => {
    try {
      const key = createPublicKey(readFileSync(file));
      publicKeys.push(key);
    } catch (error) {
      problems.push(`access.jwt.publicKeyFiles[${i}]: cannot read a PEM public key from ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  });
  if (problems.length > 0) throw new ConfigError('access.jwt', problems);
  return {
    hmacSecret: secret,
    publicKeys,
    jwks: section.jwksUrl.length > 0
      ? { url: new URL(section.jwksUrl), cacheMs: section.jwksCacheMs, cooldownMs: section.jwksCooldownMs, timeoutMs: section.jwksTimeoutMs }
      : null,
    issuer: section.issuer,
    audience: section.audience,
    algorithms: section.algorithms,
    clockToleranceSec: section.clockToleranceSec,
    defaultPermissions: completeRules(section.defaultPermissions),
  };
}
