//! The one error type. Every variant knows its SQLSTATE, message, detail and hint; the API layer
//! turns it into an `ereport(ERROR)`. Raising any of them rolls back everything the call did.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum UprootError {
    #[error("relation with OID {oid} does not exist")]
    UnknownRelation { oid: u32 },

    #[error("{relation} is a {kind}, not a table")]
    NotATable { relation: String, kind: String },

    #[error("{relation} has no primary key, so its rows cannot be named by keys")]
    NoPrimaryKey { relation: String, function: String },

    #[error("invalid {argument}: {message}")]
    InvalidArgument {
        argument: String,
        message: String,
        hint: String,
    },

    #[error("invalid predicate for {relation}: {message}")]
    InvalidPredicate {
        relation: String,
        message: String,
        detail: Option<String>,
    },

    /// PostgreSQL rejected the predicate when it ran; its SQLSTATE is kept.
    #[error("invalid predicate for {relation}: {said}")]
    PredicateRejected {
        relation: String,
        sqlstate: String,
        said: String,
    },

    #[error("{count} row(s) of {child} reference the family through constraint {constraint} ({action}), and respect_restrict is on")]
    RestrictBlocked {
        child: String,
        parent: String,
        constraint: String,
        action: String,
        count: i64,
    },

    #[error("{count} row(s) of {child} reference the family through constraint {constraint}, but {child} is in stop_at")]
    StopAtBlocked {
        child: String,
        parent: String,
        constraint: String,
        count: i64,
    },

    #[error("permission denied: uproot needs {privilege} on {relation}")]
    PermissionDenied {
        relation: String,
        privilege: String,
        why: String,
        /// Everything the calling role lacks for the whole operation, as GRANT statements.
        grants: Vec<String>,
    },

    #[error("row-level security on {relation} hides {count} row(s) that reference the family")]
    HiddenRows { relation: String, count: i64 },

    #[error("{count} row(s) of {child} that the caller cannot see still reference deleted rows of {parent} through declared relation {relation}")]
    DeclaredHiddenRows {
        /// The declared relation's name (without ` (declared)`).
        relation: String,
        parent: String,
        child: String,
        count: i64,
        /// The first such key, as PostgreSQL shows one: `(a, b)=(1, 2)`.
        key: String,
    },

    #[error("the owner of {child} may not read it, so the check of declared relation {relation} cannot run: {said}")]
    DeclaredCheckDenied {
        relation: String,
        child: String,
        /// PostgreSQL's own message.
        said: String,
    },

    #[error("{relation} has no archive table, and the caller may not create one")]
    ArchiveNotPrepared {
        relation: String,
        root: String,
        /// The calling role, quoted.
        role: String,
        /// Raised by prepare_archive itself (so pointing at prepare_archive would go in circles).
        preparing: bool,
    },

    #[error("the archive table of {relation} no longer exists")]
    ArchiveMissing { relation: String, root: String },

    #[error("archive table {archive} still holds batches of a dropped table named {relation}")]
    ArchiveOrphaned {
        relation: String,
        archive: String,
        batches: Vec<i64>,
    },

    #[error("archive table {archive} cannot take {relation}.{column}: it is {archive_type} there but {source_type} in the source")]
    ArchiveDrift {
        relation: String,
        archive: String,
        column: String,
        source_type: String,
        archive_type: String,
    },

    #[error("cannot restore batch {id}: its table {relation} was dropped")]
    BatchSourceDropped {
        id: i64,
        relation: String,
        archive: String,
    },

    #[error("cannot restore batch {id}: the archive table of {relation} no longer exists")]
    BatchArchiveMissing { id: i64, relation: String },

    #[error(
        "{count} row(s) of {relation} were deleted by a foreign-key action without being archived"
    )]
    Unarchived { relation: String, count: i64 },

    #[error("there is no batch {id}")]
    UnknownBatch { id: i64 },

    #[error("batch {id} was already restored at {at}")]
    BatchRestored { id: i64, at: String },

    #[error("cannot restore batch {id}: {relation} already has {count} row(s) with archived keys, first ({key})")]
    RestoreConflict {
        id: i64,
        relation: String,
        key: String,
        count: i64,
    },

    #[error("cannot drop pg_uproot while {batches} archived batch(es) are not restored")]
    DropRefused { batches: i64, rows: i64 },

    #[error("cannot drop pg_uproot while {} declared relation(s) have triggers on tables", relations.len())]
    DropRefusedTriggers {
        /// The declared relations whose triggers remain, by name.
        relations: Vec<String>,
        /// Each trigger: `name on table`.
        triggers: Vec<String>,
    },

    #[error("the pg_uproot library is version {library}, but this database's pg_uproot objects are version {installed}")]
    ExtensionOutdated { installed: String, library: String },
    #[error("cannot restore batch {id}: {count} of its row(s) of {relation} reference the row {key} of {parent}, which no longer exists (constraint {constraint})")]
    RestoreMissingParent {
        id: i64,
        relation: String,
        parent: String,
        constraint: String,
        key: String,
        count: i64,
    },

    /// A foreign key failed on restore, and the row it missed could not be named.
    #[error("cannot restore batch {id}: a foreign key rejected a row it would put back: {said}")]
    RestoreReference { id: i64, said: String },

    #[error("cannot drop batch {id}: the archive table of {relation} no longer exists, and the caller may not delete from {relation}")]
    DropNotAllowed { id: i64, relation: String },

    #[error("cannot drop batch {id}: it holds the owned parents archived with batch {owner}, which still holds rows")]
    DropOwnedBatch { id: i64, owner: i64 },

    /// The catalog (from the system caches, or the catalog query's JSON) is not readable.
    #[error("the catalog holds something uproot cannot read: {said}")]
    CatalogUnreadable { said: String },

    /// SPI itself failed on one of pg_uproot's own fixed statements (not connected, a value of
    /// an unexpected type, no such column): errors in the SQL raise PostgreSQL's own SQLSTATE.
    #[error("SPI failed while {what}: {said}")]
    Spi { what: String, said: String },

    /// An invariant of pg_uproot's own does not hold.
    #[error("internal error: {what}")]
    Internal { what: String },

    /// `uproot.debug_check_explain`: an operation ran a statement explain does not show.
    #[error("the operation ran a statement that uproot.explain does not show: {statement}")]
    NotExplained { statement: String },

    /// A statement of uproot's own returned NULL where its SQL cannot (a count, an id).
    #[error("a statement returned NULL for {what}, which it cannot be")]
    UnexpectedNull { what: String },

    #[error("there is no job named {name}")]
    UnknownJob { name: String },

    #[error("a job named {name} exists already")]
    JobExists { name: String },

    #[error("job {job} belongs to role {owner}, not to {role}")]
    NotJobOwner {
        job: String,
        owner: String,
        role: String,
    },

    /// run_job commits after each batch, which PostgreSQL allows only where a CALL may commit.
    #[error("{}", run_job_place(*.in_transaction_block))]
    RunJobCannotCommit { in_transaction_block: bool },
    /// Foreign keys (or tables) of the family changed while the call ran.
    #[error("the foreign keys of the family of {root} changed while this call ran")]
    CatalogChanged { root: String, said: Option<String> },

    /// Under REPEATABLE READ, another session created the archive table this one needs.
    #[error("another session created the archive table of {relation} while this transaction ran")]
    ArchiveCreatedConcurrently { relation: String },

    /// The set-based foreign-key check found a row that still references a deleted key: what
    /// PostgreSQL's own RI trigger says, in its words (PostgreSQL 18 words an ON DELETE
    /// RESTRICT key differently, with SQLSTATE 23001).
    #[error("{}", still_referenced_message(parent, constraint, child, *restrict))]
    StillReferenced {
        parent: String,
        constraint: String,
        child: String,
        /// An ON DELETE RESTRICT key, on a PostgreSQL that reports those as such (18 and later).
        restrict: bool,
        /// The referenced columns and their values, as PostgreSQL shows them: `(a, b)=(1, 2)`.
        key: String,
    },

    /// `uproot.debug_fail_at`, a developer option for pg_uproot's own tests, named this point.
    #[error("failing at {point} because uproot.debug_fail_at is set")]
    InjectedFailure { point: String },

    /// Declaring, using or dropping a declared relation (src/declared): each check names its
    /// own SQLSTATE (42P01 table, 42703 column, 42804 types, 42830 no unique key, ...).
    #[error("{message}")]
    Declaration {
        sqlstate: &'static str,
        message: String,
        detail: Option<String>,
        hint: String,
    },
}

impl UprootError {
    /// The five-character SQLSTATE.
    pub fn sqlstate(&self) -> &str {
        match self {
            UprootError::PredicateRejected { sqlstate, .. } => sqlstate,
            UprootError::UnknownRelation { .. } => "42P01",
            UprootError::NotATable { .. } => "42809",
            UprootError::NoPrimaryKey { .. } => "22023",
            UprootError::InvalidArgument { .. } => "22023",
            UprootError::InvalidPredicate { .. } => "42601",
            UprootError::RestrictBlocked { .. } => "23503",
            UprootError::StopAtBlocked { .. } => "23503",
            UprootError::PermissionDenied { .. } => "42501",
            UprootError::HiddenRows { .. } => "42501",
            UprootError::DeclaredHiddenRows { .. } => "42501", // as for hidden rows behind a real FK (HiddenRows)
            UprootError::DeclaredCheckDenied { .. } => "42501",
            UprootError::ArchiveNotPrepared { .. } => "42501",
            UprootError::ArchiveMissing { .. } => "42P01",
            UprootError::ArchiveOrphaned { .. } => "55000",
            UprootError::ArchiveDrift { .. } => "42804",
            UprootError::BatchArchiveMissing { .. } => "42P01",
            UprootError::BatchSourceDropped { .. } => "42P01",
            UprootError::Unarchived { .. } => "40001",
            UprootError::UnknownBatch { .. } => "22023",
            UprootError::BatchRestored { .. } => "55000",
            UprootError::RestoreConflict { .. } => "23505",
            UprootError::RestoreMissingParent { .. } => "23503",
            UprootError::RestoreReference { .. } => "23503",
            UprootError::DropNotAllowed { .. } => "42501",
            UprootError::DropOwnedBatch { .. } => "2BP01",
            UprootError::CatalogUnreadable { .. }
            | UprootError::Spi { .. }
            | UprootError::Internal { .. }
            | UprootError::UnexpectedNull { .. }
            | UprootError::NotExplained { .. } => "XX000",
            UprootError::DropRefused { .. } => "2BP01",
            UprootError::DropRefusedTriggers { .. } => "2BP01",
            UprootError::ExtensionOutdated { .. } => "55000",
            UprootError::UnknownJob { .. } => "22023",
            UprootError::JobExists { .. } => "42710",
            UprootError::NotJobOwner { .. } => "42501",
            UprootError::RunJobCannotCommit {
                in_transaction_block: true,
            } => "25001",
            UprootError::RunJobCannotCommit { .. } => "2D000",
            UprootError::CatalogChanged { .. } => "40001",
            UprootError::ArchiveCreatedConcurrently { .. } => "40001",
            UprootError::InjectedFailure { .. } => "XX000",
            UprootError::Declaration { sqlstate, .. } => sqlstate,
            UprootError::StillReferenced { restrict: true, .. } => "23001",
            UprootError::StillReferenced { .. } => "23503",
        }
    }

    /// The message, prefixed so that it is clear which extension raised it.
    pub fn message(&self) -> String {
        format!("uproot: {self}")
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            UprootError::NoPrimaryKey { function, .. } => Some(format!(
                "{function} takes keys of the root's primary key; this table has none."
            )),
            UprootError::InvalidPredicate { detail, .. } => detail.clone(),
            UprootError::PredicateRejected { .. } => None,
            UprootError::RestrictBlocked { parent, action, .. } => Some(format!(
                "The constraint is ON DELETE {action} and references {parent}."
            )),
            UprootError::StopAtBlocked { parent, .. } => {
                Some(format!("The constraint references {parent}."))
            }
            UprootError::PermissionDenied { why, grants, .. } if !grants.is_empty() => Some(format!(
                "{why}\nEverything this operation needs that the calling role lacks:\n{}",
                grants.join("\n")
            )),
            UprootError::PermissionDenied { why, .. } => Some(why.clone()),
            UprootError::HiddenRows { .. } => Some(
                "A row the caller cannot see would have been deleted or changed by PostgreSQL's own foreign-key action."
                    .into(),
            ),
            UprootError::DeclaredHiddenRows { key, child, .. } => Some(format!(
                "Key {key} is still referenced from table \"{child}\"; a declared relation has no constraint, so nothing else would remove or re-point those rows."
            )),
            UprootError::DeclaredCheckDenied { .. } => Some(
                "Row-level security hides rows of that table from you, so pg_uproot checks as the table's owner, with row-level security off, that none of them still references a deleted key, as PostgreSQL's own foreign-key checks do.".into(),
            ),
            UprootError::CatalogUnreadable { .. }
            | UprootError::Spi { .. }
            | UprootError::Internal { .. }
            | UprootError::UnexpectedNull { .. }
            | UprootError::NotExplained { .. } => None,
            UprootError::ArchiveNotPrepared { .. } => Some(
                "Creating an archive table needs CREATE on schema uproot_archive.".into(),
            ),
            UprootError::ArchiveMissing { .. } => Some("It is still mapped in uproot.archive_tables; was it dropped by hand?".into()),
            UprootError::ArchiveOrphaned { batches, .. } => Some(format!(
                "Batch(es) {} archived rows of the dropped table into it; uproot will not start a second archive of the same name silently.",
                batches.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
            )),
            UprootError::ArchiveDrift { .. } => Some("Nothing was changed.".into()),
            UprootError::BatchArchiveMissing { .. } => Some("The batch's rows of that table went with it.".into()),
            UprootError::BatchSourceDropped { archive, .. } => Some(format!(
                "Its archived rows stay in {archive}; nothing was restored."
            )),
            UprootError::Unarchived { .. } => Some("The whole archive was rolled back; nothing moved.".into()),
            UprootError::UnknownBatch { .. } | UprootError::BatchRestored { .. } => None,
            UprootError::RestoreConflict { .. } => Some("Nothing was restored.".into()),
            UprootError::ExtensionOutdated { .. } => Some(
                "The package was upgraded, but the extension in this database was not.".into(),
            ),
            UprootError::DropRefusedTriggers { triggers, .. } => Some(format!(
                "The triggers of declared relations call pg_uproot's functions and cannot stay without it: {}.",
                triggers.join(", ")
            )),
            UprootError::DropRefused { rows, .. } => Some(format!(
                "The ledger of those batches ({rows} archived row(s)) would be dropped with the extension, and their rows in schema uproot_archive could no longer be restored."
            )),
            UprootError::RestoreMissingParent { .. } | UprootError::RestoreReference { .. } => {
                Some("Nothing was restored.".into())
            }
            UprootError::DropNotAllowed { .. } => Some("Nothing was dropped.".into()),
            UprootError::DropOwnedBatch { owner, .. } => Some(format!(
                "Restoring batch {owner} later would bring back rows without the parents they reference. Nothing was dropped."
            )),
            UprootError::CatalogChanged { said, .. } => Some(match said {
                Some(said) => format!("PostgreSQL said: {said}"),
                None => "The call had read them before the change committed; nothing it changed is kept.".into(),
            }),
            UprootError::ArchiveCreatedConcurrently { .. } => Some(
                "Under REPEATABLE READ or SERIALIZABLE this transaction cannot see the other session's archive table.".into(),
            ),
            UprootError::InjectedFailure { .. } => None,
            UprootError::Declaration { detail, .. } => detail.clone(),
            UprootError::StillReferenced {
                key,
                child,
                restrict,
                ..
            } => Some(if *restrict {
                format!("Key {key} is referenced from table \"{child}\".")
            } else {
                format!("Key {key} is still referenced from table \"{child}\".")
            }),
            UprootError::UnknownRelation { .. }
            | UprootError::NotATable { .. }
            | UprootError::InvalidArgument { .. } => None,
            UprootError::UnknownJob { .. } | UprootError::JobExists { .. } => None,
            UprootError::NotJobOwner { .. } => Some(
                "A job runs with the privileges of whoever runs it, so only the role that created it, or a superuser, may change, run or drop it, or write its run log.".into(),
            ),
            UprootError::RunJobCannotCommit { .. } => Some(
                "run_job commits after every batch, so that each batch holds its locks only briefly and the batches done stay done. PostgreSQL lets a procedure commit only in a CALL of its own: at the top level, or from a procedure or DO block called that way, outside BEGIN ... COMMIT and without an EXCEPTION clause around it.".into(),
            ),
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            UprootError::UnknownRelation { .. } => "Check the table name and the search_path.".into(),
            UprootError::NotATable { .. } => {
                "Pass the table that holds the rows: uproot works on ordinary and partitioned tables.".into()
            }
            UprootError::NoPrimaryKey { relation, function } => {
                let f = function.replace("uproot.", "");
                format!(
                    "Name the rows with a predicate instead: uproot.{f}_where('{relation}', '...'), or add a primary key."
                )
            }
            UprootError::InvalidArgument { hint, .. } => hint.clone(),
            UprootError::InvalidPredicate { .. } | UprootError::PredicateRejected { .. } => {
                "The predicate must be exactly one SQL boolean expression over the root table's columns, e.g. 'created_at < now() - interval ''1 year'''.".into()
            }
            UprootError::RestrictBlocked { child, .. } => format!(
                "Delete or re-point those rows of {child} first, or call again without respect_restrict to take them with the family. uproot.preview with the same options lists every blocked relation."
            ),
            UprootError::StopAtBlocked { child, .. } => format!(
                "Remove {child} from stop_at to take those rows with the family, or delete them first. uproot.preview with the same options lists every blocked relation."
            ),
            UprootError::PermissionDenied { grants, .. } if !grants.is_empty() => {
                "Run the GRANT statements in DETAIL as the tables' owner; uproot.check_access() lists the same without trying.".into()
            }
            UprootError::PermissionDenied { relation, privilege, .. } => format!(
                "GRANT {privilege} ON {relation} TO the calling role; uproot.check_access() lists everything the operation needs."
            ),
            UprootError::HiddenRows { relation, .. } => format!(
                "Run the operation as a role that can see every row of {relation}, or adjust its row-level security policies."
            ),
            UprootError::DeclaredCheckDenied { child, .. } => format!(
                "Grant the owner of {child} USAGE on its schema and SELECT on it (it has them unless they were revoked). Nothing was changed."
            ),
            UprootError::DeclaredHiddenRows { child, .. } => format!(
                "Row-level security on {child} hides those rows from you. Ask the owner of {child} to delete or re-point them, or run the operation as a role that sees them. Nothing was changed."
            ),
            UprootError::CatalogUnreadable { .. }
            | UprootError::Spi { .. }
            | UprootError::Internal { .. }
            | UprootError::UnexpectedNull { .. }
            | UprootError::NotExplained { .. } => {
                "This is a bug in pg_uproot; please report it.".into()
            }
            UprootError::ArchiveNotPrepared { role, preparing: true, .. } => format!(
                "A superuser grants it once: GRANT CREATE ON SCHEMA uproot_archive TO {role};"
            ),
            UprootError::ArchiveNotPrepared { root, role, .. } => format!(
                "Run SELECT * FROM uproot.prepare_archive('{root}') once as a role that may create archive tables (e.g. in a migration), or have a superuser GRANT CREATE ON SCHEMA uproot_archive TO {role};"
            ),
            UprootError::ArchiveOrphaned { archive, batches, .. } => format!(
                "To keep those rows, rename the old archive table (ALTER TABLE {archive} RENAME TO ...); to discard them, drop the batches (uproot.drop_batch({})) and the table. Then archive again.",
                batches.first().copied().unwrap_or_default()
            ),
            UprootError::ArchiveMissing { root, .. } => format!(
                "Run SELECT * FROM uproot.prepare_archive('{root}') to create it again."
            ),
            UprootError::ArchiveDrift { archive, column, source_type, .. } => format!(
                "Change the archive column to match (ALTER TABLE {archive} ALTER COLUMN {column} TYPE {source_type} USING ...), or map the source to a new archive table in uproot.archive_tables."
            ),
            UprootError::Unarchived { .. } => "Retry the archive; a row appeared that the archive did not see.".into(),
            UprootError::BatchArchiveMissing { id, .. } => format!(
                "The batch cannot be restored whole; remove it from the archive and the ledger with uproot.drop_batch({id})."
            ),
            UprootError::BatchSourceDropped { id, .. } => format!(
                "Read the rows from the archive table if you need them, then remove the batch with uproot.drop_batch({id})."
            ),
            UprootError::UnknownBatch { .. } => "List batches with SELECT * FROM uproot.batches ORDER BY id DESC (reading the ledger needs SELECT on it).".into(),
            UprootError::BatchRestored { .. } => "A batch is restored once; its rows are back in their tables.".into(),
            UprootError::ExtensionOutdated { .. } => {
                "Run ALTER EXTENSION pg_uproot UPDATE in this database (as its owner).".into()
            }
            UprootError::DropRefusedTriggers { .. } => "Drop the declared relations first (their drain jobs before them), as the README section \"Uninstalling\" shows: SELECT uproot.drop_relation(name) FROM uproot.declared_relations; or DROP EXTENSION pg_uproot CASCADE, which drops those triggers with it. Either way the tables and their rows stay.".into(),
            UprootError::DropRefused { .. } => "Restore the batches, or drop them on purpose with uproot.drop_batches(); to keep them across a reinstall, follow the README section \"Uninstalling\", which sets uproot.allow_drop_extension = on for the drop.".into(),
            UprootError::UnknownJob { .. } => "List jobs with SELECT * FROM uproot.jobs.".into(),
            UprootError::JobExists { .. } => {
                "Change it with uproot.alter_job(), or drop it with uproot.drop_job().".into()
            }
            UprootError::NotJobOwner { owner, .. } => format!(
                "Do it as role {owner} (for pg_cron: schedule the job as that user), or create a job of your own."
            ),
            UprootError::RunJobCannotCommit { .. } => "Run CALL uproot.run_job(...) as a statement of its own, outside BEGIN/COMMIT (in psql: with autocommit on). To take one batch inside your own transaction, call uproot.archive_where or uproot.purge_where with max_roots instead.".into(),
            UprootError::RestoreConflict { id, relation, .. } => format!(
                "Remove those rows of {relation} first, or call uproot.restore({id}, on_conflict => 'skip') to leave them archived (with the rows that depend on them) and restore the rest."
            ),
            UprootError::RestoreMissingParent { id, parent, .. } => format!(
                "Put that row of {parent} back first: restore the batch that archived it (uproot.find_archived('{parent}', ...) names it) or insert it again; then call uproot.restore({id}) again. Or erase this batch with uproot.drop_batch({id})."
            ),
            UprootError::RestoreReference { id, .. } => format!(
                "Put back or fix what the foreign key needs, then call uproot.restore({id}) again; or erase this batch with uproot.drop_batch({id})."
            ),
            UprootError::DropNotAllowed { relation, .. } => format!(
                "Run uproot.drop_batch as a role that may delete from {relation}, or as the owner of the pg_uproot extension."
            ),
            UprootError::DropOwnedBatch { owner, .. } => format!(
                "Call uproot.drop_batch({owner}) to drop both, or restore batch {owner} first."
            ),
            UprootError::CatalogChanged { .. } => {
                "Retry the call: the next one reads the new foreign keys.".into()
            }
            UprootError::ArchiveCreatedConcurrently { .. } => {
                "Retry the transaction: it will find and use that archive table.".into()
            }
            UprootError::InjectedFailure { .. } => {
                "uproot.debug_fail_at is a developer option for pg_uproot's own tests: RESET uproot.debug_fail_at.".into()
            }
            UprootError::Declaration { hint, .. } => hint.clone(),
            UprootError::StillReferenced { child, .. } => format!(
                "That row of {child} is not part of the family (uproot.preview shows what is); delete or re-point it first. Nothing was changed."
            ),
        })
    }
}

fn still_referenced_message(parent: &str, constraint: &str, child: &str, restrict: bool) -> String {
    if restrict {
        format!("update or delete on table \"{parent}\" violates RESTRICT setting of foreign key constraint \"{constraint}\" on table \"{child}\"")
    } else {
        format!("update or delete on table \"{parent}\" violates foreign key constraint \"{constraint}\" on table \"{child}\"")
    }
}

fn run_job_place(in_transaction_block: bool) -> &'static str {
    if in_transaction_block {
        "run_job cannot run inside a transaction block"
    } else {
        "run_job cannot run here: it was called from a function or a query, or inside a subtransaction (a savepoint, or a block with an EXCEPTION clause)"
    }
}

/// A SQLSTATE packed the way PostgreSQL's MAKE_SQLSTATE packs it (six bits a character).
pub fn sqlstate_code(sqlstate: &str) -> i32 {
    sqlstate
        .bytes()
        .take(5)
        .enumerate()
        .map(|(i, c)| ((c as i32 - '0' as i32) & 0x3F) << (6 * i))
        .sum()
}

/// The five characters of a packed SQLSTATE.
pub fn sqlstate_text(code: i32) -> String {
    (0..5)
        .map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_pack_and_unpack() {
        for s in ["42P01", "23503", "0A000", "40001", "XX000"] {
            assert_eq!(sqlstate_text(sqlstate_code(s)), s);
        }
        // MAKE_SQLSTATE('2','3','5','0','3') = 2 + (3 << 6) + (5 << 12) + (0 << 18) + (3 << 24)
        assert_eq!(sqlstate_code("23503"), 50_352_322);
    }
}
