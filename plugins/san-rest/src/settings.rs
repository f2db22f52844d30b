//! The backend's settings, each listed on [`Settings::from_config`]; they are checked
//! here so that nothing malformed reaches a path or a query sent to the array.

use ashlar_sdk::{DriverError, Result, parse_bool};

use crate::rest::RestConfig;

/// How pools map onto the array.
#[derive(Clone, Debug, PartialEq)]
pub enum Pools {
    /// One pool per aggregate (all of them when the list is empty), a FlexVol per volume.
    Aggregates(Vec<String>),
    /// One pool per listed FlexVol, a LUN per volume.
    FlexVols(Vec<String>),
}

/// The backend's settings, read in `do_setup`.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub rest: RestConfig,
    pub svm: String,
    pub pools: Pools,
    pub thin: bool,
    pub os_type: String,
    pub igroup_prefix: String,
    pub iscsi_port: u16,
    pub reserved_percentage: u32,
    pub max_over_subscription_ratio: f64,
    pub vendor_name: String,
}

fn parse_num<N: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: N,
    valid: impl Fn(&N) -> bool,
    expect: &str,
) -> Result<N> {
    match get(key) {
        None => Ok(default),
        Some(v) => {
            v.trim().parse::<N>().ok().filter(valid).ok_or_else(|| {
                DriverError::invalid_argument(format!("{key} `{v}` must be {expect}"))
            })
        }
    }
}

fn parse_list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// ONTAP object names: letters, digits and `_` (FlexVols and aggregates), no separators
/// that could change a path or a query.
pub(crate) fn check_object_name(key: &str, name: &str) -> Result<()> {
    if !name.is_empty()
        && name.len() <= 203
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(DriverError::invalid_argument(format!(
            "{key}: `{name}` is not an array object name (letters, digits and `_`)"
        )))
    }
}

impl Settings {
    /// Parses the backend's settings, naming the bad key on error:
    /// - `api_url` (required): the management endpoint, `http://host:port`; the same
    ///   origin must be granted in `grants.http`.
    /// - `svm` (required): the SVM (vserver) that owns the volumes and serves iSCSI.
    /// - `credential` (default `array`): the credential the host adds to requests.
    /// - `aggregate_names`: comma-separated aggregates to use as pools (default: all).
    /// - `flexvol_names`: comma-separated FlexVols to use as pools instead.
    /// - `thin_provisioning` (default true), `lun_os_type` (default `linux`),
    ///   `igroup_prefix` (default `ashlar-`), `iscsi_port` (default 3260).
    /// - `api_timeout_ms` (10000), `api_retries` (3), `api_retry_backoff_ms` (250),
    ///   `job_timeout_ms` (60000), `job_poll_ms` (100).
    /// - `reserved_percentage` (0), `max_over_subscription_ratio` (20.0),
    ///   `vendor_name` (`NetApp`).
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let api_url = get("api_url").ok_or_else(|| {
            DriverError::invalid_argument(
                "the san-rest driver needs `api_url`: the array's management endpoint, http://host:port",
            )
        })?;
        let api_url = api_url.trim().trim_end_matches('/').to_string();
        let rest_of = api_url
            .strip_prefix("http://")
            .or_else(|| api_url.strip_prefix("https://"));
        match rest_of {
            Some(authority)
                if !authority.is_empty() && !authority.contains(['/', '?', '#', '@']) => {}
            _ => {
                return Err(DriverError::invalid_argument(format!(
                    "api_url `{api_url}` must be an origin, http://host[:port], with no path"
                )));
            }
        }
        let svm = get("svm").ok_or_else(|| {
            DriverError::invalid_argument(
                "the san-rest driver needs `svm`: the SVM (vserver) that owns the LUNs and serves iSCSI",
            )
        })?;
        check_object_name("svm", &svm)?;
        let aggregates = parse_list(get("aggregate_names"));
        let flexvols = parse_list(get("flexvol_names"));
        let pools = match (aggregates.is_empty(), flexvols.is_empty()) {
            (_, true) => Pools::Aggregates(aggregates),
            (true, false) => Pools::FlexVols(flexvols),
            (false, false) => {
                return Err(DriverError::invalid_argument(
                    "set aggregate_names or flexvol_names, not both: pools are either aggregates (a FlexVol per volume) or FlexVols (a LUN per volume)",
                ));
            }
        };
        match &pools {
            Pools::Aggregates(names) => {
                for n in names {
                    check_object_name("aggregate_names", n)?;
                }
            }
            Pools::FlexVols(names) => {
                for n in names {
                    check_object_name("flexvol_names", n)?;
                }
            }
        }
        let os_type = get("lun_os_type").unwrap_or_else(|| "linux".into());
        check_object_name("lun_os_type", &os_type)?;
        let igroup_prefix = get("igroup_prefix").unwrap_or_else(|| "ashlar-".into());
        if igroup_prefix.len() > 64
            || !igroup_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        {
            return Err(DriverError::invalid_argument(format!(
                "igroup_prefix `{igroup_prefix}` may use letters, digits and `_-.:`, at most 64 of them"
            )));
        }
        let credential = get("credential").unwrap_or_else(|| "array".into());
        let rest = RestConfig {
            base: api_url,
            credential,
            timeout_ms: parse_num(
                &get,
                "api_timeout_ms",
                10_000u32,
                |v| *v >= 1,
                "a number of milliseconds above 0",
            )?,
            retries: parse_num(&get, "api_retries", 3u32, |v| *v <= 10, "from 0 to 10")?,
            backoff_ms: parse_num(
                &get,
                "api_retry_backoff_ms",
                250u32,
                |v| *v >= 1 && *v <= 60_000,
                "a number of milliseconds from 1 to 60000",
            )?,
            job_timeout_ms: parse_num(
                &get,
                "job_timeout_ms",
                60_000u64,
                |v| *v >= 1,
                "a number of milliseconds above 0",
            )?,
            job_poll_ms: parse_num(
                &get,
                "job_poll_ms",
                100u32,
                |v| *v >= 1 && *v <= 60_000,
                "a number of milliseconds from 1 to 60000",
            )?,
        };
        Ok(Settings {
            rest,
            svm,
            pools,
            thin: parse_bool("thin_provisioning", get("thin_provisioning"), true)?,
            os_type,
            igroup_prefix,
            iscsi_port: parse_num(&get, "iscsi_port", 3260u16, |p| *p > 0, "a port number")?,
            reserved_percentage: parse_num(
                &get,
                "reserved_percentage",
                0u32,
                |p| *p <= 100,
                "a whole number from 0 to 100",
            )?,
            max_over_subscription_ratio: parse_num(
                &get,
                "max_over_subscription_ratio",
                20.0f64,
                |r| *r >= 1.0,
                "a number of at least 1.0",
            )?,
            vendor_name: get("vendor_name").unwrap_or_else(|| "NetApp".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_config(|k| map.get(k).cloned())
    }

    const BASE: &[(&str, &str)] = &[("api_url", "http://10.0.0.5:8080/"), ("svm", "svm0")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    fn invalid(pairs: &[(&str, &str)], word: &str) {
        match settings(pairs) {
            Err(DriverError::InvalidArgument(m)) => assert!(m.contains(word), "{m}"),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn settings_defaults() {
        let s = settings(BASE).unwrap();
        assert_eq!(s.rest.base, "http://10.0.0.5:8080");
        assert_eq!(s.rest.credential, "array");
        assert_eq!(s.rest.retries, 3);
        assert_eq!(s.pools, Pools::Aggregates(vec![]));
        assert!(s.thin);
        assert_eq!(s.iscsi_port, 3260);
        let s = settings(&with(&[
            ("flexvol_names", "vol_a, vol_b"),
            ("thin_provisioning", "no"),
        ]))
        .unwrap();
        assert_eq!(
            s.pools,
            Pools::FlexVols(vec!["vol_a".into(), "vol_b".into()])
        );
        assert!(!s.thin);
    }

    #[test]
    fn settings_errors_name_the_key() {
        invalid(&[("svm", "s")], "api_url");
        invalid(&[("api_url", "http://a:1")], "svm");
        invalid(&[("api_url", "http://a:1/api"), ("svm", "s")], "origin");
        invalid(&[("api_url", "ftp://a"), ("svm", "s")], "origin");
        invalid(&[("api_url", "http://u@a"), ("svm", "s")], "origin");
        invalid(
            &with(&[("aggregate_names", "a"), ("flexvol_names", "b")]),
            "not both",
        );
        invalid(&with(&[("flexvol_names", "vol/../x")]), "flexvol_names");
        invalid(&with(&[("api_retries", "many")]), "api_retries");
        invalid(
            &with(&[("reserved_percentage", "101")]),
            "reserved_percentage",
        );
        invalid(&with(&[("igroup_prefix", "a b")]), "igroup_prefix");
    }
}
