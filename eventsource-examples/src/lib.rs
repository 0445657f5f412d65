//! Shared domain code for the example programs.
