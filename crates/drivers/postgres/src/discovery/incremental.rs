//! Incremental re-discovery: which relations changed since a fingerprint, in
//! three cheap catalog queries, then the ordinary discovery with its detail
//! queries limited to those relations.
//!
//! A relation's print is its `pg_class` row version (`xmin`, which every
//! `pg_class` update renews: rename, ADD COLUMN's `relnatts`, a rewrite's new
//! file, ATTACH PARTITION's `relispartition`), `relnatts`, its schema's name,
//! how many comments it has and its primary key constraint's oid (counts and
//! oids catch deletions, which leave no row version behind). Changes that do
//! not touch `pg_class` are found by row version too: rows of `pg_attribute`
//! (column rename, drop, type, nullability, default flag), `pg_attrdef`,
//! `pg_description`, `pg_constraint`, `pg_rewrite` (CREATE OR REPLACE VIEW) and
//! `pg_inherits` (ATTACH/DETACH PARTITION) written since the fingerprint's
//! watermark: the oldest transaction still running when it was taken, so a
//! change that committed during that discovery is seen by the next one.
//! A changed user type (`pg_type`), a watermark more than 2^30 transactions
//! old (transaction ids wrap at 2^32) or a relation listed without a print
//! makes the discovery full.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use matih_connector_core::{
    stable_hash, with_timeout, CatalogDelta, CatalogFingerprint, ConnectorError, Depth,
    DiscoveryRequest, RelationPrint,
};
use tokio_postgres::types::{ToSql, Type};

use super::{discover_scoped, get, stream_rows, Listed};
use crate::connection::PgConnection;

/// The fingerprint format; bump when the print changes meaning.
const FORMAT: &str = "postgres/1";

/// Transactions after which a watermark is too old to compare with (`age`
/// is exact up to 2^31).
const MAX_WATERMARK_AGE: i64 = 1 << 30;

/// The oldest transaction still running (epoch-qualified, never wraps).
const WATERMARK_SQL: &str = "SELECT txid_snapshot_xmin(txid_current_snapshot())";

/// Every relation of a discoverable kind, with what its print is made of.
/// No privilege or name filter: relations out of scope are dropped after the
/// discovery lists the ones in scope.
const PRINTS_SQL: &str = r"SELECT c.oid, c.xmin::text, c.relnatts, n.nspname, c.relname,
  (SELECT count(*) FROM pg_description d
    WHERE d.objoid = c.oid AND d.classoid = 'pg_class'::regclass),
  (SELECT con.oid FROM pg_constraint con WHERE con.conrelid = c.oid AND con.contype = 'p')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')";

/// Relations with a catalog row written by a transaction at or after the
/// watermark $1 (epoch-qualified; `age` compares modulo 2^32). Oid 0 stands
/// for "a user type changed" (the types discovery maps, as USER_TYPES_SQL:
/// not the row types every CREATE TABLE makes) and relations of a renamed or
/// regranted schema come through its `pg_namespace` row.
const CHANGED_SQL: &str = r"WITH w AS (SELECT age((($1::int8) % 4294967296)::text::xid) AS a)
SELECT a.attrelid FROM pg_attribute a, w WHERE a.attnum > 0 AND age(a.xmin) <= w.a
UNION SELECT ad.adrelid FROM pg_attrdef ad, w WHERE age(ad.xmin) <= w.a
UNION SELECT d.objoid FROM pg_description d, w
  WHERE d.classoid = 'pg_class'::regclass AND age(d.xmin) <= w.a
UNION SELECT con.conrelid FROM pg_constraint con, w WHERE con.conrelid <> 0 AND age(con.xmin) <= w.a
UNION SELECT r.ev_class FROM pg_rewrite r, w WHERE age(r.xmin) <= w.a
UNION SELECT i.inhrelid FROM pg_inherits i, w WHERE age(i.xmin) <= w.a
UNION SELECT i.inhparent FROM pg_inherits i, w WHERE age(i.xmin) <= w.a
UNION SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, w
  WHERE age(n.xmin) <= w.a
UNION SELECT 0::oid FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem, w
  WHERE t.oid >= 16384 AND t.typtype <> 'c' AND (e.oid IS NULL OR e.typtype <> 'c')
    AND age(t.xmin) <= w.a";

/// Re-discovers against `previous`: full when it is missing or unusable,
/// else detail only for the relations whose print changed or that a change
/// since the watermark names.
pub(crate) async fn discover_changed(
    conn: &PgConnection,
    req: &DiscoveryRequest,
    previous: Option<&CatalogFingerprint>,
) -> Result<CatalogDelta, ConnectorError> {
    if req.depth < Depth::Columns {
        // Without columns a discovery is the cheap listing already.
        return super::discover(conn, req).await.map(CatalogDelta::full);
    }
    let previous = CatalogFingerprint::usable(previous, FORMAT, req);
    let prev_watermark = previous
        .and_then(|p| p.watermark.as_deref())
        .and_then(|w| w.parse::<i64>().ok());

    let (watermark, prints, changed) = with_timeout(
        conn.query_timeout(),
        "finding changed relations",
        read_changes(conn, prev_watermark),
    )
    .await?;

    let scoped: Option<Vec<u32>> = match (previous, prev_watermark, changed) {
        (Some(prev), Some(w), Some(changed))
            if watermark - w <= MAX_WATERMARK_AGE && !changed.contains(&0) =>
        {
            let mut only: Vec<u32> = prints
                .iter()
                .filter(|(oid, p)| {
                    changed.contains(oid)
                        || prev
                            .relations
                            .get(&oid.to_string())
                            .is_none_or(|old| old.print != p.print)
                })
                .map(|(oid, _)| *oid)
                .collect();
            only.sort_unstable();
            Some(only)
        }
        _ => None,
    };

    let (catalog, listed) = match &scoped {
        Some(only) => discover_scoped(conn, req, Some(only), true).await?,
        // A full discovery that still lists relations by oid for the
        // fingerprint.
        None => discover_scoped(conn, req, None, true).await?,
    };

    let mut relations = BTreeMap::new();
    let mut changed_names = BTreeSet::new();
    let only: HashSet<u32> = scoped.iter().flatten().copied().collect();
    for Listed { oid, name } in listed {
        let Some(print) = prints.get(&oid) else {
            // Created between the two steps: no print, no detail fetched.
            // Rare; a full discovery is the correct answer.
            let catalog = super::discover(conn, req).await?;
            return Ok(CatalogDelta::full(catalog));
        };
        if scoped.is_none() || only.contains(&oid) {
            changed_names.insert(name.clone());
        }
        relations.insert(
            oid.to_string(),
            RelationPrint {
                schema: name.schema,
                table: name.table,
                print: print.print.clone(),
            },
        );
    }
    let full = scoped.is_none();
    let removed = match previous {
        Some(prev) if !full => prev
            .relations
            .iter()
            .filter(|(key, old)| {
                relations
                    .get(*key)
                    .is_none_or(|now| now.schema != old.schema || now.table != old.table)
            })
            .map(|(_, old)| {
                matih_connector_core::RelationName::new(old.schema.as_str(), old.table.as_str())
            })
            .filter(|n| !changed_names.contains(n))
            .collect(),
        _ => BTreeSet::new(),
    };
    Ok(CatalogDelta {
        fingerprint: Some(CatalogFingerprint {
            format: FORMAT.into(),
            request: req.clone(),
            watermark: Some(watermark.to_string()),
            relations,
        }),
        full,
        catalog,
        changed: if full { BTreeSet::new() } else { changed_names },
        removed,
    })
}

struct Print {
    print: String,
}

type Changes = (i64, HashMap<u32, Print>, Option<HashSet<u32>>);

/// The watermark now, every relation's print, and (given a watermark) the
/// relations with catalog rows written since: pipelined on the one session.
async fn read_changes(conn: &PgConnection, since: Option<i64>) -> Result<Changes, ConnectorError> {
    let watermark = async {
        let mut w = 0i64;
        const WM: &str = "reading the transaction horizon";
        stream_rows(conn, WM, WATERMARK_SQL, &[], |row| {
            w = get(&row, 0, WM)?;
            Ok(())
        })
        .await?;
        Ok::<_, ConnectorError>(w)
    };
    let prints = async {
        let mut out: HashMap<u32, Print> = HashMap::new();
        const PR: &str = "reading relation versions";
        stream_rows(conn, PR, PRINTS_SQL, &[], |row| {
            let xmin: String = get(&row, 1, PR)?;
            let natts: i16 = get(&row, 2, PR)?;
            let schema: String = get(&row, 3, PR)?;
            let name: String = get(&row, 4, PR)?;
            let comments: i64 = get(&row, 5, PR)?;
            let pk: Option<u32> = get(&row, 6, PR)?;
            let print = stable_hash([
                xmin.as_str(),
                &natts.to_string(),
                &schema,
                &name,
                &comments.to_string(),
                &pk.unwrap_or(0).to_string(),
            ]);
            out.insert(get(&row, 0, PR)?, Print { print });
            Ok(())
        })
        .await?;
        Ok::<_, ConnectorError>(out)
    };
    let changed = async {
        let Some(since) = since else {
            return Ok(None);
        };
        let mut out = HashSet::new();
        const CH: &str = "finding changed relations";
        let params: [(&(dyn ToSql + Sync), Type); 1] = [(&since, Type::INT8)];
        stream_rows(conn, CH, CHANGED_SQL, &params, |row| {
            out.insert(get::<u32>(&row, 0, CH)?);
            Ok(())
        })
        .await?;
        Ok::<_, ConnectorError>(Some(out))
    };
    let (w, p, c) = tokio::try_join!(watermark, prints, changed)?;
    Ok((w, p, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_a_definition_lives_in_is_scanned_by_row_version() {
        for catalog in [
            "pg_attribute",
            "pg_attrdef",
            "pg_description",
            "pg_constraint",
            "pg_rewrite",
            "pg_inherits",
            "pg_namespace",
            "pg_type",
        ] {
            assert!(CHANGED_SQL.contains(catalog), "{catalog}");
        }
        assert!(PRINTS_SQL.contains("c.xmin") && PRINTS_SQL.contains("c.relnatts"));
        assert_eq!(CHANGED_SQL.matches("$1").count(), 1);
    }
}
