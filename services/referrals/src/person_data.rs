//! `eva.identity.v1.PersonDataService` for referrals. (Being built.)
