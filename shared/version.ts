// The package version, written into info files and exchanged in hellos.
export const PGREPO_VERSION = '0.1.0';
