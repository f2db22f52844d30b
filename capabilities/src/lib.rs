//! Ashlar's capability policy and plugin-manifest schema: what a plugin may do outside its
//! sandbox.
//!
//! This crate is the policy only. It parses a plugin's `plugin.toml` ([`Manifest`]) and an
//! operator's `[backends.NAME.grants]` ([`Grants`]), matches one against the other, and
//! [`grant`] intersects them into the [`EffectiveCapabilities`] of one plugin on one backend.
//! A plugin asks, the operator grants, and the plugin gets the intersection. Asking for
//! something not granted fails the load, so a missing grant shows up at start-up, with both
//! sides named, instead of as a failed volume create later. Nothing asked means nothing
//! allowed.
//!
//! There is no wasmtime here (`scripts/test.sh` fails if that ever changes): enforcement is the
//! host's. The host's runtime calls the checks on [`EffectiveCapabilities`]
//! ([`exec_allows`](EffectiveCapabilities::exec_allows),
//! [`block_resolve`](EffectiveCapabilities::block_resolve),
//! [`http_allows`](EffectiveCapabilities::http_allows)) on every host call a plugin makes, and
//! the policy is testable without a guest. The host re-exports this crate as
//! `ashlar::capabilities`.

// Load-time errors on a cold path; flat fields keep them easy to match and to read.
#![allow(clippy::result_large_err)]

pub mod block;
pub mod directory;
pub mod exec;
pub mod http;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use directory::Preopen;
use exec::{ArgPattern, ExecRule};
use http::Origin;
use template::{MissingKey, Template};

/// The WIT world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    VolumeDriver,
    TargetDriver,
    BackupDriver,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::VolumeDriver => "volume-driver",
            World::TargetDriver => "target-driver",
            World::BackupDriver => "backup-driver",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityKind {
    Exec,
    Block,
    Http,
    Directory,
}

impl CapabilityKind {
    /// The key used in both plugin.toml `[capabilities]` and `[backends.NAME.grants]`.
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityKind::Exec => "exec",
            CapabilityKind::Block => "block",
            CapabilityKind::Http => "http",
            CapabilityKind::Directory => "directory",
        }
    }
}

impl fmt::Display for CapabilityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin's `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub world: World,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the plugin asks for; absent means nothing.
    #[serde(default)]
    pub capabilities: RequestedCapabilities,
    /// `[defaults]`: settings the backend gets when the operator's config leaves them out,
    /// for `{key}` placeholders and for the driver's `config` calls alike, so the two can
    /// never disagree about a default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, String>,
}

impl Manifest {
    /// The operator's settings over the manifest's `[defaults]`.
    pub fn settings_with_defaults(
        &self,
        operator: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut merged = self.defaults.clone();
        merged.extend(operator.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }
}

/// `[capabilities]` in plugin.toml. Strings may contain `{key}` placeholders filled in from
/// the backend config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedCapabilities {
    #[serde(default)]
    pub exec: Vec<ExecRequest>,
    /// Paths (directories or files) the plugin may open.
    #[serde(default)]
    pub block: Vec<String>,
    /// Origins, `scheme://host[:port]`.
    #[serde(default)]
    pub http: Vec<String>,
    /// Absolute directories the plugin sees whole through its filesystem (see
    /// [`directory`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory: Vec<String>,
}

/// `[[capabilities.exec]]`: a program and one argument shape (see [`exec`] for the pattern
/// language). Without `args` the program may only be run with no arguments.
///
/// `optional = true` marks a program only an optional feature runs (the nfs driver's `mv`
/// for managing existing files): a backend whose operator did not grant it still loads,
/// with no rule for it, and the feature's calls are denied by name; every request for a
/// program must then be optional. A program the operator did grant is allowed as any
/// other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// `[backends.NAME.grants]` in the operator's config. Everything defaults to nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub exec: Vec<ExecGrant>,
    /// Directories or files; a plugin may ask for these or anything inside them.
    #[serde(default)]
    pub block: Vec<PathBuf>,
    #[serde(default)]
    pub http: Vec<String>,
    /// Directories a plugin may see whole (it may ask for these or any directory inside).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory: Vec<PathBuf>,
}

/// A bare name grants the program with whatever arguments plugin.toml allows; a table also
/// requires the arguments to match `args` (`args = []` means no arguments at all).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a program name or a table { program = \"...\", args = [...] }"
)]
pub enum ExecGrant {
    Program(String),
    Constrained(ConstrainedExec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConstrainedExec {
    pub program: String,
    pub args: Vec<String>,
}

impl ExecGrant {
    pub fn program(&self) -> &str {
        match self {
            ExecGrant::Program(program) => program,
            ExecGrant::Constrained(c) => &c.program,
        }
    }
}

impl fmt::Display for ExecGrant {
    /// As it would be written in the config, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecGrant::Program(program) => write!(f, "{program:?}"),
            ExecGrant::Constrained(c) => {
                write!(
                    f,
                    "{{ program = {:?}, args = {} }}",
                    c.program,
                    toml_list(&c.args)
                )
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("cannot read plugin manifest {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid plugin manifest {origin}: {source}")]
    Parse {
        origin: String,
        source: toml::de::Error,
    },
    #[error("plugin {plugin} {version} has an invalid plugin.toml: {reason}")]
    InvalidManifest {
        plugin: String,
        version: String,
        reason: String,
    },
    #[error(
        "plugin {plugin} {version} uses `{{{key}}}` in its plugin.toml ({kind} `{template}`), \
         but backend `{backend}` has no `{key}` in its config; the backend config needs \
         `{key}` set for this plugin"
    )]
    MissingConfig {
        plugin: String,
        version: String,
        backend: String,
        key: String,
        kind: CapabilityKind,
        template: String,
    },
    #[error("{}", not_granted(plugin, version, backend, *kind, missing, granted))]
    NotGranted {
        plugin: String,
        version: String,
        backend: String,
        kind: CapabilityKind,
        /// What plugin.toml asks for that the grants do not cover (config values filled in).
        missing: Vec<String>,
        /// The operator's grant list, rendered as in the config.
        granted: Vec<String>,
    },
    #[error(
        "plugin {plugin} {version} requests {kind} `{requested}` (from `{template}` in its \
         plugin.toml) on backend `{backend}`, but {reason}"
    )]
    InvalidRequest {
        plugin: String,
        version: String,
        backend: String,
        kind: CapabilityKind,
        requested: String,
        template: String,
        reason: String,
    },
    #[error(
        "backend `{backend}` grants {kind} `{entry}`, but {reason}; fix [{}.grants] \
         {kind} (while loading plugin {plugin} {version})",
        config_section(backend)
    )]
    InvalidGrant {
        plugin: String,
        version: String,
        backend: String,
        kind: CapabilityKind,
        entry: String,
        reason: String,
    },
}

/// The name every driver section of the operator's config is known by in messages.
pub const BACKUP_STORE: &str = "backup";

/// Where a backend's driver is configured: `backends.NAME` (`backends.NAME.target` for its
/// target), or `backup` for the backup store, whose reserved name is [`BACKUP_STORE`].
pub fn config_section(backend: &str) -> String {
    if backend == BACKUP_STORE {
        BACKUP_STORE.to_owned()
    } else {
        format!("backends.{backend}")
    }
}

fn not_granted(
    plugin: &str,
    version: &str,
    backend: &str,
    kind: CapabilityKind,
    missing: &[String],
    granted: &[String],
) -> String {
    let what = match kind {
        CapabilityKind::Exec => "exec of",
        CapabilityKind::Block => "block access to",
        CapabilityKind::Http => "http access to",
        CapabilityKind::Directory => "the directory",
    };
    let names: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
    let names = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    };
    let it = if missing.len() == 1 { "it" } else { "them" };
    let add = match kind {
        CapabilityKind::Block | CapabilityKind::Directory => {
            format!("add {it} (or a directory containing {it})")
        }
        _ => format!("add {it}"),
    };
    format!(
        "plugin {plugin} {version} requests {what} {names} in its plugin.toml, but backend \
         `{backend}` does not grant {it} (grants.{kind} = [{}]); {add} to \
         [{}.grants] {kind} or use another plugin",
        granted.join(", "),
        config_section(backend)
    )
}

impl Manifest {
    pub fn from_toml_str(text: &str) -> Result<Self, CapabilityError> {
        Self::parse(text, "plugin.toml")
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, CapabilityError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CapabilityError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Self, CapabilityError> {
        let manifest: Manifest = toml::from_str(text).map_err(|source| CapabilityError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what can be checked without a backend: names, template syntax, pattern syntax,
    /// and origins that have no placeholders. Run by the loaders and again by [`grant`].
    pub fn validate(&self) -> Result<(), CapabilityError> {
        let invalid = |reason: String| CapabilityError::InvalidManifest {
            plugin: self.name.clone(),
            version: self.version.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(invalid("`name` is empty".to_owned()));
        }
        if self.version.trim().is_empty() {
            return Err(invalid("`version` is empty".to_owned()));
        }
        for request in &self.capabilities.exec {
            let program = &request.program;
            exec::check_program_name(program)
                .map_err(|why| invalid(format!("exec program `{program}`: {why}")))?;
            let templates = parse_templates(&request.args)
                .map_err(|why| invalid(format!("exec `{program}` args: {why}")))?;
            // Placeholders stand in as literal text; they cannot change the pattern's shape.
            let pieces = templates
                .iter()
                .map(|t| t.pieces_with(Some))
                .collect::<Result<Vec<_>, _>>()
                .expect("every key has a placeholder");
            ArgPattern::parse(&pieces)
                .map_err(|why| invalid(format!("exec `{program}` args: {why}")))?;
        }
        for path in &self.capabilities.block {
            Template::parse(path).map_err(|why| invalid(format!("block `{path}`: {why}")))?;
        }
        for path in &self.capabilities.directory {
            Template::parse(path).map_err(|why| invalid(format!("directory `{path}`: {why}")))?;
        }
        for origin in &self.capabilities.http {
            let template = Template::parse(origin)
                .map_err(|why| invalid(format!("http `{origin}`: {why}")))?;
            if template.keys().next().is_none() {
                Origin::parse(&template.render(&BTreeMap::new()).unwrap_or_default())
                    .map_err(|why| invalid(format!("http `{origin}` is not an origin: {why}")))?;
            }
        }
        Ok(())
    }
}

fn parse_templates(strings: &[String]) -> Result<Vec<Template>, String> {
    strings
        .iter()
        .map(|s| Template::parse(s).map_err(|e| format!("`{s}`: {e}")))
        .collect()
}

fn toml_list(items: &[impl fmt::Debug]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", items.join(", "))
}

/// Why a call was refused at run time; the message names the request and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    kind: CapabilityKind,
    message: String,
}

impl Denied {
    pub(crate) fn new(kind: CapabilityKind, message: String) -> Self {
        Denied { kind, message }
    }

    pub fn kind(&self) -> CapabilityKind {
        self.kind
    }
}

/// What one plugin may do on one backend. The default allows nothing.
#[derive(Debug, Clone, Default)]
pub struct EffectiveCapabilities {
    plugin: String,
    version: String,
    backend: String,
    exec: Vec<ExecRule>,
    block: Vec<PathBuf>,
    http: Vec<Origin>,
    directories: Vec<Preopen>,
}

impl EffectiveCapabilities {
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }

    pub fn exec(&self) -> &[ExecRule] {
        &self.exec
    }

    /// Canonical paths.
    pub fn block(&self) -> &[PathBuf] {
        &self.block
    }

    pub fn http(&self) -> &[Origin] {
        &self.http
    }

    /// The directories the sandbox preopens for the plugin, and nothing else.
    pub fn directories(&self) -> &[Preopen] {
        &self.directories
    }

    pub fn is_empty(&self) -> bool {
        self.exec.is_empty()
            && self.block.is_empty()
            && self.http.is_empty()
            && self.directories.is_empty()
    }

    /// `program` must be a bare name; see [`exec`] for how arguments are matched.
    pub fn exec_allows(&self, program: &str, args: &[String]) -> Result<(), Denied> {
        exec::allows(&self.exec, program, args)
    }

    /// The canonical path the sandbox should open in place of `path`.
    pub fn block_resolve(&self, path: &str) -> Result<PathBuf, Denied> {
        block::resolve(&self.block, path)
    }

    pub fn http_allows(&self, url: &str) -> Result<(), Denied> {
        http::allows(&self.http, url)
    }
}

/// Intersects what `manifest` asks for with what `backend` grants, filling `{key}`s from the
/// backend's `config`. Fails, naming both sides, if anything asked for is not granted.
pub fn grant(
    manifest: &Manifest,
    backend: &str,
    config: &BTreeMap<String, String>,
    grants: &Grants,
) -> Result<EffectiveCapabilities, CapabilityError> {
    manifest.validate()?;
    let ctx = Ctx {
        manifest,
        backend,
        config,
    };
    Ok(EffectiveCapabilities {
        plugin: manifest.name.clone(),
        version: manifest.version.clone(),
        backend: backend.to_owned(),
        exec: ctx.exec(&grants.exec)?,
        block: ctx.block(&grants.block)?,
        http: ctx.http(&grants.http)?,
        directories: ctx.directory(&grants.directory)?,
    })
}

struct Ctx<'a> {
    manifest: &'a Manifest,
    backend: &'a str,
    config: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn exec(&self, grants: &[ExecGrant]) -> Result<Vec<ExecRule>, CapabilityError> {
        let kind = CapabilityKind::Exec;
        // None: any arguments plugin.toml allows; Some: also one of these.
        let mut granted: BTreeMap<&str, Option<Vec<ArgPattern>>> = BTreeMap::new();
        for entry in grants {
            let program = entry.program();
            exec::check_program_name(program)
                .map_err(|why| self.invalid_grant(kind, entry.to_string(), why.to_owned()))?;
            let slot = granted.entry(program).or_insert_with(|| Some(Vec::new()));
            match entry {
                ExecGrant::Program(_) => *slot = None,
                ExecGrant::Constrained(c) => {
                    let pattern = ArgPattern::parse_plain(&c.args).map_err(|why| {
                        self.invalid_grant(kind, entry.to_string(), why.to_string())
                    })?;
                    if let Some(patterns) = slot {
                        patterns.push(pattern);
                    }
                }
            }
        }

        let all = &self.manifest.capabilities.exec;
        // A program only optional features run may go ungranted: it gets no rule.
        let required = |program: &str| all.iter().any(|r| r.program == program && !r.optional);
        let requests: Vec<&ExecRequest> = all
            .iter()
            .filter(|r| granted.contains_key(r.program.as_str()) || required(&r.program))
            .collect();
        let mut missing: Vec<String> = Vec::new();
        for request in &requests {
            if !granted.contains_key(request.program.as_str())
                && !missing.contains(&request.program)
            {
                missing.push(request.program.clone());
            }
        }
        if !missing.is_empty() {
            let granted = grants.iter().map(ExecGrant::to_string).collect();
            return Err(self.not_granted(kind, missing, granted));
        }

        let mut rules: Vec<ExecRule> = Vec::new();
        for request in requests {
            let templates = parse_templates(&request.args)
                .map_err(|why| self.invalid_manifest(format!("exec args: {why}")))?;
            let mut pieces = Vec::with_capacity(templates.len());
            for template in &templates {
                pieces.push(
                    template
                        .pieces(self.config)
                        .map_err(|e| self.missing_config(kind, template, e))?,
                );
            }
            let pattern = ArgPattern::parse(&pieces).map_err(|why| {
                self.invalid_manifest(format!("exec `{}` args: {why}", request.program))
            })?;
            let index = match rules.iter().position(|r| r.program() == request.program) {
                Some(index) => index,
                None => {
                    let constraint = granted[request.program.as_str()].clone();
                    rules.push(ExecRule::new(request.program.clone(), constraint));
                    rules.len() - 1
                }
            };
            rules[index].push_requested(pattern);
        }
        Ok(rules)
    }

    fn block(&self, grants: &[PathBuf]) -> Result<Vec<PathBuf>, CapabilityError> {
        let kind = CapabilityKind::Block;
        let requests = &self.manifest.capabilities.block;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut requested: Vec<PathBuf> = Vec::new();
        for source in requests {
            let (template, path) = self.render(kind, source)?;
            let invalid = |reason: String| self.invalid_request(kind, &path, &template, reason);
            if !Path::new(&path).is_absolute() {
                return Err(invalid(
                    "it is not an absolute path; fix the backend config".to_owned(),
                ));
            }
            let canonical = Path::new(&path).canonicalize().map_err(|e| {
                invalid(format!(
                    "it cannot be resolved ({e}); create it or fix the backend config"
                ))
            })?;
            if !requested.contains(&canonical) {
                requested.push(canonical);
            }
        }

        let mut roots = Vec::with_capacity(grants.len());
        for root in grants {
            let entry = || root.display().to_string();
            if !root.is_absolute() {
                return Err(self.invalid_grant(kind, entry(), "it is not absolute".to_owned()));
            }
            let canonical = root.canonicalize().map_err(|e| {
                self.invalid_grant(kind, entry(), format!("it cannot be resolved ({e})"))
            })?;
            roots.push(canonical);
        }

        let missing: Vec<String> = requested
            .iter()
            .filter(|path| !block::allows(&roots, path))
            .map(|path| path.display().to_string())
            .collect();
        if !missing.is_empty() {
            let granted = grants
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            return Err(self.not_granted(kind, missing, granted));
        }
        Ok(requested)
    }

    fn directory(&self, grants: &[PathBuf]) -> Result<Vec<Preopen>, CapabilityError> {
        let kind = CapabilityKind::Directory;
        let requests = &self.manifest.capabilities.directory;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut requested: Vec<Preopen> = Vec::new();
        for source in requests {
            let (template, guest) = self.render(kind, source)?;
            let host = directory::check_request(&guest)
                .map_err(|why| self.invalid_request(kind, &guest, &template, why))?;
            if !requested.iter().any(|p| p.guest == guest) {
                requested.push(Preopen { guest, host });
            }
        }
        let mut roots = Vec::with_capacity(grants.len());
        for root in grants {
            let entry = || root.display().to_string();
            if !root.is_absolute() {
                return Err(self.invalid_grant(kind, entry(), "it is not absolute".to_owned()));
            }
            let canonical = root.canonicalize().map_err(|e| {
                self.invalid_grant(kind, entry(), format!("it cannot be resolved ({e})"))
            })?;
            roots.push(canonical);
        }
        let missing: Vec<String> = requested
            .iter()
            .filter(|p| !directory::allows(&roots, &p.host))
            .map(|p| p.host.display().to_string())
            .collect();
        if !missing.is_empty() {
            let granted = grants
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            return Err(self.not_granted(kind, missing, granted));
        }
        Ok(requested)
    }

    fn http(&self, grants: &[String]) -> Result<Vec<Origin>, CapabilityError> {
        let kind = CapabilityKind::Http;
        let mut granted = Vec::with_capacity(grants.len());
        for entry in grants {
            let origin = Origin::parse(entry).map_err(|why| {
                self.invalid_grant(kind, entry.clone(), format!("it is not an origin: {why}"))
            })?;
            granted.push(origin);
        }

        let mut requested: Vec<Origin> = Vec::new();
        let mut missing = Vec::new();
        for source in &self.manifest.capabilities.http {
            let (template, value) = self.render(kind, source)?;
            let origin = Origin::parse(&value).map_err(|why| {
                self.invalid_request(
                    kind,
                    &value,
                    &template,
                    format!("it is not an origin: {why}"),
                )
            })?;
            if !granted.contains(&origin) {
                missing.push(origin.to_string());
            } else if !requested.contains(&origin) {
                requested.push(origin);
            }
        }
        if !missing.is_empty() {
            let granted = grants.iter().map(|g| format!("{g:?}")).collect();
            return Err(self.not_granted(kind, missing, granted));
        }
        Ok(requested)
    }

    /// Parses and fills a block or http template, which has no pattern syntax.
    fn render(
        &self,
        kind: CapabilityKind,
        source: &str,
    ) -> Result<(Template, String), CapabilityError> {
        let template = Template::parse(source)
            .map_err(|why| self.invalid_manifest(format!("{kind} `{source}`: {why}")))?;
        let value = template
            .render(self.config)
            .map_err(|e| self.missing_config(kind, &template, e))?;
        Ok((template, value))
    }

    fn invalid_manifest(&self, reason: String) -> CapabilityError {
        CapabilityError::InvalidManifest {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            reason,
        }
    }

    fn missing_config(
        &self,
        kind: CapabilityKind,
        template: &Template,
        missing: MissingKey,
    ) -> CapabilityError {
        CapabilityError::MissingConfig {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            backend: self.backend.to_owned(),
            key: missing.key,
            kind,
            template: template.source().to_owned(),
        }
    }

    fn not_granted(
        &self,
        kind: CapabilityKind,
        missing: Vec<String>,
        granted: Vec<String>,
    ) -> CapabilityError {
        CapabilityError::NotGranted {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            backend: self.backend.to_owned(),
            kind,
            missing,
            granted,
        }
    }

    fn invalid_request(
        &self,
        kind: CapabilityKind,
        requested: &str,
        template: &Template,
        reason: String,
    ) -> CapabilityError {
        CapabilityError::InvalidRequest {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            backend: self.backend.to_owned(),
            kind,
            requested: requested.to_owned(),
            template: template.source().to_owned(),
            reason,
        }
    }

    fn invalid_grant(
        &self,
        kind: CapabilityKind,
        entry: String,
        reason: String,
    ) -> CapabilityError {
        CapabilityError::InvalidGrant {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            backend: self.backend.to_owned(),
            kind,
            entry,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFS: &str = r#"
name = "nfs"
version = "0.1.0"
world = "volume-driver"
description = "NFS shares"

[[capabilities.exec]]
program = "qemu-img"
args = ["create", "-f", "raw|qcow2", "{share_path}/volume-*", "*"]

[[capabilities.exec]]
program = "rm"
args = ["-f", "{share_path}/volume-*"]

[capabilities]
block = ["{share_path}"]
http = ["{management_url}"]
"#;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn grants(text: &str) -> Grants {
        toml::from_str(text).unwrap()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_optional_program_may_go_ungranted_and_is_then_denied() {
        let m = manifest(
            "[[capabilities.exec]]\nprogram = \"rm\"\nargs = [\"-f\", \"/s/volume-*\"]\n\
             [[capabilities.exec]]\nprogram = \"mv\"\nargs = [\"/s/*\", \"/s/volume-*\"]\noptional = true\n",
        );
        let without = grant(&m, "b", &config(&[]), &grants(r#"exec = ["rm"]"#)).unwrap();
        assert!(
            without
                .exec_allows("rm", &args(&["-f", "/s/volume-1"]))
                .is_ok()
        );
        let e = without
            .exec_allows("mv", &args(&["/s/old", "/s/volume-1"]))
            .unwrap_err();
        assert!(e.to_string().contains("`mv` is not allowed"), "{e}");
        let with = grant(&m, "b", &config(&[]), &grants(r#"exec = ["rm", "mv"]"#)).unwrap();
        assert!(
            with.exec_allows("mv", &args(&["/s/old", "/s/volume-1"]))
                .is_ok()
        );
        assert!(
            with.exec_allows("mv", &args(&["/s/old", "/etc/x"]))
                .is_err()
        );
        // A required program stays required.
        let e = grant(&m, "b", &config(&[]), &grants(r#"exec = ["mv"]"#)).unwrap_err();
        assert!(e.to_string().contains("`rm`"), "{e}");
    }

    fn manifest(capabilities: &str) -> Manifest {
        Manifest::from_toml_str(&format!(
            "name = \"nfs\"\nversion = \"0.1.0\"\nworld = \"volume-driver\"\n{capabilities}"
        ))
        .unwrap()
    }

    #[test]
    fn parses_the_example_manifest() {
        let m = Manifest::from_toml_str(NFS).unwrap();
        assert_eq!(m.name, "nfs");
        assert_eq!(m.world, World::VolumeDriver);
        assert_eq!(m.description.as_deref(), Some("NFS shares"));
        assert_eq!(m.capabilities.exec.len(), 2);
        assert_eq!(m.capabilities.exec[1].args, ["-f", "{share_path}/volume-*"]);
        assert_eq!(m.capabilities.block, ["{share_path}"]);
        let bare = manifest("");
        assert_eq!(bare.capabilities, RequestedCapabilities::default());
    }

    #[test]
    fn manifest_mistakes_are_caught_at_load() {
        let base = "name = \"nfs\"\nversion = \"0.1.0\"\nworld = \"volume-driver\"\n";
        let err = |extra: &str| Manifest::from_toml_str(&format!("{base}{extra}")).unwrap_err();
        assert!(matches!(err("colour = 1"), CapabilityError::Parse { .. }));
        assert!(matches!(
            err("[capabilities]\nfs = [\"/\"]"),
            CapabilityError::Parse { .. }
        ));
        assert!(matches!(
            Manifest::from_toml_str(&base.replace("volume-driver", "nope")).unwrap_err(),
            CapabilityError::Parse { .. }
        ));
        let msg = err("[[capabilities.exec]]\nprogram = \"/bin/rm\"").to_string();
        assert!(
            msg.contains("plugin nfs 0.1.0") && msg.contains("bare program"),
            "{msg}"
        );
        let msg = err("[[capabilities.exec]]\nprogram = \"rm\"\nargs = [\"**\", \"x\"]");
        assert!(msg.to_string().contains("last"), "{msg}");
        let msg = err("[[capabilities.exec]]\nprogram = \"rm\"\nargs = [\"{p}/**\"]");
        assert!(
            matches!(msg, CapabilityError::InvalidManifest { .. }),
            "{msg}"
        );
        let msg = err("[capabilities]\nblock = [\"{share\"]").to_string();
        assert!(msg.contains("never closed"), "{msg}");
        let msg = err("[capabilities]\nhttp = [\"ftp://x\"]").to_string();
        assert!(msg.contains("not an origin"), "{msg}");
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin.toml");
        std::fs::write(&path, NFS).unwrap();
        assert_eq!(Manifest::load(&path).unwrap().version, "0.1.0");
        let err = Manifest::load(dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(err, CapabilityError::Read { .. }));
    }

    #[test]
    fn grants_parse_bare_and_constrained_exec() {
        let g = grants(
            r#"exec = ["qemu-img", "rm", { program = "df", args = ["**"] }]
               block = ["/srv/share"]
               http = ["http://127.0.0.1:8080"]"#,
        );
        assert_eq!(g.exec[0], ExecGrant::Program("qemu-img".into()));
        assert_eq!(
            g.exec[2].to_string(),
            r#"{ program = "df", args = ["**"] }"#
        );
        assert_eq!(g.block, [PathBuf::from("/srv/share")]);
        assert_eq!(grants(""), Grants::default());
        assert!(toml::from_str::<Grants>("exec = [{ program = \"df\", arg = [] }]").is_err());
        assert!(toml::from_str::<Grants>("fs = []").is_err());
    }

    #[test]
    fn manifest_defaults_fill_placeholders_until_the_operator_sets_them() {
        let m = manifest(
            r#"[defaults]
               port = "0"
               [[capabilities.exec]]
               program = "tgtadm"
               args = ["-C", "{port}"]"#,
        );
        let g = grants(r#"exec = ["tgtadm"]"#);
        let args = |p: &str| vec!["-C".to_string(), p.to_string()];
        let caps = grant(&m, "b", &m.settings_with_defaults(&BTreeMap::new()), &g).unwrap();
        assert!(caps.exec_allows("tgtadm", &args("0")).is_ok());
        assert!(caps.exec_allows("tgtadm", &args("4000")).is_err());
        let operator = BTreeMap::from([("port".to_string(), "4000".to_string())]);
        let merged = m.settings_with_defaults(&operator);
        assert_eq!(merged["port"], "4000", "the operator's setting wins");
        let caps = grant(&m, "b", &merged, &g).unwrap();
        assert!(caps.exec_allows("tgtadm", &args("4000")).is_ok());
        assert!(caps.exec_allows("tgtadm", &args("0")).is_err());
    }

    #[test]
    fn nothing_requested_nothing_allowed() {
        let g = grants(
            r#"exec = ["rm"]
                          http = ["http://127.0.0.1:8080"]"#,
        );
        let caps = grant(&manifest(""), "local", &BTreeMap::new(), &g).unwrap();
        assert!(caps.is_empty());
        assert!(caps.exec_allows("rm", &[]).is_err());
        assert!(caps.http_allows("http://127.0.0.1:8080/").is_err());
        assert!(caps.block_resolve("/tmp").is_err());
        assert!(
            EffectiveCapabilities::default()
                .exec_allows("rm", &[])
                .is_err()
        );
    }

    #[test]
    fn missing_exec_grants_name_both_sides() {
        let m = Manifest::from_toml_str(NFS).unwrap();
        let g = grants(r#"exec = ["rm", "df"]"#);
        let err = grant(&m, "local", &BTreeMap::new(), &g).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin nfs 0.1.0 requests exec of `qemu-img` in its plugin.toml, but backend \
             `local` does not grant it (grants.exec = [\"rm\", \"df\"]); add it to \
             [backends.local.grants] exec or use another plugin"
        );
        let err = grant(&m, "local", &BTreeMap::new(), &Grants::default()).unwrap_err();
        let CapabilityError::NotGranted { missing, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(missing, &["qemu-img", "rm"]);
        assert!(err.to_string().contains("`qemu-img` and `rm`"), "{err}");
        assert!(
            err.to_string()
                .contains("does not grant them (grants.exec = [])"),
            "{err}"
        );
    }

    #[test]
    fn missing_config_key_is_named() {
        let m = Manifest::from_toml_str(NFS).unwrap();
        let g = grants(r#"exec = ["qemu-img", "rm"]"#);
        let err = grant(&m, "local", &config(&[("other", "x")]), &g).unwrap_err();
        let CapabilityError::MissingConfig { plugin, key, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!((plugin.as_str(), key.as_str()), ("nfs", "share_path"));
        let msg = err.to_string();
        assert!(msg.contains("backend `local` has no `share_path`"), "{msg}");
        assert!(msg.contains("config needs `share_path`"), "{msg}");
    }

    /// The whole example: a share in a tempdir, an HTTP endpoint, grants for both.
    #[test]
    fn effective_capabilities_enforce_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        let share = share.canonicalize().unwrap();
        let share_str = share.to_str().unwrap();
        let cfg = config(&[
            ("share_path", share_str),
            ("management_url", "HTTP://Array.Local"),
        ]);
        let g = Grants {
            exec: vec![
                ExecGrant::Program("qemu-img".into()),
                ExecGrant::Constrained(ConstrainedExec {
                    program: "rm".into(),
                    args: args(&["-f", &format!("{share_str}/volume-1*")]),
                }),
            ],
            block: vec![dir.path().to_path_buf()],
            http: vec!["http://array.local:80".into()],
            directory: vec![],
        };
        let m = Manifest::from_toml_str(NFS).unwrap();
        let caps = grant(&m, "local", &cfg, &g).unwrap();
        assert_eq!(caps.block(), std::slice::from_ref(&share));
        assert_eq!(caps.http()[0].to_string(), "http://array.local");
        assert_eq!(caps.exec()[0].program(), "qemu-img");
        assert!(caps.exec()[0].granted().is_none());

        let vol = |n: &str| format!("{share_str}/volume-{n}");
        let qemu = |f: &str, path: &str| args(&["create", "-f", f, path, "10G"]);
        assert!(
            caps.exec_allows("qemu-img", &qemu("qcow2", &vol("a")))
                .is_ok()
        );
        assert!(
            caps.exec_allows("qemu-img", &qemu("vmdk", &vol("a")))
                .is_err()
        );
        assert!(
            caps.exec_allows("qemu-img", &qemu("raw", &vol("a/../../x")))
                .is_err()
        );
        assert!(
            caps.exec_allows("qemu-img", &qemu("raw", "/etc/volume-a"))
                .is_err()
        );
        // rm needs plugin.toml's shape and the grant's narrower one.
        assert!(caps.exec_allows("rm", &args(&["-f", &vol("12")])).is_ok());
        let err = caps
            .exec_allows("rm", &args(&["-f", &vol("2")]))
            .unwrap_err();
        assert!(err.to_string().contains("backend grant"), "{err}");
        assert!(caps.exec_allows("df", &[]).is_err());

        assert_eq!(
            caps.block_resolve("volume-new").unwrap(),
            share.join("volume-new")
        );
        assert!(caps.block_resolve("../escape").is_err());
        assert!(caps.http_allows("http://array.local/api/v2").is_ok());
        assert!(caps.http_allows("https://array.local/api/v2").is_err());
    }

    #[test]
    fn config_values_stay_literal_in_exec_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().canonicalize().unwrap().join("*");
        std::fs::create_dir(&share).unwrap();
        let m = manifest("[[capabilities.exec]]\nprogram = \"rm\"\nargs = [\"{share_path}/v\"]");
        let cfg = config(&[("share_path", share.to_str().unwrap())]);
        let caps = grant(&m, "local", &cfg, &grants(r#"exec = ["rm"]"#)).unwrap();
        assert!(
            caps.exec_allows("rm", &args(&[&format!("{}/v", share.display())]))
                .is_ok()
        );
        let other = dir.path().canonicalize().unwrap().join("other/v");
        assert!(
            caps.exec_allows("rm", &args(&[other.to_str().unwrap()]))
                .is_err()
        );
    }

    #[test]
    fn block_outside_grant_names_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let (granted, other) = (dir.path().join("granted"), dir.path().join("other"));
        std::fs::create_dir(&granted).unwrap();
        std::fs::create_dir(&other).unwrap();
        let m = manifest("[capabilities]\nblock = [\"{share_path}\"]");
        let cfg = config(&[("share_path", other.to_str().unwrap())]);
        let g = Grants {
            block: vec![granted.clone()],
            ..Grants::default()
        };
        let msg = grant(&m, "local", &cfg, &g).unwrap_err().to_string();
        let other = other.canonicalize().unwrap();
        assert!(
            msg.contains(&format!("block access to `{}`", other.display())),
            "{msg}"
        );
        assert!(msg.contains(&format!(
            "grants.block = [{:?}]",
            granted.display().to_string()
        )));
        assert!(msg.contains("[backends.local.grants] block"), "{msg}");

        let cfg = config(&[("share_path", "/nonexistent/ashlar-share")]);
        let err = grant(&m, "local", &cfg, &g).unwrap_err();
        assert!(
            matches!(err, CapabilityError::InvalidRequest { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("/nonexistent/ashlar-share"),
            "{err}"
        );
    }

    #[test]
    fn http_must_match_a_granted_origin() {
        let m = manifest("[capabilities]\nhttp = [\"{management_url}\"]");
        let cfg = config(&[("management_url", "https://array.local:8443")]);
        let g = grants(r#"http = ["https://array.local"]"#);
        let msg = grant(&m, "local", &cfg, &g).unwrap_err().to_string();
        assert!(
            msg.contains("http access to `https://array.local:8443`"),
            "{msg}"
        );
        assert!(
            msg.contains(r#"grants.http = ["https://array.local"]"#),
            "{msg}"
        );
        let g = grants(r#"http = ["https://ARRAY.local:8443/"]"#);
        assert!(grant(&m, "local", &cfg, &g).is_ok());
        let g = grants(r#"http = ["https://admin@array.local:8443"]"#);
        let err = grant(&m, "local", &cfg, &g).unwrap_err();
        assert!(matches!(err, CapabilityError::InvalidGrant { .. }), "{err}");
    }

    /// A backup store asks for `{backup_path}`; the operator grants it (or a parent); the
    /// plugin sees that directory under the path it asked for, and nothing else.
    #[test]
    fn a_directory_is_preopened_only_inside_what_the_operator_granted() {
        let dir = tempfile::tempdir().unwrap();
        let (granted, other) = (dir.path().join("backups"), dir.path().join("other"));
        std::fs::create_dir(&granted).unwrap();
        std::fs::create_dir(&other).unwrap();
        let m = Manifest::from_toml_str(
            "name = \"backup-posix\"\nversion = \"0.1.0\"\nworld = \"backup-driver\"\n\
             [capabilities]\ndirectory = [\"{backup_path}\"]\n",
        )
        .unwrap();
        let g = |paths: &[&Path]| Grants {
            directory: paths.iter().map(|p| p.to_path_buf()).collect(),
            ..Grants::default()
        };
        let at = |p: &Path| config(&[("backup_path", p.to_str().unwrap())]);

        // Granted exactly, or through a parent directory.
        for grants in [g(&[&granted]), g(&[dir.path()])] {
            let caps = grant(&m, "backup", &at(&granted), &grants).unwrap();
            assert_eq!(
                caps.directories(),
                [Preopen {
                    guest: granted.to_str().unwrap().to_owned(),
                    host: granted.canonicalize().unwrap(),
                }]
            );
            assert!(!caps.is_empty());
        }

        // A directory the operator did not grant: refused, naming both sides.
        let err = grant(&m, "backup", &at(&other), &g(&[&granted])).unwrap_err();
        let msg = err.to_string();
        let other_c = other.canonicalize().unwrap();
        assert!(
            msg.contains(&format!("requests the directory `{}`", other_c.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "grants.directory = [{:?}]",
                granted.display().to_string()
            )),
            "{msg}"
        );
        assert!(
            msg.contains("add it (or a directory containing it) to [backup.grants] directory"),
            "{msg}"
        );
        // Nothing granted at all.
        let msg = grant(&m, "backup", &at(&granted), &Grants::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("grants.directory = []"), "{msg}");

        // A sibling whose name merely starts with the granted one is not inside it.
        let sibling = dir.path().join("backups2");
        std::fs::create_dir(&sibling).unwrap();
        assert!(grant(&m, "backup", &at(&sibling), &g(&[&granted])).is_err());

        // A symlink inside the granted directory that points out of it is judged by where
        // it leads.
        let link = granted.join("escape");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let err = grant(&m, "backup", &at(&link), &g(&[&granted])).unwrap_err();
        assert!(matches!(err, CapabilityError::NotGranted { .. }), "{err}");

        // `..`, relative and missing paths are refused before any grant is looked at.
        for bad in [
            format!("{}/../other", granted.display()),
            "backups".to_owned(),
            format!("{}/missing", granted.display()),
        ] {
            let cfg = config(&[("backup_path", &bad)]);
            let err = grant(&m, "backup", &cfg, &g(&[dir.path()])).unwrap_err();
            assert!(
                matches!(err, CapabilityError::InvalidRequest { .. }),
                "{bad}: {err}"
            );
        }
        // Not asked, not given, whatever the grant.
        let bare = manifest("");
        assert!(
            grant(&bare, "b", &BTreeMap::new(), &g(&[dir.path()]))
                .unwrap()
                .directories()
                .is_empty()
        );
        let grants: Grants = toml::from_str("directory = [\"/srv/backups\"]").unwrap();
        assert_eq!(grants.directory, [PathBuf::from("/srv/backups")]);
    }
}
