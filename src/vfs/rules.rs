//! MIME types, cache headers and Range requests (being written).
