//! The directory of services (offres), with the fields of the data·inclusion
//! schema v1. (Being built.)
