//! fazt: a single-binary personal cloud for small hosts. See DESIGN.md beside the checkout.

pub mod probe;
pub mod sys;
pub mod units;
