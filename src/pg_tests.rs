//! `#[pg_test]`s for the SPI seams: catalog loading and its cache, key binding, predicate checks.
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn extension_creates_schema() {
        let n = Spi::get_one::<i64>("SELECT count(*) FROM pg_namespace WHERE nspname = 'uproot'").unwrap();
        assert_eq!(n, Some(1));
    }
}
