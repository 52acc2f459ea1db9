//! SQL for selling: products, offers and their stock, orders, idempotency records, webhooks
//! and the outbox. Functions that the stock ledger runs inside its own transactions take a
//! `&Connection`; the rest hang off [`Store`].

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
pub use fieldcast_core::commerce::records::{OfferRow, OrderRow, ProductRow};

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: i64,
}

const PRODUCT_COLUMNS: &str = "id, name, translations, unit_amount, currency, unit, origin, harvest_date, description, created_at, image_hash";
const OFFER_COLUMNS: &str = "id, session_id, product_id, unit_amount, allocated, available, sold, per_buyer_limit, starts_at, ends_at, ended_early, created_at";
const ORDER_COLUMNS: &str = "id, session_id, offer_id, product_id, quantity, amount, currency, buyer_name, buyer_phone, phone_key, buyer_address, buyer_city, status, created_at, address_key";

fn product_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProductRow> {
    Ok(ProductRow {
        id: r.get(0)?,
        name: r.get(1)?,
        translations: r.get(2)?,
        unit_amount: r.get(3)?,
        currency: r.get(4)?,
        unit: r.get(5)?,
        origin: r.get(6)?,
        harvest_date: r.get(7)?,
        description: r.get(8)?,
        created_at: r.get(9)?,
        image_hash: r.get(10)?,
    })
}

fn offer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OfferRow> {
    Ok(OfferRow {
        id: r.get(0)?,
        session_id: r.get(1)?,
        product_id: r.get(2)?,
        unit_amount: r.get(3)?,
        allocated: r.get(4)?,
        available: r.get(5)?,
        sold: r.get(6)?,
        per_buyer_limit: r.get(7)?,
        starts_at: r.get(8)?,
        ends_at: r.get(9)?,
        ended_early: r.get(10)?,
        created_at: r.get(11)?,
    })
}

/// Which orders a list holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct OrderQuery<'a> {
    pub offer_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub phone_key: Option<&'a str>,
}

/// Where a page of orders starts, and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub newest_first: bool,
    pub after: Option<i64>,
    pub limit: usize,
}

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get(0)?,
        session_id: r.get(1)?,
        offer_id: r.get(2)?,
        product_id: r.get(3)?,
        quantity: r.get(4)?,
        amount: r.get(5)?,
        currency: r.get(6)?,
        buyer_name: r.get(7)?,
        buyer_phone: r.get(8)?,
        phone_key: r.get(9)?,
        buyer_address: r.get(10)?,
        buyer_city: r.get(11)?,
        status: r.get(12)?,
        created_at: r.get(13)?,
        address_key: r.get(14)?,
    })
}

// ----- inside the ledger's transactions -------------------------------------------------

/// Offers are written by the stock ledger alone (`commerce::ledger`), in its transactions.
pub fn insert_offer(conn: &Connection, o: &OfferRow) -> Result<(), StoreError> {
    conn.execute(
        &format!("INSERT INTO offers ({OFFER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            o.id, o.session_id, o.product_id, o.unit_amount, o.allocated, o.available, o.sold,
            o.per_buyer_limit, o.starts_at, o.ends_at, o.ended_early, o.created_at
        ],
    )?;
    Ok(())
}

/// A session's offers, oldest first.
pub fn offers_of(conn: &Connection, session_id: &str) -> Result<Vec<OfferRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OFFER_COLUMNS} FROM offers WHERE session_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt
        .query_map([session_id], offer_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn offer(conn: &Connection, id: &str) -> Result<Option<OfferRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {OFFER_COLUMNS} FROM offers WHERE id = ?1"))?
        .query_row([id], offer_row)
        .optional()?)
}

pub fn idempotent_response(
    conn: &Connection,
    session_id: &str,
    key: &str,
) -> Result<Option<IdempotentResponse>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT request_hash, status, body FROM idempotency WHERE session_id = ?1 AND key = ?2",
        )?
        .query_row([session_id, key], |r| {
            Ok(IdempotentResponse {
                request_hash: r.get(0)?,
                status: r.get(1)?,
                body: r.get(2)?,
            })
        })
        .optional()?)
}

pub fn save_idempotent_response(
    conn: &Connection,
    session_id: &str,
    key: &str,
    response: &IdempotentResponse,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO idempotency (session_id, key, request_hash, status, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![session_id, key, response.request_hash, response.status, response.body, now])?;
    Ok(())
}

/// Quantity a buyer (by normalised phone) already holds in confirmed orders of an offer.
pub fn bought_by(conn: &Connection, offer_id: &str, phone_key: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(quantity), 0) FROM orders WHERE offer_id = ?1 AND phone_key = ?2 AND status = 'confirmed'",
        )?
        .query_row([offer_id, phone_key], |r| r.get(0))?)
}

/// Units of an offer one network holds (bought and not cancelled): one primary-key lookup.
pub fn bought_from(
    conn: &Connection,
    offer_id: &str,
    address_key: &str,
) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT units FROM offer_networks WHERE offer_id = ?1 AND address_key = ?2",
        )?
        .query_row([offer_id, address_key], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Adds `units` (negative for a cancellation) to what one network holds of an offer.
pub fn count_for_network(
    conn: &Connection,
    offer_id: &str,
    address_key: &str,
    units: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO offer_networks (offer_id, address_key, units) VALUES (?1, ?2, max(?3, 0))
         ON CONFLICT (offer_id, address_key) DO UPDATE SET units = max(units + ?3, 0)",
    )?
    .execute(params![offer_id, address_key, units])?;
    Ok(())
}

/// Takes `quantity` from the offer's stock in one conditional update. Returns false (and
/// changes nothing) when less than that is available.
pub fn take_stock(conn: &Connection, offer_id: &str, quantity: i64) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE offers SET available = available - ?2, sold = sold + ?2 WHERE id = ?1 AND available >= ?2",
        )?
        .execute(params![offer_id, quantity])?;
    Ok(changed == 1)
}

/// Puts `quantity` back (a cancelled order).
pub fn return_stock(conn: &Connection, offer_id: &str, quantity: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE offers SET available = available + ?2, sold = sold - ?2 WHERE id = ?1 AND sold >= ?2")?
        .execute(params![offer_id, quantity])?;
    Ok(())
}

pub fn add_stock(conn: &Connection, offer_id: &str, quantity: i64) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE offers SET allocated = allocated + ?2, available = available + ?2 WHERE id = ?1",
        params![offer_id, quantity],
    )? == 1)
}

pub fn end_offer(conn: &Connection, offer_id: &str, now_ms: i64) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE offers SET ended_early = 1, ends_at = MIN(ends_at, ?2) WHERE id = ?1",
        params![offer_id, now_ms],
    )? == 1)
}

pub fn insert_order(conn: &Connection, o: &OrderRow) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        o.id, o.session_id, o.offer_id, o.product_id, o.quantity, o.amount, o.currency, o.buyer_name,
        o.buyer_phone, o.phone_key, o.buyer_address, o.buyer_city, o.status, o.created_at,
        o.address_key
    ])?;
    Ok(())
}

pub fn order(conn: &Connection, id: &str) -> Result<Option<OrderRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"),
            [id],
            order_row,
        )
        .optional()?)
}

pub fn set_order_status(conn: &Connection, id: &str, status: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE orders SET status = ?2 WHERE id = ?1",
        params![id, status],
    )?;
    Ok(())
}

pub fn product_in(conn: &Connection, id: &str) -> Result<Option<ProductRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?1"
        ))?
        .query_row([id], product_row)
        .optional()?)
}

/// Queues an event for every configured webhook, in the caller's transaction: a crash after
/// the commit loses nothing, a crash before it loses the event together with its cause.
pub fn enqueue_event(
    conn: &Connection,
    event_id: &str,
    event_type: &str,
    body: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (event_id, webhook_id, event_type, body, next_attempt_at)
         SELECT ?1, id, ?2, ?3, ?4 FROM webhooks",
    )?
    .execute(params![event_id, event_type, body, now])?;
    Ok(())
}

/// Offers whose end time has passed and whose end was not announced yet.
pub fn offers_to_end(conn: &Connection, now_ms: i64) -> Result<Vec<OfferRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OFFER_COLUMNS} FROM offers WHERE end_notified = 0 AND ends_at <= ?1"
    ))?;
    let rows = stmt
        .query_map([now_ms], offer_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn mark_end_notified(conn: &Connection, offer_id: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE offers SET end_notified = 1 WHERE id = ?1",
        [offer_id],
    )?;
    Ok(())
}

// ----- plain reads and operator writes ---------------------------------------------------

impl Store {
    pub fn insert_product(&self, p: &ProductRow) -> Result<(), StoreError> {
        self.conn().execute(
            &format!("INSERT INTO products ({PRODUCT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![
                p.id, p.name, p.translations, p.unit_amount, p.currency, p.unit, p.origin, p.harvest_date,
                p.description, p.created_at, p.image_hash
            ],
        )?;
        Ok(())
    }

    /// Records the content hash of a product's newly stored photo.
    pub fn set_product_image(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE products SET image_hash = ?2 WHERE id = ?1",
            params![id, hash],
        )? == 1)
    }

    pub fn update_product(&self, p: &ProductRow) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE products SET name = ?2, translations = ?3, unit_amount = ?4, currency = ?5, unit = ?6,
             origin = ?7, harvest_date = ?8, description = ?9 WHERE id = ?1",
            params![
                p.id, p.name, p.translations, p.unit_amount, p.currency, p.unit, p.origin, p.harvest_date,
                p.description
            ],
        )? == 1)
    }

    pub fn product(&self, id: &str) -> Result<Option<ProductRow>, StoreError> {
        product_in(&self.conn(), id)
    }

    pub fn products(&self) -> Result<Vec<ProductRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products ORDER BY created_at, id"
        ))?;
        let rows = stmt
            .query_map([], product_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes a product no offer refers to; returns false if none was deleted.
    pub fn delete_product(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let used: i64 = conn.query_row(
            "SELECT COUNT(*) FROM offers WHERE product_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        if used > 0 {
            return Ok(false);
        }
        conn.execute(
            "UPDATE sessions SET pinned_product_id = NULL WHERE pinned_product_id = ?1",
            [id],
        )?;
        Ok(conn.execute("DELETE FROM products WHERE id = ?1", [id])? == 1)
    }

    pub fn offer(&self, id: &str) -> Result<Option<OfferRow>, StoreError> {
        offer(&self.conn(), id)
    }

    pub fn offers_of(&self, session_id: &str) -> Result<Vec<OfferRow>, StoreError> {
        offers_of(&self.conn(), session_id)
    }

    /// Orders of a session, oldest first, optionally filtered by offer, status and phone key.
    pub fn orders_of(
        &self,
        session_id: &str,
        offer_id: Option<&str>,
        status: Option<&str>,
        phone_key: Option<&str>,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE session_id = ?1
               AND (?2 IS NULL OR offer_id = ?2) AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR phone_key = ?4)
             ORDER BY created_at, rowid"
        ))?;
        let rows = stmt
            .query_map(params![session_id, offer_id, status, phone_key], order_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One page of a session's orders, oldest or newest first, after `cursor` (the rowid of
    /// the last order of the page before): at most `limit`, and the cursor of the next page
    /// when there is one. Each page is one index range read, however deep.
    pub fn orders_page(
        &self,
        session_id: &str,
        filter: &OrderQuery<'_>,
        page: PageRequest,
    ) -> Result<(Vec<OrderRow>, Option<i64>), StoreError> {
        let conn = self.conn();
        let (compare, direction) = if page.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS}, rowid FROM orders WHERE session_id = ?1
               AND (?2 IS NULL OR offer_id = ?2) AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR phone_key = ?4)
               AND (?5 IS NULL OR rowid {compare} ?5)
             ORDER BY rowid {direction} LIMIT ?6"
        ))?;
        let rowid_at = ORDER_COLUMNS.split(',').count();
        let mut rows = stmt
            .query_map(
                params![
                    session_id,
                    filter.offer_id,
                    filter.status,
                    filter.phone_key,
                    page.after,
                    page.limit as i64 + 1
                ],
                |r| Ok((order_row(r)?, r.get::<_, i64>(rowid_at)?)),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() > page.limit {
            rows.truncate(page.limit);
            rows.last().map(|(_, rowid)| *rowid)
        } else {
            None
        };
        Ok((rows.into_iter().map(|(row, _)| row).collect(), next))
    }

    pub fn set_pinned(
        &self,
        session_id: &str,
        product_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sessions SET pinned_product_id = ?2 WHERE id = ?1",
            params![session_id, product_id],
        )? == 1)
    }

    pub fn pinned(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT pinned_product_id FROM sessions WHERE id = ?1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn likes(&self, session_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT likes FROM sessions WHERE id = ?1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    pub fn add_likes(&self, session_id: &str, count: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sessions SET likes = likes + ?2 WHERE id = ?1",
            params![session_id, count],
        )?;
        Ok(())
    }

    pub fn insert_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO webhooks (id, url, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![w.id, w.url, w.secret, w.created_at],
        )?;
        Ok(())
    }

    pub fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, url, secret, created_at FROM webhooks ORDER BY created_at, id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(WebhookRow {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    secret: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM outbox WHERE webhook_id = ?1 AND delivered_at IS NULL",
            [id],
        )?;
        Ok(conn.execute("DELETE FROM webhooks WHERE id = ?1", [id])? == 1)
    }

    /// One endpoint's undelivered outbox entries whose next attempt is due, oldest first.
    pub fn due_deliveries(
        &self,
        webhook_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, event_id, webhook_id, event_type, body, attempts FROM outbox
             WHERE webhook_id = ?3 AND delivered_at IS NULL AND next_attempt_at <= ?1
             ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![now, limit, webhook_id], |r| {
                Ok(OutboxRow {
                    seq: r.get(0)?,
                    event_id: r.get(1)?,
                    webhook_id: r.get(2)?,
                    event_type: r.get(3)?,
                    body: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes idempotency records created before `idempotency_before` and outbox entries
    /// delivered before `delivered_before`, a thousand rows per statement so that the stock
    /// ledger never waits long for the write lock. Returns how many of each went.
    pub fn prune(
        &self,
        idempotency_before: i64,
        delivered_before: i64,
    ) -> Result<(usize, usize), StoreError> {
        let batched = |sql: &str, before: i64| -> Result<usize, StoreError> {
            let mut total = 0;
            loop {
                let n = self.conn().execute(sql, [before])?;
                total += n;
                if n < 1000 {
                    return Ok(total);
                }
            }
        };
        let idempotency = batched(
            "DELETE FROM idempotency WHERE rowid IN
             (SELECT rowid FROM idempotency WHERE created_at < ?1 LIMIT 1000)",
            idempotency_before,
        )?;
        let delivered = batched(
            "DELETE FROM outbox WHERE seq IN
             (SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?1 LIMIT 1000)",
            delivered_before,
        )?;
        Ok((idempotency, delivered))
    }

    pub fn mark_delivered(&self, seq: i64, now: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET delivered_at = ?2, last_error = NULL WHERE seq = ?1",
            params![seq, now],
        )?;
        Ok(())
    }

    pub fn mark_failed(
        &self,
        seq: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE seq = ?1",
            params![seq, next_attempt_at, error],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn prune_drops_old_idempotency_records_and_delivered_events_only() {
        let dir = std::env::temp_dir().join(format!("fc-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fieldcast.db");
        let _ = std::fs::remove_file(&path);
        let store = Store::open(&path).unwrap();
        let conn = store.connect().unwrap();
        let answer = IdempotentResponse {
            request_hash: "h".into(),
            status: 201,
            body: "{}".into(),
        };
        // 2,500 old records (more than one batch) and one fresh.
        for i in 0..2500 {
            save_idempotent_response(&conn, "s", &format!("old-{i}"), &answer, 100).unwrap();
        }
        save_idempotent_response(&conn, "s", "fresh", &answer, 10_000).unwrap();
        // Delivered long ago, delivered lately, not delivered yet.
        for (i, delivered) in [(1, Some(100)), (2, Some(10_000)), (3, None::<i64>)] {
            conn.execute(
                "INSERT INTO outbox (event_id, webhook_id, event_type, body, next_attempt_at, delivered_at)
                 VALUES (?1, 'wh', 'order.created', '{}', 0, ?2)",
                params![format!("evt_{i}"), delivered],
            )
            .unwrap();
        }
        let (keys, events) = store.prune(5_000, 5_000).unwrap();
        assert_eq!(keys, 2500);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM idempotency", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "the fresh record stays");
        let outbox: i64 = conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            (events, outbox),
            (1, 2),
            "only the long-delivered event goes"
        );
    }
}
