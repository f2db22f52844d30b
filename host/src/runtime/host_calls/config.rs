//! `config`: the backend's own settings (with the manifest's defaults), and its name.

use super::HostState;
use crate::runtime::latest::ashlar::driver::config;

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.ctx.settings.get(&key).cloned()
    }
    fn all(&mut self) -> Vec<(String, String)> {
        self.ctx
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn backend_name(&mut self) -> String {
        self.ctx.identity.backend.clone()
    }
    fn host_name(&mut self) -> String {
        self.ctx.host_name.clone()
    }
}
