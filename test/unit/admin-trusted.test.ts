/**
 * The admin endpoints' trusted-address list (http.adminTrusted, docs/operations.md section 6): addresses and
 * CIDR blocks of both families, IPv4-mapped IPv6 addresses matched as IPv4, and the config's validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOOPBACK, TrustedAddresses, trustedEntryProblem } from '../../src/http/admin/trusted.js';
import { configFrom, ConfigError } from '../../src/config/load.js';

test('loopback by default: 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6', () => {
  const trusted = new TrustedAddresses(LOOPBACK);
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::FFFF:127.0.0.9']) assert.equal(trusted.has(a), true, a);
  for (const a of ['10.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', 'fe80::1', '', 'localhost', undefined]) assert.equal(trusted.has(a), false, String(a));
});

test('CIDR blocks and single addresses of both families', () => {
  const trusted = new TrustedAddresses(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '2001:db8::5']);
  assert.equal(trusted.has('10.255.3.4'), true);
  assert.equal(trusted.has('::ffff:10.1.1.1'), true, 'IPv4-mapped');
  assert.equal(trusted.has('11.0.0.1'), false);
  assert.equal(trusted.has('192.168.1.7'), true);
  assert.equal(trusted.has('192.168.1.8'), false);
  assert.equal(trusted.has('fd12:3456::1'), true);
  assert.equal(trusted.has('fe00::1'), false);
  assert.equal(trusted.has('2001:db8::5'), true);
  assert.equal(trusted.has('2001:db8::6'), false);
  assert.equal(trusted.has('127.0.0.1'), false, 'loopback is not trusted unless listed');
});

test('an empty list trusts nobody; 0.0.0.0/0 and ::/0 trust everybody', () => {
  assert.equal(new TrustedAddresses([]).has('127.0.0.1'), false);
  const all = new TrustedAddresses(['0.0.0.0/0', '::/0']);
  for (const a of ['1.2.3.4', '127.0.0.1', '::1', '2001:db8::1', '::ffff:8.8.8.8']) assert.equal(all.has(a), true, a);
});

test('trustedEntryProblem names what is wrong', () => {
  assert.equal(trustedEntryProblem('10.0.0.0/8'), '');
  assert.equal(trustedEntryProblem('::1'), '');
  assert.match(trustedEntryProblem('localhost'), /not an IP address or CIDR block/);
  assert.match(trustedEntryProblem('10.0.0.0/33'), /prefix length must be 0\.\.32/);
  assert.match(trustedEntryProblem('fd00::/129'), /prefix length must be 0\.\.128/);
  assert.match(trustedEntryProblem('10.0.0.0/'), /prefix length/);
  assert.match(trustedEntryProblem('10.0.0.0/8x'), /prefix length/);
  assert.match(trustedEntryProblem('300.0.0.1'), /not an IP address/);
  assert.throws(() => new TrustedAddresses(['nope']), /not an IP address/);
});

test('config: http.adminTrusted is a list of addresses, checked at load; protectMetrics a boolean', () => {
  const problems = (partial: unknown): string[] => {
    try {
      configFrom(partial, 'test');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.problems;
    }
    return [];
  };
  assert.deepEqual(configFrom({}, 'test').http.adminTrusted, ['127.0.0.0/8', '::1']);
  assert.equal(configFrom({}, 'test').http.protectMetrics, false);
  assert.deepEqual(configFrom({ http: { adminTrusted: ['10.0.0.0/8'] } }, 'test').http.adminTrusted, ['10.0.0.0/8'], 'a list replaces the default');
  assert.deepEqual(problems({ http: { adminTrusted: '127.0.0.1' } }), [
    'http.adminTrusted: expected a list of addresses and CIDR blocks (e.g. ["127.0.0.0/8", "::1"]), got string "127.0.0.1"',
  ]);
  assert.deepEqual(problems({ http: { adminTrusted: ['127.0.0.1', 'intranet', '10.0.0.0/40'] } }), [
    "http.adminTrusted: 'intranet' is not an IP address or CIDR block (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)",
    "http.adminTrusted: '10.0.0.0/40': the prefix length must be 0..32",
  ]);
  assert.deepEqual(problems({ http: { protectMetrics: 'yes' } }), ['http.protectMetrics: expected true or false, got string "yes"']);
});

test('env: SOCKETD_HTTP__ADMIN_TRUSTED takes a YAML list', async () => {
  const { configFromEnv } = await import('../../src/config/env.js');
  const env = configFromEnv({ SOCKETD_HTTP__ADMIN_TRUSTED: '[10.0.0.0/8, "::1"]', SOCKETD_HTTP__PROTECT_METRICS: 'true' });
  assert.deepEqual(env.problems, []);
  assert.deepEqual(env.partial, { http: { adminTrusted: ['10.0.0.0/8', '::1'], protectMetrics: true } });
});
