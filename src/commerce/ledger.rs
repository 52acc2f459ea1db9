//! The stock ledger: the one writer of stock, orders and their events.
//!
//! One thread owns a SQLite connection. Requests queue to it; it takes every request waiting
//! (up to [`LEDGER_BATCH`]) into one transaction, each inside its own savepoint, commits once
//! (one fsync for the whole batch: group commit), and only then answers each request. So an
//! acknowledged order is on disk, a failing request never undoes its neighbours, and stock is
//! only ever taken by one conditional update — available + sold = allocated always holds.

use std::sync::Arc;

use rusqlite::Connection;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

pub use super::views::{offer_json, order_json};
use crate::store::StoreError;
use crate::store::commerce::{self as sql, IdempotentResponse, OfferRow, OrderRow};
use fieldcast_core::commerce::rules::{self, OfferState, Refusal};

/// Requests waiting for the ledger. Past this, new orders are answered 503 at once.
pub const LEDGER_QUEUE: usize = 8192;
/// Most requests committed in one transaction.
pub const LEDGER_BATCH: usize = 512;

use fieldcast_core::time::now_ms;

fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", fieldcast_core::ids::random_hex(10))
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct Buyer {
    #[schema(min_length = 1, max_length = 100, pattern = "[^ \t\n\r]")]
    pub name: String,
    /// Digits with spaces, `()`, `.` and `-`, a `+` only in front: 6 to 15 digits (17 with a
    /// leading international `00`).
    #[schema(
        max_length = 32,
        pattern = r"^([ ().-]*\+[ ().-]*([0-9][ ().-]*){6,15}|[ ().-]*([0-9][ ().-]*){6,15}|[ ().-]*0[ ().-]*0[ ().-]*([0-9][ ().-]*){6,15})$"
    )]
    pub phone: String,
    #[schema(min_length = 1, max_length = 500, pattern = "[^ \t\n\r]")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100, pattern = "[^ \t\n\r]")]
    pub city: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub session_id: String,
    pub idempotency_key: String,
    /// Hash of the canonical request body: the same key with another body is refused.
    pub request_hash: String,
    pub offer_id: String,
    pub quantity: i64,
    pub buyer: Buyer,
    pub phone_key: String,
    /// The network the order comes from (a keyed hash, `devices::DeviceKeys::address_key`).
    pub address_key: String,
    /// The share of each offer one network may buy, in percent (0: no share; see
    /// `rules::address_share`).
    pub address_share_percent: u8,
}

/// What the ledger decided. Only the control plane turns it into HTTP
/// (`control::outcome`); the ledger keeps that rendering of an order's first outcome (an
/// [`Answer`]) for replays under the same `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new order, on disk.
    OrderTaken(OrderRow),
    /// A new flash sale, on disk.
    OfferOpened { offer: OfferRow, at_ms: i64 },
    /// The order as it is now (cancelled).
    Order(OrderRow),
    /// The offer as it is now (stock added, or ended).
    Offer { offer: OfferRow, at_ms: i64 },
    /// Nothing changed, and why.
    Refused(Refused),
    /// A retry of an order already decided: the first answer, as it was given.
    Replay(Answer),
}

/// Why the ledger changed nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The offer's rules: sold out, not live, over the buyer's limit, the network's share.
    Rule(Refusal),
    /// Fewer units left than asked.
    OnlyLeft { remaining: i64 },
    /// The order names an offer this session does not have.
    NoSuchOffer,
    /// The order or offer to change does not exist (in this session).
    NotFound(&'static str),
    /// Stock cannot be added to an offer that has ended.
    OfferEnded,
    /// The `Idempotency-Key` came before with another request.
    KeyReused,
    /// Storing failed; the same request may be sent again.
    NotStored,
}

/// An outcome as the control plane rendered it: kept with an order's idempotency record and
/// given back as is to a retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// How the control plane renders an outcome; given to [`StockLedger::start`].
pub type Render = fn(&Outcome) -> Answer;

/// What happened, for the live state (SSE, overlays) after the commit. Effects reach the sink
/// on the ledger's thread in commit order, so the live state follows the ledger exactly.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The session's offers or orders changed (inside a batch; after the commit each session
    /// is announced once as `Offers`).
    Changed { session_id: String },
    /// The session's offers as the ledger's own connection reads them right after its commit:
    /// no reader elsewhere can overwrite them with an older read.
    Offers {
        session_id: String,
        offers: Vec<OfferRow>,
    },
    /// A purchase, for the toast (the live state decides what of the buyer it shows).
    Purchase {
        session_id: String,
        buyer: Buyer,
        quantity: i64,
    },
}

enum Command {
    Order(Box<OrderRequest>, oneshot::Sender<Outcome>),
    OpenOffer(Box<OfferRow>, oneshot::Sender<Outcome>),
    Cancel {
        session_id: String,
        order_id: String,
        reply: oneshot::Sender<Outcome>,
    },
    AddStock {
        session_id: String,
        offer_id: String,
        quantity: i64,
        reply: oneshot::Sender<Outcome>,
    },
    EndOffer {
        session_id: String,
        offer_id: String,
        reply: oneshot::Sender<Outcome>,
    },
    EndDueOffers,
    /// Shutdown: answer what is queued before it, then close the database connection.
    Close(oneshot::Sender<()>),
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the stock ledger is busy; try again")]
    Busy,
    #[error("the stock ledger has stopped")]
    Stopped,
}

/// Cloneable handle to the ledger thread.
#[derive(Clone)]
pub struct StockLedger {
    tx: mpsc::Sender<Command>,
}

/// Called after each commit with what changed; must not block.
pub type EffectSink = Arc<dyn Fn(Vec<Effect>) + Send + Sync>;

impl StockLedger {
    /// Requests waiting for the ledger thread.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Orders are rate-limited per client address before they reach the ledger (the HTTP
    /// layer), so a flood never fills this queue or the database.
    pub fn start(conn: Connection, effects: EffectSink, render: Render) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(LEDGER_QUEUE);
        std::thread::Builder::new()
            .name("stock-ledger".into())
            .spawn(move || run(conn, rx, effects, render))?;
        Ok(Self { tx })
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Outcome>) -> Command,
    ) -> Result<Outcome, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(make(reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LedgerError::Busy,
            mpsc::error::TrySendError::Closed(_) => LedgerError::Stopped,
        })?;
        rx.await.map_err(|_| LedgerError::Stopped)
    }

    pub async fn order(&self, request: OrderRequest) -> Result<Outcome, LedgerError> {
        self.ask(|reply| Command::Order(Box::new(request), reply))
            .await
    }

    /// Opens a flash sale (the operator checked it): offers are written here alone, so that
    /// every stock change reaches the live state through one writer.
    pub async fn open_offer(&self, offer: OfferRow) -> Result<Outcome, LedgerError> {
        self.ask(|reply| Command::OpenOffer(Box::new(offer), reply))
            .await
    }

    pub async fn cancel(&self, session_id: &str, order_id: &str) -> Result<Outcome, LedgerError> {
        let (session_id, order_id) = (session_id.to_string(), order_id.to_string());
        self.ask(|reply| Command::Cancel {
            session_id,
            order_id,
            reply,
        })
        .await
    }

    pub async fn add_stock(
        &self,
        session_id: &str,
        offer_id: &str,
        quantity: i64,
    ) -> Result<Outcome, LedgerError> {
        let (session_id, offer_id) = (session_id.to_string(), offer_id.to_string());
        self.ask(|reply| Command::AddStock {
            session_id,
            offer_id,
            quantity,
            reply,
        })
        .await
    }

    pub async fn end_offer(
        &self,
        session_id: &str,
        offer_id: &str,
    ) -> Result<Outcome, LedgerError> {
        let (session_id, offer_id) = (session_id.to_string(), offer_id.to_string());
        self.ask(|reply| Command::EndOffer {
            session_id,
            offer_id,
            reply,
        })
        .await
    }

    /// Drains the queue (every request sent before this is answered), then closes the
    /// ledger's database connection. Later requests are answered 503.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Announces offers whose time is up (`offer.ended`). Called by a clock task.
    pub fn end_due_offers(&self) {
        let _ = self.tx.try_send(Command::EndDueOffers);
    }
}

fn event(conn: &Connection, event_type: &str, data: Value, now: i64) -> Result<(), StoreError> {
    let id = random_id("evt");
    let body =
        json!({"id": id, "type": event_type, "created_at": now / 1000, "data": data}).to_string();
    sql::enqueue_event(conn, &id, event_type, &body, now / 1000)
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Command>, effects: EffectSink, render: Render) {
    let mut batch = Vec::with_capacity(LEDGER_BATCH);
    loop {
        if rx.blocking_recv().map(|c| batch.push(c)).is_none() {
            return;
        }
        while batch.len() < LEDGER_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut changes = Vec::new();
        let answers = match commit(&mut conn, &batch, &mut changes, render) {
            Ok(answers) => answers,
            Err(e) => {
                // Nothing of the batch was committed. Retry each request on its own, so one
                // failing request cannot fail its neighbours.
                tracing::warn!(error = %e, batch = batch.len(), "ledger batch failed; retrying one by one");
                changes.clear();
                batch
                    .iter()
                    .map(|command| {
                        let mut own = Vec::new();
                        match commit(&mut conn, std::slice::from_ref(command), &mut own, render) {
                            Ok(mut answer) => {
                                changes.extend(own);
                                answer.pop().flatten()
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "ledger request failed");
                                Some(Outcome::Refused(Refused::NotStored))
                            }
                        }
                    })
                    .collect()
            }
        };
        // Answer only now: everything answered 2xx is on disk.
        let mut close = None;
        for (command, answer) in batch.drain(..).zip(answers) {
            match (command, answer) {
                (Command::Close(reply), _) => close = Some(reply),
                (command, Some(answer)) => command.reply(answer),
                _ => {}
            }
        }
        if !changes.is_empty() {
            effects(with_offers(&conn, changes));
        }
        if let Some(reply) = close {
            rx.close();
            // Whatever was queued after the close is answered "stopped" as its sender drops.
            while rx.try_recv().is_ok() {}
            drop(conn);
            tracing::info!("stock ledger closed");
            let _ = reply.send(());
            return;
        }
    }
}

impl Command {
    fn reply(self, answer: Outcome) {
        let reply = match self {
            Command::Order(_, reply)
            | Command::OpenOffer(_, reply)
            | Command::Cancel { reply, .. }
            | Command::AddStock { reply, .. }
            | Command::EndOffer { reply, .. } => reply,
            Command::EndDueOffers | Command::Close(_) => return,
        };
        let _ = reply.send(answer);
    }
}

/// Applies `commands` in one transaction (one fsync). No savepoints: a request either
/// writes nothing (refusals are decided before any write) or all of its rows; an SQLite
/// error fails the whole transaction and the caller retries request by request.
fn commit(
    conn: &mut Connection,
    commands: &[Command],
    changes: &mut Vec<Effect>,
    render: Render,
) -> Result<Vec<Option<Outcome>>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(commands.len());
    for command in commands {
        answers.push(apply(&tx, command, now_ms(), changes, render)?);
    }
    tx.commit()?;
    Ok(answers)
}

fn apply(
    conn: &Connection,
    command: &Command,
    now: i64,
    changes: &mut Vec<Effect>,
    render: Render,
) -> Result<Option<Outcome>, StoreError> {
    Ok(Some(match command {
        Command::Order(request, _) => place_order(conn, request, now, changes, render)?,
        Command::OpenOffer(offer, _) => open_offer(conn, offer, now, changes)?,
        Command::Cancel {
            session_id,
            order_id,
            ..
        } => cancel(conn, session_id, order_id, now, changes)?,
        Command::AddStock {
            session_id,
            offer_id,
            quantity,
            ..
        } => add_stock(conn, session_id, offer_id, *quantity, now, changes)?,
        Command::EndOffer {
            session_id,
            offer_id,
            ..
        } => end_offer(conn, session_id, offer_id, now, changes)?,
        Command::EndDueOffers => {
            end_due(conn, now, changes)?;
            return Ok(None);
        }
        Command::Close(_) => return Ok(None),
    }))
}

fn place_order(
    conn: &Connection,
    r: &OrderRequest,
    now: i64,
    changes: &mut Vec<Effect>,
    render: Render,
) -> Result<Outcome, StoreError> {
    if let Some(stored) = sql::idempotent_response(conn, &r.session_id, &r.idempotency_key)? {
        if stored.request_hash != r.request_hash {
            return Ok(Outcome::Refused(Refused::KeyReused));
        }
        return Ok(Outcome::Replay(Answer {
            status: stored.status,
            body: stored.body,
        }));
    }
    let outcome = decide_order(conn, r, now, changes)?;
    if outcome != Outcome::Refused(Refused::NotStored) {
        let answer = render(&outcome);
        let stored = IdempotentResponse {
            request_hash: r.request_hash.clone(),
            status: answer.status,
            body: answer.body,
        };
        sql::save_idempotent_response(
            conn,
            &r.session_id,
            &r.idempotency_key,
            &stored,
            now / 1000,
        )?;
    }
    Ok(outcome)
}

fn decide_order(
    conn: &Connection,
    r: &OrderRequest,
    now: i64,
    changes: &mut Vec<Effect>,
) -> Result<Outcome, StoreError> {
    let Some(offer) = sql::offer(conn, &r.offer_id)?.filter(|o| o.session_id == r.session_id)
    else {
        return Ok(Outcome::Refused(Refused::NoSuchOffer));
    };
    let already = match offer.per_buyer_limit {
        Some(_) => sql::bought_by(conn, &offer.id, &r.phone_key)?,
        None => 0,
    };
    let mut checked = rules::check_order(&offer, now, r.quantity, already);
    if checked.is_ok()
        && let Some(limit) = rules::address_share(offer.allocated, r.address_share_percent)
        && sql::bought_from(conn, &offer.id, &r.address_key)? + r.quantity > limit
    {
        checked = Err(Refusal::AddressShare { limit });
    }
    if let Err(refusal) = checked {
        return Ok(Outcome::Refused(Refused::Rule(refusal)));
    }
    if !sql::take_stock(conn, &offer.id, r.quantity)? {
        return Ok(Outcome::Refused(if offer.available > 0 {
            Refused::OnlyLeft {
                remaining: offer.available,
            }
        } else {
            Refused::Rule(Refusal::SoldOut)
        }));
    }
    let currency = sql::product_in(conn, &offer.product_id)?
        .map(|p| p.currency)
        .unwrap_or_default();
    let order = OrderRow {
        id: random_id("ord"),
        session_id: r.session_id.clone(),
        offer_id: offer.id.clone(),
        product_id: offer.product_id.clone(),
        quantity: r.quantity,
        amount: offer.unit_amount * r.quantity,
        currency,
        buyer_name: r.buyer.name.clone(),
        buyer_phone: r.buyer.phone.clone(),
        phone_key: r.phone_key.clone(),
        buyer_address: r.buyer.address.clone(),
        buyer_city: r.buyer.city.clone(),
        status: "confirmed".into(),
        created_at: now / 1000,
        address_key: Some(r.address_key.clone()),
    };
    sql::insert_order(conn, &order)?;
    sql::count_for_network(conn, &offer.id, &r.address_key, r.quantity)?;
    let mut data = order_json(&order);
    data["buyer"] = serde_json::to_value(&r.buyer).unwrap_or(Value::Null);
    data["session_id"] = Value::from(order.session_id.clone());
    event(conn, "order.created", data, now)?;
    let remaining = offer.available - r.quantity;
    if remaining == 0 {
        let mut sold_out = offer.clone();
        sold_out.available = 0;
        sold_out.sold += r.quantity;
        event(conn, "offer.sold_out", offer_json(&sold_out, now), now)?;
    }
    changes.push(Effect::Changed {
        session_id: r.session_id.clone(),
    });
    changes.push(Effect::Purchase {
        session_id: r.session_id.clone(),
        buyer: r.buyer.clone(),
        quantity: r.quantity,
    });
    Ok(Outcome::OrderTaken(order))
}

fn open_offer(
    conn: &Connection,
    offer: &OfferRow,
    now: i64,
    changes: &mut Vec<Effect>,
) -> Result<Outcome, StoreError> {
    sql::insert_offer(conn, offer)?;
    changes.push(Effect::Changed {
        session_id: offer.session_id.clone(),
    });
    Ok(Outcome::OfferOpened {
        offer: offer.clone(),
        at_ms: now,
    })
}

/// Turns each session's `Changed` into one `Offers`, read on the ledger's connection after the
/// commit, where the first `Changed` stood; other effects keep their order.
fn with_offers(conn: &Connection, changes: Vec<Effect>) -> Vec<Effect> {
    let mut announced: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(changes.len());
    for effect in changes {
        match effect {
            Effect::Changed { session_id } => {
                if announced.contains(&session_id) {
                    continue;
                }
                match sql::offers_of(conn, &session_id) {
                    Ok(offers) => out.push(Effect::Offers {
                        session_id: session_id.clone(),
                        offers,
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, session.id = %session_id, "reading offers after a commit failed")
                    }
                }
                announced.push(session_id);
            }
            other => out.push(other),
        }
    }
    out
}

fn cancel(
    conn: &Connection,
    session_id: &str,
    order_id: &str,
    now: i64,
    changes: &mut Vec<Effect>,
) -> Result<Outcome, StoreError> {
    let Some(mut order) = sql::order(conn, order_id)?.filter(|o| o.session_id == session_id) else {
        return Ok(Outcome::Refused(Refused::NotFound("order")));
    };
    if order.status == "cancelled" {
        return Ok(Outcome::Order(order));
    }
    sql::set_order_status(conn, order_id, "cancelled")?;
    sql::return_stock(conn, &order.offer_id, order.quantity)?;
    if let Some(network) = &order.address_key {
        sql::count_for_network(conn, &order.offer_id, network, -order.quantity)?;
    }
    order.status = "cancelled".into();
    event(conn, "order.cancelled", order_json(&order), now)?;
    changes.push(Effect::Changed {
        session_id: session_id.to_string(),
    });
    Ok(Outcome::Order(order))
}

fn add_stock(
    conn: &Connection,
    session_id: &str,
    offer_id: &str,
    quantity: i64,
    now: i64,
    changes: &mut Vec<Effect>,
) -> Result<Outcome, StoreError> {
    let Some(offer) = sql::offer(conn, offer_id)?.filter(|o| o.session_id == session_id) else {
        return Ok(Outcome::Refused(Refused::NotFound("offer")));
    };
    if rules::offer_state(&offer, now) == OfferState::Ended {
        return Ok(Outcome::Refused(Refused::OfferEnded));
    }
    sql::add_stock(conn, offer_id, quantity)?;
    changes.push(Effect::Changed {
        session_id: session_id.to_string(),
    });
    let offer = sql::offer(conn, offer_id)?.unwrap_or(offer);
    Ok(Outcome::Offer { offer, at_ms: now })
}

fn end_offer(
    conn: &Connection,
    session_id: &str,
    offer_id: &str,
    now: i64,
    changes: &mut Vec<Effect>,
) -> Result<Outcome, StoreError> {
    let Some(offer) = sql::offer(conn, offer_id)?.filter(|o| o.session_id == session_id) else {
        return Ok(Outcome::Refused(Refused::NotFound("offer")));
    };
    if rules::offer_state(&offer, now) != OfferState::Ended {
        sql::end_offer(conn, offer_id, now)?;
    }
    end_due(conn, now, changes)?;
    let offer = sql::offer(conn, offer_id)?.unwrap_or(offer);
    Ok(Outcome::Offer { offer, at_ms: now })
}

fn end_due(conn: &Connection, now: i64, changes: &mut Vec<Effect>) -> Result<(), StoreError> {
    for offer in sql::offers_to_end(conn, now)? {
        sql::mark_end_notified(conn, &offer.id)?;
        event(conn, "offer.ended", offer_json(&offer, now), now)?;
        changes.push(Effect::Changed {
            session_id: offer.session_id.clone(),
        });
    }
    Ok(())
}
