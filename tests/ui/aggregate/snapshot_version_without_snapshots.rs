use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Ticked;

// `snapshot_version` only means something for an aggregate that keeps snapshots.
#[derive(Aggregate, Default)]
#[aggregate(events(Ticked), snapshot_version = 2)]
struct Clock {
    ticks: u64,
}

impl Apply<Ticked> for Clock {
    fn apply(&mut self, _: &Ticked) {
        self.ticks += 1;
    }
}

fn main() {}
