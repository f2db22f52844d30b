//! `ashlar plugin new`: a driver project that builds as it is, in Rust (a cargo project
//! depending on `ashlar-sdk`) or Python (componentize-py and the Python SDK), for any of
//! the three worlds. Every method answers "not supported" until it is written, so the
//! first build loads and every step after is the author's own.
//!
//! The templates are the files under `scaffold/`, filled by replacing `{{placeholder}}`s.

use std::path::{Path, PathBuf};

use crate::capabilities::World;
use crate::runtime::versions;

/// The language a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "rust" => Some(Lang::Rust),
            "python" => Some(Lang::Python),
            _ => None,
        }
    }
}

/// `volume`, `target`, `backup` (or the world's full name).
pub fn parse_world(s: &str) -> Option<World> {
    match s {
        "volume" | "volume-driver" => Some(World::VolumeDriver),
        "target" | "target-driver" => Some(World::TargetDriver),
        "backup" | "backup-driver" => Some(World::BackupDriver),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` cannot name a driver: use lowercase letters, digits and single dashes, starting with a letter and ending with a letter or digit (at most 64), e.g. `acme-array`"
    )]
    BadName(String),
    #[error("{0} exists and is not empty; choose another --dir or remove it")]
    NotEmpty(PathBuf),
    #[error(
        "no Ashlar SDK at {path}: {why}. Give the sdk/ directory of an Ashlar checkout with --sdk or ASHLAR_SDK"
    )]
    NoSdk { path: PathBuf, why: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to make.
#[derive(Debug, Clone)]
pub struct NewDriver {
    pub name: String,
    pub world: World,
    pub lang: Lang,
    /// The `sdk/` directory of an Ashlar checkout: the Rust SDK crate, `python/` the
    /// Python SDK, `../wit/` the contract.
    pub sdk: PathBuf,
    /// The `ashlar` binary a Python project's build script stamps with when none is on
    /// PATH.
    pub ashlar: PathBuf,
}

/// The contract a Python project is built against: the newest this host serves. (A Rust
/// project gets its contract from the SDK, which stamps it.)
pub fn python_contract() -> String {
    versions::SERVED
        .last()
        .expect("the host serves a contract")
        .to_string()
}

/// The SDK of the checkout this binary was built from, looked for when the command runs:
/// where the checkout was at build time, else a checkout the binary sits in (an
/// `sdk/` beside one of its ancestors).
pub fn default_sdk() -> PathBuf {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    if built_from.join("Cargo.toml").is_file() {
        return built_from;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .map(|dir| dir.join("sdk"))
                .find(|sdk| sdk.join("Cargo.toml").is_file())
        })
        .unwrap_or(built_from)
}

const RESERVED: &[&str] = &[
    "self",
    "super",
    "crate",
    "std",
    "core",
    "alloc",
    "test",
    "proc-macro",
];

pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && !name.contains("--")
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !RESERVED.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(ScaffoldError::BadName(name.to_string()))
    }
}

/// The SDK directory, made absolute, once it holds what `lang` needs.
pub fn check_sdk(sdk: &Path, lang: Lang) -> Result<PathBuf, ScaffoldError> {
    let missing = |why: String| ScaffoldError::NoSdk {
        path: sdk.to_path_buf(),
        why,
    };
    let sdk = sdk
        .canonicalize()
        .map_err(|e| missing(format!("cannot open it ({e})")))?;
    match lang {
        Lang::Rust => {
            let manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap_or_default();
            if !manifest.contains("name = \"ashlar-sdk\"") {
                return Err(missing(
                    "it has no Cargo.toml of the ashlar-sdk crate".into(),
                ));
            }
        }
        Lang::Python => {
            if !sdk.join("python/ashlar_sdk/__init__.py").is_file() {
                return Err(missing("it has no python/ashlar_sdk".into()));
            }
            let wit = sdk.join(format!("../wit/since_v{}", python_contract()));
            if !wit.is_dir() {
                return Err(missing(format!("it has no {}", wit.display())));
            }
        }
    }
    Ok(sdk)
}

/// One file of a project: its path in the project, its text, whether it is executable.
pub struct File {
    pub path: &'static str,
    pub text: String,
    pub executable: bool,
}

/// `acme-array` → `AcmeArray`, with the world's suffix.
fn type_name(name: &str, world: World) -> String {
    let camel: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let suffix = match world {
        World::VolumeDriver => "Driver",
        World::TargetDriver => "Target",
        World::BackupDriver => "Store",
    };
    if camel.ends_with(suffix) {
        camel
    } else {
        camel + suffix
    }
}

/// Where the built component lands, relative to the project.
pub fn wasm_path(new: &NewDriver) -> String {
    match new.lang {
        Lang::Rust => format!(
            "target/wasm32-wasip2/release/{}.wasm",
            new.name.replace('-', "_")
        ),
        Lang::Python => format!("build/{}.wasm", new.name),
    }
}

/// The project's files, rendered.
pub fn render(new: &NewDriver) -> Vec<File> {
    let description = match new.world {
        World::VolumeDriver => "An Ashlar volume driver.",
        World::TargetDriver => "An Ashlar target driver.",
        World::BackupDriver => "An Ashlar backup driver.",
    };
    let vars: [(&str, String); 9] = [
        ("name", new.name.clone()),
        ("crate", new.name.replace('-', "_")),
        ("type", type_name(&new.name, new.world)),
        ("world", new.world.as_str().to_string()),
        ("description", description.to_string()),
        ("sdk", new.sdk.display().to_string()),
        ("contract", python_contract()),
        ("ashlar", new.ashlar.display().to_string()),
        ("wasm", wasm_path(new)),
    ];
    let fill = |template: &str| {
        let mut out = template.to_string();
        for (key, value) in &vars {
            out = out.replace(&format!("{{{{{key}}}}}"), value);
        }
        out
    };
    let backend = match new.world {
        World::VolumeDriver => include_str!("scaffold/backend-volume-driver.toml"),
        World::TargetDriver => include_str!("scaffold/backend-target-driver.toml"),
        World::BackupDriver => include_str!("scaffold/backend-backup-driver.toml"),
    };
    let file = |path, template: &str| File {
        path,
        text: fill(template),
        executable: false,
    };
    let mut files = vec![
        file("plugin.toml", include_str!("scaffold/plugin.toml")),
        file("backend.toml", backend),
    ];
    match new.lang {
        Lang::Rust => {
            let lib = match new.world {
                World::VolumeDriver => include_str!("scaffold/rust/volume-driver.rs"),
                World::TargetDriver => include_str!("scaffold/rust/target-driver.rs"),
                World::BackupDriver => include_str!("scaffold/rust/backup-driver.rs"),
            };
            files.push(file("Cargo.toml", include_str!("scaffold/rust/Cargo.toml")));
            files.push(file("src/lib.rs", lib));
            files.push(file("README.md", include_str!("scaffold/rust/README.md")));
            files.push(file(".gitignore", include_str!("scaffold/rust/gitignore")));
        }
        Lang::Python => {
            let app = match new.world {
                World::VolumeDriver => include_str!("scaffold/python/volume-driver.py"),
                World::TargetDriver => include_str!("scaffold/python/target-driver.py"),
                World::BackupDriver => include_str!("scaffold/python/backup-driver.py"),
            };
            files.push(file("app.py", app));
            files.push(File {
                executable: true,
                ..file("build.sh", include_str!("scaffold/python/build.sh"))
            });
            files.push(file("README.md", include_str!("scaffold/python/README.md")));
            files.push(file(
                ".gitignore",
                include_str!("scaffold/python/gitignore"),
            ));
        }
    }
    files
}

/// Writes the project into `dir`, which must be missing or empty; the files written.
pub fn create(new: &NewDriver, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(&new.name)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let mut written = Vec::new();
    for f in render(new) {
        let path = dir.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &f.text).map_err(io(&path))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(io(&path))?;
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, world: World, lang: Lang) -> NewDriver {
        NewDriver {
            name: name.into(),
            world,
            lang,
            sdk: "/src/ashlar/sdk".into(),
            ashlar: "/usr/bin/ashlar".into(),
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["acme", "acme-array", "a1", "x-2-y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Acme", "1acme", "acme-", "ac--me", "ac_me", "ac me", "../x", "test",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            type_name("acme-array", World::VolumeDriver),
            "AcmeArrayDriver"
        );
        assert_eq!(type_name("s3-store", World::BackupDriver), "S3Store");
    }

    #[test]
    fn every_placeholder_is_filled_and_no_stub_panics() {
        for lang in [Lang::Rust, Lang::Python] {
            for world in [
                World::VolumeDriver,
                World::TargetDriver,
                World::BackupDriver,
            ] {
                for f in render(&new("acme-array", world, lang)) {
                    assert!(
                        !f.text.contains("{{"),
                        "{lang:?} {world} {}: {}",
                        f.path,
                        f.text
                    );
                    let lower = f.text.to_lowercase();
                    assert!(!lower.contains("todo"), "{} says todo", f.path);
                    assert!(!f.text.contains("unimplemented!"), "{}", f.path);
                    assert!(
                        !f.text.contains("fn retype") && !f.text.contains("def retype"),
                        "{}",
                        f.path
                    );
                }
            }
        }
        let rust = render(&new("acme-array", World::VolumeDriver, Lang::Rust));
        let cargo = rust.iter().find(|f| f.path == "Cargo.toml").unwrap();
        assert!(cargo.text.contains("[workspace]"));
        assert!(cargo.text.contains("path = \"/src/ashlar/sdk\""));
        let readme = rust.iter().find(|f| f.path == "README.md").unwrap();
        assert!(readme.text.contains(
            "ashlar conformance target/wasm32-wasip2/release/acme_array.wasm --config backend.toml"
        ));
        let py = render(&new("acme", World::TargetDriver, Lang::Python));
        let build = py.iter().find(|f| f.path == "build.sh").unwrap();
        assert!(build.executable);
        assert!(build.text.contains("-w target-driver"));
        let manifest = py.iter().find(|f| f.path == "plugin.toml").unwrap();
        let m = crate::capabilities::Manifest::from_toml_str(&manifest.text).unwrap();
        assert_eq!(m.world, World::TargetDriver);
    }

    #[test]
    fn an_existing_project_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep"), "mine").unwrap();
        let err = create(&new("acme", World::VolumeDriver, Lang::Rust), tmp.path()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)), "{err}");
        let dir = tmp.path().join("fresh");
        let written = create(&new("acme", World::VolumeDriver, Lang::Python), &dir).unwrap();
        assert!(written.contains(&dir.join("app.py")));
    }
}
