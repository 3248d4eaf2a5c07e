/**
 * The `$auth` control event (docs/protocol.md, "Refreshing a token"): an open session hands the broker a
 * fresh token, in meta `token` or as the data. The broker checks it as at the handshake (same user
 * required), applies the new permissions and expiry at once and answers a Request with ReplyEnd (meta
 * `user`, `exp` in epoch seconds or 0); a refusal is an Alarm 4003 with meta `reason` (the stable code). The
 * token is never echoed back nor logged. One `$auth` at a time per session (another meanwhile: Alarm 4029).
 */
import { AlarmCode } from '../../protocol/codes.js';
import { Flag } from '../../protocol/flags.js';
import { encodeFrame } from '../../protocol/codec.js';
import type { Frame } from '../../protocol/frame.js';
import { Permissions, type AccessPolicy, type HandshakeRefusal } from '../access.js';
import { BrokerStats } from '../stats.js';
import type { Session } from '../session.js';
import { TokenPermissions } from './identity.js';

export const AUTH_EVENT = '$auth';

export function refreshSessionToken(session: Session, frame: Frame, access: AccessPolicy, stats: BrokerStats): void {
  const isRequest = frame.flag === Flag.Request || frame.flag === Flag.Subscribe;
  const sid = frame.sid;
  const fail = (code: number, reason: string, text: string): void => {
    BrokerStats.inc(stats.alarms, code);
    session.sendControl(encodeFrame({ flag: Flag.Alarm, sid, event: AUTH_EVENT, meta: `code=${code}&reason=${reason}`, data: text }));
  };
  if (access.refresh === undefined) {
    fail(AlarmCode.Forbidden, 'auth_unsupported', '$auth needs per-user identities (access.jwt or access.connectHook)');
    return;
  }
  if (session.authChecking) {
    fail(AlarmCode.Congested, 'auth_in_progress', 'Another $auth of this session is being checked');
    return;
  }
  const token = frame.meta('token') ?? frame.data.toString('utf8').trim();
  session.authChecking = true;
  const conn = session.connection;
  void access.refresh(session.permissions, token, session.params, conn.remoteAddress, conn.transport).then(
    (outcome) => applied(outcome),
    () => applied({ code: 'auth_error', text: 'The token check failed' }),
  );
  function applied(outcome: Permissions | HandshakeRefusal): void {
    session.authChecking = false;
    if (session.closed) return;
    BrokerStats.inc(stats.authChecks, `refresh|${outcome instanceof Permissions ? 'accepted' : outcome.code}`);
    if (!(outcome instanceof Permissions)) {
      fail(AlarmCode.Forbidden, outcome.code, outcome.text);
      return;
    }
    const name = session.name;
    if (name.length > 0 && !(outcome instanceof TokenPermissions && outcome.assignedName === name) && !outcome.canClaim(name)) {
      fail(AlarmCode.Forbidden, 'name_forbidden', `The new token does not let '${outcome.user}' hold the name '${name}'`);
      return;
    }
    session.applyPermissions(outcome);
    const exp = outcome instanceof TokenPermissions ? Math.floor(outcome.expiresAt / 1000) : 0;
    if (isRequest) session.sendControl(encodeFrame({ flag: Flag.ReplyEnd, sid, event: AUTH_EVENT, meta: `user=${encodeURIComponent(outcome.user)}&exp=${exp}` }));
  }
}
