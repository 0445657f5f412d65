use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(personal)]
struct Registered {
    email: String,
}

#[derive(Projection, Default)]
#[projection(events(Registered))]
struct Mailing {
    emails: Vec<String>,
}

impl Handle<Registered> for Mailing {
    async fn handle(&mut self, e: &Recorded<Registered>, _: &mut ()) -> Result<(), HandlerError> {
        self.emails.push(e.event.email.clone());
        Ok(())
    }
}

fn main() {}
