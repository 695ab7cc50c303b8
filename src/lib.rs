//! pg_uproot: purge or archive a row together with every row that depends on it.
//!
//! `graph` and `plan` (with `error`) are the pure core, compiled on their own as the
//! `uproot-core` crate so that plain `cargo test` runs them. `spi` is the one door to SPI,
//! `predicate` checks a predicate with PostgreSQL's parser, and `report` turns errors into
//! PostgreSQL's; `catalog` reads the schema; `exec` and `archive` run operations (exec reaches
//! the archive tables and the ledger only through its `Archiver`, which `api` wires to
//! `archive`); `api` and `jobs` hold the SQL functions. Each layer uses only those below it.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub use uproot_core::{error, graph, plan};

mod api;
mod archive;
mod catalog;
mod debug;
mod declared;
mod exec;
mod jobs;
mod plan_shape;
mod predicate;
mod privileged;
mod report;
mod spi;

// Archive schema, ledger tables and drop_batches(): created before the functions.
::pgrx::extension_sql_file!("../sql/schema.sql", name = "archive_storage", bootstrap);
// Jobs: tables and the PL/pgSQL procedure that loops and commits; after the functions it calls.
::pgrx::extension_sql_file!("../sql/jobs.sql", name = "jobs", finalize);
// Declared relations: their table and the check trigger's function.
::pgrx::extension_sql_file!(
    "../sql/declared.sql",
    name = "declared",
    requires = ["archive_storage"]
);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    keep_backtraces_out_of_errors();
    debug::register_guc();
    catalog::register_invalidation_callbacks();
    declared::check::register_invalidation_callbacks();
}

/// pgrx's panic hook records a Rust backtrace (when RUST_BACKTRACE or RUST_LIB_BACKTRACE is
/// set in the server's environment) and appends it to the DETAIL of every error that passes
/// through Rust, PostgreSQL's own included. Users must never see one, so this library's hook
/// records nothing: an error keeps its message, detail and hint, and a panic its message. The
/// hook is this library's own (each Rust library in a server carries its own runtime), so
/// other extensions are not affected.
fn keep_backtraces_out_of_errors() {
    std::panic::set_hook(Box::new(|_| {}));
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
