//! The PostgreSQL backend against the store contract. These tests need a server: set
//! POPTUNE_TEST_PG_URL (`export POPTUNE_TEST_PG_URL=$(scripts/pg-test-server)`); without one
//! they fail, they do not skip. Built with the `pg-tests` feature, which `scripts/test` turns
//! on; a plain `cargo test` needs no server.

#![cfg(feature = "pg-tests")]

use poptune_pg::{migrate, PostgresStore, MIGRATIONS};
use poptune_store::{Store, StoreError};

fn url() -> String {
    std::env::var("POPTUNE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "POPTUNE_TEST_PG_URL is not set: these tests need a PostgreSQL server; start one with \
             `export POPTUNE_TEST_PG_URL=$(scripts/pg-test-server)`"
        )
    })
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

#[test]
fn keeps_the_store_contract() {
    let url = url();
    let name = unique("contract");
    poptune_store::contract::check(&name, &mut || {
        Box::new(PostgresStore::open(&url, &name).unwrap()) as Box<dyn Store>
    });
    let mut s = PostgresStore::open(&url, &name).unwrap();
    s.delete().unwrap();
    assert!(s.definition().unwrap().is_none());
    assert!(s.steps().unwrap().is_empty());
}

#[test]
fn experiments_in_one_database_are_separate() {
    let url = url();
    let (a, b) = (unique("sep_a"), unique("sep_b"));
    let mut sa = PostgresStore::open(&url, &a).unwrap();
    let mut sb = PostgresStore::open(&url, &b).unwrap();
    sa.create(&a, "{}", &[]).unwrap();
    assert!(sb.definition().unwrap().is_none());
    sb.create(&b, "{\"b\": 1}", &[]).unwrap();
    assert_eq!(sa.definition().unwrap().unwrap().1, "{}");
    // Creating an existing experiment again is refused.
    assert!(sa.create(&a, "{}", &[]).is_err());
    // And a store opened for one experiment does not create another.
    assert!(matches!(
        sa.create(&b, "{}", &[]),
        Err(StoreError::Mismatch(_))
    ));
    sa.delete().unwrap();
    sb.delete().unwrap();
}

#[test]
fn migrations_are_versioned_and_a_newer_schema_is_refused() {
    let url = url();
    let (cfg, _) = poptune_pg::config(&url).unwrap();
    let mut admin = cfg.connect(postgres::NoTls).unwrap();
    let db = unique("poptune_mig");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let mut fresh = cfg.clone();
    fresh.dbname(&db);
    {
        let mut c = fresh.connect(postgres::NoTls).unwrap();
        assert_eq!(migrate(&mut c, "test").unwrap(), 0);
        let latest = MIGRATIONS.last().unwrap().0;
        // Applying again finds the latest version and changes nothing.
        assert_eq!(migrate(&mut c, "test").unwrap(), latest);
        c.execute("INSERT INTO poptune_schema (version) VALUES (999)", &[])
            .unwrap();
        let e = migrate(&mut c, "test").unwrap_err().to_string();
        assert!(e.contains("999") && e.contains("upgrade poptune"), "{e}");
    }
    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
}

#[test]
fn errors_never_show_the_password() {
    url();
    // Nothing listens on port 1: the connection fails; the message names host and port only.
    let bad = "postgres://someone:s3cret-pw@127.0.0.1:1/db?connect_timeout=2";
    let e = PostgresStore::open(bad, "x").err().unwrap().to_string();
    assert!(!e.contains("s3cret-pw"), "{e}");
    assert!(e.contains("127.0.0.1:1/db"), "{e}");
    let e = poptune_pg::config("not a url").err().unwrap().to_string();
    assert!(e.contains("postgres://"), "{e}");
}
