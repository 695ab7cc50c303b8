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
    },

    #[error("row-level security on {relation} hides {count} row(s) that reference the family")]
    HiddenRows { relation: String, count: i64 },

    #[error("{what} is not supported: {detail}")]
    Unsupported { what: String, detail: String },

    #[error("the catalog query returned something uproot cannot read: {0}")]
    Catalog(String),
}

impl UprootError {
    /// The five-character SQLSTATE.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            UprootError::UnknownRelation { .. } => "42P01",
            UprootError::NotATable { .. } => "42809",
            UprootError::NoPrimaryKey { .. } => "22023",
            UprootError::InvalidArgument { .. } => "22023",
            UprootError::InvalidPredicate { .. } => "42601",
            UprootError::RestrictBlocked { .. } => "23503",
            UprootError::StopAtBlocked { .. } => "23503",
            UprootError::PermissionDenied { .. } => "42501",
            UprootError::HiddenRows { .. } => "42501",
            UprootError::Unsupported { .. } => "0A000",
            UprootError::Catalog(_) => "XX000",
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
            UprootError::RestrictBlocked { parent, action, .. } => Some(format!(
                "The constraint is ON DELETE {action} and references {parent}."
            )),
            UprootError::StopAtBlocked { parent, .. } => {
                Some(format!("The constraint references {parent}."))
            }
            UprootError::PermissionDenied { why, .. } => Some(why.clone()),
            UprootError::HiddenRows { .. } => Some(
                "A row the caller cannot see would have been deleted or changed by PostgreSQL's own foreign-key action."
                    .into(),
            ),
            UprootError::Unsupported { .. } | UprootError::Catalog(_) => None,
            UprootError::UnknownRelation { .. }
            | UprootError::NotATable { .. }
            | UprootError::InvalidArgument { .. } => None,
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
            UprootError::InvalidPredicate { .. } => {
                "The predicate must be exactly one SQL boolean expression over the root table's columns, e.g. 'created_at < now() - interval ''1 year'''.".into()
            }
            UprootError::RestrictBlocked { child, .. } => format!(
                "Delete or re-point those rows of {child} first, or call again without respect_restrict to take them with the family."
            ),
            UprootError::StopAtBlocked { child, .. } => format!(
                "Remove {child} from stop_at to take those rows with the family, or delete them first."
            ),
            UprootError::PermissionDenied { relation, privilege, .. } => format!(
                "GRANT {privilege} ON {relation} TO the calling role, or add {relation} to stop_at."
            ),
            UprootError::HiddenRows { relation, .. } => format!(
                "Run the operation as a role that can see every row of {relation}, or adjust its row-level security policies."
            ),
            UprootError::Unsupported { .. } => {
                "See the README's list of limitations; please report the schema that needs this.".into()
            }
            UprootError::Catalog(_) => "This is a bug in pg_uproot; please report it.".into(),
        })
    }
}
