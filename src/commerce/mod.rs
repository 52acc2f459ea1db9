//! Products, flash sales, the stock ledger, orders and likes (not built yet).
