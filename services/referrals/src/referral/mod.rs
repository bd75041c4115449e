//! Referrals (being built).
