//! Leases by the database's clock, the server's own words in errors, and reconnecting after
//! the connection is cut. Needs a server: set POPTUNE_TEST_PG_URL
//! (`export POPTUNE_TEST_PG_URL=$(scripts/pg-test-server)`); without one these tests fail, they
//! do not skip. Built with the `pg-tests` feature.

#![cfg(feature = "pg-tests")]

use std::time::{Duration, Instant};

use poptune::Hyperparams;
use poptune_pg::{PostgresStore, Ready};
use poptune_store::{Commit, Leases, MemberRow, Store};

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

/// A new experiment of one member.
fn one_member(url: &str, prefix: &str) -> (PostgresStore, String) {
    let name = unique(prefix);
    let mut s = PostgresStore::open(url, &name).unwrap();
    let h: Hyperparams = [("lr", 1.0)].into_iter().collect();
    s.create(&name, "{}", &[MemberRow::new(0, h)]).unwrap();
    (s, name)
}

/// A ready transaction that would record a fault row, so that a wrong answer shows.
fn try_ready(s: &PostgresStore, owner: &str) -> Ready<()> {
    s.ready(owner, 0, |view| {
        let mut m = view.members[0].clone();
        m.failures += 1;
        (
            Commit {
                members: vec![m],
                ..Commit::default()
            },
            (),
        )
    })
    .unwrap()
}

/// A worker that stalled past its lease (nobody claimed the member meanwhile) can neither
/// renew the lease nor record its segment: the lease is checked by the database's clock, not
/// only by its owner's name.
#[test]
fn an_expired_lease_is_neither_renewed_nor_recorded() {
    let url = url();
    let (mut s, _) = one_member(&url, "expired");
    let row = s.claim("stalled", Duration::from_secs(1), None).unwrap();
    assert!(row.is_some());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !s.heartbeat("stalled", 0, Duration::from_secs(30)).unwrap(),
        "the heartbeat revived an expired lease"
    );
    assert_eq!(try_ready(&s, "stalled"), Ready::LeaseLost);
    assert_eq!(
        s.members().unwrap()[0].failures,
        0,
        "the ready was recorded"
    );
    // The member is free for anyone; a lease that holds records as before.
    assert!(s
        .claim("fresh", Duration::from_secs(30), None)
        .unwrap()
        .is_some());
    assert!(s.heartbeat("fresh", 0, Duration::from_secs(30)).unwrap());
    assert_eq!(try_ready(&s, "fresh"), Ready::Done(()));
    assert_eq!(s.members().unwrap()[0].failures, 1);
    s.delete().unwrap();
}

/// The ready transaction alone (no heartbeat in between) refuses an expired lease too.
#[test]
fn a_ready_after_the_lease_ran_out_records_nothing() {
    let url = url();
    let (mut s, _) = one_member(&url, "late_ready");
    assert!(s
        .claim("slow", Duration::from_secs(1), None)
        .unwrap()
        .is_some());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(try_ready(&s, "slow"), Ready::LeaseLost);
    assert_eq!(s.members().unwrap()[0].failures, 0);
    s.delete().unwrap();
}

fn location(url: &str) -> String {
    poptune_pg::config(url).unwrap().1
}

/// The server's reason is in the message ("role … does not exist"), not "db error"; and the
/// URL's password never is.
#[test]
fn a_refused_connection_says_the_servers_reason_without_the_password() {
    let url = url();
    let role = unique("nosuchrole");
    let bad = format!("postgres://{role}:s3cret-pw-42@{}", location(&url));
    let e = PostgresStore::open(&bad, "x").err().unwrap().to_string();
    assert!(
        e.contains(&format!("role \"{role}\" does not exist")),
        "the server's reason is missing: {e}"
    );
    assert!(!e.contains("s3cret-pw-42"), "{e}");
    assert!(!e.contains("db error"), "{e}");
    // With the password from PGPASSWORD instead of the URL, the same.
    let e = poptune_pg::config(&format!("postgres://{role}:s3cret-pw-42@127.0.0.1:1:2/db"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!e.contains("s3cret-pw-42"), "{e}");
}

/// Cuts every connection of experiment `name` (as a restarting server or an administrator
/// would), and waits until they are gone.
fn terminate(url: &str, name: &str) {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let app = format!("poptune {name}");
    let n = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .len();
    assert!(n >= 1, "no connection of {app}");
    let t = Instant::now();
    while admin
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{app} still connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection the server cut says so in the server's words, is known to be lost, and a
/// reconnect makes the store work again.
#[test]
fn a_cut_connection_is_named_and_reconnects() {
    let url = url();
    let (mut s, name) = one_member(&url, "cut");
    assert!(!s.connection_lost());
    terminate(&url, &name);
    let e = s.members().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("terminating connection due to administrator command"),
        "{e}"
    );
    assert!(!e.contains("db error"), "{e}");
    assert!(s.connection_lost(), "the store did not notice: {e}");
    s.reconnect().unwrap();
    assert!(!s.connection_lost());
    assert_eq!(s.members().unwrap().len(), 1);
    s.delete().unwrap();
}

/// A snapshot reads what a ready transaction reads, takes no lock (a ready transaction of
/// another worker is not kept waiting by one), and leaves the lease alone.
#[test]
fn a_snapshot_reads_the_ready_view_without_a_lock() {
    let url = url();
    let (s, name) = one_member(&url, "snapshot");
    assert!(s
        .claim("w", Duration::from_secs(30), None)
        .unwrap()
        .is_some());
    let view = s.snapshot().unwrap();
    assert_eq!(view.members.len(), 1);
    assert_eq!(view.members[0].failures, 0);
    assert_eq!(view.events, 0);
    // While another connection holds the experiment's lock (a ready transaction in progress),
    // a snapshot still answers.
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = other.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM poptune_experiments WHERE name = $1 FOR UPDATE",
        &[&name],
    )
    .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = PostgresStore::open(&url, &name).unwrap();
    std::thread::spawn(move || {
        let _ = done_tx.send(reader.snapshot().map(|v| v.members.len()));
    });
    let got = done_rx.recv_timeout(Duration::from_secs(20));
    tx.rollback().unwrap();
    assert_eq!(got.expect("the snapshot waited for the lock").unwrap(), 1);
    // The lease is still the claimer's: its ready transaction records.
    assert_eq!(try_ready(&s, "w"), Ready::Done(()));
    assert_eq!(s.members().unwrap()[0].failures, 1);
}
