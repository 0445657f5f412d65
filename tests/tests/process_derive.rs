//! `#[derive(Process)]` at run time: a process over the events of two aggregate types, run by a
//! `ProcessManager`, hands each listed event to its own `React<E>` impl, skips the events it does
//! not list, and what each reaction records is stored once, caused by the upstream event, in its
//! workflow, and by the process.

use std::collections::BTreeMap;

use eventsource_core::prelude::*;
use eventsource_core::{LogQuery, projection::HandlerError};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "order.placed")]
struct Placed {
    cents: u64,
}

/// Recorded by `Order` but not listed by the process: it must never reach it.
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "order.cancelled")]
struct Cancelled;

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "order", events(Placed, Cancelled))]
struct Order;

impl Apply<Placed> for Order {
    fn apply(&mut self, _: &Placed) {}
}

impl Apply<Cancelled> for Order {
    fn apply(&mut self, _: &Cancelled) {}
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "payment.received")]
struct PaymentReceived {
    order: Uuid,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "payment", events(PaymentReceived))]
struct Payment;

impl Apply<PaymentReceived> for Payment {
    fn apply(&mut self, _: &PaymentReceived) {}
}

/// Caused by `Placed`.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "invoice.issued")]
struct InvoiceIssued {
    order: Uuid,
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "invoice", events(InvoiceIssued))]
struct Invoice;

impl Apply<InvoiceIssued> for Invoice {
    fn apply(&mut self, _: &InvoiceIssued) {}
}

/// Caused by `PaymentReceived`.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "shipment.requested")]
struct ShipmentRequested {
    order: Uuid,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "shipment", events(ShipmentRequested))]
struct Shipment;

impl Apply<ShipmentRequested> for Shipment {
    fn apply(&mut self, _: &ShipmentRequested) {}
}

fn invoice_of(order: Uuid) -> Uuid {
    id_from_name("invoices", &order.to_string())
}

fn shipment_of(order: Uuid) -> Uuid {
    id_from_name("shipments", &order.to_string())
}

/// Invoices an order when it is placed and ships it when it is paid; `seen` is which reaction
/// ran for which upstream event.
#[derive(Process, Default, Debug)]
#[process(name = "fulfilment", events(Placed, PaymentReceived))]
struct Fulfilment {
    seen: Vec<(&'static str, Uuid)>,
}

impl React<Placed> for Fulfilment {
    async fn react(
        &mut self,
        e: &Recorded<Placed>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        tokio::task::yield_now().await;
        self.seen.push(("placed", e.id));
        let invoice = work
            .load_or_default::<Invoice>(invoice_of(e.stream_id))
            .await?;
        work.record(
            invoice,
            InvoiceIssued {
                order: e.stream_id,
                cents: e.event.cents,
            },
        );
        Ok(())
    }
}

impl React<PaymentReceived> for Fulfilment {
    async fn react(
        &mut self,
        e: &Recorded<PaymentReceived>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        self.seen.push(("payment received", e.id));
        let order = e.event.order;
        let shipment = work.load_or_default::<Shipment>(shipment_of(order)).await?;
        work.record(shipment, ShipmentRequested { order });
        Ok(())
    }
}

/// How many events of each name the whole log holds.
async fn names_in_log(store: &MemoryStore) -> BTreeMap<String, usize> {
    let page = store
        .read_log(LogQuery::from_start(1_000))
        .await
        .expect("read the log");
    let mut names = BTreeMap::new();
    for event in page.events {
        *names.entry(event.name).or_insert(0) += 1;
    }
    names
}

#[tokio::test]
async fn each_listed_event_reaches_its_reaction_and_causes_its_events_once() {
    let store = MemoryStore::new();
    let orders = Repository::<Order, _>::new(store.clone());
    let payments = Repository::<Payment, _>::new(store.clone());
    let invoices = Repository::<Invoice, _>::new(store.clone());
    let shipments = Repository::<Shipment, _>::new(store.clone());

    // The order is placed in a request's workflow; the payment comes in on its own.
    let request = Uuid::now_v7();
    let order = CommandContext::new()
        .with_correlation_id(request)
        .scope(orders.create(Placed { cents: 250 }))
        .await
        .expect("place");
    orders
        .execute(order, |_| Ok::<_, std::convert::Infallible>(Cancelled))
        .await
        .expect("cancel");
    let payment = payments
        .create(PaymentReceived { order })
        .await
        .expect("pay");
    let placed = orders
        .history(order)
        .await
        .expect("order history")
        .remove(0);
    let paid = payments
        .history(payment)
        .await
        .expect("payment history")
        .remove(0);
    assert_eq!(placed.correlation_id(), Some(request));
    assert_ne!(paid.correlation_id(), Some(request));

    let mut fulfilment = ProcessManager::new(store.clone(), Fulfilment::default());
    fulfilment.catch_up().await.expect("catch up");

    // Each listed event went to its own reaction, in log order; `Cancelled` went nowhere.
    assert_eq!(
        fulfilment.process().seen,
        [("placed", placed.id), ("payment received", paid.id)]
    );

    let invoiced = invoices
        .history(invoice_of(order))
        .await
        .expect("invoice history");
    assert_eq!(invoiced.len(), 1);
    let invoiced = &invoiced[0];
    let InvoiceEvent::InvoiceIssued(issued) = &invoiced.event else {
        panic!("expected an invoice, got {:?}", invoiced.event)
    };
    assert_eq!(issued, &InvoiceIssued { order, cents: 250 });
    assert_eq!(invoiced.causation_id(), Some(placed.id));
    assert_eq!(invoiced.correlation_id(), placed.correlation_id());
    assert_eq!(invoiced.actor(), Some("fulfilment"));

    let shipped = shipments
        .history(shipment_of(order))
        .await
        .expect("shipment history");
    assert_eq!(shipped.len(), 1);
    let shipped = &shipped[0];
    let ShipmentEvent::ShipmentRequested(requested) = &shipped.event else {
        panic!("expected a shipment, got {:?}", shipped.event)
    };
    assert_eq!(requested, &ShipmentRequested { order });
    assert_eq!(shipped.causation_id(), Some(paid.id));
    assert_eq!(shipped.correlation_id(), paid.correlation_id());
    assert_eq!(shipped.actor(), Some("fulfilment"));

    let expected: BTreeMap<String, usize> = [
        ("invoice.issued", 1),
        ("order.cancelled", 1),
        ("order.placed", 1),
        ("payment.received", 1),
        ("shipment.requested", 1),
    ]
    .into_iter()
    .map(|(name, count)| (name.to_owned(), count))
    .collect();
    assert_eq!(names_in_log(&store).await, expected);

    // Caught up: a second run reacts to nothing and causes nothing.
    let end = store.last_position().await.expect("the last position");
    fulfilment.catch_up().await.expect("catch up again");
    assert_eq!(fulfilment.process().seen.len(), 2);
    assert_eq!(store.last_position().await.expect("the last position"), end);
    assert_eq!(names_in_log(&store).await, expected);
    assert_eq!(<Fulfilment as Process>::NAME, "fulfilment");
}
