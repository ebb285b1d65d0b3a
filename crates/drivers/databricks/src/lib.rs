//! Databricks SQL driver (in progress).
