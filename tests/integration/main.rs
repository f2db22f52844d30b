//! Integration tests: each starts real `ashlar serve` processes on loopback, with the
//! bundled nfs driver on a local share and, where a test needs one, the misbehaving
//! fixture driver (tests/fixtures/misbehave, never shipped).

mod common;

mod api_errors;
mod attach;
mod backends;
mod backup_stores;
mod backups;
mod bad_input;
mod clients;
mod conflicts;
mod conformance;
mod crash;
mod driver_guide;
mod fidelity;
mod glance;
mod hostile;
mod images;
mod iscsi;
mod jobs;
mod limits;
mod lists;
mod loading;
mod lvm;
mod manage;
mod messages;
mod migrate;
mod multihost;
mod nfs_real;
mod openapi;
mod ownership;
mod policy;
mod python;
mod quotas;
mod real_clients;
mod san;
mod scheduling;
mod seaweedfs;
mod services;
mod signing;
mod swap;
mod transfers;
mod types;
mod volumes;
