//! QuickJS module bytecode. Loading bytecode is `unsafe` in rquickjs because QuickJS trusts
//! it blindly (a forged buffer can corrupt memory). [`JsBytecode`] can only be made by
//! compiling source with this process's own QuickJS, so every buffer [`JsBytecode::load`]
//! reads was written by the same engine build: never read from disk or the network.

use rquickjs::{Ctx, Module, WriteOptions};
use std::sync::Arc;

/// A compiled module, shareable across threads and runtimes (QuickJS writes atoms as
/// strings, so the bytes do not depend on the runtime that compiled them).
#[derive(Clone)]
pub struct JsBytecode(Arc<[u8]>);

impl JsBytecode {
    /// Compiles `source` as a module named `name` in `ctx` (declared there, not evaluated).
    pub fn compile(ctx: &Ctx<'_>, name: &str, source: &str) -> rquickjs::Result<JsBytecode> {
        let module = Module::declare(ctx.clone(), name, source)?;
        let bytes = module.write(WriteOptions::default())?;
        Ok(JsBytecode(bytes.into()))
    }

    /// Declares the module in `ctx` (another runtime may have compiled it).
    pub fn load<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Module<'js>> {
        // SAFETY: the bytes were written by `Module::write` of this process's QuickJS (the
        // only constructor is `compile`) and are never changed (`Arc<[u8]>`), so they are
        // valid bytecode for this engine build.
        unsafe { Module::load(ctx.clone(), &self.0) }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
