//! Selling, sans-IO: the records (products, offers, orders) and the rules that decide an
//! offer's state and whether an order may be taken. The clock is passed in; no SQL here.

pub mod records;
pub mod rules;
