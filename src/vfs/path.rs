//! Request path normalisation (being written).
