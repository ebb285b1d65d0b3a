//! Kafka driver for MATIH connectors.
