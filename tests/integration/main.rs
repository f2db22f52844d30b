//! Integration tests: each starts real `ashlar serve` processes on loopback, with the
//! bundled nfs driver on a local share and, where a test needs one, the misbehaving
//! fixture driver (tests/fixtures/misbehave, never shipped).

mod common;

mod api_errors;
mod attach;
mod crash;
mod hostile;
mod iscsi;
mod jobs;
mod limits;
mod lists;
mod loading;
mod lvm;
mod nfs_real;
mod real_clients;
mod san;
mod scheduling;
mod swap;
mod volumes;
