use eventsource_core::Event;

#[derive(Event)]
struct Opened {
    owner: String,
}

fn main() {}
