//! GraphQL driver for MATIH connectors.
