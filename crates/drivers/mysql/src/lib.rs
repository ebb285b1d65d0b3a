//! PostgreSQL driver (placeholder until the driver lands).
