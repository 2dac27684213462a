//! Disk-space breaker (being written).
