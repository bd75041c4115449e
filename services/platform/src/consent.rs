//! The shared consent check: every service that shows a person's data keeps
//! a local projection of the person's consents (from `eva.consent.grant.*`
//! and `eva.identity.person.erased`) and asks it "may this structure see
//! this domain of this person for this purpose, today?". Deny by default.

use std::fmt;

use eva_proto::identity::v1::{
    ConsentExpired, ConsentGranted, ConsentPurpose, ConsentWithdrawn, PersonErased,
};

use crate::bus::streams;
use crate::consumer::{ApplyError, Envelope, Projection, Subscription};
use crate::db::{Db, DbError, Tx, now_us};
use crate::on_backend;
use crate::service::ServiceContext;

/// Why a structure wants to see a person's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Accompagnement,
    Orientation,
    Statistiques,
}

impl Purpose {
    pub fn code(self) -> &'static str {
        match self {
            Purpose::Accompagnement => "accompagnement",
            Purpose::Orientation => "orientation",
            Purpose::Statistiques => "statistiques",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [
            Purpose::Accompagnement,
            Purpose::Orientation,
            Purpose::Statistiques,
        ]
        .into_iter()
        .find(|p| p.code() == code)
    }

    pub fn from_proto(p: i32) -> Option<Self> {
        match ConsentPurpose::try_from(p).ok()? {
            ConsentPurpose::Accompagnement => Some(Purpose::Accompagnement),
            ConsentPurpose::Orientation => Some(Purpose::Orientation),
            ConsentPurpose::Statistiques => Some(Purpose::Statistiques),
            ConsentPurpose::Unspecified => None,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why the answer is what it is; mirrors `AccessDecisionReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ConsentActive,
    NoConsent,
    DomainNotCovered,
    PurposeNotCovered,
    ConsentWithdrawn,
    ConsentExpired,
    PersonErased,
}

/// The answer of the consent check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    /// The consent that allows it.
    pub consent_id: Option<String>,
}

impl Decision {
    /// A denial for `reason`.
    pub fn deny(reason: Reason) -> Self {
        Self {
            allowed: false,
            reason,
            consent_id: None,
        }
    }
}

/// One consent as the decision sees it: identity's own table and every
/// service's projection read into this shape, so both decide alike.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantView {
    pub consent_id: String,
    /// Comma-separated référentiel domain ids.
    pub domains: String,
    /// Comma-separated purpose codes.
    pub purposes: String,
    /// First day in force, `YYYY-MM-DD`.
    pub valid_from: String,
    /// Last day in force, `YYYY-MM-DD`, inclusive.
    pub valid_until: String,
    /// `active`, `withdrawn` or `expired`.
    pub status: String,
}

/// A domain of the référentiel commun (`REFERENTIEL.md`), as consent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    /// Stable id, e.g. `mobilite`.
    pub id: &'static str,
    /// French label, as the person reads it.
    pub label_fr: &'static str,
    /// Special-category data (health, justice): never covered unless the
    /// person chose it explicitly.
    pub sensitive: bool,
}

/// The 11 domains of the référentiel commun v1, shared by every service.
pub const DOMAINS: &[Domain] = &[
    Domain {
        id: "mobilite",
        label_fr: "Mobilité",
        sensitive: false,
    },
    Domain {
        id: "sante",
        label_fr: "Santé",
        sensitive: true,
    },
    Domain {
        id: "logement-hebergement",
        label_fr: "Logement, hébergement",
        sensitive: false,
    },
    Domain {
        id: "difficultes-financieres",
        label_fr: "Ressources, budget",
        sensitive: false,
    },
    Domain {
        id: "famille",
        label_fr: "Contraintes familiales, garde d'enfants",
        sensitive: false,
    },
    Domain {
        id: "difficultes-administratives-ou-juridiques",
        label_fr: "Démarches administratives, droits, justice",
        sensitive: true,
    },
    Domain {
        id: "numerique",
        label_fr: "Numérique",
        sensitive: false,
    },
    Domain {
        id: "lecture-ecriture-calcul",
        label_fr: "Lire, écrire, compter, parler français",
        sensitive: false,
    },
    Domain {
        id: "competences-generiques",
        label_fr: "Compétences génériques (organisation, communication, travail en équipe, autonomie, adaptation)",
        sensitive: false,
    },
    Domain {
        id: "remobilisation",
        label_fr: "Confiance en soi, lien social, bien-être",
        sensitive: false,
    },
    Domain {
        id: "projet-professionnel",
        label_fr: "Projet professionnel, expérience, formation",
        sensitive: false,
    },
];

/// The domain with this id, if the référentiel has it.
pub fn domain(id: &str) -> Option<&'static Domain> {
    DOMAINS.iter().find(|d| d.id == id)
}

/// What a consent with no domain listed covers: every domain but the
/// sensitive ones.
pub fn default_domains() -> impl Iterator<Item = &'static Domain> {
    DOMAINS.iter().filter(|d| !d.sensitive)
}

/// Today's date in the Europe/Paris calendar, `YYYY-MM-DD`: consent periods
/// are French calendar days.
pub fn today() -> String {
    paris_date(time::OffsetDateTime::now_utc())
        .format(DATE_FORMAT)
        .unwrap_or_default()
}

/// `YYYY-MM-DD`.
pub const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Summer time in Paris in `year`: from the last Sunday of March 01:00 UTC
/// to the last Sunday of October 01:00 UTC (EU rule), as UTC instants.
fn paris_summer(year: i32) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let last_sunday = |month: time::Month| {
        let mut d = time::Date::from_calendar_date(year, month, 31).unwrap_or(time::Date::MIN);
        while d.weekday() != time::Weekday::Sunday {
            d = d.previous_day().unwrap_or(time::Date::MIN);
        }
        d.with_hms(1, 0, 0)
            .map(|t| t.assume_utc())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    (
        last_sunday(time::Month::March),
        last_sunday(time::Month::October),
    )
}

/// The calendar day in Paris at `at`: UTC+1, UTC+2 in summer time.
pub fn paris_date(at: time::OffsetDateTime) -> time::Date {
    let at = at.to_offset(time::UtcOffset::UTC);
    let (start, end) = paris_summer(at.year());
    let hours = if at >= start && at < end { 2 } else { 1 };
    (at + time::Duration::hours(hours)).date()
}

/// The instant a Paris calendar day begins: 22:00 or 23:00 UTC the day before.
pub fn paris_midnight(day: time::Date) -> time::OffsetDateTime {
    let utc = day.midnight().assume_utc();
    let summer = utc - time::Duration::hours(2);
    if paris_date(summer) == day {
        summer
    } else {
        utc - time::Duration::hours(1)
    }
}

/// SQL for the Paris calendar day of `column` (µs since the epoch, UTC), as
/// days since 1970-01-01, exact for instants in `years` (the summer-time
/// windows are written out; both SQLite and PostgreSQL read it).
pub fn paris_day_sql(column: &str, years: std::ops::RangeInclusive<i32>) -> String {
    const HOUR_US: i64 = 3_600_000_000;
    let us = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000) as i64;
    let summers: Vec<String> = years
        .map(|y| {
            let (a, b) = paris_summer(y);
            format!("({column} >= {} AND {column} < {})", us(a), us(b))
        })
        .collect();
    let offset = if summers.is_empty() {
        HOUR_US.to_string()
    } else {
        format!(
            "CASE WHEN {} THEN {} ELSE {HOUR_US} END",
            summers.join(" OR "),
            2 * HOUR_US
        )
    };
    format!("(({column} + {offset}) / 86400000000)")
}

/// A service's local consent projection. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Consents {
    db: Db,
}

/// Durable consumer names: `<service>-consent` and `<service>-erasure`.
pub fn subscriptions(service: &str) -> [Subscription; 2] {
    [
        Subscription::new(
            streams::CONSENT,
            format!("{service}-consent"),
            &["eva.consent.grant.>"],
        ),
        Subscription::new(
            streams::IDENTITY,
            format!("{service}-consent-erasure"),
            &["eva.identity.person.erased"],
        ),
    ]
}

impl Consents {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Keeps the projection up to date from the bus until shutdown.
    pub fn spawn(ctx: &ServiceContext) -> Self {
        let consents = Self::new(ctx.db.clone());
        for sub in subscriptions(ctx.name) {
            ctx.spawn_consumer(sub, consents.clone());
        }
        consents
    }

    /// May `structure_id` see `domain` of `person_id` for `purpose` on
    /// `today` (`YYYY-MM-DD`)? Deny by default.
    pub async fn check(
        &self,
        structure_id: &str,
        person_id: &str,
        domain: &str,
        purpose: Purpose,
        today: &str,
    ) -> Result<Decision, DbError> {
        let mut h = self.db.acquire().await?;
        let erased: Option<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT person_id FROM eva_consent_erased WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?;
        if erased.is_some() {
            return Ok(Decision::deny(Reason::PersonErased));
        }
        let grants: Vec<GrantView> = on_backend!(h.conn(), c => sqlx::query_as::<_, GrantView>(
            "SELECT consent_id, domains, purposes, valid_from, valid_until, status \
             FROM eva_consent_grants WHERE person_id = $1 AND structure_id = $2 AND valid_from <> ''",
        )
        .bind(person_id)
        .bind(structure_id)
        .fetch_all(&mut *c)
        .await)?;
        Ok(decide(&grants, domain, purpose, today))
    }
}

/// Is `item` one of the comma-separated `list`?
pub fn listed(list: &str, item: &str) -> bool {
    list.split(',').any(|x| x == item)
}

/// The decision over one person's consents to one structure, on `today`
/// (`YYYY-MM-DD`). The most specific reason wins: a covering consent that was
/// withdrawn says more than "no consent". Identity's `CheckAccess` and every
/// local projection call this one function.
pub fn decide(grants: &[GrantView], domain: &str, purpose: Purpose, today: &str) -> Decision {
    if grants.is_empty() {
        return Decision::deny(Reason::NoConsent);
    }
    let covering: Vec<&GrantView> = grants
        .iter()
        .filter(|g| listed(&g.domains, domain) && listed(&g.purposes, purpose.code()))
        .collect();
    if let Some(g) = covering.iter().find(|g| {
        g.status == "active" && g.valid_from.as_str() <= today && today <= g.valid_until.as_str()
    }) {
        return Decision {
            allowed: true,
            reason: Reason::ConsentActive,
            consent_id: Some(g.consent_id.clone()),
        };
    }
    if covering.iter().any(|g| g.status == "withdrawn") {
        return Decision::deny(Reason::ConsentWithdrawn);
    }
    if !covering.is_empty() {
        return Decision::deny(Reason::ConsentExpired);
    }
    if !grants.iter().any(|g| listed(&g.domains, domain)) {
        return Decision::deny(Reason::DomainNotCovered);
    }
    Decision::deny(Reason::PurposeNotCovered)
}

impl Projection for Consents {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        let now = now_us();
        match event.event_type.as_str() {
            "eva.consent.grant.granted" => {
                let e: ConsentGranted = event.decode()?;
                let purposes: Vec<&str> = e
                    .purposes
                    .iter()
                    .filter_map(|p| Purpose::from_proto(*p))
                    .map(Purpose::code)
                    .collect();
                // A withdrawal or expiry seen first stays final.
                on_backend!(tx.conn(), c => sqlx::query(
                    "INSERT INTO eva_consent_grants (consent_id, person_id, structure_id, domains, purposes, \
                     valid_from, valid_until, status, changed_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8) \
                     ON CONFLICT (consent_id) DO UPDATE SET domains = excluded.domains, purposes = excluded.purposes, \
                     valid_from = excluded.valid_from, valid_until = excluded.valid_until",
                )
                .bind(&e.consent_id)
                .bind(&e.person_id)
                .bind(&e.grantee_structure_id)
                .bind(e.domains.join(","))
                .bind(purposes.join(","))
                .bind(&e.valid_from)
                .bind(&e.valid_until)
                .bind(now)
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            }
            "eva.consent.grant.withdrawn" => {
                let e: ConsentWithdrawn = event.decode()?;
                end(
                    tx,
                    &e.consent_id,
                    &e.person_id,
                    &e.grantee_structure_id,
                    "withdrawn",
                    now,
                )
                .await?;
            }
            "eva.consent.grant.expired" => {
                let e: ConsentExpired = event.decode()?;
                end(
                    tx,
                    &e.consent_id,
                    &e.person_id,
                    &e.grantee_structure_id,
                    "expired",
                    now,
                )
                .await?;
            }
            "eva.identity.person.erased" => {
                let e: PersonErased = event.decode()?;
                on_backend!(tx.conn(), c => {
                    sqlx::query("DELETE FROM eva_consent_grants WHERE person_id = $1")
                        .bind(&e.person_id)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "INSERT INTO eva_consent_erased (person_id, erased_at_us) VALUES ($1, $2) \
                         ON CONFLICT (person_id) DO NOTHING",
                    )
                    .bind(&e.person_id)
                    .bind(now)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
                })?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Ends a consent; a withdrawal beats an expiry, and either beats a grant
/// applied later. Unknown consents get a tombstone the grant will fill.
async fn end(
    tx: &mut Tx,
    consent_id: &str,
    person_id: &str,
    structure_id: &str,
    status: &str,
    now: i64,
) -> Result<(), ApplyError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO eva_consent_grants (consent_id, person_id, structure_id, domains, purposes, \
         valid_from, valid_until, status, changed_at_us) VALUES ($1, $2, $3, '', '', '', '', $4, $5) \
         ON CONFLICT (consent_id) DO UPDATE SET status = CASE \
         WHEN eva_consent_grants.status = 'withdrawn' THEN 'withdrawn' ELSE excluded.status END, \
         changed_at_us = excluded.changed_at_us",
    )
    .bind(consent_id)
    .bind(person_id)
    .bind(structure_id)
    .bind(status)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: &str, domains: &str, purposes: &str, status: &str) -> GrantView {
        GrantView {
            consent_id: id.into(),
            domains: domains.into(),
            purposes: purposes.into(),
            valid_from: "2026-01-01".into(),
            valid_until: "2026-12-31".into(),
            status: status.into(),
        }
    }

    #[test]
    fn decisions_name_the_most_specific_reason() {
        let p = Purpose::Accompagnement;
        let day = "2026-06-01";
        assert_eq!(decide(&[], "mobilite", p, day).reason, Reason::NoConsent);
        let active = [grant("c1", "mobilite,famille", "accompagnement", "active")];
        let d = decide(&active, "mobilite", p, day);
        assert!(d.allowed);
        assert_eq!(d.consent_id.as_deref(), Some("c1"));
        assert_eq!(
            decide(&active, "sante", p, day).reason,
            Reason::DomainNotCovered
        );
        assert_eq!(
            decide(&active, "mobilite", Purpose::Orientation, day).reason,
            Reason::PurposeNotCovered
        );
        assert_eq!(
            decide(&active, "mobilite", p, "2027-01-01").reason,
            Reason::ConsentExpired
        );
        assert_eq!(
            decide(&active, "mobilite", p, "2025-12-31").reason,
            Reason::ConsentExpired
        );
        let withdrawn = [grant("c1", "mobilite", "accompagnement", "withdrawn")];
        assert_eq!(
            decide(&withdrawn, "mobilite", p, day).reason,
            Reason::ConsentWithdrawn
        );
        // A prefix of a domain id is not the domain.
        let near = [grant("c1", "mobilite-douce", "accompagnement", "active")];
        assert!(!decide(&near, "mobilite", p, day).allowed);
        // One active consent among ended ones is enough.
        let mixed = [
            grant("c1", "mobilite", "accompagnement", "withdrawn"),
            grant("c2", "mobilite", "accompagnement", "active"),
        ];
        assert_eq!(
            decide(&mixed, "mobilite", p, day).consent_id.as_deref(),
            Some("c2")
        );
    }

    #[test]
    fn the_referentiel_has_eleven_domains_two_sensitive() {
        assert_eq!(DOMAINS.len(), 11);
        let sensitive: Vec<_> = DOMAINS
            .iter()
            .filter(|d| d.sensitive)
            .map(|d| d.id)
            .collect();
        assert_eq!(
            sensitive,
            ["sante", "difficultes-administratives-ou-juridiques"]
        );
        assert_eq!(default_domains().count(), 9);
        assert!(domain("mobilite").is_some());
        assert!(domain("mobilité").is_none());
    }

    #[test]
    fn paris_days_follow_summer_time() {
        use time::macros::datetime;
        // Winter: UTC+1.
        assert_eq!(
            paris_date(datetime!(2026-01-10 23:30 UTC)).to_string(),
            "2026-01-11"
        );
        assert_eq!(
            paris_date(datetime!(2026-01-10 22:59 UTC)).to_string(),
            "2026-01-10"
        );
        // Summer: UTC+2 (from 29 March 2026 01:00 UTC to 25 October 2026 01:00 UTC).
        assert_eq!(
            paris_date(datetime!(2026-07-14 22:00 UTC)).to_string(),
            "2026-07-15"
        );
        assert_eq!(
            paris_date(datetime!(2026-07-14 21:59 UTC)).to_string(),
            "2026-07-14"
        );
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn paris_days_begin_at_paris_midnight() {
        use time::macros::{date, datetime};
        assert_eq!(
            paris_midnight(date!(2026 - 01 - 11)),
            datetime!(2026-01-10 23:00 UTC)
        );
        assert_eq!(
            paris_midnight(date!(2026 - 07 - 15)),
            datetime!(2026-07-14 22:00 UTC)
        );
        // The days summer time starts and ends begin on the old offset.
        assert_eq!(
            paris_midnight(date!(2026 - 03 - 29)),
            datetime!(2026-03-28 23:00 UTC)
        );
        assert_eq!(
            paris_midnight(date!(2026 - 03 - 30)),
            datetime!(2026-03-29 22:00 UTC)
        );
        assert_eq!(
            paris_midnight(date!(2026 - 10 - 25)),
            datetime!(2026-10-24 22:00 UTC)
        );
        assert_eq!(
            paris_midnight(date!(2026 - 10 - 26)),
            datetime!(2026-10-25 23:00 UTC)
        );
    }

    /// The SQL day agrees with `paris_date` on a real SQLite, around every change.
    #[tokio::test]
    async fn paris_days_in_sql_agree() {
        use time::macros::datetime;
        let db = crate::db::Db::connect("sqlite::memory:", 1).await.unwrap();
        let sql = paris_day_sql("t", 2025..=2027);
        let mut instants = Vec::new();
        for base in [
            datetime!(2026-03-29 01:00 UTC),
            datetime!(2026-10-25 01:00 UTC),
            datetime!(2026-01-10 23:00 UTC),
            datetime!(2026-07-14 22:00 UTC),
            datetime!(2027-03-28 01:00 UTC),
        ] {
            for us in [-1, 0, 1] {
                instants.push(base + time::Duration::microseconds(us));
            }
        }
        for at in instants {
            let us = (at.unix_timestamp_nanos() / 1_000) as i64;
            let mut h = db.acquire().await.unwrap();
            let day: i64 =
                crate::on_backend!(h.conn(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(
                format!("SELECT {sql} FROM (SELECT $1 AS t)")
            ))
            .bind(us)
            .fetch_one(&mut *c)
            .await)
                .unwrap();
            let want = paris_date(at)
                - time::Date::from_calendar_date(1970, time::Month::January, 1).unwrap();
            assert_eq!(day, want.whole_days(), "{at}");
        }
    }
}
