export * from './stats/index';
