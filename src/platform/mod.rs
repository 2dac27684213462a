//! The platform layer: the operating system (`sys`, the only `unsafe` code), resource
//! probing, units, time, disk space and metric primitives. Depends on nothing else in fazt.

pub mod clock;
pub mod disk;
pub mod lock;
pub mod metrics;
pub mod probe;
pub mod reserve;
// The one module allowed `unsafe`: each call is wrapped in a safe function or type.
#[allow(unsafe_code)]
pub mod sys;
pub mod units;
