//! `/statistics/indicators` (anonymous figures for analysts and operators),
//! `/statistics/exports/{id}.csv|.json` and `/statistics/exports/open-data.zip|.json`
//! (files), `/statistics/dictionary` (the data dictionary). Query:
//! `from`, `to` (`YYYY-MM-DD` or `YYYY-MM`, whole months), `territory` (a
//! commune, EPCI or département code), `group_by` (comma-separated or
//! repeated). A suppressed cell has `count: null`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use eva_proto::statistics::v1 as pb;
use eva_proto::statistics::v1::export_service_client::ExportServiceClient;
use eva_proto::statistics::v1::indicator_service_client::IndicatorServiceClient;
use eva_proto::statistics::v1::projection_service_client::ProjectionServiceClient;
use serde_json::{Map, Value, json};
use tonic::transport::Channel;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{PageQuery, empty_answer, non_empty};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(fetch))
        .routes(routes!(export))
        .routes(routes!(dictionary))
        .routes(routes!(start_rebuild))
        .routes(routes!(rebuild))
}

const TAG: &str = "Statistiques";

/// Exports can be large: more than tonic's default 4 MiB.
const MAX_EXPORT_BYTES: usize = 64 * 1024 * 1024;

fn indicators(state: &AppState) -> IndicatorServiceClient<Channel> {
    IndicatorServiceClient::new(state.upstreams.statistics.clone())
}

fn exports(state: &AppState) -> ExportServiceClient<Channel> {
    ExportServiceClient::new(state.upstreams.statistics.clone())
        .max_decoding_message_size(MAX_EXPORT_BYTES)
}

/// `?from=&to=&territory=&group_by=`; `group_by` may repeat.
#[derive(Debug, Default)]
pub struct IndicatorQuery {
    pub from: String,
    pub to: String,
    pub territory: String,
    pub group_by: Vec<String>,
}

impl IndicatorQuery {
    /// From the query's pairs; `allowed` lists the parameters this route
    /// takes.
    fn parse(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, Problem> {
        let mut q = Self::default();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(Problem::invalid(
                    "query",
                    format!(
                        "paramètre inconnu « {name} » ; possibles : {} / unknown query parameter",
                        allowed.join(", ")
                    ),
                ));
            }
            let once = match name.as_str() {
                "group_by" => {
                    q.group_by.extend(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                    continue;
                }
                "from" => &mut q.from,
                "to" => &mut q.to,
                _ => &mut q.territory,
            };
            if !once.is_empty() {
                return Err(Problem::invalid(
                    &name,
                    "paramètre donné deux fois / parameter given twice",
                ));
            }
            *once = value;
        }
        Ok(q)
    }
}

const INDICATOR_PARAMS: &[&str] = &["from", "to", "territory", "group_by"];
const OPEN_DATA_PARAMS: &[&str] = &["from", "to"];

fn definition(d: pb::IndicatorDefinition) -> Value {
    json!({
        "id": d.indicator_id,
        "label_fr": d.label_fr,
        "label_en": d.label_en,
        "description_fr": d.description_fr,
        "description_en": d.description_en,
        "dimensions": d.dimensions,
        "unit": non_empty(d.value_unit),
        "open_data": d.open_data,
    })
}

/// A cell: its dimensions as fields, then `count` and `value` (null when
/// suppressed) and `suppressed`.
fn cell(c: pb::Cell) -> Value {
    let mut m: Map<String, Value> = c
        .dimensions
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    m.insert("count".into(), c.count.map_or(Value::Null, Value::from));
    m.insert("value".into(), c.value.map_or(Value::Null, Value::from));
    m.insert("suppressed".into(), Value::Bool(c.suppressed));
    Value::Object(m)
}

/// Les indicateurs / The indicators
///
/// Leurs définitions : `id`, `label_fr`, `label_en`, `description_fr`, `description_en`, `dimensions`, `unit`, `open_data`.
#[utoipa::path(get, path = "/statistics/indicators", tag = TAG, params(PageQuery),
    responses((status = 200, description = "Une page de définitions / One page of definitions", body = Page<Value>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<Value>>, Problem> {
    let Query(q) = query?;
    let r = indicators(&state)
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

/// Les chiffres d'un indicateur / An indicator's figures
///
/// `{indicator, rule: {threshold, method}, cells: [{dimensions…, count, value, suppressed}]}` ;
/// une cellule sous le seuil de secret a `count: null`. / A cell under the confidentiality
/// threshold has `count: null`.
#[utoipa::path(get, path = "/statistics/indicators/{id}", tag = TAG,
    params(
        ("id" = String, Path, description = "L'indicateur / the indicator"),
        ("from" = Option<String>, Query, description = "Début : `YYYY-MM-DD` ou `YYYY-MM`, mois entiers / start: `YYYY-MM-DD` or `YYYY-MM`, whole months"),
        ("to" = Option<String>, Query, description = "Fin, même format / end, same format"),
        ("territory" = Option<String>, Query, description = "Code de commune, d'EPCI ou de département / a commune, EPCI or département code"),
        ("group_by" = Option<Vec<String>>, Query, explode, description = "Dimensions, séparées par des virgules ou répétées / dimensions, comma-separated or repeated"),
    ),
    responses((status = 200, description = "L'indicateur, sa règle de secret et ses cellules / The indicator, its confidentiality rule and its cells", body = Object)))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(pairs) = query?;
    let q = IndicatorQuery::parse(pairs, INDICATOR_PARAMS)?;
    let r = indicators(&state)
        .get_indicator(state.upstreams.request(
            &headers,
            pb::GetIndicatorRequest {
                indicator_id: id,
                from: q.from,
                to: q.to,
                territory: q.territory,
                group_by: q.group_by,
            },
        ))
        .await?
        .into_inner();
    let rule = r.rule.ok_or_else(empty_answer)?;
    Ok(Json(json!({
        "indicator": r.indicator.map(definition),
        "rule": { "threshold": rule.threshold, "method": rule.method },
        "cells": r.cells.into_iter().map(cell).collect::<Vec<_>>(),
    })))
}

/// Keeps a file name to characters safe in a header.
fn safe_filename(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The file as a download: its media type and `Content-Disposition`.
fn download(export: Option<pb::Export>) -> Result<Response, Problem> {
    let e = export.ok_or_else(empty_answer)?;
    let media_type = HeaderValue::from_str(&e.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        safe_filename(&e.filename)
    ))
    .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        e.content,
    )
        .into_response())
}

/// Exporter un indicateur ou l'open data / Export an indicator or the open data
///
/// `{indicateur}.csv`, `{indicateur}.json`, `open-data.zip` (en CSV) ou `open-data.json` :
/// chaque fichier avec son dictionnaire ; l'open data (tous les indicateurs non sensibles) ne
/// prend que `from` et `to`. / `{indicator}.csv`, `{indicator}.json`, `open-data.zip` (as
/// CSV) or `open-data.json`: each file with its data dictionary; the open data (every
/// non-sensitive indicator) takes only `from` and `to`.
#[utoipa::path(get, path = "/statistics/exports/{file}", tag = TAG,
    params(
        ("file" = String, Path, description = "`{indicateur}.csv|.json`, `open-data.zip|.json`"),
        ("from" = Option<String>, Query, description = "Début : `YYYY-MM-DD` ou `YYYY-MM`, mois entiers / start: `YYYY-MM-DD` or `YYYY-MM`, whole months"),
        ("to" = Option<String>, Query, description = "Fin, même format / end, same format"),
        ("territory" = Option<String>, Query, description = "Code de commune, d'EPCI ou de département / a commune, EPCI or département code"),
        ("group_by" = Option<Vec<String>>, Query, explode, description = "Dimensions, séparées par des virgules ou répétées / dimensions, comma-separated or repeated"),
    ),
    responses((status = 200, description = "Le fichier, en pièce jointe / The file, as an attachment",
        content(
            (String = "text/csv"),
            (Object = "application/json"),
            (String = "application/zip"),
        ))))]
async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(pairs) = query?;
    let (stem, format) = match file.rsplit_once('.') {
        Some((stem, "csv")) if stem != "open-data" => (stem, pb::ExportFormat::Csv),
        Some(("open-data", "zip")) => ("open-data", pb::ExportFormat::Csv),
        Some((stem, "json")) => (stem, pb::ExportFormat::Json),
        _ => {
            return Err(Problem::not_found(
                "export inconnu : {indicateur}.csv, {indicateur}.json, open-data.zip ou open-data.json / unknown export",
            ));
        }
    };
    let mut client = exports(&state);
    if stem == "open-data" {
        let q = IndicatorQuery::parse(pairs, OPEN_DATA_PARAMS)?;
        let r = client
            .export_open_data(state.upstreams.request(
                &headers,
                pb::ExportOpenDataRequest {
                    format: format as i32,
                    from: q.from,
                    to: q.to,
                },
            ))
            .await?
            .into_inner();
        return download(r.export);
    }
    let q = IndicatorQuery::parse(pairs, INDICATOR_PARAMS)?;
    let r = client
        .export_indicator(state.upstreams.request(
            &headers,
            pb::ExportIndicatorRequest {
                indicator_id: stem.to_owned(),
                from: q.from,
                to: q.to,
                territory: q.territory,
                group_by: q.group_by,
                format: format as i32,
            },
        ))
        .await?
        .into_inner();
    download(r.export)
}

/// Le dictionnaire des données / The data dictionary
///
/// Chaque indicateur avec ses dimensions et mesures, les colonnes des fichiers et la règle de
/// secret (`dictionnaire.json`). / Every indicator with its dimensions and measures, the
/// files' columns and the disclosure rule.
#[utoipa::path(get, path = "/statistics/dictionary", tag = TAG,
    responses((status = 200, description = "Le dictionnaire / The dictionary", body = Object, content_type = "application/json")))]
async fn dictionary(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let r = exports(&state)
        .get_dictionary(
            state
                .upstreams
                .request(&headers, pb::GetDictionaryRequest {}),
        )
        .await?
        .into_inner();
    let e = r.export.ok_or_else(empty_answer)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        e.content,
    )
        .into_response())
}

fn rebuild_json(r: pb::Rebuild) -> Value {
    json!({
        "rebuild_id": r.rebuild_id,
        "state": r.state,
        "events_applied": r.events_applied,
        "started_at": r.started_at.as_ref().map(rfc3339),
        "completed_at": r.completed_at.as_ref().map(rfc3339),
    })
}

fn projections(state: &AppState) -> ProjectionServiceClient<Channel> {
    ProjectionServiceClient::new(state.upstreams.statistics.clone())
}

/// Reconstruire les chiffres / Rebuild the figures
///
/// Un opérateur reconstruit les chiffres depuis les flux d'événements ; les chiffres actuels
/// répondent en attendant. Suivre la reconstruction par son `rebuild_id`. / An operator
/// rebuilds the figures from the event streams; the current ones keep answering meanwhile.
/// Follow it by its `rebuild_id`.
#[utoipa::path(post, path = "/statistics/rebuilds", tag = TAG,
    responses((status = 202, description = "Lancée : `{rebuild_id, state, events_applied, started_at, completed_at}`, `state` valant `running`, `completed` ou `abandoned` / Started; `state` is `running`, `completed` or `abandoned`", body = Object)))]
async fn start_rebuild(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let r = projections(&state)
        .start_rebuild(
            state
                .upstreams
                .request(&headers, pb::StartRebuildRequest {}),
        )
        .await?
        .into_inner();
    let rebuild = r.rebuild.ok_or_else(empty_answer)?;
    Ok((StatusCode::ACCEPTED, Json(rebuild_json(rebuild))).into_response())
}

/// Où en est une reconstruction / A rebuild's progress
#[utoipa::path(get, path = "/statistics/rebuilds/{id}", tag = TAG, params(("id" = String, Path, description = "La reconstruction (UUIDv7) / the rebuild")),
    responses((status = 200, description = "`{rebuild_id, state, events_applied, started_at, completed_at}`", body = Object)))]
async fn rebuild(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let r = projections(&state)
        .get_rebuild(
            state
                .upstreams
                .request(&headers, pb::GetRebuildRequest { rebuild_id: id }),
        )
        .await?
        .into_inner();
    Ok(Json(rebuild_json(r.rebuild.ok_or_else(empty_answer)?)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn group_by_comma_separated_or_repeated() {
        let q = IndicatorQuery::parse(
            pairs(&[
                ("group_by", "year, departement"),
                ("group_by", "domain"),
                ("from", "2025-01"),
            ]),
            INDICATOR_PARAMS,
        )
        .expect("valid");
        assert_eq!(q.group_by, ["year", "departement", "domain"]);
        assert_eq!(q.from, "2025-01");
    }

    #[test]
    fn unknown_or_repeated_parameters_are_named() {
        let e = IndicatorQuery::parse(pairs(&[("colour", "red")]), INDICATOR_PARAMS)
            .expect_err("unknown");
        assert_eq!(e.errors[0].field, "query");
        let e = IndicatorQuery::parse(
            pairs(&[("to", "2025-01"), ("to", "2025-02")]),
            INDICATOR_PARAMS,
        )
        .expect_err("twice");
        assert_eq!(e.errors[0].field, "to");
        let e = IndicatorQuery::parse(pairs(&[("territory", "27")]), OPEN_DATA_PARAMS)
            .expect_err("not for open data");
        assert_eq!(e.errors[0].field, "query");
    }

    #[test]
    fn suppressed_cell_has_null_count() {
        let c = cell(pb::Cell {
            dimensions: [("year".to_owned(), "2025".to_owned())].into(),
            count: None,
            suppressed: true,
            value: None,
        });
        assert_eq!(
            c,
            json!({ "year": "2025", "count": null, "value": null, "suppressed": true })
        );
        assert_eq!(safe_filename("a b\"/é.csv"), "a_b___.csv");
    }
}
