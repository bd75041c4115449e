//! Statistics' gRPC methods.

use std::collections::HashMap;

use eva_platform::auth::{Role, require_role};
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_proto::statistics::v1 as pb;
use time::macros::format_description;
use tonic::{Request, Response, Status};

use crate::indicators::{self, STRUCTURES};
use crate::store::{Store, StructureDim, StructureFilter};

pub struct Api {
    pub store: Store,
}

/// Statistics are for the département's analysts and for operators.
const READERS: &[Role] = &[Role::Analyst, Role::Operator];

#[tonic::async_trait]
impl pb::indicator_service_server::IndicatorService for Api {
    async fn list_indicators(
        &self,
        req: Request<pb::ListIndicatorsRequest>,
    ) -> Result<Response<pb::ListIndicatorsResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let all: Vec<_> = indicators::catalogue()
            .into_iter()
            .filter(|i| page.after.as_ref().is_none_or(|a| &i.indicator_id > a))
            .take(page.fetch_limit() as usize)
            .collect();
        let (indicators, next_page_token) = page.finish(all, |i| i.indicator_id.clone());
        Ok(Response::new(pb::ListIndicatorsResponse {
            indicators,
            next_page_token,
        }))
    }

    async fn get_indicator(
        &self,
        req: Request<pb::GetIndicatorRequest>,
    ) -> Result<Response<pb::GetIndicatorResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let definition = indicators::catalogue()
            .into_iter()
            .find(|i| i.indicator_id == r.indicator_id)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "indicator_id: indicateur inconnu « {} » / unknown indicator",
                    r.indicator_id
                ))
            })?;
        debug_assert_eq!(definition.indicator_id, STRUCTURES);
        let dims = r
            .group_by
            .iter()
            .map(|g| {
                StructureDim::parse(g).ok_or_else(|| {
                    invalid_field(
                        "group_by",
                        &format!(
                            "« {g} » n'est pas une dimension de cet indicateur ({}) / not a dimension of this indicator",
                            definition.dimensions.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let filter = StructureFilter {
            from_us: parse_date("from", &r.from)?,
            to_us: parse_date("to", &r.to)?,
            territory: Some(r.territory.trim().to_uppercase()).filter(|t| !t.is_empty()),
        };
        let counts = self
            .store
            .count_structures(&dims, &filter)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "statistics query failed");
                Status::unavailable(
                    "service momentanément indisponible / service temporarily unavailable",
                )
            })?;
        let cells = counts
            .into_iter()
            .map(|c| pb::Cell {
                dimensions: dims
                    .iter()
                    .map(|d| d.name().to_owned())
                    .zip(c.keys)
                    .collect::<HashMap<_, _>>(),
                count: Some(c.count),
                suppressed: false,
                value: None,
            })
            .collect();
        Ok(Response::new(pb::GetIndicatorResponse {
            indicator: Some(definition),
            // Structures are organisations, not people: no cell hides anyone.
            rule: Some(pb::DisclosureRule {
                threshold: 0,
                method: "aucune : les structures ne sont pas des personnes / none: structures are not people".into(),
            }),
            cells,
        }))
    }
}

/// `YYYY-MM-DD` to µs at midnight UTC; empty means unbounded.
fn parse_date(field: &'static str, value: &str) -> Result<Option<i64>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    let date =
        time::Date::parse(value, format_description!("[year]-[month]-[day]")).map_err(|_| {
            invalid_field(
                field,
                "date attendue au format AAAA-MM-JJ / expected a YYYY-MM-DD date",
            )
        })?;
    let t = date.midnight().assume_utc();
    Ok(Some((t.unix_timestamp_nanos() / 1_000) as i64))
}
