//! Consent the person controls: grants to a structure for référentiel domains
//! and purposes over a period, a signed receipt, withdrawal at once, expiry,
//! and `CheckAccess`, the authoritative decision other services fall back on.
//! Identity's `consents` table is the source of truth; the
//! `eva.consent.grant.*` events feed every service's local projection.

pub mod api;
pub mod expiry;
pub mod receipt;
pub mod store;

use eva_platform::consent::{self, DATE_FORMAT, Domain, Purpose};
use eva_proto::identity::v1 as pb;
use time::Date;

use crate::people::parse_date;
use crate::structure::FieldError;

pub use api::ConsentApi;

/// Longest period a consent may cover, in years.
pub const MAX_YEARS: i32 = 3;

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// How a consent was collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// The person, in their own space.
    EspacePersonnel,
    /// A counselor, at their desk with the person.
    AuBureau,
}

impl Collection {
    pub fn code(self) -> &'static str {
        match self {
            Collection::EspacePersonnel => "espace_personnel",
            Collection::AuBureau => "au_bureau",
        }
    }

    /// What the person reads on the receipt.
    pub fn label_fr(self) -> &'static str {
        match self {
            Collection::EspacePersonnel => "Donné par la personne dans son espace personnel EVA",
            Collection::AuBureau => {
                "Recueilli par un conseiller ou une conseillère, avec la personne, lors d'un rendez-vous"
            }
        }
    }
}

/// A consent about to be granted, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// In the référentiel's order, without repeats.
    pub domains: Vec<&'static Domain>,
    /// Without repeats.
    pub purposes: Vec<Purpose>,
    /// `YYYY-MM-DD`.
    pub valid_from: String,
    /// `YYYY-MM-DD`, inclusive.
    pub valid_until: String,
}

/// `date` moved `years` years on (29 February becomes 28 February).
pub fn add_years(date: Date, years: i32) -> Date {
    let year = date.year() + years;
    Date::from_calendar_date(year, date.month(), date.day())
        .or_else(|_| Date::from_calendar_date(year, date.month(), 28))
        .unwrap_or(Date::MAX)
}

fn format(d: Date) -> String {
    d.format(DATE_FORMAT).unwrap_or_default()
}

impl NewConsent {
    /// Checks a grant against the référentiel and the calendar. An empty
    /// domain list means every domain that is not sensitive.
    pub fn parse(r: &pb::GrantConsentRequest, today: Date) -> Result<Self, FieldError> {
        let domains: Vec<&'static Domain> = if r.domains.is_empty() {
            consent::default_domains().collect()
        } else {
            let mut chosen = Vec::new();
            for d in &r.domains {
                let id = d.trim();
                let Some(domain) = consent::domain(id) else {
                    let shown: String = id.chars().take(60).collect();
                    let known: Vec<&str> = consent::DOMAINS.iter().map(|d| d.id).collect();
                    return Err(bad(
                        "domains",
                        format!(
                            "domaine inconnu « {shown} » ; domaines possibles : {} / unknown domain",
                            known.join(", ")
                        ),
                    ));
                };
                chosen.push(domain.id);
            }
            consent::DOMAINS
                .iter()
                .filter(|d| chosen.contains(&d.id))
                .collect()
        };
        let mut purposes = Vec::new();
        for p in &r.purposes {
            let Some(purpose) = Purpose::from_proto(*p) else {
                return Err(bad(
                    "purposes",
                    "finalité inconnue ; possibles : accompagnement, orientation, statistiques / unknown purpose",
                ));
            };
            if !purposes.contains(&purpose) {
                purposes.push(purpose);
            }
        }
        if purposes.is_empty() {
            return Err(bad(
                "purposes",
                "indiquez au moins une finalité : accompagnement, orientation ou statistiques / at least one purpose is required",
            ));
        }
        let valid_from = if r.valid_from.trim().is_empty() {
            today
        } else {
            let d = parse_date(r.valid_from.trim()).ok_or_else(|| {
                bad(
                    "valid_from",
                    "date attendue au format AAAA-MM-JJ / expected a date YYYY-MM-DD",
                )
            })?;
            if d < today {
                return Err(bad(
                    "valid_from",
                    "un consentement ne peut pas commencer dans le passé / a consent cannot start in the past",
                ));
            }
            if d > add_years(today, 1) {
                return Err(bad(
                    "valid_from",
                    "un consentement commence au plus tard dans un an / a consent starts within a year",
                ));
            }
            d
        };
        let valid_until = if r.valid_until.trim().is_empty() {
            add_years(valid_from, 1)
        } else {
            let d = parse_date(r.valid_until.trim()).ok_or_else(|| {
                bad(
                    "valid_until",
                    "date attendue au format AAAA-MM-JJ / expected a date YYYY-MM-DD",
                )
            })?;
            if d < valid_from {
                return Err(bad(
                    "valid_until",
                    "la fin ne peut pas précéder le début (valid_from) / valid_until cannot be before valid_from",
                ));
            }
            if d > add_years(valid_from, MAX_YEARS) {
                return Err(bad(
                    "valid_until",
                    "un consentement dure au plus trois ans / a consent lasts at most three years",
                ));
            }
            d
        };
        Ok(Self {
            domains,
            purposes,
            valid_from: format(valid_from),
            valid_until: format(valid_until),
        })
    }

    /// Comma-separated domain ids, as stored.
    pub fn domains_csv(&self) -> String {
        self.domains
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Comma-separated purpose codes, as stored.
    pub fn purposes_csv(&self) -> String {
        self.purposes
            .iter()
            .map(|p| p.code())
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub fn purpose_to_proto(p: Purpose) -> pb::ConsentPurpose {
    match p {
        Purpose::Accompagnement => pb::ConsentPurpose::Accompagnement,
        Purpose::Orientation => pb::ConsentPurpose::Orientation,
        Purpose::Statistiques => pb::ConsentPurpose::Statistiques,
    }
}

/// Storage code of a status filter; `None` for all.
pub fn status_code(s: pb::ConsentStatus) -> Option<&'static str> {
    match s {
        pb::ConsentStatus::Unspecified => None,
        pb::ConsentStatus::Active => Some("active"),
        pb::ConsentStatus::Withdrawn => Some("withdrawn"),
        pb::ConsentStatus::Expired => Some("expired"),
    }
}

pub fn status_from_code(code: &str) -> pb::ConsentStatus {
    match code {
        "active" => pb::ConsentStatus::Active,
        "withdrawn" => pb::ConsentStatus::Withdrawn,
        "expired" => pb::ConsentStatus::Expired,
        _ => pb::ConsentStatus::Unspecified,
    }
}

pub fn reason_to_proto(r: consent::Reason) -> pb::AccessDecisionReason {
    use consent::Reason as R;
    use pb::AccessDecisionReason as P;
    match r {
        R::ConsentActive => P::ConsentActive,
        R::NoConsent => P::NoConsent,
        R::DomainNotCovered => P::DomainNotCovered,
        R::PurposeNotCovered => P::PurposeNotCovered,
        R::ConsentWithdrawn => P::ConsentWithdrawn,
        R::ConsentExpired => P::ConsentExpired,
        R::PersonErased => P::PersonErased,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    fn req(
        domains: &[&str],
        purposes: &[pb::ConsentPurpose],
        from: &str,
        until: &str,
    ) -> pb::GrantConsentRequest {
        pb::GrantConsentRequest {
            person_id: "p".into(),
            grantee_structure_id: "s".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            purposes: purposes.iter().map(|p| *p as i32).collect(),
            valid_from: from.into(),
            valid_until: until.into(),
        }
    }

    #[test]
    fn empty_domains_mean_every_domain_but_the_sensitive_ones() {
        let today = day("2026-06-01");
        let c = NewConsent::parse(
            &req(&[], &[pb::ConsentPurpose::Accompagnement], "", ""),
            today,
        )
        .unwrap();
        assert_eq!(c.domains.len(), 9);
        assert!(!c.domains_csv().split(',').any(|d| d == "sante"));
        assert!(
            !c.domains_csv()
                .split(',')
                .any(|d| d == "difficultes-administratives-ou-juridiques")
        );
        assert_eq!(c.valid_from, "2026-06-01");
        assert_eq!(c.valid_until, "2027-06-01");
        // Listed explicitly, a sensitive domain is covered; repeats collapse.
        let c = NewConsent::parse(
            &req(
                &["sante", "mobilite", "sante"],
                &[
                    pb::ConsentPurpose::Orientation,
                    pb::ConsentPurpose::Orientation,
                ],
                "",
                "",
            ),
            today,
        )
        .unwrap();
        assert_eq!(c.domains_csv(), "mobilite,sante");
        assert_eq!(c.purposes_csv(), "orientation");
    }

    #[test]
    fn bad_grants_name_the_field() {
        let today = day("2026-06-01");
        let a = [pb::ConsentPurpose::Accompagnement];
        let field = |r: pb::GrantConsentRequest| NewConsent::parse(&r, today).unwrap_err().field;
        assert_eq!(field(req(&["mobilité"], &a, "", "")), "domains");
        assert_eq!(field(req(&["mobilite"], &[], "", "")), "purposes");
        assert_eq!(
            field(req(
                &["mobilite"],
                &[pb::ConsentPurpose::Unspecified],
                "",
                ""
            )),
            "purposes"
        );
        let mut unknown = req(&["mobilite"], &a, "", "");
        unknown.purposes = vec![42];
        assert_eq!(field(unknown), "purposes");
        assert_eq!(
            field(req(&["mobilite"], &a, "2026-05-31", "")),
            "valid_from"
        );
        assert_eq!(
            field(req(&["mobilite"], &a, "2026-13-01", "")),
            "valid_from"
        );
        assert_eq!(
            field(req(&["mobilite"], &a, "2026-07-01", "2026-06-30")),
            "valid_until"
        );
        assert_eq!(
            field(req(&["mobilite"], &a, "", "2029-06-02")),
            "valid_until"
        );
        let ok = NewConsent::parse(&req(&["mobilite"], &a, "", "2029-06-01"), today).unwrap();
        assert_eq!(ok.valid_until, "2029-06-01");
    }

    #[test]
    fn years_on_leap_days() {
        assert_eq!(format(add_years(day("2028-02-29"), 1)), "2029-02-28");
        assert_eq!(format(add_years(day("2026-06-01"), 3)), "2029-06-01");
    }
}
