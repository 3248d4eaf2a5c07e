export * from './connection.js';
export * from './tcp.js';
export * from './tcp-framing.js';
export * from './ws.js';
export * from './ws-listener.js';
export * from './udp.js';
export * from './memory.js';
