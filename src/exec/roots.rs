//! Turning the caller's `keys` or `predicate` into a root filter, with clear errors.

use crate::error::UprootError;
use crate::graph::model::{Column, Relation};
use crate::plan::RootFilter;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// How the root rows were named, ready to bind.
pub struct Roots {
    pub filter: RootFilter,
    pub args: Vec<DatumWithOid<'static>>,
}

fn text_like(t: pg_sys::Oid) -> bool {
    t == pg_sys::TEXTOID
        || t == pg_sys::VARCHAROID
        || t == pg_sys::BPCHAROID
        || t == pg_sys::UNKNOWNOID
}

fn type_name(t: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::format_type_be(t);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn coercible(from: pg_sys::Oid, to: pg_sys::Oid) -> bool {
    if from == to || text_like(from) {
        return true;
    }
    let from_arr = [from];
    let to_arr = [to];
    unsafe {
        pg_sys::can_coerce_type(
            1,
            from_arr.as_ptr(),
            to_arr.as_ptr(),
            // implicit only: an assignment cast such as numeric -> integer would round 3.5 to 4
            pg_sys::CoercionContext::COERCION_IMPLICIT,
        )
    }
}

fn output_text(datum: pg_sys::Datum, typ: pg_sys::Oid) -> String {
    unsafe {
        let mut out_fn = pg_sys::InvalidOid;
        let mut varlena = false;
        pg_sys::getTypeOutputInfo(typ, &mut out_fn, &mut varlena);
        let p = pg_sys::OidOutputFunctionCall(out_fn, datum);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Resolve `keys` (any type) against the root's primary key.
pub fn from_keys(
    root: &Relation,
    keys: Option<pgrx::AnyElement>,
    function: &str,
) -> Result<Roots, UprootError> {
    let pk = match root.primary_key_columns() {
        Some(cols) if !cols.is_empty() => cols,
        _ => {
            return Err(UprootError::NoPrimaryKey {
                relation: root.display_name(),
                function: function.to_string(),
            })
        }
    };
    let keys = keys.ok_or_else(|| UprootError::InvalidArgument {
        argument: "keys".into(),
        message: "keys must not be NULL".into(),
        hint: format!(
            "Pass a value or an array of {}'s primary key; an empty array does nothing.",
            root.display_name()
        ),
    })?;
    let given = keys.oid();
    let pk_names: Vec<String> = pk.iter().map(|c| c.name.clone()).collect();
    let pk_type = pg_sys::Oid::from(pk[0].type_oid);

    // jsonb names the key columns; it is the only way for a composite key
    if given == pg_sys::JSONBOID && !(pk.len() == 1 && pk_type == pg_sys::JSONBOID) {
        let text = output_text(keys.datum(), given);
        let normalized = normalize_json_keys(&text, &pk_names, &root.display_name())?;
        return Ok(Roots {
            filter: RootFilter::Json,
            args: vec![DatumWithOid::from(normalized)],
        });
    }
    if pk.len() > 1 {
        return Err(composite_needs_jsonb(root, &pk_names, given));
    }
    scalar_or_array(root, pk[0], keys, function)
}

/// A composite key is named only by jsonb objects.
fn composite_needs_jsonb(root: &Relation, pk_names: &[String], given: pg_sys::Oid) -> UprootError {
    UprootError::InvalidArgument {
        argument: "keys".into(),
        message: format!(
            "{} has a composite primary key ({}), so keys must be jsonb, not {}",
            root.display_name(),
            pk_names.join(", "),
            type_name(given)
        ),
        hint: format!(
            "Pass an object or an array of objects, e.g. '{{{}}}'::jsonb.",
            pk_names
                .iter()
                .map(|n| format!("\"{n}\": ..."))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Keys of a one-column primary key: one value or an array, of the key's type or one that
/// converts to it implicitly (text is checked by the type's input function).
fn scalar_or_array(
    root: &Relation,
    key: &Column,
    keys: pgrx::AnyElement,
    function: &str,
) -> Result<Roots, UprootError> {
    let given = keys.oid();
    let pk_type = pg_sys::Oid::from(key.type_oid);
    let elem = unsafe { pg_sys::get_element_type(given) };
    let is_array = elem != pg_sys::InvalidOid;
    let value_type = if is_array { elem } else { given };
    if !coercible(value_type, pk_type) {
        return Err(UprootError::InvalidArgument {
            argument: "keys".into(),
            message: format!(
                "keys of type {} do not match the primary key {}.{} of type {}",
                type_name(given),
                root.display_name(),
                key.name,
                key.type_name
            ),
            hint: format!(
                "Pass {t} or {t}[], e.g. uproot.{f}('{r}', 42) or uproot.{f}('{r}', array[1, 2]), or cast the keys to {t}.",
                t = key.type_name,
                f = function.replace("uproot.", ""),
                r = root.display_name()
            ),
        });
    }
    if is_array {
        let arr = unsafe {
            pg_sys::pg_detoast_datum(keys.datum().cast_mut_ptr()) as *mut pg_sys::ArrayType
        };
        if unsafe { pg_sys::array_contains_nulls(arr) } {
            return Err(UprootError::InvalidArgument {
                argument: "keys".into(),
                message: "keys must not contain NULL".into(),
                hint: "Remove the NULL elements: a NULL key names no row.".into(),
            });
        }
    }
    let cast = if value_type == pk_type {
        None
    } else if is_array {
        Some(format!("{}[]", key.type_name))
    } else {
        Some(key.type_name.clone())
    };
    if cast.is_some() && text_like(value_type) {
        validate_text_keys(&output_text(keys.datum(), given), &cast, &key.type_name)?;
    }
    let arg = unsafe { DatumWithOid::new(keys.datum(), given) };
    Ok(Roots {
        filter: if is_array {
            RootFilter::Array { cast }
        } else {
            RootFilter::Scalar { cast }
        },
        args: vec![arg],
    })
}

/// Text keys are converted with the key type's input function; a bad value is the caller's
/// argument error, reported as such before anything runs.
fn validate_text_keys(
    text: &str,
    cast: &Option<String>,
    key_type: &str,
) -> Result<(), UprootError> {
    let Some(cast) = cast else { return Ok(()) };
    let sql = format!("SELECT CAST(CAST($1 AS pg_catalog.text) AS {cast}) IS NOT NULL");
    let args = [DatumWithOid::from(text.to_string())];
    // the conversion's error is the caller's; the subtransaction undoes what it left behind
    let outcome = crate::spi::in_subtransaction(
        |_| true,
        || Spi::connect(|c| c.select(&sql, Some(1), &args)?.first().get_one::<bool>()),
    );
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Err(said) => Err(UprootError::InvalidArgument {
            argument: "keys".into(),
            message: format!("{text} is not a valid {key_type}: {}", said.message()),
            hint: format!("Pass keys of type {key_type}."),
        }),
        Ok(Err(e)) => Err(crate::spi::failed("checking a text key")(e)),
    }
}

/// Check a jsonb key argument and return it as a JSON array of objects.
pub fn normalize_json_keys(
    text: &str,
    pk: &[String],
    relation: &str,
) -> Result<String, UprootError> {
    let bad = |message: String| UprootError::InvalidArgument {
        argument: "keys".into(),
        message,
        hint: format!(
            "Pass an object or an array of objects with exactly the keys {} of {relation}.",
            pk.join(", ")
        ),
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let list = match value {
        serde_json::Value::Object(_) => vec![value],
        serde_json::Value::Array(items) => items,
        _ => {
            return Err(bad(
                "keys must be a jsonb object or an array of objects".into()
            ))
        }
    };
    for item in &list {
        let obj = item
            .as_object()
            .ok_or_else(|| bad(format!("{item} is not an object")))?;
        for name in pk {
            match obj.get(name) {
                None => return Err(bad(format!("{item} has no \"{name}\""))),
                Some(serde_json::Value::Null) => {
                    return Err(bad(format!(
                        "{item} has a NULL \"{name}\": a NULL key names no row"
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = obj.keys().find(|k| !pk.contains(k)) {
            return Err(bad(format!(
                "{item} has \"{extra}\", which is not a primary-key column"
            )));
        }
    }
    Ok(serde_json::Value::Array(list).to_string())
}

/// The keys as jsonb text, for the ledger.
pub fn keys_as_json(r: &Roots) -> String {
    if r.filter == RootFilter::Json {
        let arg = r.args.first().and_then(|a| a.datum());
        if let Some(d) = arg {
            return unsafe { String::from_datum(d.sans_lifetime(), false) }.unwrap_or_default();
        }
    }
    let args: Vec<DatumWithOid<'_>> = r
        .args
        .iter()
        .map(|a| unsafe { DatumWithOid::new_from_datum(a.datum(), a.oid()) })
        .collect();
    Spi::get_one_with_args::<String>("SELECT pg_catalog.to_jsonb($1)::pg_catalog.text", &args)
        .ok()
        .flatten()
        .unwrap_or_default()
}
