//! Guides: longer walks through one topic, with runnable examples. They hold no items.

pub mod evolution;
