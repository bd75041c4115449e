//! `eva.diagnostics.v1.DiagnosticService`: a person's diagnostics, rated by
//! the counselor and, separately, by the person; shared, superseded, read
//! across structures under the person's consent, compared.
//!
//! Who sees what (DESIGN.md "Who sees what"):
//! - the person sees all of their diagnostics, drafts and notes included;
//! - a structure that follows the person sees, whole, what it recorded;
//! - any other structure sees a shared or superseded diagnostic domain by
//!   domain, where the person's consent to that structure covers the domain
//!   and the purpose today; other domains come back `withheld` with nothing
//!   inside, and when no domain is visible the read is PERMISSION_DENIED;
//! - drafts are seen only by their structure and the person.
//!
//! Self-rating is open on drafts and on the shared diagnostic (the person
//! may give their view after the meeting too); a superseded one is frozen.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::consent::{Consents, Purpose};
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::follows::Follows;
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::Page;
use eva_platform::sealing::{Reading, Sealer};
use eva_proto::audit::v1::AccessAction;
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::diagnostic_service_server::DiagnosticServiceServer;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::SERVICE;
use crate::notes::{self, DomainNotes, context};
use crate::referentiel::{self, Level, Referentiel, Referentiels};
use crate::store::{Author, DiagnosticRow, RatingRow, Store};

/// Roles that act for a structure that follows people.
pub const FOLLOWERS: &[Role] = &[Role::Counselor, Role::StructureAdmin];
/// Roles that read diagnostics.
const READERS: &[Role] = &[Role::Person, Role::Counselor, Role::StructureAdmin];
/// The access log's resource type.
const RESOURCE: &str = "diagnostic";
/// Longest note, in characters.
pub const MAX_NOTE: usize = 4000;
/// Most people asked about at once by `ListLatestDiagnostics` (a caseload page).
pub const MAX_CASELOAD_PAGE: usize = 500;

pub const BROUILLON: &str = "brouillon";
pub const PARTAGE: &str = "partage";
pub const REMPLACE: &str = "remplace";

/// The state behind `DiagnosticService`.
#[derive(Clone)]
pub struct DiagnosticApi {
    pub store: Store,
    pub referentiels: Arc<Referentiels>,
    pub consents: Consents,
    /// Who follows whom, and the recording structures' kind and territory.
    pub follows: Follows,
    pub sealer: Sealer,
}

/// `DiagnosticService`, ready for `GrpcServer::add_service`.
pub fn server(api: DiagnosticApi) -> DiagnosticServiceServer<DiagnosticApi> {
    DiagnosticServiceServer::new(api)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "diagnostics: internal error");
    Status::internal("erreur interne / internal error")
}

/// FAILED_PRECONDITION (409) naming the field.
fn conflict(field: &str, message: &str) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    Status::with_error_details(
        tonic::Code::FailedPrecondition,
        format!("{field}: {message}"),
        ErrorDetails::with_bad_request_violation(field, message),
    )
}

fn check_id(field: &str, id: &str) -> Result<(), Status> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| invalid_field(field, "identifiant invalide / not a valid id"))
}

fn not_found() -> Status {
    Status::not_found("diagnostic introuvable / diagnostic not found")
}

fn denied() -> Status {
    Status::permission_denied(
        "accès refusé : le consentement de la personne ne couvre aucun domaine de ce diagnostic pour votre structure / \
         access denied: the person's consent covers no domain of this diagnostic for your structure",
    )
}

fn status_code(s: &str) -> pb::DiagnosticStatus {
    match s {
        BROUILLON => pb::DiagnosticStatus::Brouillon,
        PARTAGE => pb::DiagnosticStatus::Partage,
        REMPLACE => pb::DiagnosticStatus::Remplace,
        _ => pb::DiagnosticStatus::Unspecified,
    }
}

fn level_proto(code: &str) -> pb::Level {
    Level::parse(code)
        .map(Level::to_proto)
        .unwrap_or(pb::Level::Unspecified)
}

fn level_from_proto(p: i32) -> Option<Level> {
    match pb::Level::try_from(p).ok()? {
        pb::Level::Unspecified => None,
        pb::Level::NonAborde => Some(Level::NonAborde),
        pb::Level::FreinMajeur => Some(Level::FreinMajeur),
        pb::Level::Frein => Some(Level::Frein),
        pb::Level::SansImpact => Some(Level::SansImpact),
        pb::Level::PointDAppui => Some(Level::PointDAppui),
    }
}

/// Order from worst to best; `non_aborde` and unrated are outside it.
fn rank(code: &str) -> Option<u8> {
    match Level::parse(code)? {
        Level::NonAborde => None,
        Level::FreinMajeur => Some(0),
        Level::Frein => Some(1),
        Level::SansImpact => Some(2),
        Level::PointDAppui => Some(3),
    }
}

/// How an item moved from `from` to `to` (level codes, `''` unrated).
pub fn evolution(from: Option<&str>, to: Option<&str>) -> pb::ItemEvolution {
    let (Some(from), Some(to)) = (from, to) else {
        return pb::ItemEvolution::NotComparable;
    };
    match (rank(from), rank(to)) {
        (_, None) => pb::ItemEvolution::NotComparable,
        (None, Some(_)) => pb::ItemEvolution::NewlyAddressed,
        (Some(a), Some(b)) if b > a => pb::ItemEvolution::Improved,
        (Some(a), Some(b)) if b < a => pb::ItemEvolution::Worsened,
        _ => pb::ItemEvolution::Unchanged,
    }
}

fn ts(us: Option<i64>) -> Option<prost_types::Timestamp> {
    us.map(to_timestamp)
}

/// What the caller may see of one diagnostic.
#[derive(Debug, Clone)]
pub struct Sight {
    /// The structure the caller reads for; `None` for the person themself.
    pub structure_id: Option<String>,
    /// The visible domains of the diagnostic's référentiel version.
    pub visible: BTreeSet<String>,
    pub purpose: Purpose,
}

/// Who rates: the author, the statuses that allow it, the structure the
/// caller acts for (`None` for the person).
struct Rater<'a> {
    author: Author,
    allowed: &'a [&'a str],
    structure_id: Option<&'a str>,
}

/// A domain's notes sealed again: (ciphertext, key id), `None` when empty.
type Resealed = (String, Option<(Vec<u8>, String)>);

/// A rating checked against the référentiel.
struct Checked {
    domain_id: String,
    item_id: String,
    level: Level,
    note: Option<String>,
}

fn purpose_of(p: i32) -> Result<Purpose, Status> {
    if p == 0 {
        return Ok(Purpose::Accompagnement);
    }
    Purpose::from_proto(p).ok_or_else(|| {
        invalid_field(
            "purpose",
            "finalité inconnue : accompagnement, orientation ou statistiques / unknown purpose",
        )
    })
}

impl DiagnosticApi {
    fn version(&self, d: &DiagnosticRow) -> Result<&Arc<Referentiel>, Status> {
        self.referentiels
            .get(&d.referentiel_version)
            .ok_or_else(|| internal(format!("référentiel {} not loaded", d.referentiel_version)))
    }

    async fn load(&self, id: &str, field: &str) -> Result<DiagnosticRow, Status> {
        check_id(field, id)?;
        self.store
            .diagnostic(id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)
    }

    /// What `caller` may see of `d`, or why not at all.
    pub async fn sight(
        &self,
        caller: &Principal,
        d: &DiagnosticRow,
        purpose: Purpose,
    ) -> Result<Sight, Status> {
        let r = self.version(d)?;
        let all = || r.domains.iter().map(|x| x.id.clone()).collect();
        if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(&d.person_id) {
            return Ok(Sight {
                structure_id: None,
                visible: all(),
                purpose,
            });
        }
        if !caller.has_any_role(FOLLOWERS) {
            return Err(not_found());
        }
        let following = self
            .follows
            .following(&d.person_id)
            .await
            .map_err(internal)?;
        if caller.belongs_to(&d.structure_id) && following.contains(&d.structure_id) {
            return Ok(Sight {
                structure_id: Some(d.structure_id.clone()),
                visible: all(),
                purpose,
            });
        }
        if d.status == BROUILLON {
            return Err(not_found());
        }
        // The structure the caller reads for: the recording one if theirs,
        // else one that follows the person, else their first.
        let structure = caller
            .structures
            .iter()
            .find(|s| **s == d.structure_id)
            .or_else(|| caller.structures.iter().find(|s| following.contains(s)))
            .or_else(|| caller.structures.first())
            .cloned()
            .ok_or_else(denied)?;
        let today = eva_platform::consent::today();
        let mut visible = BTreeSet::new();
        for domain in &r.domains {
            let decision = self
                .consents
                .check(&structure, &d.person_id, &domain.id, purpose, &today)
                .await
                .map_err(internal)?;
            if decision.allowed {
                visible.insert(domain.id.clone());
            }
        }
        if visible.is_empty() {
            tracing::info!(
                diagnostic_id = %d.diagnostic_id,
                structure_id = %structure,
                "diagnostic read denied: no domain covered by consent"
            );
            return Err(denied());
        }
        Ok(Sight {
            structure_id: Some(structure),
            visible,
            purpose,
        })
    }

    /// Opens the sealed notes of the visible domains: (domain, author) → notes.
    /// A domain identity refuses to open comes back in the second set.
    async fn open_notes(
        &self,
        md: &MetadataMap,
        d: &DiagnosticRow,
        sight: &Sight,
    ) -> Result<
        (
            BTreeMap<(String, &'static str), DomainNotes>,
            BTreeSet<String>,
        ),
        Status,
    > {
        let rows: Vec<_> = self
            .store
            .notes(&d.diagnostic_id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|row| sight.visible.contains(&row.domain_id))
            .collect();
        // One identity call for all the blobs: authorised once, logged once.
        let keys: Vec<(String, Author)> = rows
            .iter()
            .map(|row| {
                let author = if row.author == Author::Person.code() {
                    Author::Person
                } else {
                    Author::Counselor
                };
                (row.domain_id.clone(), author)
            })
            .collect();
        let items = rows
            .into_iter()
            .zip(&keys)
            .map(|(row, (domain_id, author))| {
                notes::item(
                    context(&d.diagnostic_id, domain_id, *author),
                    row.ciphertext,
                    row.key_id,
                    domain_id,
                )
            })
            .collect::<Vec<_>>();
        let opened = if items.is_empty() {
            Vec::new()
        } else {
            notes::open_batch(
                &self.sealer,
                md,
                &Reading {
                    person_id: &d.person_id,
                    structure_id: sight.structure_id.as_deref().unwrap_or(""),
                    purpose: sight.purpose,
                    resource_type: "diagnostic",
                    resource_id: &d.diagnostic_id,
                },
                items,
            )
            .await?
        };
        let mut out = BTreeMap::new();
        let mut refused = BTreeSet::new();
        for ((domain_id, author), notes) in keys.into_iter().zip(opened) {
            match notes {
                Some(notes) => {
                    out.insert((domain_id, author.code()), notes);
                }
                None => {
                    refused.insert(domain_id);
                }
            }
        }
        // A domain refused for one author is refused whole.
        out.retain(|(domain, _), _| !refused.contains(domain));
        Ok((out, refused))
    }

    /// The diagnostic as `sight` lets the caller see it, notes opened.
    pub async fn render(
        &self,
        md: &MetadataMap,
        d: &DiagnosticRow,
        sight: &Sight,
    ) -> Result<(pb::Diagnostic, Vec<String>), Status> {
        let r = self.version(d)?;
        let ratings: BTreeMap<String, RatingRow> = self
            .store
            .ratings(&d.diagnostic_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|x| (x.item_id.clone(), x))
            .collect();
        let (notes, refused) = self.open_notes(md, d, sight).await?;
        let mut seen = Vec::new();
        let domains = r
            .domains
            .iter()
            .map(|dom| {
                if !sight.visible.contains(&dom.id) || refused.contains(&dom.id) {
                    return pb::DomainAssessment {
                        domain_id: dom.id.clone(),
                        access: pb::DomainAccess::Withheld as i32,
                        items: Vec::new(),
                    };
                }
                seen.push(dom.id.clone());
                let counselor = notes.get(&(dom.id.clone(), Author::Counselor.code()));
                let person = notes.get(&(dom.id.clone(), Author::Person.code()));
                pb::DomainAssessment {
                    domain_id: dom.id.clone(),
                    access: pb::DomainAccess::Visible as i32,
                    items:
                        dom.items
                            .iter()
                            .map(|item| {
                                let rating = ratings.get(&item.id);
                                pb::ItemRating {
                                    item_id: item.id.clone(),
                                    counselor_level: rating
                                        .map(|x| level_proto(&x.counselor_level))
                                        .unwrap_or_default()
                                        as i32,
                                    person_level: rating
                                        .map(|x| level_proto(&x.person_level))
                                        .unwrap_or_default()
                                        as i32,
                                    counselor_note: counselor
                                        .and_then(|n| n.get(&item.id).cloned())
                                        .unwrap_or_default(),
                                    person_note: person
                                        .and_then(|n| n.get(&item.id).cloned())
                                        .unwrap_or_default(),
                                    counselor_rated_at: ts(
                                        rating.and_then(|x| x.counselor_rated_at_us)
                                    ),
                                    person_rated_at: ts(rating.and_then(|x| x.person_rated_at_us)),
                                }
                            })
                            .collect(),
                }
            })
            .collect();
        if seen.is_empty() {
            return Err(denied());
        }
        Ok((
            pb::Diagnostic {
                diagnostic_id: d.diagnostic_id.clone(),
                person_id: d.person_id.clone(),
                structure_id: d.structure_id.clone(),
                counselor_user_id: d.counselor_user_id.clone(),
                referentiel_version: d.referentiel_version.clone(),
                status: status_code(&d.status) as i32,
                previous_diagnostic_id: d.previous_diagnostic_id.clone(),
                superseded_by_diagnostic_id: d.superseded_by.clone(),
                created_at: ts(Some(d.created_at_us)),
                updated_at: ts(Some(d.updated_at_us)),
                shared_at: ts(d.shared_at_us),
                superseded_at: ts(d.superseded_at_us),
                domains,
            },
            seen,
        ))
    }

    /// Records one access, committed before the answer.
    async fn record(&self, access: Access<'_>) -> Result<(), Status> {
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        audit::record(&mut tx, SERVICE, access)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)
    }

    /// Reads, access-logs and renders one diagnostic.
    async fn read(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        d: &DiagnosticRow,
        purpose: Purpose,
        action: Option<AccessAction>,
    ) -> Result<pb::Diagnostic, Status> {
        let sight = self.sight(caller, d, purpose).await?;
        let (diagnostic, seen) = self.render(md, d, &sight).await?;
        if let Some(action) = action {
            self.record(Access {
                person_id: &d.person_id,
                actor: caller,
                structure_id: sight.structure_id.as_deref(),
                action,
                resource_type: RESOURCE,
                resource_id: &d.diagnostic_id,
                domains: seen,
                purpose: purpose.code(),
            })
            .await?;
        }
        Ok(diagnostic)
    }

    /// Checks ratings against the diagnostic's référentiel version.
    fn check_ratings(r: &Referentiel, input: Vec<pb::RatingInput>) -> Result<Vec<Checked>, Status> {
        if input.is_empty() {
            return Err(invalid_field(
                "ratings",
                "au moins une cotation / at least one rating",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(input.len());
        for (i, x) in input.into_iter().enumerate() {
            let item_id = x.item_id.trim().to_owned();
            let Some(domain) = r
                .domains
                .iter()
                .find(|d| d.items.iter().any(|it| it.id == item_id))
            else {
                return Err(invalid_field(
                    &format!("ratings[{i}].item_id"),
                    &format!(
                        "item inconnu dans le référentiel {} / unknown item in this référentiel version",
                        r.version
                    ),
                ));
            };
            if !seen.insert(item_id.clone()) {
                return Err(invalid_field(
                    &format!("ratings[{i}].item_id"),
                    "item coté deux fois / item rated twice",
                ));
            }
            let level = level_from_proto(x.level).ok_or_else(|| {
                invalid_field(
                    &format!("ratings[{i}].level"),
                    "niveau inconnu : non_aborde, frein_majeur, frein, sans_impact ou point_d_appui / unknown level",
                )
            })?;
            if let Some(note) = &x.note
                && note.chars().count() > MAX_NOTE
            {
                return Err(invalid_field(
                    &format!("ratings[{i}].note"),
                    "note trop longue : 4000 caractères au plus / note too long: at most 4000 characters",
                ));
            }
            out.push(Checked {
                domain_id: domain.id.clone(),
                item_id,
                level,
                note: x.note.map(|n| n.trim().to_owned()),
            });
        }
        Ok(out)
    }

    /// Records ratings and notes of one author.
    async fn rate(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        d: &DiagnosticRow,
        checked: Vec<Checked>,
        who: Rater<'_>,
    ) -> Result<(), Status> {
        let Rater {
            author,
            allowed,
            structure_id,
        } = who;
        // Notes: merge into each touched domain's payload and seal it again.
        let mut by_domain: BTreeMap<String, Vec<&Checked>> = BTreeMap::new();
        for c in checked.iter().filter(|c| c.note.is_some()) {
            by_domain.entry(c.domain_id.clone()).or_default().push(c);
        }
        let existing = self.store.notes(&d.diagnostic_id).await.map_err(internal)?;
        let mut sealed: Vec<Resealed> = Vec::new();
        for (domain, changes) in by_domain {
            let ctx = context(&d.diagnostic_id, &domain, author);
            let mut notes = match existing
                .iter()
                .find(|n| n.domain_id == domain && n.author == author.code())
            {
                Some(row) => {
                    notes::open(
                        &self.sealer,
                        md,
                        &d.person_id,
                        structure_id.unwrap_or(""),
                        Purpose::Accompagnement,
                        notes::item(
                            ctx.clone(),
                            row.ciphertext.clone(),
                            row.key_id.clone(),
                            &domain,
                        ),
                    )
                    .await?
                }
                None => DomainNotes::new(),
            };
            for c in changes {
                match c.note.as_deref() {
                    Some("") | None => notes.remove(&c.item_id),
                    Some(n) => notes.insert(c.item_id.clone(), n.to_owned()),
                };
            }
            let payload = if notes.is_empty() {
                None
            } else {
                Some(notes::seal(&self.sealer, md, &d.person_id, ctx, &notes).await?)
            };
            sealed.push((domain, payload));
        }
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let current = Store::diagnostic_in(&mut tx, &d.diagnostic_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        if !allowed.contains(&current.status.as_str()) {
            return Err(not_editable(&current.status));
        }
        let mut domains = BTreeSet::new();
        for c in &checked {
            Store::rate(
                &mut tx,
                &d.diagnostic_id,
                &c.domain_id,
                &c.item_id,
                author,
                c.level.code(),
                now,
            )
            .await
            .map_err(internal)?;
            domains.insert(c.domain_id.clone());
        }
        for (domain, payload) in &sealed {
            Store::put_notes(
                &mut tx,
                &d.diagnostic_id,
                domain,
                author,
                payload.as_ref().map(|(c, k)| (c.as_slice(), k.as_str())),
                now,
            )
            .await
            .map_err(internal)?;
        }
        Store::touch(&mut tx, &d.diagnostic_id, now)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                person_id: &d.person_id,
                actor: caller,
                structure_id,
                action: AccessAction::Write,
                resource_type: RESOURCE,
                resource_id: &d.diagnostic_id,
                domains: domains.into_iter().collect(),
                purpose: Purpose::Accompagnement.code(),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(
            diagnostic_id = %d.diagnostic_id,
            author = author.code(),
            items = checked.len(),
            "diagnostic rated"
        );
        Ok(())
    }

    /// The counselor of the recording structure, or why not.
    fn require_recorder<'a>(
        &self,
        caller: &'a Principal,
        d: &DiagnosticRow,
    ) -> Result<&'a Principal, Status> {
        if !caller.belongs_to(&d.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : seule la structure qui a ouvert ce diagnostic le modifie / \
                 access denied: only the structure that opened this diagnostic changes it",
            ));
        }
        Ok(caller)
    }
}

fn not_editable(status: &str) -> Status {
    conflict(
        "status",
        &format!(
            "diagnostic « {status} » : il ne peut plus être modifié ainsi / the diagnostic can no longer be changed this way"
        ),
    )
}

fn shared_on(us: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    eva_platform::consent::paris_date(at)
        .format(eva_platform::consent::DATE_FORMAT)
        .unwrap_or_default()
}

#[tonic::async_trait]
impl pb::diagnostic_service_server::DiagnosticService for DiagnosticApi {
    async fn create_diagnostic(
        &self,
        req: Request<pb::CreateDiagnosticRequest>,
    ) -> Result<Response<pb::CreateDiagnosticResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        check_id("structure_id", &r.structure_id)?;
        if !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'agissez pas pour cette structure / access denied: you do not act for this structure",
            ));
        }
        let following = self
            .follows
            .following(&r.person_id)
            .await
            .map_err(internal)?;
        if !following.contains(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : votre structure ne suit pas cette personne / access denied: your structure does not follow this person",
            ));
        }
        let current = self
            .referentiels
            .current(referentiel::today())
            .cloned()
            .ok_or_else(|| {
                Status::failed_precondition(
                    "aucun référentiel en vigueur / no référentiel in force",
                )
            })?;
        // Start from an earlier diagnostic's visible counselor ratings.
        let mut copied: Vec<(String, String, String)> = Vec::new();
        let from = r.copy_from_diagnostic_id.trim();
        if !from.is_empty() {
            let earlier = self.load(from, "copy_from_diagnostic_id").await?;
            if earlier.person_id != r.person_id {
                return Err(invalid_field(
                    "copy_from_diagnostic_id",
                    "ce diagnostic est celui d'une autre personne / this diagnostic is another person's",
                ));
            }
            let sight = self
                .sight(&caller, &earlier, Purpose::Accompagnement)
                .await?;
            for x in self
                .store
                .ratings(&earlier.diagnostic_id)
                .await
                .map_err(internal)?
            {
                let in_current = current
                    .domains
                    .iter()
                    .any(|d| d.id == x.domain_id && d.items.iter().any(|i| i.id == x.item_id));
                if in_current
                    && sight.visible.contains(&x.domain_id)
                    && !x.counselor_level.is_empty()
                {
                    copied.push((x.domain_id, x.item_id, x.counselor_level));
                }
            }
        }
        let now = now_us();
        let row = DiagnosticRow {
            diagnostic_id: uuid::Uuid::now_v7().to_string(),
            person_id: r.person_id.clone(),
            structure_id: r.structure_id.clone(),
            counselor_user_id: caller.user_id.clone(),
            referentiel_version: current.version.clone(),
            status: BROUILLON.into(),
            previous_diagnostic_id: from.to_owned(),
            superseded_by: String::new(),
            created_at_us: now,
            updated_at_us: now,
            shared_at_us: None,
            superseded_at_us: None,
        };
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        Store::insert_diagnostic(&mut tx, &row)
            .await
            .map_err(internal)?;
        for (domain, item, level) in &copied {
            Store::rate(
                &mut tx,
                &row.diagnostic_id,
                domain,
                item,
                Author::Counselor,
                level,
                now,
            )
            .await
            .map_err(internal)?;
        }
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                person_id: &row.person_id,
                actor: &caller,
                structure_id: Some(&row.structure_id),
                action: AccessAction::Write,
                resource_type: RESOURCE,
                resource_id: &row.diagnostic_id,
                domains: Vec::new(),
                purpose: Purpose::Accompagnement.code(),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(diagnostic_id = %row.diagnostic_id, version = %row.referentiel_version, "diagnostic opened");
        let diagnostic = self
            .read(&md, &caller, &row, Purpose::Accompagnement, None)
            .await?;
        Ok(Response::new(pb::CreateDiagnosticResponse {
            diagnostic: Some(diagnostic),
        }))
    }

    async fn get_diagnostic(
        &self,
        req: Request<pb::GetDiagnosticRequest>,
    ) -> Result<Response<pb::GetDiagnosticResponse>, Status> {
        let caller = require_role(&req, READERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let purpose = purpose_of(r.purpose)?;
        let d = self.load(&r.diagnostic_id, "diagnostic_id").await?;
        let diagnostic = self
            .read(&md, &caller, &d, purpose, Some(AccessAction::Read))
            .await?;
        Ok(Response::new(pb::GetDiagnosticResponse {
            diagnostic: Some(diagnostic),
        }))
    }

    async fn list_diagnostics(
        &self,
        req: Request<pb::ListDiagnosticsRequest>,
    ) -> Result<Response<pb::ListDiagnosticsResponse>, Status> {
        let caller = require_role(&req, READERS)?.clone();
        let r = req.into_inner();
        let purpose = purpose_of(r.purpose)?;
        check_id("person_id", &r.person_id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let status = match pb::DiagnosticStatus::try_from(r.status) {
            Ok(pb::DiagnosticStatus::Unspecified) => None,
            Ok(pb::DiagnosticStatus::Brouillon) => Some(BROUILLON),
            Ok(pb::DiagnosticStatus::Partage) => Some(PARTAGE),
            Ok(pb::DiagnosticStatus::Remplace) => Some(REMPLACE),
            Err(_) => return Err(invalid_field("status", "statut inconnu / unknown status")),
        };
        // The person sees all; a structure following them sees the history
        // (who, when, which version) and its own drafts.
        let (drafts_of, structure_id) =
            if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(&r.person_id) {
                ("*".to_owned(), None)
            } else {
                if !caller.has_any_role(FOLLOWERS) {
                    return Err(Status::not_found("personne introuvable / person not found"));
                }
                let following = self
                    .follows
                    .following(&r.person_id)
                    .await
                    .map_err(internal)?;
                let Some(s) = caller.structures.iter().find(|s| following.contains(s)) else {
                    return Err(Status::not_found("personne introuvable / person not found"));
                };
                (s.clone(), Some(s.clone()))
            };
        let rows = self
            .store
            .diagnostics_of(
                &r.person_id,
                status,
                page.after.as_deref(),
                &drafts_of,
                page.fetch_limit(),
            )
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = page.finish(rows, |d| d.diagnostic_id.clone());
        self.record(Access {
            person_id: &r.person_id,
            actor: &caller,
            structure_id: structure_id.as_deref(),
            action: AccessAction::Read,
            resource_type: RESOURCE,
            resource_id: &r.person_id,
            domains: Vec::new(),
            purpose: purpose.code(),
        })
        .await?;
        Ok(Response::new(pb::ListDiagnosticsResponse {
            diagnostics: rows.iter().map(summary).collect(),
            next_page_token,
        }))
    }

    async fn list_latest_diagnostics(
        &self,
        req: Request<pb::ListLatestDiagnosticsRequest>,
    ) -> Result<Response<pb::ListLatestDiagnosticsResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("structure_id", &r.structure_id)?;
        if r.person_ids.len() > MAX_CASELOAD_PAGE {
            return Err(invalid_field(
                "person_ids",
                &format!(
                    "au plus {MAX_CASELOAD_PAGE} personnes à la fois / at most {MAX_CASELOAD_PAGE} people at once"
                ),
            ));
        }
        let mut asked: Vec<String> = Vec::with_capacity(r.person_ids.len());
        for (i, id) in r.person_ids.iter().enumerate() {
            let id = id.trim();
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(invalid_field(
                    "person_ids",
                    &format!(
                        "identifiant invalide en position {} : « {} » / not a valid id at position {}",
                        i + 1,
                        id.chars().take(40).collect::<String>(),
                        i + 1
                    ),
                ));
            }
            if !asked.iter().any(|a| a == id) {
                asked.push(id.to_owned());
            }
        }
        if !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'êtes pas membre de cette structure / access denied: you are not a member of this structure",
            ));
        }
        let followed: BTreeSet<String> = self
            .follows
            .followed_among(&r.structure_id, &asked)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
        let asked: Vec<String> = asked.into_iter().filter(|p| followed.contains(p)).collect();
        let rows = self
            .store
            .diagnostics_of_people(&r.structure_id, &asked)
            .await
            .map_err(internal)?;
        // Newest first per person: the first row of each is the latest.
        let mut latest: BTreeMap<&str, &DiagnosticRow> = BTreeMap::new();
        for d in &rows {
            latest.entry(d.person_id.as_str()).or_insert(d);
        }
        let people: Vec<pb::PersonLatestDiagnostic> = asked
            .iter()
            .map(|p| pb::PersonLatestDiagnostic {
                person_id: p.clone(),
                latest: latest.get(p.as_str()).map(|d| pb::LatestDiagnostic {
                    diagnostic_id: d.diagnostic_id.clone(),
                    status: status_code(&d.status) as i32,
                    created_at: ts(Some(d.created_at_us)),
                    shared_at: ts(d.shared_at_us),
                }),
            })
            .collect();
        // As for the list of people (identity) and a person's history: one
        // access-log entry per person answered, committed before the answer.
        if !people.is_empty() {
            let mut tx = self.store.db().begin().await.map_err(internal)?;
            for p in &people {
                let resource_id = p
                    .latest
                    .as_ref()
                    .map_or(p.person_id.as_str(), |d| d.diagnostic_id.as_str());
                audit::record(
                    &mut tx,
                    SERVICE,
                    Access {
                        person_id: &p.person_id,
                        actor: &caller,
                        structure_id: Some(&r.structure_id),
                        action: AccessAction::Read,
                        resource_type: RESOURCE,
                        resource_id,
                        domains: Vec::new(),
                        purpose: Purpose::Accompagnement.code(),
                    },
                )
                .await
                .map_err(internal)?;
            }
            tx.commit().await.map_err(internal)?;
        }
        Ok(Response::new(pb::ListLatestDiagnosticsResponse { people }))
    }

    async fn rate_items(
        &self,
        req: Request<pb::RateItemsRequest>,
    ) -> Result<Response<pb::RateItemsResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let d = self.load(&r.diagnostic_id, "diagnostic_id").await?;
        self.require_recorder(&caller, &d)?;
        if d.status != BROUILLON {
            return Err(not_editable(&d.status));
        }
        let checked = Self::check_ratings(self.version(&d)?, r.ratings)?;
        self.rate(
            &md,
            &caller,
            &d,
            checked,
            Rater {
                author: Author::Counselor,
                allowed: &[BROUILLON],
                structure_id: Some(&d.structure_id),
            },
        )
        .await?;
        let d = self.load(&d.diagnostic_id, "diagnostic_id").await?;
        let diagnostic = self
            .read(&md, &caller, &d, Purpose::Accompagnement, None)
            .await?;
        Ok(Response::new(pb::RateItemsResponse {
            diagnostic: Some(diagnostic),
        }))
    }

    async fn self_rate_items(
        &self,
        req: Request<pb::SelfRateItemsRequest>,
    ) -> Result<Response<pb::SelfRateItemsResponse>, Status> {
        let caller = require_role(&req, &[Role::Person])?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let d = self.load(&r.diagnostic_id, "diagnostic_id").await?;
        if caller.person_id.as_deref() != Some(&d.person_id) {
            return Err(not_found());
        }
        if d.status == REMPLACE {
            return Err(not_editable(&d.status));
        }
        let checked = Self::check_ratings(self.version(&d)?, r.ratings)?;
        self.rate(
            &md,
            &caller,
            &d,
            checked,
            Rater {
                author: Author::Person,
                allowed: &[BROUILLON, PARTAGE],
                structure_id: None,
            },
        )
        .await?;
        let d = self.load(&d.diagnostic_id, "diagnostic_id").await?;
        let diagnostic = self
            .read(&md, &caller, &d, Purpose::Accompagnement, None)
            .await?;
        Ok(Response::new(pb::SelfRateItemsResponse {
            diagnostic: Some(diagnostic),
        }))
    }

    async fn share_diagnostic(
        &self,
        req: Request<pb::ShareDiagnosticRequest>,
    ) -> Result<Response<pb::ShareDiagnosticResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let d = self.load(&r.diagnostic_id, "diagnostic_id").await?;
        self.require_recorder(&caller, &d)?;
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let d = Store::diagnostic_in(&mut tx, &d.diagnostic_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        if d.status != BROUILLON {
            return Err(not_editable(&d.status));
        }
        let ratings = Store::ratings_in(&mut tx, &d.diagnostic_id)
            .await
            .map_err(internal)?;
        if !ratings.iter().any(|x| !x.counselor_level.is_empty()) {
            return Err(conflict(
                "ratings",
                "aucun item coté : cotez au moins un item avant de partager / no item rated: rate at least one before sharing",
            ));
        }
        let previous = Store::shared_of(&mut tx, &d.person_id)
            .await
            .map_err(internal)?
            .filter(|p| p.diagnostic_id != d.diagnostic_id);
        Store::set_status(&mut tx, &d.diagnostic_id, PARTAGE, "", now)
            .await
            .map_err(internal)?;
        let context = self.recording_context(&d.structure_id).await?;
        let pseudonym = Store::pseudonym_in(&mut tx, &d.person_id)
            .await
            .map_err(internal)?;
        let today = shared_on(now);
        let shared = pb::DiagnosticShared {
            statistics_pseudonym: pseudonym.clone(),
            referentiel_version: d.referentiel_version.clone(),
            context: Some(context.clone()),
            shared_on: today.clone(),
            items: ratings
                .iter()
                .map(|x| pb::ItemLevel {
                    domain_id: x.domain_id.clone(),
                    item_id: x.item_id.clone(),
                    counselor_level: level_proto(&x.counselor_level) as i32,
                    person_level: level_proto(&x.person_level) as i32,
                })
                .collect(),
        };
        // While the person objects to statistics, no event is published.
        let publish = !Store::objects_in(&mut tx, &d.person_id)
            .await
            .map_err(internal)?;
        // No person, diagnostic or structure id travels: ce-subject is empty.
        if publish {
            outbox::enqueue(
                &mut tx,
                &Event::new(SERVICE, "eva.diagnostics.diagnostic.shared", None, &shared),
            )
            .await
            .map_err(internal)?;
        }
        if let Some(p) = &previous {
            Store::set_status(&mut tx, &p.diagnostic_id, REMPLACE, &d.diagnostic_id, now)
                .await
                .map_err(internal)?;
        }
        if let Some(p) = previous.as_ref().filter(|_| publish) {
            let before = Store::ratings_in(&mut tx, &p.diagnostic_id)
                .await
                .map_err(internal)?;
            let superseded = pb::DiagnosticSuperseded {
                statistics_pseudonym: pseudonym,
                previous_referentiel_version: p.referentiel_version.clone(),
                referentiel_version: d.referentiel_version.clone(),
                previous_context: Some(self.recording_context(&p.structure_id).await?),
                context: Some(context),
                previous_shared_on: p.shared_at_us.map(shared_on).unwrap_or_default(),
                shared_on: today,
                changes: self.changes(p, &before, &d, &ratings)?,
            };
            outbox::enqueue(
                &mut tx,
                &Event::new(
                    SERVICE,
                    "eva.diagnostics.diagnostic.superseded",
                    None,
                    &superseded,
                ),
            )
            .await
            .map_err(internal)?;
        }
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                person_id: &d.person_id,
                actor: &caller,
                structure_id: Some(&d.structure_id),
                action: AccessAction::Write,
                resource_type: RESOURCE,
                resource_id: &d.diagnostic_id,
                domains: Vec::new(),
                purpose: Purpose::Accompagnement.code(),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(
            diagnostic_id = %d.diagnostic_id,
            superseded = previous.as_ref().map(|p| p.diagnostic_id.as_str()).unwrap_or(""),
            "diagnostic shared"
        );
        let d = self.load(&d.diagnostic_id, "diagnostic_id").await?;
        let diagnostic = self
            .read(&md, &caller, &d, Purpose::Accompagnement, None)
            .await?;
        Ok(Response::new(pb::ShareDiagnosticResponse {
            diagnostic: Some(diagnostic),
            superseded_diagnostic_id: previous.map(|p| p.diagnostic_id).unwrap_or_default(),
        }))
    }

    async fn compare_diagnostics(
        &self,
        req: Request<pb::CompareDiagnosticsRequest>,
    ) -> Result<Response<pb::CompareDiagnosticsResponse>, Status> {
        let caller = require_role(&req, READERS)?.clone();
        let r = req.into_inner();
        let purpose = purpose_of(r.purpose)?;
        let from = self
            .load(&r.from_diagnostic_id, "from_diagnostic_id")
            .await?;
        let to = self.load(&r.to_diagnostic_id, "to_diagnostic_id").await?;
        if from.person_id != to.person_id {
            return Err(invalid_field(
                "to_diagnostic_id",
                "les deux diagnostics doivent être ceux de la même personne / both diagnostics must be the same person's",
            ));
        }
        let from_sight = self.sight(&caller, &from, purpose).await?;
        let to_sight = self.sight(&caller, &to, purpose).await?;
        let (rf, rt) = (self.version(&from)?, self.version(&to)?);
        let rows = |x: Vec<RatingRow>| -> BTreeMap<String, RatingRow> {
            x.into_iter().map(|x| (x.item_id.clone(), x)).collect()
        };
        let before = rows(
            self.store
                .ratings(&from.diagnostic_id)
                .await
                .map_err(internal)?,
        );
        let after = rows(
            self.store
                .ratings(&to.diagnostic_id)
                .await
                .map_err(internal)?,
        );
        let in_version = |r: &Referentiel, item: &str| {
            r.domains
                .iter()
                .any(|d| d.items.iter().any(|i| i.id == item))
        };
        let has_domain = |r: &Referentiel, dom: &str| r.domains.iter().any(|d| d.id == dom);
        // Items of the later version in display order, then those of the
        // earlier one only.
        let mut lines: Vec<(String, String)> = Vec::new();
        for r in [rt, rf] {
            for d in &r.domains {
                for i in &d.items {
                    if !lines.iter().any(|(_, it)| *it == i.id) {
                        lines.push((d.id.clone(), i.id.clone()));
                    }
                }
            }
        }
        let mut compared = BTreeSet::new();
        let items = lines
            .into_iter()
            .map(|(domain, item)| {
                let visible = (!has_domain(rf, &domain) || from_sight.visible.contains(&domain))
                    && (!has_domain(rt, &domain) || to_sight.visible.contains(&domain));
                if !visible {
                    return pb::ItemComparison {
                        domain_id: domain,
                        item_id: item,
                        access: pb::DomainAccess::Withheld as i32,
                        ..Default::default()
                    };
                }
                compared.insert(domain.clone());
                let both = in_version(rf, &item) && in_version(rt, &item);
                let b = before.get(&item);
                let a = after.get(&item);
                let level = |x: Option<&RatingRow>, f: fn(&RatingRow) -> &str| {
                    x.map(|x| level_proto(f(x))).unwrap_or_default() as i32
                };
                let code = |x: Option<&RatingRow>, f: fn(&RatingRow) -> &str, exists: bool| {
                    exists.then(|| x.map(|x| f(x).to_owned()).unwrap_or_default())
                };
                let evo = |f: fn(&RatingRow) -> &str| {
                    if !both {
                        return pb::ItemEvolution::NotComparable as i32;
                    }
                    evolution(code(b, f, true).as_deref(), code(a, f, true).as_deref()) as i32
                };
                pb::ItemComparison {
                    domain_id: domain,
                    item_id: item,
                    access: pb::DomainAccess::Visible as i32,
                    from_counselor_level: level(b, counselor),
                    to_counselor_level: level(a, counselor),
                    counselor_evolution: evo(counselor),
                    from_person_level: level(b, person),
                    to_person_level: level(a, person),
                    person_evolution: evo(person),
                }
            })
            .collect();
        if compared.is_empty() {
            return Err(denied());
        }
        let compared: Vec<String> = compared.into_iter().collect();
        for (d, sight) in [(&from, &from_sight), (&to, &to_sight)] {
            self.record(Access {
                person_id: &d.person_id,
                actor: &caller,
                structure_id: sight.structure_id.as_deref(),
                action: AccessAction::Read,
                resource_type: RESOURCE,
                resource_id: &d.diagnostic_id,
                domains: compared.clone(),
                purpose: purpose.code(),
            })
            .await?;
        }
        Ok(Response::new(pb::CompareDiagnosticsResponse {
            from: Some(summary(&from)),
            to: Some(summary(&to)),
            items,
        }))
    }
}

impl DiagnosticApi {
    async fn recording_context(&self, structure_id: &str) -> Result<pb::RecordingContext, Status> {
        let s = self
            .follows
            .structure(structure_id)
            .await
            .map_err(internal)?
            .unwrap_or_default();
        Ok(pb::RecordingContext {
            structure_kind: s.kind,
            commune_insee: s.commune_insee,
            epci: s.epci,
            departement: s.departement,
        })
    }

    /// One change per item present in either version.
    fn changes(
        &self,
        p: &DiagnosticRow,
        before: &[RatingRow],
        d: &DiagnosticRow,
        after: &[RatingRow],
    ) -> Result<Vec<pb::ItemLevelChange>, Status> {
        let (rp, rd) = (self.version(p)?, self.version(d)?);
        let mut out: Vec<pb::ItemLevelChange> = Vec::new();
        for r in [rd, rp] {
            for dom in &r.domains {
                for item in &dom.items {
                    if out.iter().any(|c| c.item_id == item.id) {
                        continue;
                    }
                    let in_p = rp
                        .domains
                        .iter()
                        .any(|x| x.items.iter().any(|i| i.id == item.id));
                    let in_d = rd
                        .domains
                        .iter()
                        .any(|x| x.items.iter().any(|i| i.id == item.id));
                    let b = before.iter().find(|x| x.item_id == item.id);
                    let a = after.iter().find(|x| x.item_id == item.id);
                    let get = |x: Option<&RatingRow>, person: bool| {
                        x.map(|x| {
                            if person {
                                x.person_level.clone()
                            } else {
                                x.counselor_level.clone()
                            }
                        })
                        .unwrap_or_default()
                    };
                    let evo = |person: bool| {
                        if in_p && in_d {
                            evolution(Some(&get(b, person)), Some(&get(a, person))) as i32
                        } else {
                            pb::ItemEvolution::NotComparable as i32
                        }
                    };
                    out.push(pb::ItemLevelChange {
                        domain_id: dom.id.clone(),
                        item_id: item.id.clone(),
                        previous_counselor_level: level_proto(&get(b, false)) as i32,
                        counselor_level: level_proto(&get(a, false)) as i32,
                        counselor_evolution: evo(false),
                        previous_person_level: level_proto(&get(b, true)) as i32,
                        person_level: level_proto(&get(a, true)) as i32,
                        person_evolution: evo(true),
                    });
                }
            }
        }
        Ok(out)
    }
}

fn counselor(x: &RatingRow) -> &str {
    x.counselor_level.as_str()
}

fn person(x: &RatingRow) -> &str {
    x.person_level.as_str()
}

/// A line of the history.
pub fn summary(d: &DiagnosticRow) -> pb::DiagnosticSummary {
    pb::DiagnosticSummary {
        diagnostic_id: d.diagnostic_id.clone(),
        person_id: d.person_id.clone(),
        structure_id: d.structure_id.clone(),
        counselor_user_id: d.counselor_user_id.clone(),
        referentiel_version: d.referentiel_version.clone(),
        status: status_code(&d.status) as i32,
        created_at: ts(Some(d.created_at_us)),
        shared_at: ts(d.shared_at_us),
        superseded_at: ts(d.superseded_at_us),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evolutions_follow_the_scale() {
        use pb::ItemEvolution as E;
        assert_eq!(evolution(Some("frein"), Some("sans_impact")), E::Improved);
        assert_eq!(evolution(Some("frein"), Some("frein")), E::Unchanged);
        assert_eq!(
            evolution(Some("point_d_appui"), Some("frein_majeur")),
            E::Worsened
        );
        assert_eq!(
            evolution(Some("non_aborde"), Some("frein")),
            E::NewlyAddressed
        );
        assert_eq!(evolution(Some(""), Some("frein")), E::NewlyAddressed);
        assert_eq!(
            evolution(Some("frein"), Some("non_aborde")),
            E::NotComparable
        );
        assert_eq!(evolution(Some("frein"), Some("")), E::NotComparable);
        assert_eq!(evolution(None, Some("frein")), E::NotComparable);
    }
}
