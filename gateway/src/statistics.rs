//! `/statistics/indicators`: anonymous figures for analysts.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use eva_proto::statistics::v1 as pb;
use eva_proto::statistics::v1::indicator_service_client::IndicatorServiceClient;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::json::{PageQuery, non_empty};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/statistics/indicators", get(list))
        .route("/statistics/indicators/{id}", get(fetch))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorQuery {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub territory: String,
    /// Comma-separated dimensions.
    #[serde(default)]
    pub group_by: String,
}

fn definition(d: pb::IndicatorDefinition) -> Value {
    json!({
        "id": d.indicator_id,
        "label_fr": d.label_fr,
        "label_en": d.label_en,
        "description_fr": d.description_fr,
        "dimensions": d.dimensions,
    })
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Value>>, Problem> {
    let Query(q) = query?;
    let mut client = IndicatorServiceClient::new(state.upstreams.statistics.clone());
    let r = client
        .list_indicators(state.upstreams.request(
            &headers,
            pb::ListIndicatorsRequest {
                page_size: q.page_size,
                page_token: q.page_token,
            },
        ))
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r.indicators.into_iter().map(definition).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<IndicatorQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = query?;
    let group_by = q
        .group_by
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut client = IndicatorServiceClient::new(state.upstreams.statistics.clone());
    let r = client
        .get_indicator(state.upstreams.request(
            &headers,
            pb::GetIndicatorRequest {
                indicator_id: id,
                from: q.from,
                to: q.to,
                territory: q.territory,
                group_by,
            },
        ))
        .await?
        .into_inner();
    let cells: Vec<Value> = r
        .cells
        .into_iter()
        .map(|c| {
            let mut m: Map<String, Value> = c
                .dimensions
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            m.insert(
                "count".into(),
                c.count.map(Value::from).unwrap_or(Value::Null),
            );
            m.insert("suppressed".into(), Value::Bool(c.suppressed));
            Value::Object(m)
        })
        .collect();
    let rule = r.rule.unwrap_or_default();
    Ok(Json(json!({
        "indicator": r.indicator.map(definition),
        "rule": { "threshold": rule.threshold, "method": rule.method },
        "cells": cells,
    })))
}

/// A protobuf timestamp as RFC 3339.
pub fn rfc3339(t: &prost_types::Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.seconds)
        .map(|d| d + time::Duration::nanoseconds(i64::from(t.nanos)))
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
