//! Bandwidth estimation support (per subscriber): bitrate meters for published layers.
//! The estimate itself comes from str0m's GCC; this module measures and allocates, it
//! never estimates. Pure: time is passed in.

pub mod allocator;
pub mod loss;
pub mod meter;
