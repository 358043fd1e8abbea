"""A local Patroni cluster of PostgreSQL 15 members with synchronous replication."""
