//! Experiments in PostgreSQL (feature `postgres`): their names, their stores, and who holds
//! each member's lease. Only reads: `SELECT`s in read-only transactions.

use std::sync::Mutex;

use poptune::ExperimentDef;
use poptune_pg::PostgresStore;
use poptune_store::Store;

use crate::source::{LeaseReader, Opened};
use crate::DashboardError;

fn connect(url: &str) -> Result<postgres::Client, DashboardError> {
    let (cfg, location) = poptune_pg::config(url)?;
    cfg.connect(postgres::NoTls).map_err(|e| {
        DashboardError::Data(format!("database {location}: {}", poptune_pg::describe(&e)))
    })
}

fn failed(e: &postgres::Error) -> DashboardError {
    DashboardError::Data(format!("database: {}", poptune_pg::describe(e)))
}

/// The names of the experiments the database at `url` holds, sorted.
pub(crate) fn experiments(url: &str) -> Result<Vec<String>, DashboardError> {
    let mut client = connect(url)?;
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|e| failed(&e))?;
    let rows = tx
        .query("SELECT name FROM poptune_experiments ORDER BY name", &[])
        .map_err(|e| failed(&e))?;
    let names = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    tx.commit().map_err(|e| failed(&e))?;
    Ok(names)
}

/// Opens experiment `name` of the database at `url`.
pub(crate) fn open(url: &str, name: &str) -> Result<Opened, DashboardError> {
    let store = PostgresStore::open(url, name)?;
    let (_, text) = store.definition()?.ok_or_else(|| {
        DashboardError::Data(format!("the database holds no experiment `{name}`"))
    })?;
    let def = ExperimentDef::from_json(&text).map_err(|e| {
        DashboardError::Data(format!("experiment {name}: unreadable definition: {e}"))
    })?;
    let leases = Leases {
        client: Mutex::new(connect(url)?),
        experiment: name.to_string(),
    };
    Ok(Opened {
        store: Box::new(store),
        def,
        leases: Some(Box::new(leases)),
    })
}

/// Reads the live leases of one experiment's members.
struct Leases {
    client: Mutex<postgres::Client>,
    experiment: String,
}

impl LeaseReader for Leases {
    fn leases(&self) -> Result<Vec<(usize, String)>, DashboardError> {
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let rows = c
            .query(
                "SELECT id, lease_owner FROM poptune_members
                 WHERE experiment = $1 AND lease_owner IS NOT NULL
                   AND lease_until > clock_timestamp() ORDER BY id",
                &[&self.experiment],
            )
            .map_err(|e| failed(&e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id: i32 = r.try_get(0).ok()?;
                let owner: String = r.try_get(1).ok()?;
                Some((usize::try_from(id).ok()?, owner))
            })
            .collect())
    }
}
