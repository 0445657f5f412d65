// Processes: one with the default name, reacting to the events of two aggregate types (one from
// another module) with reactions that `.await` and record on the work; one with a name and
// `crate = "..."`. The event enum asks nothing of the events beyond `Event` (no `Debug`, no
// `Clone`), and a process may keep state of its own between reactions.
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

mod orders {
    use serde::{Deserialize, Serialize};

    #[derive(eventsource_core::Event, Serialize, Deserialize)]
    #[event(name = "order.placed")]
    pub struct Placed {
        pub cents: u64,
    }
}

#[derive(Event, Serialize, Deserialize)]
struct Paid {
    cents: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct ShipmentRequested {
    order: Uuid,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(events(ShipmentRequested))]
struct Shipment {
    requested: bool,
}

impl Apply<ShipmentRequested> for Shipment {
    fn apply(&mut self, _: &ShipmentRequested) {
        self.requested = true;
    }
}

// The default name, the type's.
#[derive(Process, Default)]
#[process(events(orders::Placed, Paid))]
struct Shipping {
    reactions: u64,
}

async fn later<T>(value: T) -> T {
    value
}

impl React<orders::Placed> for Shipping {
    async fn react(&mut self, _: &Recorded<orders::Placed>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        self.reactions += later(1).await;
        Ok(())
    }
}

impl React<Paid> for Shipping {
    async fn react(&mut self, e: &Recorded<Paid>, work: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        let id = id_from_name("shipments", &later(e.stream_id).await.to_string());
        let shipment = work.load_or_default::<Shipment>(id).await?;
        work.record(shipment, ShipmentRequested { order: e.stream_id });
        Ok(())
    }
}

#[derive(Process)]
#[process(name = "auditing", events(Paid), crate = "eventsource_core")]
struct Auditing;

impl React<Paid> for Auditing {
    async fn react(&mut self, _: &Recorded<Paid>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn assert_process<P: Process>() {}

fn main() {
    assert_process::<Shipping>();
    assert_process::<Auditing>();
    assert_eq!(<Shipping as Process>::NAME, "Shipping");
    assert_eq!(<Auditing as Process>::NAME, "auditing");
    assert_eq!(<ShippingEvent as EventEnum>::NAMES, ["order.placed", "Paid"]);
    assert_eq!(<AuditingEvent as EventEnum>::NAMES, ["Paid"]);
}
