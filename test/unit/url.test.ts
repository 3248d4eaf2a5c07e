/**
 * Handshake parameters (spec §3): the Connect URL's query, not decoded, overlaid by the Connect metas.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { handshakeParams, urlPath, urlQuery } from '../../src/protocol/url.js';

describe('urlQuery', () => {
  test('the raw query of the reference Connect URLs', () => {
    assert.equal(urlQuery('tcp://127.0.0.1:18632?@=svc'), '@=svc');
    assert.equal(urlQuery('ws://127.0.0.1:8603/?@=svc'), '@=svc');
    assert.equal(urlQuery('tcp://127.0.0.1:18632'), '');
  });

  test('no query, an empty query', () => {
    assert.equal(urlQuery('tcp://host:8602/path'), '');
    assert.equal(urlQuery('tcp://host:8602/path?'), '');
    assert.equal(urlQuery(''), '');
  });

  test('the query is not decoded', () => {
    assert.equal(urlQuery('tcp://h/p?a=%20&b=x+y&c=%26'), 'a=%20&b=x+y&c=%26');
  });

  test('a #fragment is ignored', () => {
    assert.equal(urlQuery('tcp://h/p?@=svc#frag'), '@=svc');
    assert.equal(urlQuery('tcp://h/p?@=svc#'), '@=svc');
    assert.equal(urlQuery('tcp://h/p?#frag'), '');
    assert.equal(urlQuery('tcp://h/p?a=1#x?b=2'), 'a=1');
  });

  test('a "?" inside the fragment starts no query', () => {
    assert.equal(urlQuery('tcp://h/p#frag?@=svc'), '');
    assert.equal(handshakeParams('tcp://h/p#x?@=svc', '').size, 0);
  });

  test('only the first "?" starts the query; later ones belong to it', () => {
    assert.equal(urlQuery('tcp://h/p?a=1?b=2'), 'a=1?b=2');
  });
});

describe('handshakeParams', () => {
  test('query parameters, not decoded', () => {
    const params = handshakeParams('tcp://h:8602/p?@=orders&token=a%20b', '');
    assert.deepEqual([...params], [['@', 'orders'], ['token', 'a%20b']]);
  });

  test('metas override query parameters; other keys of both are kept', () => {
    const params = handshakeParams('tcp://h/p?@=fromQuery&token=q&onlyQuery=1', 'Socket.D=1.0&@=fromMeta&token=m');
    assert.equal(params.get('@'), 'fromMeta');
    assert.equal(params.get('token'), 'm');
    assert.equal(params.get('onlyQuery'), '1');
    assert.equal(params.get('Socket.D'), '1.0');
    assert.equal(params.size, 4);
  });

  test('no query: the metas alone; neither: empty', () => {
    assert.deepEqual([...handshakeParams('tcp://127.0.0.1:18632', 'Socket.D=1.0')], [['Socket.D', '1.0']]);
    assert.equal(handshakeParams('tcp://127.0.0.1:18632', '').size, 0);
  });

  test('the fragment takes no part', () => {
    const params = handshakeParams('ws://h/?@=svc#token=x', '');
    assert.deepEqual([...params], [['@', 'svc']]);
  });

  test('the reference Connect frames: query @=svc and meta Socket.D=1.0', () => {
    const params = handshakeParams('tcp://127.0.0.1:18632?@=svc', 'Socket.D=1.0');
    assert.deepEqual(Object.fromEntries(params), { '@': 'svc', 'Socket.D': '1.0' });
  });
});

describe('urlPath (the namespace, docs/namespaces.md)', () => {
  test('the path without its slashes; none, / and a bare query are the default namespace', () => {
    assert.equal(urlPath('tcp://127.0.0.1:8602/tenant-a?@=svc'), 'tenant-a');
    assert.equal(urlPath('ws://127.0.0.1:8604/tenant-a/'), 'tenant-a');
    assert.equal(urlPath('udp://127.0.0.1:8603/tenant-b#frag'), 'tenant-b');
    assert.equal(urlPath('tcp://127.0.0.1:8602'), '');
    assert.equal(urlPath('tcp://127.0.0.1:8602?@=svc'), '');
    assert.equal(urlPath('ws://127.0.0.1:8604/'), '');
    assert.equal(urlPath('ws://127.0.0.1:8604/?a=/b'), '');
    assert.equal(urlPath('tcp://127.0.0.1:8602?x=/not-a-path'), '');
    assert.equal(urlPath('tcp://h:1/a/b?q'), 'a/b', 'nested paths are kept whole (and refused as namespaces)');
    assert.equal(urlPath('sd:http://api/ns-1'), 'ns-1');
  });
});
