export * from './flags.js';
export * from './limits.js';
export * from './meta.js';
export * from './frame.js';
export * from './errors.js';
export * from './codec.js';
export * from './codes.js';
export * from './url.js';
