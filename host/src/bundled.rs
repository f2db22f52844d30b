//! Drivers shipped inside the `ashlar` binary, so the default config needs no files.

/// A driver bundled with the host: its component and its manifest.
pub struct Bundled {
    pub name: &'static str,
    pub wasm: &'static [u8],
    pub manifest: &'static str,
}

pub const BUNDLED: &[Bundled] = &[
    Bundled {
        name: "nfs",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/nfs.wasm")),
        manifest: include_str!(concat!(env!("OUT_DIR"), "/nfs.toml")),
    },
    Bundled {
        name: "iscsi-tgt",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/iscsi-tgt.wasm")),
        manifest: include_str!(concat!(env!("OUT_DIR"), "/iscsi-tgt.toml")),
    },
    Bundled {
        name: "lvm",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/lvm.wasm")),
        manifest: include_str!(concat!(env!("OUT_DIR"), "/lvm.toml")),
    },
    Bundled {
        name: "san-rest",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/san-rest.wasm")),
        manifest: include_str!(concat!(env!("OUT_DIR"), "/san-rest.toml")),
    },
    Bundled {
        name: "backup-posix",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/backup-posix.wasm")),
        manifest: include_str!(concat!(env!("OUT_DIR"), "/backup-posix.toml")),
    },
    Bundled {
        name: "backup-s3",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/backup-s3.wasm")),
        manifest: include_str!(concat!(env!("OUT_DIR"), "/backup-s3.toml")),
    },
];

pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

/// Where the test fixtures were built (never shipped; for tests and benchmarks).
pub const FIXTURES_DIR: &str = env!("ASHLAR_FIXTURES_DIR");
