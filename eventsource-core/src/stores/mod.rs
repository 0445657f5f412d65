//! Store backends: one module each, the optional ones behind cargo features.

pub mod memory;
