//! The small conversions every route module makes between the services'
//! protobuf answers and the gateway's JSON, and the paging query they share.

use serde::Deserialize;

use crate::Problem;
use crate::statistics::rfc3339;

/// `?page_size=&page_token=` of a list route that takes nothing else.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
}

/// An empty protobuf string is an absent JSON field.
pub fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

/// A timestamp as RFC 3339, absent when the service sent none.
pub fn when(t: Option<prost_types::Timestamp>) -> Option<String> {
    t.map(|t| rfc3339(&t))
}

/// A protobuf enum value's name as its JSON code: `prefix` removed, lower
/// case (`REFERRAL_STATUS_ACCEPTED` → `accepted`); `None` for `UNSPECIFIED`.
pub fn code(name: &str, prefix: &str) -> Option<String> {
    let c = name.trim_start_matches(prefix).to_lowercase();
    (c != "unspecified").then_some(c)
}

/// A service answered OK without the message it had to carry.
pub fn empty_answer() -> Problem {
    Problem::from(tonic::Status::internal("réponse vide / empty answer"))
}
