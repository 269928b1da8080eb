//! The server: its threads, the experiments it found and the data it keeps of each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::data::{Cache, Cursor};
use crate::source::{self, Entry, Opened};
use crate::token::{self, TokenPolicy};
use crate::{DashboardError, Location, Options};

/// How long a folder's listing is kept before it is read again.
const RESCAN_EVERY: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The experiments found, as `(id, entry)`.
type Entries = Vec<(String, Entry)>;

/// One experiment being shown: its store, kept open, and what was read of it.
struct Live {
    id: String,
    opened: Opened,
    cache: Cache,
}

/// What the request handlers share.
pub(crate) struct State {
    location: Location,
    only: Option<String>,
    /// The token every request must carry, if any.
    pub token: Option<String>,
    /// Whether the server listens on a loopback address only.
    pub loopback: bool,
    found: Mutex<Option<(Instant, Entries)>>,
    live: Mutex<HashMap<String, Arc<Mutex<Live>>>>,
}

impl State {
    /// The experiments shown, as `(id, entry)`.
    fn entries(&self) -> Result<Vec<(String, Entry)>, DashboardError> {
        let mut found = lock(&self.found);
        if let Some((at, list)) = found.as_ref() {
            if at.elapsed() < RESCAN_EVERY {
                return Ok(list.clone());
            }
        }
        let mut list = source::list(&self.location)?;
        if let Some(only) = &self.only {
            list.retain(|(id, entry)| {
                id == only || self.name_of(id, entry).as_deref() == Some(only)
            });
        }
        *found = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    fn name_of(&self, id: &str, entry: &Entry) -> Option<String> {
        match self.live(id, entry) {
            Ok(live) => Some(lock(&live).opened.def.name.clone()),
            Err(_) => None,
        }
    }

    fn live(&self, id: &str, entry: &Entry) -> Result<Arc<Mutex<Live>>, DashboardError> {
        if let Some(l) = lock(&self.live).get(id) {
            return Ok(l.clone());
        }
        let opened = source::open(entry)?;
        let cache = new_cache(&opened, id)?;
        let l = Arc::new(Mutex::new(Live {
            id: id.to_string(),
            opened,
            cache,
        }));
        lock(&self.live).insert(id.to_string(), l.clone());
        Ok(l)
    }

    /// The experiment `id`, if it is one of those shown.
    fn find(&self, id: &str) -> Result<Option<Arc<Mutex<Live>>>, DashboardError> {
        let entries = self.entries()?;
        match entries.iter().find(|(i, _)| i == id) {
            Some((i, entry)) => self.live(i, entry).map(Some),
            None => Ok(None),
        }
    }

    /// Every experiment's line in the list.
    pub fn listing(&self) -> Result<Value, DashboardError> {
        let mut out = Vec::new();
        for (id, entry) in self.entries()? {
            let line = self.live(&id, &entry).and_then(|l| {
                let mut l = lock(&l);
                refresh(&mut l)?;
                Ok(l.cache.listing())
            });
            out.push(line.unwrap_or_else(
                |e| serde_json::json!({ "id": id, "name": id, "error": e.to_string() }),
            ));
        }
        Ok(Value::Array(out))
    }

    /// What is new in experiment `id` after `cursor`; `None` if there is no such experiment.
    pub fn update(&self, id: &str, cursor: &Cursor) -> Result<Option<Value>, DashboardError> {
        let Some(l) = self.find(id)? else {
            return Ok(None);
        };
        let mut l = lock(&l);
        refresh(&mut l)?;
        let workers = l.cache.leases.as_ref().map(|leases| {
            let mut by: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for (m, owner) in leases {
                by.entry(owner.as_str()).or_default().push(*m);
            }
            serde_json::json!(by
                .into_iter()
                .map(|(w, ms)| serde_json::json!({ "worker": w, "members": ms }))
                .collect::<Vec<_>>())
        });
        Ok(Some(l.cache.update(cursor, workers)))
    }
}

fn new_cache(opened: &Opened, id: &str) -> Result<Cache, DashboardError> {
    let gen = token::random().chars().take(12).collect();
    Cache::new(opened.def.clone(), id.to_string(), gen)
}

fn refresh(l: &mut Live) -> Result<(), DashboardError> {
    if !l.cache.stale() {
        return Ok(());
    }
    if !l.cache.refresh(l.opened.store.as_ref(), false)? {
        // The experiment was made again: a new log, which clients take as a reset.
        l.cache = new_cache(&l.opened, &l.id)?;
        l.cache.refresh(l.opened.store.as_ref(), true)?;
    }
    if let Some(reader) = &l.opened.leases {
        l.cache.leases = Some(reader.leases()?);
    }
    Ok(())
}

/// The running dashboard. Dropping it stops the server.
pub struct Server {
    http: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
    token: Option<String>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The token every request must carry, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The page's URL, with the token when one is required: what to open in a browser.
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            // Listening on every address: the loopback one reaches it from this machine.
            match self.addr {
                SocketAddr::V4(_) => format!("127.0.0.1:{}", self.port()),
                SocketAddr::V6(_) => format!("[::1]:{}", self.port()),
            }
        } else {
            self.addr.to_string()
        };
        match &self.token {
            Some(t) => format!("http://{host}/?token={t}"),
            None => format!("http://{host}/"),
        }
    }

    /// Serves until the process ends.
    pub fn run_forever(mut self) {
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }

    /// Stops the server and waits for its threads.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in 0..self.threads.len() {
            self.http.unblock();
        }
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn token_for(opts: &Options, loopback: bool) -> Result<Option<String>, DashboardError> {
    Ok(match &opts.token {
        TokenPolicy::Auto if loopback => None,
        TokenPolicy::Auto | TokenPolicy::Always => Some(token::random()),
        TokenPolicy::Given(t) => {
            if t.len() < token::MIN_LEN
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(DashboardError::Usage(format!(
                    "an access token needs at least {} characters, letters, digits, - or _",
                    token::MIN_LEN
                )));
            }
            Some(t.clone())
        }
    })
}

pub(crate) fn start(opts: Options) -> Result<Server, DashboardError> {
    let loopback = opts.bind.is_loopback();
    let token = token_for(&opts, loopback)?;
    let state = Arc::new(State {
        location: opts.location.clone(),
        only: opts.experiment.clone(),
        token: token.clone(),
        loopback,
        found: Mutex::new(None),
        live: Mutex::new(HashMap::new()),
    });
    // Fail now, not on the first request, if there is nothing to show.
    let entries = state.entries()?;
    if entries.is_empty() {
        let what = opts.experiment.as_deref().unwrap_or("");
        let all: Vec<String> = source::list(&opts.location)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        return Err(DashboardError::Usage(format!(
            "no experiment `{what}` here; there are: {}",
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        )));
    }
    let want = SocketAddr::new(opts.bind, opts.port);
    let http = tiny_http::Server::http(want).map_err(|e| DashboardError::Bind {
        addr: want.to_string(),
        message: e.to_string(),
    })?;
    let addr = http.server_addr().to_ip().unwrap_or(want);
    let http = Arc::new(http);
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..opts.threads.max(1))
        .map(|_| {
            let (http, stop, state) = (http.clone(), stop.clone(), state.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match http.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(req)) => crate::http::handle(&state, req),
                        Ok(None) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
        })
        .collect();
    Ok(Server {
        http,
        stop,
        threads,
        addr,
        token,
    })
}
