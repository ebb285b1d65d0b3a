//! Discovery jobs in the metadata store and scheduled re-discovery, against
//! the real PostgreSQL fixture:
//!
//! - a connector to a fresh source database on the fixture is re-discovered
//!   by the scheduler's rounds (incrementally, through the PostgreSQL
//!   driver's fingerprint); DDL between two rounds produces exactly one signed
//!   `SCHEMA_CHANGED` webhook with the diff, unchanged rounds none;
//! - two service instances share one PostgreSQL metadata store: a job started
//!   on one is visible (and is the only one) from the other; the first is
//!   killed mid-job and the second takes the job over once its lease ends,
//!   and finishes it.
//!
//! Rounds are driven by calling `discovery::schedule_round` directly; a
//! connector is made due again by moving its stored due instant, not by
//! waiting. Every wait is on an observable event with a deadline.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use matih_connector_service::app::{app, AppState, Settings};
use matih_connector_service::auth::{mint_hs256, Role, Verifier};
use matih_connector_service::discovery;
use matih_connector_service::health::{HealthMonitor, HealthSettings, Notifier, WebhookNotifier};
use matih_connector_service::model::{ts, Connector, ConnectorStatus, JobStatus, Tenant};
use matih_connector_service::secrets::local::LocalSecretStore;
use matih_connector_service::secrets::SecretStore;
use matih_connector_testkit::{fixture, Fixture};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection as _;
use tower::ServiceExt;
use uuid::Uuid;

use common::fake_driver::{self, Gate, GOOD_PASSWORD};
use common::pg::{drop_database, fresh_database};
use common::webhook::{Receiver, HOOK_SECRET};
use common::{
    fake_registry, fake_server, own_pool, temp_dir, until, within, Harness, Options, DEADLINE,
};

const JWT: &[u8] = b"discovery-jobs-jwt-secret-0123456789abcdef";

/// Makes every connector due for re-discovery (its stored due instant moves
/// to the past), as a day passing would.
async fn make_due(pool: &sqlx::AnyPool) {
    sqlx::query("UPDATE connectors SET discovery_next_at = $1")
        .bind(ts(chrono::Utc::now() - chrono::Duration::seconds(1)))
        .execute(pool)
        .await
        .unwrap();
}

/// One scheduler round that must start exactly one job; returns it finished.
async fn one_scheduled_run(state: &AppState) -> matih_connector_service::model::DiscoveryJob {
    let mut started = discovery::schedule_round(state).await.unwrap();
    assert_eq!(started.len(), 1, "one connector due");
    let s = started.remove(0);
    assert!(!s.already_running);
    within("the scheduled discovery", s.wait(DEADLINE))
        .await
        .expect("the job ends")
}

async fn outbox_kinds(pool: &sqlx::AnyPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT kind, delivered_at FROM notification_outbox ORDER BY created_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_schema_change_between_scheduled_runs_sends_one_signed_schema_changed_webhook() {
    let Some(fx) = fixture(
        "POSTGRES",
        "a_schema_change_between_scheduled_runs_sends_one_signed_schema_changed_webhook",
    ) else {
        return;
    };
    common::init();
    // The source: a fresh database on the fixture with a known schema.
    let (admin, src_db, src_url) = fresh_database(&fx, "matih_src_").await;
    let mut src = sqlx::postgres::PgConnection::connect(&src_url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.orders (id integer PRIMARY KEY, amount integer, legacy_flag boolean); \
         CREATE TABLE shop.legacy (id integer); \
         CREATE VIEW shop.big_orders AS SELECT id FROM shop.orders WHERE amount > 100;",
    )
    .execute(&mut src)
    .await
    .unwrap();

    // The service: SQLite metadata store, local secrets, the real drivers.
    let dir = temp_dir("schema-changed");
    let meta_url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    let store = matih_connector_service::store::open(&meta_url)
        .await
        .unwrap();
    let secrets: Arc<dyn SecretStore> =
        Arc::new(LocalSecretStore::new(dir.join("secrets"), [9u8; 32]).unwrap());
    let state = AppState::new(
        store,
        secrets,
        matih_connectors::registry(),
        Verifier::new(Some(JWT), None).unwrap(),
        Settings {
            discovery_jitter: Duration::ZERO,
            public_url: Some("https://matih.example/".trim_end_matches('/').into()),
            ..Settings::default()
        },
    );
    let pool = own_pool(&meta_url).await;
    let receiver = Receiver::default();
    let hook_port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let _hook = receiver.listen(hook_port).await;
    let hook: Arc<dyn Notifier> = Arc::new(
        WebhookNotifier::new(
            &format!("http://127.0.0.1:{hook_port}/hook"),
            HOOK_SECRET,
            Duration::from_secs(5),
        )
        .unwrap(),
    );
    // The monitor only delivers here: the rounds are called directly.
    let monitor = HealthMonitor::new(
        state.clone(),
        HealthSettings::default(),
        hook,
        Some("r1".into()),
    )
    .unwrap();
    let (t, c) = pg_connector(&state, &fx, &src_db).await;

    // Round 1: never discovered, so due at once; a full discovery, nothing
    // to compare with, no notice.
    let j1 = one_scheduled_run(&state).await;
    assert_eq!(j1.status, JobStatus::Succeeded, "{j1:?}");
    assert_eq!(j1.incremental, Some(false));
    assert_eq!(j1.origin.map(|o| o.as_str()), Some("SCHEDULE"));
    // Not due again before its interval (a day by default).
    assert!(discovery::schedule_round(&state).await.unwrap().is_empty());
    let (interval, next_at) = state.store.discovery_schedule(c.id).await.unwrap().unwrap();
    assert_eq!(interval, None);
    let next_at = matih_connector_service::model::parse_ts(&next_at.unwrap()).unwrap();
    assert!(next_at > chrono::Utc::now() + chrono::Duration::hours(23));
    assert_eq!(monitor.deliver_pending().await.unwrap(), 0);

    // Round 2: nothing changed: incremental, no notice.
    make_due(&pool).await;
    let j2 = one_scheduled_run(&state).await;
    assert_eq!(j2.status, JobStatus::Succeeded, "{j2:?}");
    assert_eq!(
        j2.incremental,
        Some(true),
        "the driver's fingerprint was used"
    );
    assert_eq!(monitor.deliver_pending().await.unwrap(), 0);
    assert!(outbox_kinds(&pool).await.is_empty());

    // The source changes: a table added and one dropped, a column added, one
    // dropped and one whose type changes.
    sqlx::raw_sql(
        "CREATE TABLE shop.customers (id bigint, email text); \
         DROP TABLE shop.legacy; \
         ALTER TABLE shop.orders ADD COLUMN note text; \
         ALTER TABLE shop.orders DROP COLUMN legacy_flag; \
         DROP VIEW shop.big_orders; \
         ALTER TABLE shop.orders ALTER COLUMN amount TYPE numeric(12,2); \
         CREATE VIEW shop.big_orders AS SELECT id FROM shop.orders WHERE amount > 100;",
    )
    .execute(&mut src)
    .await
    .unwrap();

    // Round 3: exactly one SCHEMA_CHANGED notice, signed, with the diff.
    make_due(&pool).await;
    let j3 = one_scheduled_run(&state).await;
    assert_eq!(j3.status, JobStatus::Succeeded, "{j3:?}");
    assert_eq!(j3.incremental, Some(true));
    assert_eq!(monitor.deliver_pending().await.unwrap(), 1);
    receiver.received(1).await;
    assert_eq!(
        receiver
            .bad_signatures
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let n = receiver.got.lock().unwrap()[0].clone();
    assert_eq!(n["event"], "SCHEMA_CHANGED");
    assert_eq!(n["connectorId"], c.id.to_string());
    assert_eq!(n["tenantId"], t.id.to_string());
    assert_eq!(n["jobId"], j3.id.to_string());
    assert_eq!(n["to"]["snapshotId"], j3.snapshot_id.unwrap().to_string());
    assert_eq!(n["from"]["snapshotId"], j2.snapshot_id.unwrap().to_string());
    assert_eq!(
        n["summary"],
        json!({"tablesAdded": 1, "tablesRemoved": 1, "columnsAdded": 1,
               "columnsRemoved": 1, "columnsTypeChanged": 1}),
        "{n}"
    );
    let ch = &n["changes"];
    assert_eq!(ch["tablesAdded"][0]["table"], "customers");
    assert_eq!(ch["tablesRemoved"][0]["table"], "legacy");
    assert_eq!(ch["columnsAdded"][0]["column"], "note");
    assert_eq!(ch["columnsRemoved"][0]["column"], "legacy_flag");
    assert_eq!(ch["columnsTypeChanged"][0]["column"], "amount");
    assert_eq!(ch["columnsTypeChanged"][0]["fromType"], "integer");
    assert_eq!(ch["columnsTypeChanged"][0]["toType"], "numeric(12,2)");
    assert_eq!(n["truncated"], false);
    let path = format!("/api/v1/tenants/{}/connectors/{}/schemas/diff", t.id, c.id);
    assert_eq!(n["diffUrl"], format!("https://matih.example{path}"));
    // The link's route has the same changes in full.
    let token = mint_hs256(JWT, Role::TenantAdmin, Some(t.id), "admin", 600);
    let resp = app(state.clone())
        .oneshot(
            Request::get(&path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let diff: Value = serde_json::from_slice(&body).unwrap();
    for k in [
        "tablesAdded",
        "tablesRemoved",
        "columnsAdded",
        "columnsRemoved",
        "columnsTypeChanged",
    ] {
        assert_eq!(diff[k], ch[k], "{k}");
    }

    // Round 4: unchanged again: still exactly one notice in all.
    make_due(&pool).await;
    let j4 = one_scheduled_run(&state).await;
    assert_eq!(j4.status, JobStatus::Succeeded, "{j4:?}");
    assert_eq!(monitor.deliver_pending().await.unwrap(), 0);
    let kinds = outbox_kinds(&pool).await;
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(kinds[0].0, "SCHEMA_CHANGED");
    assert!(kinds[0].1.is_some(), "delivered");
    assert_eq!(receiver.got.lock().unwrap().len(), 1);

    // An INACTIVE connector is not re-discovered.
    let mut off = c.clone();
    off.status = ConnectorStatus::Inactive;
    assert!(state.store.update_connector(&off).await.unwrap());
    make_due(&pool).await;
    assert!(discovery::schedule_round(&state).await.unwrap().is_empty());

    src.close().await.unwrap();
    drop((monitor, state, pool));
    drop_database(&admin, &src_db).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// A POSTGRESQL connector to `database` on the fixture (as its superuser,
/// who owns the tables), saved directly with its secret.
async fn pg_connector(state: &AppState, fx: &Fixture, database: &str) -> (Tenant, Connector) {
    let t = common::saved_tenant(state, "Schema watchers").await;
    let to = common::Target {
        host: fx.require("HOST"),
        port: fx.port(),
        database,
        username: fx.require("SUPERUSER"),
        password: fx
            .get("SUPERUSER_PASSWORD")
            .unwrap_or_else(|| fx.require("PASSWORD")),
    };
    let c = common::saved_connector(state, &t, "source", to, ConnectorStatus::Active).await;
    (t, c)
}

/// A service instance on the shared metadata store and secrets, whose fake
/// driver holds discovery at `gate`.
async fn replica(
    url: &str,
    secrets: Arc<dyn SecretStore>,
    catalog: Arc<Mutex<matih_connector_core::Catalog>>,
    gate: Gate,
) -> Harness {
    Harness::start(Options {
        registry: fake_registry(catalog, gate),
        database_url: Some(url.to_owned()),
        secrets: Some(secrets),
        discovery_wait: Duration::ZERO,
        settings: Some(Box::new(|s: &mut Settings| {
            // Renewed every 2 s; a dead replica's job is free 6 s after its last
            // renewal. Long enough that a live replica on a loaded machine keeps it.
            s.discovery_lease = Duration::from_secs(6);
        })),
        ..Default::default()
    })
    .await
}

/// Creates a connector of the fake driver through the API (201 expected).
async fn create_fake(
    h: &Harness,
    tenant: Uuid,
    tok: &str,
    name: &str,
    ty: &str,
    port: u16,
) -> Value {
    let (s, created) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            tok,
            Some(json!({
                "name": name, "type": ty, "host": "127.0.0.1", "port": port,
                "database": "db", "credentials": {"username": "u", "password": GOOD_PASSWORD},
                "sslEnabled": false, "metadata": {}
            })),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    created
}

async fn lease_of(pool: &sqlx::AnyPool, job: &str) -> (String, Option<String>, String) {
    sqlx::query_as("SELECT status, lease_until, owner FROM discovery_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_replicas_share_a_job_and_the_second_finishes_it_after_the_first_dies() {
    let Some(fx) = fixture(
        "POSTGRES",
        "two_replicas_share_a_job_and_the_second_finishes_it_after_the_first_dies",
    ) else {
        return;
    };
    let (admin, db, url) = fresh_database(&fx, "matih_jobs_").await;
    let dir = temp_dir("replicas");
    let secrets: Arc<dyn SecretStore> =
        Arc::new(LocalSecretStore::new(dir.join("secrets"), [5u8; 32]).unwrap());
    let catalog = Arc::new(Mutex::new(fake_driver::catalog(1, 3)));
    // A's discovery blocks until told; B's runs through.
    let gate_a = Gate::default();
    gate_a.close();
    let a = replica(&url, secrets.clone(), catalog.clone(), gate_a.clone()).await;
    let b = replica(&url, secrets.clone(), catalog.clone(), Gate::default()).await;
    assert_ne!(a.state.replica, b.state.replica);
    let pool = own_pool(&url).await;
    let server = fake_server().await;

    // A creates the connector; its discovery starts on A and is held there.
    let tenant = a.create_tenant("jobs", "PROFESSIONAL").await;
    let tok = a.tenant_token(tenant);
    let created = create_fake(&a, tenant, &tok, "shared", "POSTGRESQL", server).await;
    assert_eq!(created["discoveryStatus"], "RUNNING");
    let cid = created["id"].as_str().unwrap().to_owned();
    let job = created["discoveryJobId"].as_str().unwrap().to_owned();
    let discover = format!("/api/v1/tenants/{tenant}/connectors/{cid}/discover");

    // B sees the job A runs, through the store.
    let (s, seen) = b.call(Method::GET, &discover, &tok, None).await;
    assert_eq!(s, 200, "{seen}");
    assert_eq!(seen["id"], job.as_str());
    assert_eq!(seen["status"], "RUNNING");
    assert_eq!(seen["replica"], &*a.state.replica);
    let (s, by_id) = b
        .call(Method::GET, &format!("{discover}/jobs/{job}"), &tok, None)
        .await;
    assert_eq!((s, &by_id["id"]), (200, &json!(job)));
    // A request on B gets the same job: one running job per connector.
    let (s, again) = b.call(Method::POST, &discover, &tok, None).await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(again["id"], job.as_str());
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM discovery_jobs WHERE connector_id = $1 AND status = 'RUNNING'",
    )
    .bind(&cid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(running, 1);

    // A is alive: it renews its lease, and B's scheduler round takes nothing
    // (the connector's scheduled turn finds A's job running).
    let (_, first_lease, owner) = lease_of(&pool, &job).await;
    assert_eq!(owner, &*a.state.replica);
    until("A renews its lease", || async {
        lease_of(&pool, &job).await.1 > first_lease
    })
    .await;
    assert!(discovery::schedule_round(&b.state)
        .await
        .unwrap()
        .is_empty());

    // A dies mid-job: its runs stop, nothing renews the lease any more.
    a.state.jobs.abort_all();
    let taken = within("B takes the job over once A's lease ends", async {
        loop {
            let mut got = discovery::schedule_round(&b.state).await.unwrap();
            if let Some(s) = got.pop() {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(taken.job.id.to_string(), job);
    assert!(taken.already_running);
    let done = within("B finishes the job", taken.wait(DEADLINE))
        .await
        .expect("finished on B");
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);

    // Both replicas answer the same: SUCCEEDED, by B, with the catalog.
    for h in [&a, &b] {
        let (s, v) = h.call(Method::GET, &discover, &tok, None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["id"], job.as_str());
        assert_eq!(v["status"], "SUCCEEDED");
        assert_eq!(v["replica"], &*b.state.replica);
        assert_eq!(v["tablesDiscovered"], 3);
        let (s, v) = h
            .call(
                Method::GET,
                &format!("/api/v1/tenants/{tenant}/connectors/{cid}/schemas"),
                &tok,
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["totalTables"], 3);
    }
    let (status, lease, _) = lease_of(&pool, &job).await;
    assert_eq!((status.as_str(), lease), ("SUCCEEDED", None));

    drop((a, b, pool));
    drop_database(&admin, &db).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_connector_sets_its_own_interval_or_switches_re_discovery_off() {
    let catalog = Arc::new(Mutex::new(fake_driver::catalog(1, 2)));
    let h = Harness::start(Options {
        registry: fake_registry(catalog, Gate::default()),
        ..Default::default()
    })
    .await;
    let pool = own_pool(&format!(
        "sqlite://{}?mode=rwc",
        h.db_file.as_ref().unwrap().display()
    ))
    .await;
    let server = fake_server().await;
    let tenant = h.create_tenant("sched", "PROFESSIONAL").await;
    let tok = h.tenant_token(tenant);
    let created = create_fake(&h, tenant, &tok, "scheduled", "MYSQL", server).await;
    assert_eq!(created["discoveryStatus"], "SUCCEEDED");
    let schedule = format!(
        "/api/v1/tenants/{tenant}/connectors/{}/discover/schedule",
        created["id"].as_str().unwrap()
    );
    let hours_ahead = |v: &Value| {
        let at = matih_connector_service::model::parse_ts(v["nextAt"].as_str().unwrap()).unwrap();
        (at - chrono::Utc::now()).num_minutes() as f64 / 60.0
    };

    // The default, never scheduled: due at the next round, then a day ahead.
    let (s, v) = h.call(Method::GET, &schedule, &tok, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["intervalSecs"], Value::Null);
    assert_eq!(
        (v["enabled"].clone(), v["effectiveIntervalSecs"].clone()),
        (json!(true), json!(86400))
    );
    assert_eq!(v["nextAt"], Value::Null);
    let mut round = discovery::schedule_round(&h.state).await.unwrap();
    assert_eq!(round.len(), 1);
    let job = within("the scheduled run", round.remove(0).wait(DEADLINE))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    let (_, v) = h.call(Method::GET, &schedule, &tok, None).await;
    assert!(hours_ahead(&v) > 23.0, "{v}");

    // Its own interval: the next run is one interval ahead.
    let (s, v) = h
        .call(
            Method::PUT,
            &schedule,
            &tok,
            Some(json!({"intervalSecs": 3600})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["intervalSecs"].clone(),
            v["effectiveIntervalSecs"].clone()
        ),
        (json!(3600), json!(3600))
    );
    assert!((0.9..=1.0).contains(&hours_ahead(&v)), "{v}");
    let (s, v) = h
        .call(
            Method::PUT,
            &schedule,
            &tok,
            Some(json!({"intervalSecs": 30})),
        )
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (422, json!("INVALID_REQUEST")),
        "{v}"
    );

    // Switched off: never due, whatever its stored due time says.
    let (s, v) = h
        .call(
            Method::PUT,
            &schedule,
            &tok,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["enabled"].clone(), v["effectiveIntervalSecs"].clone()),
        (json!(false), json!(0))
    );
    make_due(&pool).await;
    assert!(discovery::schedule_round(&h.state)
        .await
        .unwrap()
        .is_empty());

    // Back to the default.
    let (s, v) = h.call(Method::PUT, &schedule, &tok, Some(json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["enabled"].clone(), v["effectiveIntervalSecs"].clone()),
        (json!(true), json!(86400))
    );
    make_due(&pool).await;
    assert_eq!(discovery::schedule_round(&h.state).await.unwrap().len(), 1);
}

/// The store's job claims on SQLite (the two-replica test runs them on
/// PostgreSQL): a live job is answered, not duplicated; a lapsed one is taken
/// over once; its old holder can neither renew nor finish it; cancelling ends
/// it for its holder too. Instants are passed in, so "later" needs no waiting.
#[tokio::test]
async fn on_sqlite_a_live_job_is_answered_and_a_lapsed_one_taken_over_once() {
    use matih_connector_service::store::{FinishedJob, JobStart, NewJob};
    let h = Harness::start(Options::default()).await;
    let t = common::saved_tenant(&h.state, "claims").await;
    let to = common::Target {
        host: "127.0.0.1",
        port: 1,
        database: "db",
        username: "u",
        password: "unused-pw",
    };
    let c = common::saved_connector(&h.state, &t, "c", to, ConnectorStatus::Active).await;
    let store = &h.state.store;
    let at = |secs: i64| ts(chrono::Utc::now() + chrono::Duration::seconds(secs));
    let (now, lease) = (at(0), at(60));
    let new = |id: Uuid, replica: &'static str| NewJob {
        id,
        connector: c.id,
        tenant_id: t.id,
        origin: matih_connector_service::model::JobOrigin::Api,
        request: None,
        replica,
        now: "",
        lease_until: "",
    };
    let first = Uuid::new_v4();
    let started = store
        .start_discovery_job(&NewJob {
            now: &now,
            lease_until: &lease,
            ..new(first, "a")
        })
        .await
        .unwrap();
    assert!(
        matches!(&started, JobStart::Started(j) if j.job.id == first),
        "{started:?}"
    );
    let again = store
        .start_discovery_job(&NewJob {
            now: &now,
            lease_until: &lease,
            ..new(Uuid::new_v4(), "b")
        })
        .await
        .unwrap();
    assert!(
        matches!(&again, JobStart::Running(j) if j.id == first),
        "{again:?}"
    );

    // Before the lease ends nobody takes it; after, one claim does.
    assert!(store
        .claim_expired_discovery_jobs("b", 10, &now, &at(120))
        .await
        .unwrap()
        .is_empty());
    let later = at(61);
    let taken = store
        .claim_expired_discovery_jobs("b", 10, &later, &at(180))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!((taken[0].job.id, taken[0].job.attempts), (first, 2));
    assert!(store
        .claim_expired_discovery_jobs("c", 10, &later, &at(180))
        .await
        .unwrap()
        .is_empty());

    // The old holder lost it: no renewal, and its end writes nothing.
    assert!(!store
        .renew_discovery_job(first, "a", &at(240))
        .await
        .unwrap());
    let mut job = taken[0].job.clone();
    job.status = JobStatus::Failed;
    job.finished_at = Some(at(62));
    job.error_code = Some("TIMEOUT".into());
    let end = |replica: &'static str| FinishedJob {
        job: &job,
        tenant_id: t.id,
        replica,
        snapshot: None,
        snapshots_kept: 10,
        notice: None,
    };
    assert!(!store.finish_discovery_job(&end("a")).await.unwrap());
    assert!(store.finish_discovery_job(&end("b")).await.unwrap());
    let stored = store.discovery_job(c.id, first).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.replica.as_deref(),
            stored.error_code.as_deref()
        ),
        (JobStatus::Failed, Some("b"), Some("TIMEOUT"))
    );

    // A new job may start now; cancelling ends it for its holder.
    let second = Uuid::new_v4();
    let (now2, lease2) = (at(63), at(123));
    let started = store
        .start_discovery_job(&NewJob {
            now: &now2,
            lease_until: &lease2,
            ..new(second, "b")
        })
        .await
        .unwrap();
    assert!(
        matches!(&started, JobStart::Started(j) if j.job.id == second),
        "{started:?}"
    );
    store
        .cancel_discovery_jobs(c.id, &at(64), "disabled")
        .await
        .unwrap();
    assert!(!store
        .renew_discovery_job(second, "b", &at(240))
        .await
        .unwrap());
    let latest = store.latest_job(c.id).await.unwrap().unwrap();
    assert_eq!(
        (latest.id, latest.status, latest.error_code.as_deref()),
        (second, JobStatus::Failed, Some("CONNECTOR_INACTIVE"))
    );
}
