export { startServer, createLogger, type RunningServer, type ServerAddresses, type ServerOptions } from './server.js';
export { Broker, type BrokerDeps } from './broker/broker.js';
export { brokerSettings, DEFAULT_SETTINGS, type BrokerSettings } from './broker/settings.js';
export { configFrom, configFromYaml, loadConfigFile, ConfigError } from './config/load.js';
export { DEFAULT_CONFIG, type BrokerConfig } from './config/schema.js';
