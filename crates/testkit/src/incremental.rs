//! Incremental discovery against full discovery: after each change a test
//! makes to a source, [`Tracker::step`] re-discovers incrementally from the
//! last fingerprint and compares the result with a full discovery, table by
//! table.
//!
//! ```no_run
//! # async fn t(conn: &mut dyn matih_connector_core::Connection) {
//! use matih_connector_testkit::incremental::Tracker;
//! let req = matih_connector_core::DiscoveryRequest::default();
//! let mut tracker = Tracker::start(conn, &req).await;
//! // … ALTER TABLE …
//! let step = tracker.step(conn, "add a column").await;
//! assert!(step.changed.contains(&("app".into(), "orders".into())));
//! # }
//! ```

use std::collections::BTreeSet;

use matih_connector_core::{Catalog, CatalogFingerprint, Connection, DiscoveryRequest};

/// What one incremental re-discovery reported, as (schema, table) pairs.
#[derive(Debug)]
pub struct Step {
    /// Relations whose detail was read again (new or changed).
    pub changed: BTreeSet<(String, String)>,
    /// Relations reported gone.
    pub removed: BTreeSet<(String, String)>,
}

/// The last fingerprint and catalog of a sequence of re-discoveries.
#[derive(Debug)]
pub struct Tracker {
    req: DiscoveryRequest,
    fingerprint: CatalogFingerprint,
    catalog: Catalog,
}

impl Tracker {
    /// A first discovery without a fingerprint: full, and it must return one.
    pub async fn start(conn: &mut dyn Connection, req: &DiscoveryRequest) -> Tracker {
        let delta = conn
            .discover_changed(req, None)
            .await
            .unwrap_or_else(|e| panic!("first discovery: {e}"));
        assert!(delta.full, "without a fingerprint a discovery is full");
        let fingerprint = delta
            .fingerprint
            .clone()
            .expect("a fingerprinting driver returns a fingerprint");
        let full = conn.discover(req).await.expect("full discovery");
        let catalog = delta.apply(Catalog::default());
        assert_same("the first discovery", &catalog, &full);
        Tracker {
            req: req.clone(),
            fingerprint,
            catalog,
        }
    }

    /// Re-discovers incrementally after `what` (a change the test made), and
    /// asserts the result is not a full discovery and equals one, table by
    /// table.
    pub async fn step(&mut self, conn: &mut dyn Connection, what: &str) -> Step {
        let delta = conn
            .discover_changed(&self.req, Some(&self.fingerprint))
            .await
            .unwrap_or_else(|e| panic!("{what}: incremental discovery: {e}"));
        let full = conn
            .discover(&self.req)
            .await
            .unwrap_or_else(|e| panic!("{what}: full discovery: {e}"));
        assert!(
            !delta.full,
            "{what}: the re-discovery fell back to a full one"
        );
        let pairs = |s: &BTreeSet<matih_connector_core::RelationName>| {
            s.iter()
                .map(|n| (n.schema.clone(), n.table.clone()))
                .collect::<BTreeSet<_>>()
        };
        let step = Step {
            changed: pairs(&delta.changed),
            removed: pairs(&delta.removed),
        };
        self.fingerprint = delta
            .fingerprint
            .clone()
            .unwrap_or_else(|| panic!("{what}: no fingerprint"));
        let previous = std::mem::take(&mut self.catalog);
        self.catalog = delta.apply(previous);
        assert_same(what, &self.catalog, &full);
        step
    }

    /// The catalog as the last re-discovery left it.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// Incremental equals full: the same schemas, and each table equal.
pub fn assert_same(what: &str, incremental: &Catalog, full: &Catalog) {
    let names = |c: &Catalog| {
        c.schemas
            .iter()
            .flat_map(|s| {
                s.tables
                    .iter()
                    .map(move |t| (s.name.clone(), t.name.clone()))
            })
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        names(incremental),
        names(full),
        "{what}: incremental and full discovery list different tables"
    );
    for s in &full.schemas {
        let inc = incremental.schema(&s.name).expect("schema listed");
        assert_eq!(inc.comment, s.comment, "{what}: schema {}", s.name);
        for t in &s.tables {
            assert_eq!(
                inc.table(&t.name),
                Some(t),
                "{what}: {}.{} differs between incremental and full discovery",
                s.name,
                t.name
            );
        }
    }
    assert_eq!(incremental, full, "{what}");
}
