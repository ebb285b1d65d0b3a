//! Discovery: the endpoint is one schema; its object types, read by one
//! introspection query, are tables and their fields columns.

use matih_connector_core::{
    Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, Schema, Table, TableKind,
};
use serde::Deserialize;
use serde_json::json;

use crate::connection::GraphqlConnection;
use crate::types::{self, TypeRef};

/// The standard introspection query, limited to what the catalog uses: type
/// kinds, names, descriptions, fields with their types (seven wrapper levels,
/// as graphql-js's own query), interfaces and the root type names.
pub(crate) const INTROSPECTION: &str = r#"query MatihIntrospection {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types {
      kind
      name
      description
      fields(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
        type { ...TypeRef }
      }
      interfaces { name }
    }
  }
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name
    ofType { kind name
      ofType { kind name
        ofType { kind name
          ofType { kind name
            ofType { kind name
              ofType { kind name }
            }
          }
        }
      }
    }
  }
}"#;

/// The smallest introspection: it fails where introspection is disabled or
/// forbidden, which is what discovery needs to know.
const PROBE: &str = "query MatihProbe { __schema { queryType { name } } }";

#[derive(Debug, Deserialize)]
pub(crate) struct IntrospectionData {
    #[serde(rename = "__schema")]
    pub schema: IntrospectionSchema,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IntrospectionSchema {
    pub query_type: Option<Named>,
    pub mutation_type: Option<Named>,
    pub subscription_type: Option<Named>,
    pub types: Vec<FullType>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FullType {
    pub kind: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub fields: Option<Vec<Field>>,
    pub interfaces: Option<Vec<Named>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Field {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub is_deprecated: bool,
    pub deprecation_reason: Option<String>,
    #[serde(rename = "type")]
    pub ty: TypeRef,
}

/// Turns introspection into tables: OBJECT types, except `__*` introspection
/// types and (unless `include_roots`) the query, mutation and subscription
/// roots, which are operations rather than data shapes.
pub(crate) fn tables(
    schema: &IntrospectionSchema,
    include_roots: bool,
    req: &DiscoveryRequest,
) -> Vec<Table> {
    let roots: Vec<(&str, &str)> = [
        (&schema.query_type, "query"),
        (&schema.mutation_type, "mutation"),
        (&schema.subscription_type, "subscription"),
    ]
    .into_iter()
    .filter_map(|(t, role)| {
        t.as_ref()
            .and_then(|n| n.name.as_deref())
            .map(|n| (n, role))
    })
    .collect();
    let mut out = Vec::new();
    for ty in &schema.types {
        let Some(name) = ty.name.as_deref() else {
            continue;
        };
        if ty.kind != "OBJECT" || name.starts_with("__") || !req.tables.matches(name) {
            continue;
        }
        let role = roots.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
        if role.is_some() && !include_roots {
            continue;
        }
        let mut t = Table::new(name, TableKind::GraphqlType);
        t.comment = ty.description.clone().filter(|d| !d.trim().is_empty());
        t.properties.insert("graphqlKind".into(), json!(ty.kind));
        if let Some(r) = role {
            t.properties.insert("rootOperation".into(), json!(r));
        }
        let interfaces: Vec<&str> = ty
            .interfaces
            .iter()
            .flatten()
            .filter_map(|i| i.name.as_deref())
            .collect();
        if !interfaces.is_empty() {
            t.properties.insert("interfaces".into(), json!(interfaces));
        }
        if req.depth >= Depth::Columns {
            t.columns = ty
                .fields
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, f)| column(i, f))
                .collect();
        }
        out.push(t);
    }
    out
}

fn column(i: usize, f: &Field) -> Column {
    let (data_type, nullable) = types::map(&f.ty);
    let mut comment = f.description.clone().filter(|d| !d.trim().is_empty());
    if f.is_deprecated {
        let note = match f.deprecation_reason.as_deref() {
            Some(r) if !r.is_empty() => format!("deprecated: {r}"),
            _ => "deprecated".to_owned(),
        };
        comment = Some(match comment {
            Some(c) => format!("{c} ({note})"),
            None => note,
        });
    }
    Column {
        name: f.name.clone().into(),
        ordinal: i as u32 + 1,
        native_type: types::native(&f.ty).into(),
        data_type,
        nullable,
        default: None,
        comment,
    }
}

pub(crate) async fn probe(
    conn: &mut GraphqlConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    if !req.schemas.matches(&conn.cfg.name) {
        return Ok(());
    }
    let (_, data): (_, serde_json::Value) = conn
        .execute(PROBE, "MatihProbe", conn.cfg.timeouts.query())
        .await?;
    introspection_enabled(&data, "MatihProbe")
}

/// Some servers (async-graphql with introspection off) answer `__schema`
/// with null instead of an error.
fn introspection_enabled(data: &serde_json::Value, operation: &str) -> Result<(), ConnectorError> {
    if data.get("__schema").is_some_and(|s| !s.is_null()) {
        Ok(())
    } else {
        Err(ConnectorError::new(
            ErrorCode::Unsupported,
            format!("{operation}: the server answered __schema with null: introspection is disabled, so types cannot be discovered"),
        ))
    }
}

pub(crate) async fn discover(
    conn: &mut GraphqlConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let mut catalog = Catalog::default();
    if !req.schemas.matches(&conn.cfg.name) {
        return Ok(catalog);
    }
    let mut schema = Schema {
        name: conn.cfg.name.clone(),
        comment: Some(format!("GraphQL endpoint {}", conn.cfg.url)),
        tables: Vec::new(),
    };
    if req.depth >= Depth::Tables {
        let (_, data): (_, serde_json::Value) = conn
            .execute(
                INTROSPECTION,
                "MatihIntrospection",
                conn.cfg.timeouts.query(),
            )
            .await?;
        introspection_enabled(&data, "MatihIntrospection")?;
        let data: IntrospectionData = serde_json::from_value(data).map_err(|e| {
            ConnectorError::new(
                ErrorCode::ProtocolError,
                format!("MatihIntrospection: unexpected introspection shape: {e}"),
            )
            .with_source(e)
        })?;
        schema.tables = tables(&data.schema, conn.cfg.include_roots, req);
    }
    catalog.schemas.push(schema);
    catalog.sort();
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::{DataType, NameFilter};
    use serde_json::json;

    fn sample() -> IntrospectionSchema {
        let v = json!({
            "queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}, "subscriptionType": null,
            "types": [
                {"kind": "OBJECT", "name": "Query", "description": null, "interfaces": [], "fields": [
                    {"name": "users", "description": null, "isDeprecated": false, "deprecationReason": null,
                     "type": {"kind": "NON_NULL", "name": null, "ofType": {"kind": "LIST", "name": null, "ofType": {"kind": "OBJECT", "name": "User", "ofType": null}}}}]},
                {"kind": "OBJECT", "name": "Mutation", "description": null, "interfaces": [], "fields": []},
                {"kind": "OBJECT", "name": "User", "description": "A person", "interfaces": [{"name": "Node"}], "fields": [
                    {"name": "id", "description": "Key", "isDeprecated": false, "deprecationReason": null,
                     "type": {"kind": "NON_NULL", "name": null, "ofType": {"kind": "SCALAR", "name": "ID", "ofType": null}}},
                    {"name": "login", "description": null, "isDeprecated": true, "deprecationReason": "use handle",
                     "type": {"kind": "SCALAR", "name": "String", "ofType": null}}]},
                {"kind": "INTERFACE", "name": "Node", "description": null, "interfaces": null, "fields": []},
                {"kind": "OBJECT", "name": "__Type", "description": null, "interfaces": [], "fields": []},
                {"kind": "SCALAR", "name": "String", "description": null, "interfaces": null, "fields": null}
            ]
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn object_types_become_tables() {
        let s = sample();
        let t = tables(&s, false, &DiscoveryRequest::default());
        assert_eq!(
            t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["User"]
        );
        let user = &t[0];
        assert_eq!(user.kind, TableKind::GraphqlType);
        assert_eq!(user.comment.as_deref(), Some("A person"));
        assert_eq!(user.properties["interfaces"], json!(["Node"]));
        assert_eq!(user.columns[0].name, "id");
        assert_eq!(
            (user.columns[0].data_type.clone(), user.columns[0].nullable),
            (DataType::String, false)
        );
        assert_eq!(user.columns[0].native_type, "ID!");
        assert_eq!(
            user.columns[1].comment.as_deref(),
            Some("deprecated: use handle")
        );

        let with_roots = tables(&s, true, &DiscoveryRequest::default());
        let names: Vec<_> = with_roots.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Query", "Mutation", "User"]);
        assert_eq!(with_roots[0].properties["rootOperation"], json!("query"));
        assert_eq!(with_roots[0].columns[0].native_type, "[User]!");

        let req = DiscoveryRequest {
            tables: NameFilter {
                include: vec![],
                exclude: vec!["U*".into()],
            },
            depth: Depth::Tables,
            ..Default::default()
        };
        let filtered = tables(&s, true, &req);
        assert_eq!(filtered.len(), 2);
        assert!(filtered.iter().all(|t| t.columns.is_empty()));
    }
}
