//! Byte-bounded LRU cache of file bodies with pinned admin assets (being written).
