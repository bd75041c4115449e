//! The statistics API: the indicators and their figures
//! (`IndicatorService`), files for funders and open data (`ExportService`).
//! Every question is checked against the catalogue before any source runs,
//! and every answer goes through disclosure control.

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{DbError, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::{Page, PageError};
use eva_proto::statistics::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::catalogue::{self, CATALOGUE, Indicator};
use crate::disclosure::{self, Cell, Rule};
use crate::export;
use crate::model::{Dim, Query, Territory, TerritoryLevel};
use crate::store::Store;

/// Subject of [`pb::OpenDataExportPublished`].
pub const EXPORT_PUBLISHED: &str = "eva.statistics.export.published";

/// Month figures start from when a query gives no `from`.
pub const FIRST_MONTH: &str = "2000-01";

#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub rule: Rule,
}

/// Statistics are for the département's analysts and for operators.
pub const READERS: &[Role] = &[Role::Analyst, Role::Operator];

/// A database failure as a status, without SQL in it: the details stay in
/// the logs.
pub(crate) fn db_status(e: DbError) -> Status {
    tracing::error!(error = %e, "statistics query failed");
    match &e {
        DbError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => {
            Status::unavailable(
                "service momentanément indisponible / service temporarily unavailable",
            )
        }
        _ => Status::internal("erreur interne / internal error"),
    }
}

/// The indicator's definition as published.
pub fn definition(i: &Indicator) -> pb::IndicatorDefinition {
    pb::IndicatorDefinition {
        indicator_id: i.key.to_owned(),
        label_fr: i.label_fr.to_owned(),
        label_en: i.label_en.to_owned(),
        description_fr: i.description_fr.to_owned(),
        dimensions: i.dims.iter().map(|d| d.name().to_owned()).collect(),
        description_en: i.description_en.to_owned(),
        value_unit: i.unit.to_owned(),
        open_data: i.open_data,
    }
}

pub fn rule_pb(rule: &Rule) -> pb::DisclosureRule {
    pb::DisclosureRule {
        threshold: rule.threshold,
        method: Rule::METHOD.to_owned(),
    }
}

/// Published cells as protobuf: each key under its dimension's name.
pub fn cells_pb(group_by: &[Dim], cells: Vec<Cell>) -> Vec<pb::Cell> {
    cells
        .into_iter()
        .map(|c| pb::Cell {
            dimensions: group_by
                .iter()
                .map(|d| d.name().to_owned())
                .zip(c.keys)
                .collect(),
            count: if c.suppressed { None } else { c.count },
            suppressed: c.suppressed,
            value: if c.suppressed { None } else { c.value },
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// The indicator named `key`, or NOT_FOUND naming `indicator_id`.
pub fn indicator(key: &str) -> Result<&'static Indicator, Status> {
    catalogue::find(key.trim()).ok_or_else(|| {
        use tonic_types::{ErrorDetails, StatusExt};
        // The field travels as for InvalidArgument, so clients can point at it.
        let msg = format!("indicateur inconnu « {key} » / unknown indicator");
        Status::with_error_details(
            tonic::Code::NotFound,
            format!("indicator_id: {msg}"),
            ErrorDetails::with_bad_request_violation("indicator_id", &msg),
        )
    })
}

/// `(year, month, day)` of `YYYY-MM` (day `None`) or `YYYY-MM-DD`.
fn parse_day(s: &str) -> Option<(i32, u8, Option<u8>)> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let (ok, day) = match b.len() {
        7 => (digits(0..4) && b[4] == b'-' && digits(5..7), None),
        10 => (
            digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10),
            s[8..10].parse::<u8>().ok(),
        ),
        _ => (false, None),
    };
    if !ok {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u8 = s[5..7].parse().ok()?;
    let m = time::Month::try_from(month).ok()?;
    if let Some(d) = day {
        time::Date::from_calendar_date(year, m, d).ok()?;
    }
    Some((year, month, day))
}

fn bad_date(field: &str, s: &str) -> Status {
    invalid_field(
        field,
        &format!(
            "date invalide « {s} » : AAAA-MM-JJ ou AAAA-MM attendu / invalid date: YYYY-MM-DD or YYYY-MM expected"
        ),
    )
}

/// First month of the period: `YYYY-MM`, or `YYYY-MM-DD` on the 1st.
pub fn from_month(s: &str) -> Result<String, Status> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(FIRST_MONTH.to_owned());
    }
    let (year, month, day) = parse_day(s).ok_or_else(|| bad_date("from", s))?;
    if day.is_some_and(|d| d != 1) {
        return Err(invalid_field(
            "from",
            &format!(
                "les chiffres sont calculés par mois entiers : « {s} » doit être le 1er du mois / figures are by whole months: `from` must be the first day of a month"
            ),
        ));
    }
    Ok(format!("{year:04}-{month:02}"))
}

/// Last month of the period: `YYYY-MM`, or `YYYY-MM-DD` on the month's
/// last day; the current month in France when empty (a day shared on the
/// 1st in Paris is still the 30th in UTC).
pub fn to_month(s: &str, now: time::OffsetDateTime) -> Result<String, Status> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(crate::model::paris_month(now));
    }
    let (year, month, day) = parse_day(s).ok_or_else(|| bad_date("to", s))?;
    let last = time::Month::try_from(month)
        .map(|m| m.length(year))
        .unwrap_or(31);
    if day.is_some_and(|d| d != last) {
        return Err(invalid_field(
            "to",
            &format!(
                "les chiffres sont calculés par mois entiers : « {s} » doit être le dernier jour du mois ({year:04}-{month:02}-{last:02}) / figures are by whole months: `to` must be the last day of a month"
            ),
        ));
    }
    Ok(format!("{year:04}-{month:02}"))
}

/// The period `from..=to` as months, checked.
pub fn period(from: &str, to: &str) -> Result<(String, String), Status> {
    let first = from_month(from)?;
    let last = to_month(to, time::OffsetDateTime::now_utc())?;
    if first > last {
        return Err(invalid_field(
            "from",
            &format!(
                "la période commence après sa fin ({first} > {last}) / the period starts after it ends"
            ),
        ));
    }
    Ok((first, last))
}

/// The level a territory code's shape says: commune (5 characters, digits
/// or 2A/2B then 3 digits), EPCI (9 digits), département (2 characters, or
/// 97x/98x).
pub fn territory_shape(code: &str) -> Option<TerritoryLevel> {
    let b = code.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let corsica = |s: &[u8]| s == b"2A" || s == b"2B";
    match b.len() {
        5 if digits(b) || (corsica(&b[..2]) && digits(&b[2..])) => Some(TerritoryLevel::Commune),
        9 if digits(b) => Some(TerritoryLevel::Epci),
        2 if (digits(b) && b != b"20") || corsica(b) => Some(TerritoryLevel::Departement),
        3 if digits(b) && (b.starts_with(b"97") || b.starts_with(b"98")) => {
            Some(TerritoryLevel::Departement)
        }
        _ => None,
    }
}

/// The territory to restrict to, known from events and supported by the
/// indicator; `None` for all.
pub async fn territory(
    store: &Store,
    indicator: &Indicator,
    code: &str,
) -> Result<Option<Territory>, Status> {
    let code = code.trim().to_uppercase();
    if code.is_empty() {
        return Ok(None);
    }
    if territory_shape(&code).is_none() {
        return Err(invalid_field(
            "territory",
            &format!(
                "code de territoire mal formé « {code} » : commune (INSEE, 5 caractères), EPCI (SIREN, 9 chiffres) ou département (27, 2A, 974) / malformed territory code"
            ),
        ));
    }
    let level = store
        .territory_level(&code)
        .await
        .map_err(db_status)?
        .ok_or_else(|| {
            invalid_field(
                "territory",
                &format!("code de territoire inconnu « {code} » / unknown territory code"),
            )
        })?;
    if !indicator.territories.contains(&level) {
        let levels: Vec<_> = indicator.territories.iter().map(|l| l.name()).collect();
        return Err(invalid_field(
            "territory",
            &format!(
                "l'indicateur {} ne se restreint pas au niveau {} ; niveaux possibles : {} / this indicator cannot be restricted to that level",
                indicator.key,
                level.name(),
                levels.join(", ")
            ),
        ));
    }
    Ok(Some(Territory { level, code }))
}

/// The dimensions asked (comma-separated values allowed inside one entry),
/// checked against the indicator, with its implicit ones appended.
pub fn group_by(indicator: &Indicator, asked: &[String]) -> Result<Vec<Dim>, Status> {
    let allowed = || {
        indicator
            .dims
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut dims: Vec<Dim> = Vec::new();
    for name in asked
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let dim = Dim::parse(name)
            .filter(|d| indicator.dims.contains(d))
            .ok_or_else(|| {
                invalid_field(
                    "group_by",
                    &format!(
                        "dimension inconnue « {name} » pour {} ; dimensions possibles : {} / unknown dimension for this indicator",
                        indicator.key,
                        allowed()
                    ),
                )
            })?;
        if dims.contains(&dim) {
            return Err(invalid_field(
                "group_by",
                &format!("dimension « {name} » demandée deux fois / dimension asked twice"),
            ));
        }
        if dim.is_period() && dims.iter().any(|d| d.is_period()) {
            return Err(invalid_field(
                "group_by",
                "une seule période parmi month, quarter, year / only one period among month, quarter, year",
            ));
        }
        dims.push(dim);
    }
    for d in indicator.implicit {
        if !dims.contains(d) {
            dims.push(*d);
        }
    }
    Ok(dims)
}

/// A checked question: the indicator and the source's query.
pub struct Asked {
    pub indicator: &'static Indicator,
    pub query: Query,
}

impl Asked {
    pub async fn check(
        store: &Store,
        indicator_id: &str,
        from: &str,
        to: &str,
        territory_code: &str,
        asked_group_by: &[String],
    ) -> Result<Self, Status> {
        let indicator = indicator(indicator_id)?;
        let (from_month, to_month) = period(from, to)?;
        let group_by = group_by(indicator, asked_group_by)?;
        let territory = territory(store, indicator, territory_code).await?;
        let generation = store.current_gen().await.map_err(db_status)?;
        Ok(Self {
            indicator,
            query: Query {
                generation,
                from_month,
                to_month,
                territory,
                group_by,
            },
        })
    }

    /// The published cells: the source's figures after disclosure control.
    pub async fn cells(&self, store: &Store, rule: &Rule) -> Result<Vec<Cell>, Status> {
        let figures = catalogue::figures(store, self.indicator, &self.query)
            .await
            .map_err(db_status)?;
        Ok(disclosure::protect(rule, &self.query.group_by, figures))
    }
}

// ---------------------------------------------------------------------------
// IndicatorService
// ---------------------------------------------------------------------------

#[tonic::async_trait]
impl pb::indicator_service_server::IndicatorService for Api {
    async fn list_indicators(
        &self,
        req: Request<pb::ListIndicatorsRequest>,
    ) -> Result<Response<pb::ListIndicatorsResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.get_ref();
        let page = Page::parse(r.page_size, &r.page_token)?;
        // The catalogue's order; the token holds the last key seen.
        let start = match &page.after {
            None => 0,
            Some(key) => {
                CATALOGUE
                    .iter()
                    .position(|i| i.key == key)
                    .ok_or(PageError::Token)?
                    + 1
            }
        };
        let rows: Vec<&Indicator> = CATALOGUE
            .iter()
            .skip(start)
            .take(page.fetch_limit() as usize)
            .collect();
        let (rows, next_page_token) = page.finish(rows, |i| i.key.to_owned());
        Ok(Response::new(pb::ListIndicatorsResponse {
            indicators: rows.into_iter().map(definition).collect(),
            next_page_token,
        }))
    }

    async fn get_indicator(
        &self,
        req: Request<pb::GetIndicatorRequest>,
    ) -> Result<Response<pb::GetIndicatorResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let asked = Asked::check(
            &self.store,
            &r.indicator_id,
            &r.from,
            &r.to,
            &r.territory,
            &r.group_by,
        )
        .await?;
        let cells = asked.cells(&self.store, &self.rule).await?;
        Ok(Response::new(pb::GetIndicatorResponse {
            indicator: Some(definition(asked.indicator)),
            rule: Some(rule_pb(&self.rule)),
            cells: cells_pb(&asked.query.group_by, cells),
        }))
    }
}

// ---------------------------------------------------------------------------
// ExportService
// ---------------------------------------------------------------------------

fn json_format(format: i32) -> bool {
    pb::ExportFormat::try_from(format) == Ok(pb::ExportFormat::Json)
}

fn file(
    indicator_id: &str,
    json: bool,
    media_type: &str,
    filename: String,
    content: Vec<u8>,
    rule: &Rule,
    generated_at_us: i64,
) -> pb::Export {
    pb::Export {
        export_id: Uuid::now_v7().to_string(),
        indicator_id: indicator_id.to_owned(),
        format: if json {
            pb::ExportFormat::Json
        } else {
            pb::ExportFormat::Csv
        } as i32,
        media_type: media_type.to_owned(),
        filename,
        content,
        rule: Some(rule_pb(rule)),
        generated_at: Some(to_timestamp(generated_at_us)),
    }
}

#[tonic::async_trait]
impl pb::export_service_server::ExportService for Api {
    async fn export_indicator(
        &self,
        req: Request<pb::ExportIndicatorRequest>,
    ) -> Result<Response<pb::ExportIndicatorResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let json = json_format(r.format);
        let asked = Asked::check(
            &self.store,
            &r.indicator_id,
            &r.from,
            &r.to,
            &r.territory,
            &r.group_by,
        )
        .await?;
        let cells = asked.cells(&self.store, &self.rule).await?;
        let generated_at_us = now_us();
        let (i, q) = (asked.indicator, &asked.query);
        let stem = format!("{}_{}_{}", i.key, q.from_month, q.to_month);
        let (media_type, filename, content) = if json {
            let doc = export::indicator_json(i, &self.rule, q, &cells, generated_at_us);
            let bytes = serde_json::to_vec_pretty(&doc)
                .map_err(|_| Status::internal("erreur interne / internal error"))?;
            ("application/json", format!("{stem}.json"), bytes)
        } else {
            let csv = export::csv(&q.group_by, &cells, &self.rule);
            (
                "text/csv; charset=utf-8",
                format!("{stem}.csv"),
                csv.into_bytes(),
            )
        };
        Ok(Response::new(pb::ExportIndicatorResponse {
            export: Some(file(
                i.key,
                json,
                media_type,
                filename,
                content,
                &self.rule,
                generated_at_us,
            )),
        }))
    }

    async fn export_open_data(
        &self,
        req: Request<pb::ExportOpenDataRequest>,
    ) -> Result<Response<pb::ExportOpenDataResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let json = json_format(r.format);
        let (from, to) = period(&r.from, &r.to)?;
        let generation = self.store.current_gen().await.map_err(db_status)?;
        let data = export::OpenData::compute(&self.store, &self.rule, generation, &from, &to)
            .await
            .map_err(db_status)?;
        let generated_at_us = now_us();
        let stem = format!("eva_donnees_ouvertes_{from}_{to}");
        let (media_type, filename, content) = if json {
            let doc = data.json(generated_at_us);
            let bytes = serde_json::to_vec_pretty(&doc)
                .map_err(|_| Status::internal("erreur interne / internal error"))?;
            ("application/json", format!("{stem}.json"), bytes)
        } else {
            // Compressing is CPU work: off the async threads.
            let bytes = tokio::task::spawn_blocking(move || data.zip(generated_at_us))
                .await
                .map_err(|_| Status::internal("erreur interne / internal error"))?
                .map_err(|e| {
                    tracing::error!(error = %e, "open-data zip failed");
                    Status::internal("erreur interne / internal error")
                })?;
            ("application/zip", format!("{stem}.zip"), bytes)
        };
        let export = file(
            "",
            json,
            media_type,
            filename,
            content,
            &self.rule,
            generated_at_us,
        );
        let published = pb::OpenDataExportPublished {
            export_id: export.export_id.clone(),
            indicator_ids: export::open_data_indicators()
                .map(|i| i.key.to_owned())
                .collect(),
            threshold: self.rule.threshold,
            generated_at: export.generated_at,
        };
        let mut tx = self.store.db().begin().await.map_err(db_status)?;
        outbox::enqueue(
            &mut tx,
            &Event::new(
                crate::SERVICE,
                EXPORT_PUBLISHED,
                Some(export.export_id.clone()),
                &published,
            ),
        )
        .await
        .map_err(db_status)?;
        tx.commit().await.map_err(db_status)?;
        Ok(Response::new(pb::ExportOpenDataResponse {
            export: Some(export),
        }))
    }

    async fn get_dictionary(
        &self,
        req: Request<pb::GetDictionaryRequest>,
    ) -> Result<Response<pb::GetDictionaryResponse>, Status> {
        require_role(&req, READERS)?;
        let doc = export::dictionary(&self.rule);
        let bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|_| Status::internal("erreur interne / internal error"))?;
        Ok(Response::new(pb::GetDictionaryResponse {
            export: Some(file(
                "",
                true,
                "application/json",
                export::DICTIONARY_FILE.to_owned(),
                bytes,
                &self.rule,
                now_us(),
            )),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &Status) -> String {
        use tonic_types::StatusExt;
        s.get_details_bad_request()
            .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
            .unwrap_or_default()
    }

    #[test]
    fn periods_are_whole_months() {
        assert_eq!(from_month("").ok().as_deref(), Some(FIRST_MONTH));
        assert_eq!(from_month("2025-03").ok().as_deref(), Some("2025-03"));
        assert_eq!(from_month("2025-03-01").ok().as_deref(), Some("2025-03"));
        let e = from_month("2025-03-02").expect_err("not the 1st");
        assert_eq!(field(&e), "from");
        assert!(e.message().contains("1er du mois"), "{}", e.message());
        assert_eq!(field(&from_month("yesterday").expect_err("bad")), "from");
        assert_eq!(field(&from_month("2025-13").expect_err("bad")), "from");
        assert_eq!(field(&from_month("2025-02-30").expect_err("bad")), "from");

        let now = time::macros::datetime!(2026-04-10 12:00 UTC);
        assert_eq!(to_month("", now).ok().as_deref(), Some("2026-04"));
        let paris_new_month = time::macros::datetime!(2026-11-30 23:30 UTC);
        assert_eq!(
            to_month("", paris_new_month).ok().as_deref(),
            Some("2026-12")
        );
        assert_eq!(to_month("2024-02-29", now).ok().as_deref(), Some("2024-02"));
        assert_eq!(to_month("2025-04-30", now).ok().as_deref(), Some("2025-04"));
        let e = to_month("2025-04-29", now).expect_err("not the last day");
        assert_eq!(field(&e), "to");
        assert!(e.message().contains("dernier jour"), "{}", e.message());

        let e = period("2025-06", "2025-05").expect_err("inverted");
        assert_eq!(field(&e), "from");
        assert!(e.message().contains("la période commence après sa fin"));
        assert!(period("2025-05-01", "2025-05-31").is_ok());
    }

    #[test]
    fn territory_codes_by_shape() {
        use TerritoryLevel::*;
        assert_eq!(territory_shape("27229"), Some(Commune));
        assert_eq!(territory_shape("2A004"), Some(Commune));
        assert_eq!(territory_shape("200089456"), Some(Epci));
        assert_eq!(territory_shape("27"), Some(Departement));
        assert_eq!(territory_shape("2B"), Some(Departement));
        assert_eq!(territory_shape("974"), Some(Departement));
        for bad in [
            "2C004",
            "ABCDE",
            "2722",
            "20008945X",
            "971X",
            "123",
            "2a",
            "20",
        ] {
            assert_eq!(territory_shape(bad), None, "{bad}");
        }
    }

    #[test]
    fn group_by_is_checked_against_the_indicator() {
        let structures = catalogue::find("structures").expect("structures");
        let dims = group_by(
            structures,
            &["year, departement".into(), "structure_kind".into()],
        )
        .expect("valid");
        assert_eq!(dims, vec![Dim::Year, Dim::Departement, Dim::StructureKind]);
        for bad in [
            vec!["shoe_size".to_owned()],
            vec!["domain".to_owned()],
            vec!["year,year".to_owned()],
            vec!["month".to_owned(), "year".to_owned()],
        ] {
            let e = group_by(structures, &bad).expect_err("refused");
            assert_eq!(field(&e), "group_by", "{bad:?}");
        }
        let e = group_by(structures, &["domain".into()]).expect_err("refused");
        assert!(e.message().contains("structure_kind"), "lists the allowed");
        // Implicit dimensions are appended.
        let times = catalogue::find("referral_response_time").expect("indicator");
        assert_eq!(
            group_by(times, &["year".into()]).expect("valid"),
            vec![Dim::Year, Dim::Measure]
        );
    }

    #[test]
    fn unknown_indicator_is_not_found_naming_the_field() {
        let e = indicator("nope").expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(field(&e), "indicator_id");
        assert!(indicator(" structures ").is_ok());
    }

    #[test]
    fn suppressed_cells_carry_no_figure() {
        let cells = cells_pb(
            &[Dim::Year],
            vec![Cell {
                keys: vec!["2025".into()],
                count: Some(3),
                value: Some(1.0),
                suppressed: true,
            }],
        );
        assert_eq!(cells[0].count, None);
        assert_eq!(cells[0].value, None);
        assert_eq!(cells[0].dimensions["year"], "2025");
    }
}
