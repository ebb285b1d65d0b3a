//! Incremental re-discovery in two tiers.
//!
//! 1. One summary query, whatever the catalog's size: per catalog a
//!    definition lives in (`pg_class`, `pg_attribute`, `pg_attrdef`,
//!    `pg_description`, `pg_constraint`, `pg_rewrite`, `pg_inherits`,
//!    `pg_namespace`) its row count and the relations with a row written since
//!    the fingerprint's watermark (the oldest transaction running when it was
//!    taken, so a change that committed during that discovery is seen by the
//!    next one); a hash of every `pg_class` row's `relpages` and `reltuples`
//!    (statistics are updated in place, without a new row version); whether a
//!    user type changed; the current user's superuser flag and roles (role
//!    membership decides which relations are readable). Equal counts, equal
//!    hashes and no row written since: nothing changed, and the answer is the
//!    schema listing alone (the delta lists no relation; `apply` carries them
//!    all).
//! 2. Otherwise the relations to read again are those with a row written since
//!    the watermark, those of a schema written since, new ones (a narrow oid
//!    listing, which also finds the dropped ones), and those whose comment count
//!    or primary key constraint differs from their print (deletions leave no
//!    row version; these two are read per relation only when the counts or the
//!    row versions of `pg_description` or `pg_constraint` say something
//!    changed there). Only those relations are listed and read in detail,
//!    unless statistics, roles or a partition tree changed: then every relation
//!    is listed again (fresh headers and partition totals), still with detail
//!    for the changed ones only.
//!
//! A changed user type (`pg_type`), a watermark more than 2^30 transactions
//! old (transaction ids wrap at 2^32) or a fingerprint of another format
//! makes the discovery full.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use matih_connector_core::{
    stable_hash, with_timeout, CatalogDelta, CatalogFingerprint, ConnectorError, Depth,
    DiscoveryRequest, RelationName, RelationPrint,
};
use tokio_postgres::types::{ToSql, Type};

use super::{discover_scoped, get, list_schemas, stream_rows, Listed, Schemas};
use crate::connection::PgConnection;

/// The fingerprint format; bump when the print or the summary changes
/// meaning.
const FORMAT: &str = "postgres/2";

/// Transactions after which a watermark is too old to compare with (`age`
/// is exact up to 2^31).
const MAX_WATERMARK_AGE: i64 = 1 << 30;

/// The summary, in one statement (one snapshot: the watermark it returns is
/// the oldest transaction running when the catalogs were read). $1 the
/// previous watermark (epoch-qualified; `age` compares modulo 2^32), NULL on
/// a first discovery. Each catalog is scanned once, collecting the relations
/// with a row written since $1; the catalogs where a deletion can leave no
/// other trace are counted in the same scan (`pg_attribute` rows go only with
/// their relation, `pg_attrdef` rows with a `pg_attribute` update, `pg_rewrite`
/// rows with their view). User types are the ones discovery maps (as
/// USER_TYPES_SQL: not the row types every CREATE TABLE makes).
const SUMMARY_SQL: &str = r"WITH t AS (SELECT age(((($1::int8) % 4294967296)::text)::xid) AS a)
SELECT txid_snapshot_xmin(txid_current_snapshot()),
  cl.n, des.n, con.n, inh.n, ns.n, cl.stats,
  cl.changed,
  (SELECT array_agg(DISTINCT a.attrelid) FROM pg_attribute a
    WHERE age(a.xmin) <= (SELECT a FROM t)),
  (SELECT array_agg(DISTINCT ad.adrelid) FROM pg_attrdef ad
    WHERE age(ad.xmin) <= (SELECT a FROM t)),
  des.changed, con.changed,
  (SELECT array_agg(DISTINCT r.ev_class) FROM pg_rewrite r
    WHERE age(r.xmin) <= (SELECT a FROM t)),
  inh.changed, ns.changed,
  EXISTS (SELECT 1 FROM pg_type ty LEFT JOIN pg_type e ON e.oid = ty.typelem
    WHERE age(ty.xmin) <= (SELECT a FROM t) AND ty.oid >= 16384 AND ty.typtype <> 'c'
      AND (e.oid IS NULL OR e.typtype <> 'c')),
  (SELECT r.rolsuper::text || ':' || coalesce((SELECT string_agg(m.oid::text, ',' ORDER BY m.oid)
     FROM pg_roles m WHERE pg_has_role(m.oid, 'USAGE')), '')
   FROM pg_roles r WHERE r.rolname = current_user)
FROM
  (SELECT count(*) AS n,
     coalesce(sum(hashint8(c.oid::int8 * 65536 + c.relpages) # hashfloat4(c.reltuples)), 0) AS stats,
     array_agg(c.oid) FILTER (WHERE age(c.xmin) <= (SELECT a FROM t)) AS changed
   FROM pg_class c) cl,
  (SELECT count(*) AS n,
     array_agg(DISTINCT d.objoid) FILTER (WHERE age(d.xmin) <= (SELECT a FROM t)) AS changed
   FROM pg_description d WHERE d.classoid = 'pg_class'::regclass) des,
  (SELECT count(*) AS n,
     array_agg(DISTINCT k.conrelid) FILTER (WHERE age(k.xmin) <= (SELECT a FROM t)) AS changed
   FROM pg_constraint k WHERE k.conrelid <> 0) con,
  (SELECT count(*) AS n,
     array_agg(x.oid) FILTER (WHERE age(i.xmin) <= (SELECT a FROM t)) AS changed
   FROM pg_inherits i CROSS JOIN LATERAL (VALUES (i.inhrelid), (i.inhparent)) AS x(oid)) inh,
  (SELECT count(*) AS n,
     array_agg(n.oid) FILTER (WHERE age(n.xmin) <= (SELECT a FROM t)) AS changed
   FROM pg_namespace n) ns";

/// Every relation of a discoverable kind (or those of $1 only), whether it
/// belongs to a partition tree, and its schema. No privilege or name filter:
/// the discovery's listing applies the scope.
const RELATION_OIDS_SQL: &str = r"SELECT c.oid, c.relnamespace, c.relkind = 'p' OR c.relispartition
FROM pg_class c WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND ($1::oid[] IS NULL OR c.oid = ANY($1::oid[]))";

/// Comments per relation (its own and its columns').
const COMMENT_COUNTS_SQL: &str = r"SELECT d.objoid, count(*) FROM pg_description d
WHERE d.classoid = 'pg_class'::regclass GROUP BY d.objoid";

/// Each relation's primary key constraint.
const PRIMARY_KEY_OIDS_SQL: &str =
    "SELECT k.conrelid, k.oid FROM pg_constraint k WHERE k.contype = 'p'";

/// The catalogs the summary counts, in the order of its columns.
const COUNTED: [&str; 5] = [
    "pg_class",
    "pg_description",
    "pg_constraint",
    "pg_inherits",
    "pg_namespace",
];
/// The catalogs the summary scans for rows written since the watermark, in
/// the order of its columns (the last: schemas, not relations).
const WRITTEN: [&str; 8] = [
    "pg_class",
    "pg_attribute",
    "pg_attrdef",
    "pg_description",
    "pg_constraint",
    "pg_rewrite",
    "pg_inherits",
    "pg_namespace",
];
const CLASS: (usize, usize) = (0, 0);
const DESCRIPTION: (usize, usize) = (1, 3);
const CONSTRAINT: (usize, usize) = (2, 4);
const INHERITS: (usize, usize) = (3, 6);
const NAMESPACE: usize = 7;

/// What the fingerprint keeps of a summary: `watermark;count,…;stats;roles`.
#[derive(Debug, PartialEq)]
struct Kept {
    watermark: i64,
    counts: [i64; COUNTED.len()],
    stats: i64,
    roles: String,
}

impl Kept {
    fn encode(&self) -> String {
        let counts: Vec<String> = self.counts.iter().map(i64::to_string).collect();
        format!(
            "{};{};{};{}",
            self.watermark,
            counts.join(","),
            self.stats,
            self.roles
        )
    }

    fn decode(s: &str) -> Option<Kept> {
        let mut parts = s.split(';');
        let watermark = parts.next()?.parse().ok()?;
        let mut counts = [0i64; COUNTED.len()];
        let mut listed = parts.next()?.split(',');
        for c in &mut counts {
            *c = listed.next()?.parse().ok()?;
        }
        if listed.next().is_some() {
            return None;
        }
        let stats = parts.next()?.parse().ok()?;
        let roles = parts.next()?.to_owned();
        if parts.next().is_some() {
            return None;
        }
        Some(Kept {
            watermark,
            counts,
            stats,
            roles,
        })
    }
}

/// A summary as read: what is kept, plus what was written since the
/// previous watermark.
struct Summary {
    kept: Kept,
    /// Relations with a row written since, per catalog of WRITTEN (for
    /// `pg_namespace`: schemas).
    written: [Vec<u32>; WRITTEN.len()],
    types_changed: bool,
}

impl Summary {
    fn anything_written(&self) -> bool {
        self.types_changed || self.written.iter().any(|w| !w.is_empty())
    }
}

async fn read_summary(conn: &PgConnection, since: Option<i64>) -> Result<Summary, ConnectorError> {
    const SU: &str = "summarizing the catalog";
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&since, Type::INT8)];
    let mut out = None;
    stream_rows(conn, SU, SUMMARY_SQL, &params, |row| {
        let oids = |i: usize| -> Result<Vec<u32>, ConnectorError> {
            Ok(get::<Option<Vec<u32>>>(&row, i, SU)?.unwrap_or_default())
        };
        let count = |i: usize| get::<i64>(&row, i, SU);
        let roles: Option<String> = get(&row, 16, SU)?;
        out = Some(Summary {
            kept: Kept {
                watermark: get(&row, 0, SU)?,
                counts: [count(1)?, count(2)?, count(3)?, count(4)?, count(5)?],
                stats: get(&row, 6, SU)?,
                roles: stable_hash([roles.as_deref().unwrap_or("")]),
            },
            written: [
                oids(7)?,
                oids(8)?,
                oids(9)?,
                oids(10)?,
                oids(11)?,
                oids(12)?,
                oids(13)?,
                oids(14)?,
            ],
            types_changed: get(&row, 15, SU)?,
        });
        Ok(())
    })
    .await?;
    out.ok_or_else(|| {
        ConnectorError::new(
            matih_connector_core::ErrorCode::ProtocolError,
            "the catalog summary returned no row",
        )
    })
}

/// A relation's print: its comment count and its primary key constraint
/// (0: none), the two things a deletion can change without leaving a row
/// version behind.
fn print(comments: i64, pk: u32) -> String {
    format!("{comments}:{pk}")
}

fn parse_print(p: &str) -> Option<(i64, u32)> {
    let (c, k) = p.split_once(':')?;
    Some((c.parse().ok()?, k.parse().ok()?))
}

/// Comment counts and primary keys per relation, each read only when asked.
#[derive(Default)]
struct PerRelation {
    comments: Option<HashMap<u32, i64>>,
    keys: Option<HashMap<u32, u32>>,
}

impl PerRelation {
    /// The print of `oid`, from what was read, else from its previous print
    /// (nothing changed there), else none (a new relation, and nothing was
    /// written there).
    fn print(&self, oid: u32, previous: Option<&str>) -> String {
        let old = previous.and_then(parse_print).unwrap_or((0, 0));
        let comments = match &self.comments {
            Some(m) => m.get(&oid).copied().unwrap_or(0),
            None => old.0,
        };
        let pk = match &self.keys {
            Some(m) => m.get(&oid).copied().unwrap_or(0),
            None => old.1,
        };
        print(comments, pk)
    }
}

async fn read_per_relation(
    conn: &PgConnection,
    comments: bool,
    keys: bool,
) -> Result<PerRelation, ConnectorError> {
    let (comments, keys) = tokio::try_join!(
        read_pairs::<i64>(conn, comments, "counting comments", COMMENT_COUNTS_SQL),
        read_pairs::<u32>(conn, keys, "reading primary keys", PRIMARY_KEY_OIDS_SQL),
    )?;
    Ok(PerRelation { comments, keys })
}

/// A two-column query keyed by relation oid, when `wanted`.
async fn read_pairs<V: for<'a> tokio_postgres::types::FromSql<'a>>(
    conn: &PgConnection,
    wanted: bool,
    what: &'static str,
    sql: &str,
) -> Result<Option<HashMap<u32, V>>, ConnectorError> {
    if !wanted {
        return Ok(None);
    }
    let mut m = HashMap::new();
    stream_rows(conn, what, sql, &[], |row| {
        m.insert(get::<u32>(&row, 0, what)?, get::<V>(&row, 1, what)?);
        Ok(())
    })
    .await?;
    Ok(Some(m))
}

/// A relation of a discoverable kind: its schema and whether it belongs to a
/// partition tree.
struct Rel {
    namespace: u32,
    partitioned: bool,
}

async fn read_relation_oids(
    conn: &PgConnection,
    only: Option<&Vec<u32>>,
) -> Result<HashMap<u32, Rel>, ConnectorError> {
    let mut out = HashMap::new();
    const RO: &str = "listing relation oids";
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&only, Type::OID_ARRAY)];
    stream_rows(conn, RO, RELATION_OIDS_SQL, &params, |row| {
        out.insert(
            get::<u32>(&row, 0, RO)?,
            Rel {
                namespace: get(&row, 1, RO)?,
                partitioned: get(&row, 2, RO)?,
            },
        );
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Re-discovers against `previous`: full when it is missing or unusable,
/// the schema listing alone when the summary is unchanged, else detail only
/// for the relations that changed.
pub(crate) async fn discover_changed(
    conn: &PgConnection,
    req: &DiscoveryRequest,
    previous: Option<&CatalogFingerprint>,
) -> Result<CatalogDelta, ConnectorError> {
    if req.depth < Depth::Columns {
        // Without columns a discovery is the cheap listing already.
        return super::discover(conn, req).await.map(CatalogDelta::full);
    }
    let previous = CatalogFingerprint::usable(previous, FORMAT, req).and_then(|p| {
        let kept = Kept::decode(p.watermark.as_deref()?)?;
        Some((p, kept))
    });
    // The schema listing every answer needs goes in one pipeline with the
    // summary (one round trip less; it runs after the summary, as before).
    let (summary, schemas) = with_timeout(conn.query_timeout(), "summarizing the catalog", async {
        tokio::try_join!(
            read_summary(conn, previous.as_ref().map(|(_, k)| k.watermark)),
            list_schemas(conn, req),
        )
    })
    .await?;
    let now = summary.kept.encode();
    let previous = previous.filter(|(_, kept)| {
        summary.kept.watermark - kept.watermark <= MAX_WATERMARK_AGE && !summary.types_changed
    });
    let Some((prev, kept)) = previous else {
        return full(conn, req, now, Some(schemas)).await;
    };

    let stats_changed = req.statistics && summary.kept.stats != kept.stats;
    let roles_changed = summary.kept.roles != kept.roles;
    if !summary.anything_written()
        && summary.kept.counts == kept.counts
        && !stats_changed
        && !roles_changed
    {
        // Nothing changed: the schemas (fresh: their comments and privileges
        // are cheap to read), no relation.
        let (catalog, _) = discover_scoped(
            conn,
            req,
            Some(schemas),
            Some(&Vec::new()),
            Some(&Vec::new()),
            false,
        )
        .await?;
        return Ok(CatalogDelta {
            fingerprint: Some(CatalogFingerprint {
                format: FORMAT.into(),
                request: req.clone(),
                watermark: Some(now),
                relations: prev.relations.clone(),
            }),
            full: false,
            catalog,
            changed: BTreeSet::new(),
            removed: BTreeSet::new(),
        });
    }

    let prev_oids: HashMap<u32, &RelationPrint> = prev
        .relations
        .iter()
        .filter_map(|(k, p)| Some((k.parse::<u32>().ok()?, p)))
        .collect();
    // Deletions in these catalogs leave no row version: read them per
    // relation when their count or a row version says something happened.
    let touched = |(counted, written): (usize, usize)| {
        summary.kept.counts[counted] != kept.counts[counted] || !summary.written[written].is_empty()
    };
    // Every relation's oid is listed when relations may have come or gone:
    // the `pg_class` count moved, or a row written since is not one of the
    // fingerprint's relations (an insert: an equal count then hides a
    // deletion), or a schema or the roles changed (a scope change). Else no
    // relation was created or dropped, and only the changed ones are looked
    // up.
    let listing = summary.kept.counts[CLASS.0] != kept.counts[CLASS.0]
        || summary.written[CLASS.1]
            .iter()
            .any(|oid| !prev_oids.contains_key(oid))
        || !summary.written[NAMESPACE].is_empty()
        || roles_changed;
    let (all, per) = with_timeout(conn.query_timeout(), "finding changed relations", async {
        let all = async {
            if listing {
                read_relation_oids(conn, None).await.map(Some)
            } else {
                Ok(None)
            }
        };
        tokio::try_join!(
            all,
            read_per_relation(conn, touched(DESCRIPTION), touched(CONSTRAINT)),
        )
    })
    .await?;

    let mut changed: HashSet<u32> = summary.written[..NAMESPACE]
        .iter()
        .flatten()
        .copied()
        .collect();
    if per.comments.is_some() || per.keys.is_some() {
        for (oid, p) in &prev_oids {
            if per.print(*oid, Some(&p.print)) != p.print {
                changed.insert(*oid);
            }
        }
    }
    let rels = match all {
        Some(rels) => {
            let schemas_written: HashSet<u32> =
                summary.written[NAMESPACE].iter().copied().collect();
            for (oid, rel) in &rels {
                if schemas_written.contains(&rel.namespace) || !prev_oids.contains_key(oid) {
                    changed.insert(*oid);
                }
            }
            rels
        }
        None => {
            let candidates: Vec<u32> = changed.iter().copied().collect();
            with_timeout(
                conn.query_timeout(),
                "finding changed relations",
                read_relation_oids(conn, Some(&candidates)),
            )
            .await?
        }
    };
    // Only relations that exist and are of a discoverable kind.
    changed.retain(|oid| rels.contains_key(oid));
    let exists = |oid: u32| !listing || rels.contains_key(&oid);
    let all_headers = stats_changed
        || roles_changed
        || touched(INHERITS)
        || changed.iter().any(|oid| rels[oid].partitioned);
    let mut only: Vec<u32> = changed.iter().copied().collect();
    only.sort_unstable();

    let (catalog, listed) = if all_headers {
        discover_scoped(conn, req, Some(schemas), Some(&only), None, true).await?
    } else {
        discover_scoped(conn, req, Some(schemas), Some(&only), Some(&only), true).await?
    };

    let mut relations: BTreeMap<String, RelationPrint> = if all_headers {
        BTreeMap::new()
    } else {
        prev.relations
            .iter()
            .filter(|(k, _)| {
                k.parse::<u32>()
                    .is_ok_and(|oid| exists(oid) && !changed.contains(&oid))
            })
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    };
    let mut changed_names = BTreeSet::new();
    for Listed { oid, name } in listed {
        let old = prev_oids.get(&oid);
        if changed.contains(&oid) {
            changed_names.insert(name.clone());
        } else if old.is_none() {
            // Listed without its detail and unknown before: it appeared
            // after the oid listing. Rare; a full discovery is the answer.
            return full(conn, req, now, None).await;
        }
        relations.insert(
            oid.to_string(),
            RelationPrint {
                print: per.print(oid, old.map(|p| p.print.as_str())),
                schema: name.schema,
                table: name.table,
            },
        );
    }
    let removed = prev
        .relations
        .iter()
        .filter(|(key, old)| {
            relations
                .get(*key)
                .is_none_or(|now| now.schema != old.schema || now.table != old.table)
        })
        .map(|(_, old)| RelationName::new(old.schema.as_str(), old.table.as_str()))
        .filter(|n| !changed_names.contains(n))
        .collect();
    Ok(CatalogDelta {
        fingerprint: Some(CatalogFingerprint {
            format: FORMAT.into(),
            request: req.clone(),
            watermark: Some(now),
            relations,
        }),
        full: false,
        catalog,
        changed: changed_names,
        removed,
    })
}

/// A full discovery that also prints every relation it lists. The prints
/// are read before the discovery, so a change committing in between shows
/// in the next re-discovery.
async fn full(
    conn: &PgConnection,
    req: &DiscoveryRequest,
    summary: String,
    schemas: Option<Schemas>,
) -> Result<CatalogDelta, ConnectorError> {
    let per = with_timeout(
        conn.query_timeout(),
        "reading relation prints",
        read_per_relation(conn, true, true),
    )
    .await?;
    let (catalog, listed) = discover_scoped(conn, req, schemas, None, None, true).await?;
    let relations = listed
        .into_iter()
        .map(|Listed { oid, name }| {
            (
                oid.to_string(),
                RelationPrint {
                    print: per.print(oid, None),
                    schema: name.schema,
                    table: name.table,
                },
            )
        })
        .collect();
    Ok(CatalogDelta {
        fingerprint: Some(CatalogFingerprint {
            format: FORMAT.into(),
            request: req.clone(),
            watermark: Some(summary),
            relations,
        }),
        full: true,
        catalog,
        changed: BTreeSet::new(),
        removed: BTreeSet::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_a_definition_lives_in_is_summarized_by_row_version() {
        for catalog in WRITTEN.iter().chain(&["pg_type"]) {
            assert!(
                SUMMARY_SQL.contains(&format!("FROM {catalog} ")),
                "{catalog}"
            );
        }
        // Each catalog scanned once for rows written since the watermark
        // (pg_type too), the counted ones counted in that same scan.
        assert_eq!(
            SUMMARY_SQL.matches("<= (SELECT a FROM t)").count(),
            WRITTEN.len() + 1
        );
        assert_eq!(SUMMARY_SQL.matches("count(*)").count(), COUNTED.len());
        for catalog in COUNTED {
            let scan = SUMMARY_SQL.find(&format!("FROM {catalog} ")).unwrap();
            let count = SUMMARY_SQL[..scan].rfind("count(*)").unwrap();
            assert!(!SUMMARY_SQL[count..scan].contains("FROM pg_"), "{catalog}");
        }
        assert!(SUMMARY_SQL.contains("c.relpages") && SUMMARY_SQL.contains("c.reltuples"));
        assert_eq!(SUMMARY_SQL.matches("$1").count(), 1);
        assert_eq!(COUNTED[DESCRIPTION.0], WRITTEN[DESCRIPTION.1]);
        assert_eq!(COUNTED[CONSTRAINT.0], WRITTEN[CONSTRAINT.1]);
        assert_eq!(COUNTED[INHERITS.0], WRITTEN[INHERITS.1]);
        assert_eq!(COUNTED[CLASS.0], WRITTEN[CLASS.1]);
        assert_eq!(COUNTED[CLASS.0], "pg_class");
        assert_eq!(COUNTED[DESCRIPTION.0], "pg_description");
        assert_eq!(COUNTED[CONSTRAINT.0], "pg_constraint");
        assert_eq!(COUNTED[INHERITS.0], "pg_inherits");
        assert_eq!(WRITTEN[NAMESPACE], "pg_namespace");
    }

    #[test]
    fn the_kept_summary_round_trips_and_rejects_other_shapes() {
        let k = Kept {
            watermark: 42,
            counts: [1, 2, 3, 4, 5],
            stats: -9,
            roles: "abc".into(),
        };
        assert_eq!(Kept::decode(&k.encode()), Some(k));
        assert_eq!(Kept::decode("42"), None);
        assert_eq!(Kept::decode("42;1,2;0;x"), None);
        assert_eq!(Kept::decode("42;1,2,3,4,5,6;0;x"), None);
    }

    #[test]
    fn prints_take_what_was_read_else_the_previous_print() {
        let per = PerRelation {
            comments: Some([(1, 2)].into_iter().collect()),
            keys: None,
        };
        assert_eq!(per.print(1, Some("0:77")), "2:77");
        assert_eq!(per.print(2, Some("3:77")), "0:77");
        assert_eq!(per.print(3, None), "0:0");
        let none = PerRelation::default();
        assert_eq!(none.print(1, Some("5:6")), "5:6");
    }
}
