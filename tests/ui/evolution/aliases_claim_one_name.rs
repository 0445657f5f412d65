// Two events both say records stored as "Liked" are theirs: replaying could not tell which.
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(aliases("Liked"))]
struct Endorsed {
    by: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(aliases("Liked", "Starred"))]
struct Favourited {
    by: String,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Endorsed, Favourited))]
struct Post {
    fans: Vec<String>,
}

impl Apply<Endorsed> for Post {
    fn apply(&mut self, e: &Endorsed) {
        self.fans.push(e.by.clone());
    }
}

impl Apply<Favourited> for Post {
    fn apply(&mut self, e: &Favourited) {
        self.fans.push(e.by.clone());
    }
}

fn main() {}
