// The scenario format lives beside the dev cluster, which `ferry dev --scenario` builds from it.
export * from '../../src/devcluster/scenarioFile.js';
