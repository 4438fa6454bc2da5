//! `fermyon:spin/variables@2.0.0`: a component reads the variables of its
//! `[component.<id>.variables]` table, resolved at start-up.

use super::fermyon::spin2_0_0::variables as v;
use super::Ctx;

impl v::Host for Ctx {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v::Error>> {
        if crate::manifest::check_variable_name(&name).is_err() {
            return Ok(Err(v::Error::InvalidName(name)));
        }
        Ok(self.env.variables.get(&name).cloned().ok_or(v::Error::Undefined(name)))
    }
}
