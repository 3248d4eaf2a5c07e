// Injected by esbuild into the browser bundle (scripts/build-browser.mjs): every free `Buffer` in the SDK and
// the codec resolves to the `buffer` package, the standard browser implementation of Node's Buffer.
export { Buffer } from 'buffer';
