//! The selling rules, sans-IO: offer states from the clock, whether an order may be taken,
//! and buyer phone normalisation. No SQL and no time source here: `now` is passed in.

use super::records::OfferRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    Scheduled,
    Live,
    SoldOut,
    Ended,
}

/// scheduled → live → sold_out or ended; ended wins once the clock passes `ends_at`.
pub fn offer_state(offer: &OfferRow, now_ms: i64) -> OfferState {
    if offer.ended_early || now_ms >= offer.ends_at {
        OfferState::Ended
    } else if now_ms < offer.starts_at {
        OfferState::Scheduled
    } else if offer.available == 0 {
        OfferState::SoldOut
    } else {
        OfferState::Live
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No stock left.
    SoldOut,
    /// Not started yet, or over.
    NotLive(OfferState),
    /// Past the offer's per-buyer limit.
    OverLimit { limit: i64, already: i64 },
    /// The buyer's network (address) has bought its share of the offer.
    AddressShare { limit: i64 },
}

impl Refusal {
    /// A stable name for pages and shops to key their own words on.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::SoldOut => "sold_out",
            Refusal::NotLive(OfferState::Scheduled) => "not_started",
            Refusal::NotLive(_) => "ended",
            Refusal::OverLimit { .. } => "over_limit",
            Refusal::AddressShare { .. } => "network_share",
        }
    }

    /// The numbers a page needs to explain the refusal.
    pub fn numbers(&self) -> serde_json::Value {
        match self {
            Refusal::OverLimit { limit, .. } | Refusal::AddressShare { limit } => {
                serde_json::json!({ "limit": limit })
            }
            _ => serde_json::json!({}),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Refusal::SoldOut => "sold out".into(),
            Refusal::NotLive(OfferState::Scheduled) => "the offer has not started yet".into(),
            Refusal::NotLive(_) => "the offer has ended".into(),
            // Says nothing of what this phone number already bought: anyone can type one.
            Refusal::OverLimit { limit, .. } => {
                format!("quantity: over the limit of {limit} per buyer for this offer")
            }
            Refusal::AddressShare { limit } => format!(
                "quantity: buyers on your network have bought this offer's share for one network ({limit} units)"
            ),
        }
    }
}

/// Least one network may buy of any offer, whatever its size: a village behind one carrier
/// address still buys a small offer.
pub const ADDRESS_SHARE_MIN: i64 = 10;

/// The units one network (an IPv4 address, or an IPv6 /64) may buy of an offer of
/// `allocated` units: `percent` % of them, at least [`ADDRESS_SHARE_MIN`]; `None` when the
/// share is off (`percent` 0). A bot with many device tokens behind one address gets no more.
pub fn address_share(allocated: i64, percent: u8) -> Option<i64> {
    (percent > 0).then(|| (allocated.saturating_mul(percent as i64) / 100).max(ADDRESS_SHARE_MIN))
}

/// Checks everything about an order except the stock itself, which is taken by one
/// conditional update afterwards (so two buyers can never both get the last jar).
pub fn check_order(
    offer: &OfferRow,
    now_ms: i64,
    quantity: i64,
    already: i64,
) -> Result<(), Refusal> {
    match offer_state(offer, now_ms) {
        OfferState::Live => {}
        OfferState::SoldOut => return Err(Refusal::SoldOut),
        other => return Err(Refusal::NotLive(other)),
    }
    if let Some(limit) = offer.per_buyer_limit
        && already + quantity > limit
    {
        return Err(Refusal::OverLimit { limit, already });
    }
    Ok(())
}

/// A stranger's text made fit for the broadcast: no control or invisible formatting
/// characters (bidi overrides, zero-width spaces, line separators), whitespace folded to one
/// space, at most `max` characters (cut with an ellipsis). Linear in the input.
pub fn broadcast_text(raw: &str, max: usize) -> String {
    // Invisible formatting: bidi embeddings, overrides and isolates, marks, zero-width space,
    // BOM and interlinear annotation. Dropped; joiners (U+200C/D) stay, scripts need them.
    let invisible = |c: char| {
        matches!(
            c,
            '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{FEFF}'
        ) || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
            || ('\u{FFF9}'..='\u{FFFB}').contains(&c)
    };
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in raw.chars() {
        if invisible(c) {
            continue;
        }
        // Controls and line breaks separate words like any white space.
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if count == max {
            out.push('…');
            return out;
        }
        if space {
            if count + 1 == max {
                out.push('…');
                return out;
            }
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// What a phone number may look like, as the OpenAPI schemas state it: digits with spaces,
/// `(`, `)`, `.` and `-` between them, a `+` only in front, and 6 to 15 digits (16 or 17
/// when they start with the international `00`). [`normalize_phone`] takes exactly these
/// (and, as the pattern's `$` does, one line end after them).
pub const PHONE_PATTERN: &str = r"^([ ().-]*\+[ ().-]*([0-9][ ().-]*){6,15}|[ ().-]*([0-9][ ().-]*){6,15}|[ ().-]*0[ ().-]*0[ ().-]*([0-9][ ().-]*){6,15})$";

/// The per-buyer key of a phone number: its digits, with the leading `+` kept and a leading
/// international `00` turned into `+`; a national number (no `+` or `00`) loses its trunk `0`
/// and gets `+country` (the shop's `phone_country_code`), so that `+86 138 0013 8000` and
/// `138 0013 8000` are one buyer. With no country (`""`) a national number stays as typed.
/// `None` when it is not a phone number by [`PHONE_PATTERN`].
pub fn normalize_phone(raw: &str, country: &str) -> Option<String> {
    let raw = raw.trim_matches([' ', '\t', '\n', '\r']);
    let separator = |c: char| matches!(c, ' ' | '(' | ')' | '.' | '-');
    let (plus, rest) = match raw.split_once('+') {
        Some((before, after)) if before.chars().all(separator) => (true, after),
        Some(_) => return None,
        None => (false, raw),
    };
    if !rest.chars().all(|c| c.is_ascii_digit() || separator(c)) {
        return None;
    }
    let mut digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let international_00 = !plus && digits.starts_with("00");
    let allowed = if international_00 { 6..=17 } else { 6..=15 };
    if !allowed.contains(&digits.len()) {
        return None;
    }
    if international_00 {
        digits.drain(..2);
    }
    Some(if plus || international_00 {
        format!("+{digits}")
    } else if !country.is_empty() {
        format!("+{country}{}", digits.strip_prefix('0').unwrap_or(&digits))
    } else {
        digits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_gets_its_percent_of_an_offer_but_never_less_than_the_minimum() {
        assert_eq!(address_share(150, 20), Some(30));
        assert_eq!(address_share(5, 20), Some(ADDRESS_SHARE_MIN));
        assert_eq!(address_share(1_000_000, 20), Some(200_000));
        assert_eq!(address_share(i64::MAX, 100), Some(i64::MAX / 100));
        assert_eq!(address_share(150, 0), None);
    }

    fn offer(available: i64, limit: Option<i64>) -> OfferRow {
        OfferRow {
            id: "o".into(),
            session_id: "s".into(),
            product_id: "p".into(),
            unit_amount: 100,
            allocated: 10,
            available,
            sold: 10 - available,
            per_buyer_limit: limit,
            starts_at: 1_000,
            ends_at: 2_000,
            ended_early: false,
            created_at: 0,
        }
    }

    #[test]
    fn states_follow_the_clock_and_the_stock() {
        assert_eq!(offer_state(&offer(5, None), 500), OfferState::Scheduled);
        assert_eq!(offer_state(&offer(5, None), 1_500), OfferState::Live);
        assert_eq!(offer_state(&offer(0, None), 1_500), OfferState::SoldOut);
        assert_eq!(offer_state(&offer(0, None), 2_000), OfferState::Ended);
        let mut early = offer(5, None);
        early.ended_early = true;
        assert_eq!(offer_state(&early, 1_500), OfferState::Ended);
    }

    #[test]
    fn orders_are_refused_with_the_right_reason() {
        assert_eq!(check_order(&offer(5, None), 1_500, 2, 0), Ok(()));
        assert_eq!(
            check_order(&offer(0, None), 1_500, 1, 0),
            Err(Refusal::SoldOut)
        );
        assert_eq!(
            check_order(&offer(5, None), 2_500, 1, 0),
            Err(Refusal::NotLive(OfferState::Ended))
        );
        assert_eq!(
            check_order(&offer(5, None), 10, 1, 0),
            Err(Refusal::NotLive(OfferState::Scheduled))
        );
        assert_eq!(
            check_order(&offer(5, Some(2)), 1_500, 1, 2),
            Err(Refusal::OverLimit {
                limit: 2,
                already: 2
            })
        );
        assert_eq!(check_order(&offer(5, Some(2)), 1_500, 2, 0), Ok(()));
    }

    #[test]
    fn phone_numbers_normalise_to_one_key() {
        for typed in [
            "+86 138-0013-8000",
            "0086 13800138000",
            "138 0013 8000",
            "13800138000",
        ] {
            assert_eq!(
                normalize_phone(typed, "86").as_deref(),
                Some("+8613800138000"),
                "{typed}"
            );
        }
        // A landline with its trunk 0, and the same number dialled from abroad.
        assert_eq!(
            normalize_phone("(0991) 555 1234", "86").as_deref(),
            Some("+869915551234")
        );
        assert_eq!(
            normalize_phone("+86 991 555 1234", "86").as_deref(),
            Some("+869915551234")
        );
        // Another country's number stays its own; without a country, national numbers as typed.
        assert_eq!(
            normalize_phone("+7 701 555 1234", "86").as_deref(),
            Some("+77015551234")
        );
        assert_eq!(
            normalize_phone("(0991) 555 1234", "").as_deref(),
            Some("09915551234")
        );
        assert_eq!(normalize_phone("12", "86"), None);
        assert_eq!(normalize_phone("call me", "86"), None);
        assert_eq!(
            normalize_phone("138+0013 8000", "86"),
            None,
            "+ only in front"
        );
        assert_eq!(
            normalize_phone(" +86 138 0013 8000", "86").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            normalize_phone("+8613800138000\n", "86").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            normalize_phone("00 86 1234 5678 901 23", "86").as_deref(),
            Some("+861234567890123")
        );
        assert_eq!(
            normalize_phone("1234 5678 9012 3456", "86"),
            None,
            "16 digits without 00"
        );
    }

    #[test]
    fn broadcast_text_drops_controls_and_invisible_formatting_and_caps_length() {
        assert_eq!(
            broadcast_text("  Aygul\u{0}\u{7}\n  Tursun\t", 100),
            "Aygul Tursun"
        );
        assert_eq!(broadcast_text("\u{202E}gnp.exe\u{202C}", 100), "gnp.exe");
        assert_eq!(broadcast_text("a\u{200B}b\u{2028}c", 100), "ab c");
        assert_eq!(broadcast_text("\u{1B}[31mred", 100), "[31mred");
        let long = "K".repeat(500);
        let cut = broadcast_text(&long, 24);
        assert_eq!(cut.chars().count(), 25, "24 characters and the ellipsis");
        assert!(cut.ends_with('…'));
        // Uyghur stays as written (the joiners are kept).
        assert_eq!(broadcast_text("قەشقەر", 24), "قەشقەر");
        assert_eq!(broadcast_text("\u{0}\u{0}", 24), "");
    }
}
