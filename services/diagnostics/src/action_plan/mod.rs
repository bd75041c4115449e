//! `eva.diagnostics.v1.ActionPlanService`: the action plan of a diagnostic,
//! objectives per référentiel domain, each with its actions (REFERENTIEL.md
//! "Action plan").
//!
//! Who does what:
//! - reading: the person reads their whole plan; a counselor or structure
//!   admin reads the objectives of the domains the diagnostic shows them
//!   ([`DiagnosticApi::sight`], the same consent rule as `GetDiagnostic`);
//!   other domains come back in `withheld_domains`, nothing inside;
//! - adding: the plan is shared work, so any structure that follows the
//!   person now may add objectives, and actions to an objective, in a domain
//!   it sees; the adding structure owns what it adds (an action may be given
//!   to another following structure);
//! - changing: only the owning structure, while it still follows the person,
//!   changes its objectives and actions (an action's owner, or the owner of
//!   its objective);
//! - the person is the actor of her path: she changes the status, and only
//!   the status, of the actions of her own plan ([`PERSON_STATUSES`]: under
//!   way, done, back to planned); a done action she reopens only the day it
//!   was done (a click by mistake). Her change is access-logged with her as
//!   the actor, as a counselor's is.
//!
//! Titles may describe the person's situation: each is sealed with the
//! person's key by identity, exactly as the diagnostic's notes are
//! ([`crate::notes`]), and opened with the reader's token. They never appear
//! in logs, events or the access log. No event is published: the contract
//! has no plan event yet. Every read and write is access-logged
//! (`resource_type = action_plan`).

pub mod store;

use std::collections::{BTreeMap, BTreeSet};

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::consent::{DATE_FORMAT, Purpose};
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::sealing::Reading;
use eva_proto::audit::v1::AccessAction;
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::action_plan_service_server::ActionPlanServiceServer;
use serde_json::{Value, json};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use self::store::{ActionRow, ObjectiveRow};
use crate::SERVICE;
use crate::diagnostic::{DiagnosticApi, FOLLOWERS, REMPLACE, Sight, internal};
use crate::notes::{self, DomainNotes};
use crate::store::{DiagnosticRow, Store};

/// Roles that read a plan.
const READERS: &[Role] = &[Role::Person, Role::Counselor, Role::StructureAdmin];
/// Roles that change an action: followers all of it, the person its status.
const ACTION_WRITERS: &[Role] = &[Role::Person, Role::Counselor, Role::StructureAdmin];
/// The access log's resource type.
const RESOURCE: &str = "action_plan";
/// Longest title, in characters.
pub const MAX_TITLE: usize = 500;
/// The key of the title in its sealed payload.
const TITLE: &str = "title";

pub const EN_COURS: &str = "en_cours";
pub const REALISE: &str = "realise";
pub const ABANDONNE: &str = "abandonne";
pub const PREVUE: &str = "prevue";
pub const REALISEE: &str = "realisee";
pub const ANNULEE: &str = "annulee";
/// The statuses the person gives her own actions: cancelling stays with
/// her counselor.
pub const PERSON_STATUSES: &[&str] = &[PREVUE, EN_COURS, REALISEE];

/// The state behind `ActionPlanService`: the diagnostics' state, whose
/// reading rule it shares.
#[derive(Clone)]
pub struct ActionPlanApi {
    pub diagnostics: DiagnosticApi,
}

/// `ActionPlanService`, ready for `GrpcServer::add_service`.
pub fn server(diagnostics: DiagnosticApi) -> ActionPlanServiceServer<ActionPlanApi> {
    ActionPlanServiceServer::new(ActionPlanApi { diagnostics })
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

fn changed_meanwhile() -> Status {
    Status::aborted(
        "modifié entre-temps : relisez et recommencez / changed meanwhile: read again and retry",
    )
}

fn check_id(field: &str, id: &str) -> Result<(), Status> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| invalid_field(field, "identifiant invalide / not a valid id"))
}

fn objective_not_found() -> Status {
    Status::not_found("objectif introuvable / objective not found")
}

fn action_not_found() -> Status {
    Status::not_found("action introuvable / action not found")
}

fn not_owner() -> Status {
    Status::permission_denied(
        "accès refusé : seule la structure qui porte cet élément du plan le modifie / \
         access denied: only the structure that owns this part of the plan changes it",
    )
}

fn not_following() -> Status {
    Status::permission_denied(
        "accès refusé : votre structure ne suit pas cette personne / access denied: your structure does not follow this person",
    )
}

/// PERMISSION_DENIED naming a field the person may not change.
fn not_for_person(field: &str) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let message = "seul votre conseiller change ce champ : vous indiquez où en est l'action \
                   (statut) / only your counselor changes this field: you give the action's status";
    Status::with_error_details(
        tonic::Code::PermissionDenied,
        format!("{field}: {message}"),
        ErrorDetails::with_bad_request_violation(field, message),
    )
}

/// The person moves her action between [`PERSON_STATUSES`]; a done action
/// comes back only the day it was done.
pub fn person_transition(from: &str, to: &str, end_date: &str, today: &str) -> bool {
    if from == to {
        return true;
    }
    match from {
        PREVUE | EN_COURS => PERSON_STATUSES.contains(&to),
        REALISEE => end_date == today && PERSON_STATUSES.contains(&to),
        _ => false,
    }
}

fn domain_withheld() -> Status {
    Status::permission_denied(
        "accès refusé : le consentement de la personne ne couvre pas ce domaine pour votre structure / \
         access denied: the person's consent does not cover this domain for your structure",
    )
}

/// A day, `YYYY-MM-DD`, or why not.
fn date(field: &str, raw: &str) -> Result<time::Date, Status> {
    time::Date::parse(raw.trim(), DATE_FORMAT).map_err(|_| {
        invalid_field(
            field,
            "date invalide : AAAA-MM-JJ attendu / invalid date: YYYY-MM-DD expected",
        )
    })
}

/// An optional day: `''` stays empty.
fn optional_date(field: &str, raw: &str) -> Result<String, Status> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    date(field, raw)?;
    Ok(raw.trim().to_owned())
}

/// `later` is not before `earlier` (both valid or empty).
fn not_before(field: &str, later: &str, earlier: &str, earlier_name: &str) -> Result<(), Status> {
    if !later.is_empty() && !earlier.is_empty() && later < earlier {
        return Err(invalid_field(
            field,
            &format!("la date précède {earlier_name} / the date is before {earlier_name}"),
        ));
    }
    Ok(())
}

fn title(field: &str, raw: &str) -> Result<String, Status> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(invalid_field(field, "titre obligatoire / title required"));
    }
    if t.chars().count() > MAX_TITLE {
        return Err(invalid_field(
            field,
            "titre trop long : 500 caractères au plus / title too long: at most 500 characters",
        ));
    }
    Ok(t.to_owned())
}

fn user_id(field: &str, raw: &str) -> Result<String, Status> {
    let u = raw.trim();
    if u.is_empty() || u.len() > 100 || !u.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid_field(
            field,
            "identifiant de conseiller invalide / invalid counselor id",
        ));
    }
    Ok(u.to_owned())
}

fn referral(raw: &str) -> Result<String, Status> {
    let r = raw.trim();
    if r.is_empty() {
        return Ok(String::new());
    }
    check_id("referral_id", r)?;
    Ok(r.to_owned())
}

fn objective_status(code: &str) -> pb::ObjectiveStatus {
    match code {
        EN_COURS => pb::ObjectiveStatus::EnCours,
        REALISE => pb::ObjectiveStatus::Realise,
        ABANDONNE => pb::ObjectiveStatus::Abandonne,
        _ => pb::ObjectiveStatus::Unspecified,
    }
}

fn objective_code(p: i32) -> Result<&'static str, Status> {
    match pb::ObjectiveStatus::try_from(p) {
        Ok(pb::ObjectiveStatus::EnCours) => Ok(EN_COURS),
        Ok(pb::ObjectiveStatus::Realise) => Ok(REALISE),
        Ok(pb::ObjectiveStatus::Abandonne) => Ok(ABANDONNE),
        _ => Err(invalid_field(
            "status",
            "statut inconnu : en_cours, realise ou abandonne / unknown status",
        )),
    }
}

fn action_status(code: &str) -> pb::ActionStatus {
    match code {
        PREVUE => pb::ActionStatus::Prevue,
        EN_COURS => pb::ActionStatus::EnCours,
        REALISEE => pb::ActionStatus::Realisee,
        ANNULEE => pb::ActionStatus::Annulee,
        _ => pb::ActionStatus::Unspecified,
    }
}

fn action_code(p: i32) -> Result<&'static str, Status> {
    match pb::ActionStatus::try_from(p) {
        Ok(pb::ActionStatus::Prevue) => Ok(PREVUE),
        Ok(pb::ActionStatus::EnCours) => Ok(EN_COURS),
        Ok(pb::ActionStatus::Realisee) => Ok(REALISEE),
        Ok(pb::ActionStatus::Annulee) => Ok(ANNULEE),
        _ => Err(invalid_field(
            "status",
            "statut inconnu : prevue, en_cours, realisee ou annulee / unknown status",
        )),
    }
}

fn transition_refused(from: &str, to: &str) -> Status {
    conflict(
        "status",
        &format!("passage de « {from} » à « {to} » impossible / cannot go from {from} to {to}"),
    )
}

/// An objective goes from `en_cours` to `realise` or `abandonne`, and may be
/// reopened (`en_cours`); `realise` and `abandonne` do not turn into each
/// other.
pub fn objective_transition(from: &str, to: &str) -> bool {
    from == to || from == EN_COURS || to == EN_COURS
}

/// An action goes forward: `prevue` → `en_cours` → `realisee` | `annulee`
/// (steps may be skipped); done and cancelled actions are final.
pub fn action_transition(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    match from {
        PREVUE => [EN_COURS, REALISEE, ANNULEE].contains(&to),
        EN_COURS => [REALISEE, ANNULEE].contains(&to),
        _ => false,
    }
}

/// The end date the new status needs: required for `realise`/`realisee`,
/// today by default for `abandonne`/`annulee`, refused otherwise.
fn end_date_for(
    status: &str,
    given: Option<&str>,
    kept: &str,
    done: &[&str],
    given_up: &str,
) -> Result<String, Status> {
    let end = match given {
        Some(g) => optional_date("end_date", g)?,
        None => kept.to_owned(),
    };
    if done.contains(&status) {
        if end.is_empty() {
            return Err(invalid_field(
                "end_date",
                &format!("« {status} » demande une date de fin / « {status} » needs an end date"),
            ));
        }
        return Ok(end);
    }
    if status == given_up {
        return Ok(if end.is_empty() {
            eva_platform::consent::today()
        } else {
            end
        });
    }
    if given.is_some_and(|g| !g.trim().is_empty()) {
        return Err(invalid_field(
            "end_date",
            &format!(
                "pas de date de fin pour le statut « {status} » / no end date while the status is {status}"
            ),
        ));
    }
    Ok(String::new())
}

fn ts(us: i64) -> Option<prost_types::Timestamp> {
    Some(to_timestamp(us))
}

/// Where a sealed title belongs: bound to the ciphertext by identity.
fn context(diagnostic_id: &str, domain_id: &str, kind: &str, id: &str) -> String {
    format!("plan:{diagnostic_id}:{domain_id}:{kind}:{id}")
}

fn to_objective(o: &ObjectiveRow, title: String, actions: Vec<pb::Action>) -> pb::Objective {
    pb::Objective {
        objective_id: o.objective_id.clone(),
        diagnostic_id: o.diagnostic_id.clone(),
        domain_id: o.domain_id.clone(),
        title,
        status: objective_status(&o.status) as i32,
        start_date: o.start_date.clone(),
        target_date: o.target_date.clone(),
        end_date: o.end_date.clone(),
        owner_structure_id: o.owner_structure_id.clone(),
        owner_user_id: o.owner_user_id.clone(),
        actions,
        created_at: ts(o.created_at_us),
        updated_at: ts(o.updated_at_us),
    }
}

fn to_action(a: &ActionRow, title: String) -> pb::Action {
    pb::Action {
        action_id: a.action_id.clone(),
        objective_id: a.objective_id.clone(),
        title,
        status: action_status(&a.status) as i32,
        planned_date: a.planned_date.clone(),
        end_date: a.end_date.clone(),
        owner_structure_id: a.owner_structure_id.clone(),
        owner_user_id: a.owner_user_id.clone(),
        referral_id: a.referral_id.clone(),
        created_at: ts(a.created_at_us),
        updated_at: ts(a.updated_at_us),
    }
}

/// The structure the caller writes for: theirs that follows the person now.
async fn writing_structure(
    api: &DiagnosticApi,
    caller: &Principal,
    person_id: &str,
) -> Result<(String, Vec<String>), Status> {
    let following = api.follows.following(person_id).await.map_err(internal)?;
    let s = caller
        .structures
        .iter()
        .find(|s| following.contains(s))
        .cloned()
        .ok_or_else(not_following)?;
    Ok((s, following))
}

impl ActionPlanApi {
    fn api(&self) -> &DiagnosticApi {
        &self.diagnostics
    }

    async fn diagnostic(&self, id: &str) -> Result<DiagnosticRow, Status> {
        self.api()
            .store
            .diagnostic(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("diagnostic introuvable / diagnostic not found"))
    }

    async fn seal(
        &self,
        md: &MetadataMap,
        person_id: &str,
        context: String,
        title: &str,
    ) -> Result<(Vec<u8>, String), Status> {
        let payload: DomainNotes = [(TITLE.to_owned(), title.to_owned())].into();
        notes::seal(&self.api().sealer, md, person_id, context, &payload).await
    }

    /// The plan of `d` as `sight` lets the caller see it, titles opened:
    /// (objectives, withheld domains, visible domains with objectives).
    pub async fn render(
        &self,
        md: &MetadataMap,
        d: &DiagnosticRow,
        sight: &Sight,
        only: Option<&str>,
    ) -> Result<(Vec<pb::Objective>, Vec<String>, Vec<String>), Status> {
        let store = &self.api().store;
        let objectives = store
            .objectives_of(&d.diagnostic_id)
            .await
            .map_err(internal)?;
        let mut actions: BTreeMap<String, Vec<ActionRow>> = BTreeMap::new();
        for a in store
            .actions_of_diagnostic(&d.diagnostic_id)
            .await
            .map_err(internal)?
        {
            actions.entry(a.objective_id.clone()).or_default().push(a);
        }
        // The objectives to show and their actions, every title opened in
        // one identity call: authorised once, logged once.
        let shown: Vec<_> = objectives
            .into_iter()
            .filter(|o| only.is_none_or(|id| id == o.objective_id))
            .filter(|o| sight.visible.contains(&o.domain_id))
            .map(|o| {
                let acts = actions.remove(&o.objective_id).unwrap_or_default();
                (o, acts)
            })
            .collect();
        let mut items = Vec::new();
        for (o, acts) in &shown {
            items.push(notes::item(
                context(&d.diagnostic_id, &o.domain_id, "objective", &o.objective_id),
                o.title_ciphertext.clone(),
                o.title_key_id.clone(),
                &o.domain_id,
            ));
            for a in acts {
                items.push(notes::item(
                    context(&d.diagnostic_id, &o.domain_id, "action", &a.action_id),
                    a.title_ciphertext.clone(),
                    a.title_key_id.clone(),
                    &o.domain_id,
                ));
            }
        }
        let mut titles = if items.is_empty() {
            Vec::new()
        } else {
            notes::open_batch(
                &self.api().sealer,
                md,
                &Reading {
                    person_id: &d.person_id,
                    structure_id: sight.structure_id.as_deref().unwrap_or(""),
                    purpose: sight.purpose,
                    resource_type: "action_plan",
                    resource_id: &d.diagnostic_id,
                },
                items,
            )
            .await?
        }
        .into_iter()
        .map(|t| t.map(|mut payload| payload.remove(TITLE).unwrap_or_default()));
        let mut refused: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (o, acts) in shown {
            let title = titles.next().flatten();
            let list: Vec<_> = acts
                .iter()
                .map(|a| to_action(a, titles.next().flatten().unwrap_or_default()))
                .collect();
            let Some(title) = title else {
                refused.insert(o.domain_id.clone());
                continue;
            };
            seen.insert(o.domain_id.clone());
            out.push(to_objective(&o, title, list));
        }
        let r = self
            .api()
            .referentiels
            .get(&d.referentiel_version)
            .ok_or_else(|| internal(format!("référentiel {} not loaded", d.referentiel_version)))?;
        let withheld = r
            .domains
            .iter()
            .filter(|x| !sight.visible.contains(&x.id) || refused.contains(&x.id))
            .map(|x| x.id.clone())
            .collect();
        // Objectives whose domain identity refused are withheld, not dropped.
        out.retain(|o| !refused.contains(&o.domain_id));
        let seen = seen.difference(&refused).cloned().collect();
        Ok((out, withheld, seen))
    }

    /// One objective as the writer sees it after a change.
    async fn objective_view(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        d: &DiagnosticRow,
        objective_id: &str,
    ) -> Result<pb::Objective, Status> {
        let sight = self.api().sight(caller, d, Purpose::Accompagnement).await?;
        let (mut objectives, _, _) = self.render(md, d, &sight, Some(objective_id)).await?;
        objectives.pop().ok_or_else(objective_not_found)
    }

    /// The person, by her token's person id, gives an action of her own plan
    /// a status; any other field is refused by name, another person's action
    /// is not found.
    async fn person_sets_status(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        r: pb::UpdateActionRequest,
    ) -> Result<pb::Action, Status> {
        check_id("action_id", &r.action_id)?;
        let a = self
            .api()
            .store
            .action(&r.action_id)
            .await
            .map_err(internal)?
            .ok_or_else(action_not_found)?;
        let (o, d) = self.owned_objective(&a.objective_id).await?;
        let hers = caller.has_role(Role::Person)
            && caller.person_id.as_deref() == Some(d.person_id.as_str())
            && a.person_id == d.person_id;
        if !hers {
            return Err(action_not_found());
        }
        let others = [
            ("title", r.title.is_some()),
            ("planned_date", r.planned_date.is_some()),
            ("end_date", r.end_date.is_some()),
            ("owner_structure_id", r.owner_structure_id.is_some()),
            ("owner_user_id", r.owner_user_id.is_some()),
            ("referral_id", r.referral_id.is_some()),
        ];
        if let Some((field, _)) = others.iter().find(|(_, sent)| *sent) {
            return Err(not_for_person(field));
        }
        let status = match r.status {
            Some(s) => action_code(s)?,
            None => {
                return Err(invalid_field(
                    "status",
                    "statut obligatoire : prevue, en_cours ou realisee / status required",
                ));
            }
        };
        if !PERSON_STATUSES.contains(&status) {
            return Err(not_for_person("status"));
        }
        let today = eva_platform::consent::today();
        if !person_transition(&a.status, status, &a.end_date, &today) {
            return Err(transition_refused(&a.status, status));
        }
        let mut next = a.clone();
        next.end_date = match (status, a.status.as_str()) {
            (REALISEE, REALISEE) => a.end_date.clone(),
            (REALISEE, _) => today,
            _ => String::new(),
        };
        next.status = status.to_owned();
        next.updated_at_us = now_us().max(a.updated_at_us + 1);
        let mut tx = self.api().store.db().begin().await.map_err(internal)?;
        if !Store::update_action(&mut tx, &next, a.updated_at_us)
            .await
            .map_err(internal)?
        {
            return Err(changed_meanwhile());
        }
        audit::record(
            &mut tx,
            SERVICE,
            // The person acts for no structure.
            write_access(&d.person_id, caller, None, &a.action_id, &o.domain_id),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(action_id = %a.action_id, status = %next.status, "plan action changed by the person");
        let objective = self.objective_view(md, caller, &d, &o.objective_id).await?;
        objective
            .actions
            .into_iter()
            .find(|x| x.action_id == a.action_id)
            .ok_or_else(action_not_found)
    }

    /// The objective and its diagnostic.
    async fn owned_objective(
        &self,
        objective_id: &str,
    ) -> Result<(ObjectiveRow, DiagnosticRow), Status> {
        check_id("objective_id", objective_id)?;
        let o = self
            .api()
            .store
            .objective(objective_id)
            .await
            .map_err(internal)?
            .ok_or_else(objective_not_found)?;
        let d = self.diagnostic(&o.diagnostic_id).await?;
        Ok((o, d))
    }
}

/// The plan of one diagnostic for the person's export (titles opened with
/// the caller's token), as JSON.
pub async fn export_json(
    api: &DiagnosticApi,
    md: &MetadataMap,
    d: &DiagnosticRow,
    sight: &Sight,
) -> Result<Value, Status> {
    let plan = ActionPlanApi {
        diagnostics: api.clone(),
    };
    let (objectives, withheld, _) = plan.render(md, d, sight, None).await?;
    let name = |n: &str, p: &str| n.trim_start_matches(p).to_lowercase();
    Ok(json!({
        "objectives": objectives.iter().map(|o| json!({
            "id": o.objective_id,
            "domain_id": o.domain_id,
            "title": o.title,
            "status": pb::ObjectiveStatus::try_from(o.status).map(|s| name(s.as_str_name(), "OBJECTIVE_STATUS_")).unwrap_or_default(),
            "start_date": o.start_date,
            "target_date": o.target_date,
            "end_date": o.end_date,
            "owner_structure_id": o.owner_structure_id,
            "owner_user_id": o.owner_user_id,
            "actions": o.actions.iter().map(|a| json!({
                "id": a.action_id,
                "title": a.title,
                "status": pb::ActionStatus::try_from(a.status).map(|s| name(s.as_str_name(), "ACTION_STATUS_")).unwrap_or_default(),
                "planned_date": a.planned_date,
                "end_date": a.end_date,
                "owner_structure_id": a.owner_structure_id,
                "owner_user_id": a.owner_user_id,
                "referral_id": a.referral_id,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "withheld_domains": withheld,
    }))
}

fn write_access<'a>(
    person_id: &'a str,
    caller: &'a Principal,
    structure_id: Option<&'a str>,
    resource_id: &'a str,
    domain_id: &str,
) -> Access<'a> {
    Access {
        person_id,
        actor: caller,
        structure_id,
        action: AccessAction::Write,
        resource_type: RESOURCE,
        resource_id,
        domains: vec![domain_id.to_owned()],
        purpose: Purpose::Accompagnement.code(),
    }
}

#[tonic::async_trait]
impl pb::action_plan_service_server::ActionPlanService for ActionPlanApi {
    async fn get_action_plan(
        &self,
        req: Request<pb::GetActionPlanRequest>,
    ) -> Result<Response<pb::GetActionPlanResponse>, Status> {
        let caller = require_role(&req, READERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let purpose = if r.purpose == 0 {
            Purpose::Accompagnement
        } else {
            Purpose::from_proto(r.purpose).ok_or_else(|| {
                invalid_field(
                    "purpose",
                    "finalité inconnue : accompagnement, orientation ou statistiques / unknown purpose",
                )
            })?
        };
        check_id("diagnostic_id", &r.diagnostic_id)?;
        let d = self.diagnostic(&r.diagnostic_id).await?;
        let sight = self.api().sight(&caller, &d, purpose).await?;
        let (objectives, withheld_domains, seen) = self.render(&md, &d, &sight, None).await?;
        let mut tx = self.api().store.db().begin().await.map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                person_id: &d.person_id,
                actor: &caller,
                structure_id: sight.structure_id.as_deref(),
                action: AccessAction::Read,
                resource_type: RESOURCE,
                resource_id: &d.diagnostic_id,
                domains: seen,
                purpose: purpose.code(),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::GetActionPlanResponse {
            plan: Some(pb::ActionPlan {
                diagnostic_id: d.diagnostic_id.clone(),
                person_id: d.person_id.clone(),
                objectives,
                withheld_domains,
            }),
        }))
    }

    async fn add_objective(
        &self,
        req: Request<pb::AddObjectiveRequest>,
    ) -> Result<Response<pb::AddObjectiveResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("diagnostic_id", &r.diagnostic_id)?;
        let d = self.diagnostic(&r.diagnostic_id).await?;
        let (structure, _) = writing_structure(self.api(), &caller, &d.person_id).await?;
        let sight = self
            .api()
            .sight(&caller, &d, Purpose::Accompagnement)
            .await?;
        let domain_id = r.domain_id.trim().to_owned();
        let known = self
            .api()
            .referentiels
            .get(&d.referentiel_version)
            .is_some_and(|v| v.domains.iter().any(|x| x.id == domain_id));
        if !known {
            return Err(invalid_field(
                "domain_id",
                &format!(
                    "domaine inconnu dans le référentiel {} / unknown domain in this référentiel version",
                    d.referentiel_version
                ),
            ));
        }
        if !sight.visible.contains(&domain_id) {
            return Err(domain_withheld());
        }
        let title = title("title", &r.title)?;
        let start_date = if r.start_date.trim().is_empty() {
            eva_platform::consent::today()
        } else {
            optional_date("start_date", &r.start_date)?
        };
        let target_date = optional_date("target_date", &r.target_date)?;
        not_before("target_date", &target_date, &start_date, "start_date")?;
        let owner_user_id = if r.owner_user_id.trim().is_empty() {
            caller.user_id.clone()
        } else {
            user_id("owner_user_id", &r.owner_user_id)?
        };
        if d.status == REMPLACE {
            return Err(conflict(
                "diagnostic_id",
                "diagnostic remplacé : le plan se poursuit sur le diagnostic en cours / \
                 superseded diagnostic: the plan goes on on the current one",
            ));
        }
        let objective_id = uuid::Uuid::now_v7().to_string();
        let (ciphertext, key_id) = self
            .seal(
                &md,
                &d.person_id,
                context(&d.diagnostic_id, &domain_id, "objective", &objective_id),
                &title,
            )
            .await?;
        let now = now_us();
        let row = ObjectiveRow {
            objective_id,
            diagnostic_id: d.diagnostic_id.clone(),
            person_id: d.person_id.clone(),
            domain_id,
            title_ciphertext: ciphertext,
            title_key_id: key_id,
            status: EN_COURS.into(),
            start_date,
            target_date,
            end_date: String::new(),
            owner_structure_id: structure.clone(),
            owner_user_id,
            created_at_us: now,
            updated_at_us: now,
        };
        let mut tx = self.api().store.db().begin().await.map_err(internal)?;
        Store::insert_objective(&mut tx, &row)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            write_access(
                &d.person_id,
                &caller,
                Some(&structure),
                &row.objective_id,
                &row.domain_id,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(objective_id = %row.objective_id, diagnostic_id = %d.diagnostic_id, domain_id = %row.domain_id, "plan objective added");
        Ok(Response::new(pb::AddObjectiveResponse {
            objective: Some(to_objective(&row, title, Vec::new())),
        }))
    }

    async fn update_objective(
        &self,
        req: Request<pb::UpdateObjectiveRequest>,
    ) -> Result<Response<pb::UpdateObjectiveResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let (o, d) = self.owned_objective(&r.objective_id).await?;
        if !caller.belongs_to(&o.owner_structure_id) {
            return Err(not_owner());
        }
        let (_, following) = writing_structure(self.api(), &caller, &d.person_id).await?;
        if !following.contains(&o.owner_structure_id) {
            return Err(not_following());
        }
        let mut next = o.clone();
        let new_title = match &r.title {
            Some(t) => Some(title("title", t)?),
            None => None,
        };
        if let Some(t) = &r.target_date {
            next.target_date = optional_date("target_date", t)?;
            not_before(
                "target_date",
                &next.target_date,
                &next.start_date,
                "start_date",
            )?;
        }
        if let Some(u) = &r.owner_user_id {
            next.owner_user_id = user_id("owner_user_id", u)?;
        }
        let status = match r.status {
            Some(s) => objective_code(s)?,
            None => match o.status.as_str() {
                REALISE => REALISE,
                ABANDONNE => ABANDONNE,
                _ => EN_COURS,
            },
        };
        if !objective_transition(&o.status, status) {
            return Err(transition_refused(&o.status, status));
        }
        let kept = if status == o.status.as_str() {
            o.end_date.as_str()
        } else {
            ""
        };
        next.end_date = end_date_for(status, r.end_date.as_deref(), kept, &[REALISE], ABANDONNE)?;
        not_before("end_date", &next.end_date, &next.start_date, "start_date")?;
        next.status = status.to_owned();
        if let Some(t) = &new_title {
            let (c, k) = self
                .seal(
                    &md,
                    &d.person_id,
                    context(&d.diagnostic_id, &o.domain_id, "objective", &o.objective_id),
                    t,
                )
                .await?;
            next.title_ciphertext = c;
            next.title_key_id = k;
        }
        next.updated_at_us = now_us().max(o.updated_at_us + 1);
        let mut tx = self.api().store.db().begin().await.map_err(internal)?;
        if !Store::update_objective(&mut tx, &next, o.updated_at_us)
            .await
            .map_err(internal)?
        {
            return Err(changed_meanwhile());
        }
        audit::record(
            &mut tx,
            SERVICE,
            write_access(
                &d.person_id,
                &caller,
                Some(&o.owner_structure_id),
                &o.objective_id,
                &o.domain_id,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(objective_id = %o.objective_id, status = %next.status, "plan objective changed");
        let objective = self
            .objective_view(&md, &caller, &d, &o.objective_id)
            .await?;
        Ok(Response::new(pb::UpdateObjectiveResponse {
            objective: Some(objective),
        }))
    }

    async fn add_action(
        &self,
        req: Request<pb::AddActionRequest>,
    ) -> Result<Response<pb::AddActionResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let (o, d) = self.owned_objective(&r.objective_id).await?;
        let (structure, following) = writing_structure(self.api(), &caller, &d.person_id).await?;
        let sight = self
            .api()
            .sight(&caller, &d, Purpose::Accompagnement)
            .await?;
        if !sight.visible.contains(&o.domain_id) {
            return Err(domain_withheld());
        }
        let title = title("title", &r.title)?;
        let planned_date = optional_date("planned_date", &r.planned_date)?;
        let owner_structure_id = if r.owner_structure_id.trim().is_empty() {
            structure.clone()
        } else {
            let s = r.owner_structure_id.trim().to_owned();
            check_id("owner_structure_id", &s)?;
            if !following.contains(&s) {
                return Err(invalid_field(
                    "owner_structure_id",
                    "cette structure ne suit pas la personne / this structure does not follow the person",
                ));
            }
            s
        };
        let owner_user_id = if r.owner_user_id.trim().is_empty() {
            if owner_structure_id == structure {
                caller.user_id.clone()
            } else {
                String::new()
            }
        } else {
            user_id("owner_user_id", &r.owner_user_id)?
        };
        let referral_id = referral(&r.referral_id)?;
        if o.status != EN_COURS {
            return Err(conflict(
                "objective_id",
                &format!(
                    "objectif « {} » : plus d'action nouvelle / objective {}: no new action",
                    o.status, o.status
                ),
            ));
        }
        let action_id = uuid::Uuid::now_v7().to_string();
        let (ciphertext, key_id) = self
            .seal(
                &md,
                &d.person_id,
                context(&d.diagnostic_id, &o.domain_id, "action", &action_id),
                &title,
            )
            .await?;
        let now = now_us();
        let row = ActionRow {
            action_id,
            objective_id: o.objective_id.clone(),
            diagnostic_id: d.diagnostic_id.clone(),
            person_id: d.person_id.clone(),
            title_ciphertext: ciphertext,
            title_key_id: key_id,
            status: PREVUE.into(),
            planned_date,
            end_date: String::new(),
            owner_structure_id,
            owner_user_id,
            referral_id,
            created_at_us: now,
            updated_at_us: now,
        };
        let mut tx = self.api().store.db().begin().await.map_err(internal)?;
        if !Store::insert_action(&mut tx, &row)
            .await
            .map_err(internal)?
        {
            return Err(conflict(
                "objective_id",
                "objectif clos entre-temps : plus d'action nouvelle / objective closed meanwhile: no new action",
            ));
        }
        audit::record(
            &mut tx,
            SERVICE,
            write_access(
                &d.person_id,
                &caller,
                Some(&structure),
                &row.action_id,
                &o.domain_id,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(action_id = %row.action_id, objective_id = %o.objective_id, "plan action added");
        Ok(Response::new(pb::AddActionResponse {
            action: Some(to_action(&row, title)),
        }))
    }

    async fn update_action(
        &self,
        req: Request<pb::UpdateActionRequest>,
    ) -> Result<Response<pb::UpdateActionResponse>, Status> {
        let caller = require_role(&req, ACTION_WRITERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        if !caller.has_any_role(FOLLOWERS) {
            let action = self.person_sets_status(&md, &caller, r).await?;
            return Ok(Response::new(pb::UpdateActionResponse {
                action: Some(action),
            }));
        }
        check_id("action_id", &r.action_id)?;
        let a = self
            .api()
            .store
            .action(&r.action_id)
            .await
            .map_err(internal)?
            .ok_or_else(action_not_found)?;
        let (o, d) = self.owned_objective(&a.objective_id).await?;
        // The action's owner, or the owner of its objective, changes it.
        let acting_for = [&a.owner_structure_id, &o.owner_structure_id]
            .into_iter()
            .find(|s| caller.belongs_to(s))
            .cloned()
            .ok_or_else(not_owner)?;
        let (_, following) = writing_structure(self.api(), &caller, &d.person_id).await?;
        if !following.contains(&acting_for) {
            return Err(not_following());
        }
        let mut next = a.clone();
        let new_title = match &r.title {
            Some(t) => Some(title("title", t)?),
            None => None,
        };
        if let Some(p) = &r.planned_date {
            next.planned_date = optional_date("planned_date", p)?;
        }
        if let Some(s) = &r.owner_structure_id {
            let s = s.trim().to_owned();
            check_id("owner_structure_id", &s)?;
            if !following.contains(&s) {
                return Err(invalid_field(
                    "owner_structure_id",
                    "cette structure ne suit pas la personne / this structure does not follow the person",
                ));
            }
            next.owner_structure_id = s;
        }
        if let Some(u) = &r.owner_user_id {
            next.owner_user_id = if u.trim().is_empty() {
                String::new()
            } else {
                user_id("owner_user_id", u)?
            };
        }
        if let Some(x) = &r.referral_id {
            next.referral_id = referral(x)?;
        }
        let status = match r.status {
            Some(s) => action_code(s)?,
            None => match a.status.as_str() {
                EN_COURS => EN_COURS,
                REALISEE => REALISEE,
                ANNULEE => ANNULEE,
                _ => PREVUE,
            },
        };
        if !action_transition(&a.status, status) {
            return Err(transition_refused(&a.status, status));
        }
        let kept = if status == a.status.as_str() {
            a.end_date.as_str()
        } else {
            ""
        };
        next.end_date = end_date_for(status, r.end_date.as_deref(), kept, &[REALISEE], ANNULEE)?;
        next.status = status.to_owned();
        if let Some(t) = &new_title {
            let (c, k) = self
                .seal(
                    &md,
                    &d.person_id,
                    context(&d.diagnostic_id, &o.domain_id, "action", &a.action_id),
                    t,
                )
                .await?;
            next.title_ciphertext = c;
            next.title_key_id = k;
        }
        next.updated_at_us = now_us().max(a.updated_at_us + 1);
        let mut tx = self.api().store.db().begin().await.map_err(internal)?;
        if !Store::update_action(&mut tx, &next, a.updated_at_us)
            .await
            .map_err(internal)?
        {
            return Err(changed_meanwhile());
        }
        audit::record(
            &mut tx,
            SERVICE,
            write_access(
                &d.person_id,
                &caller,
                Some(&acting_for),
                &a.action_id,
                &o.domain_id,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(action_id = %a.action_id, status = %next.status, "plan action changed");
        let objective = self
            .objective_view(&md, &caller, &d, &o.objective_id)
            .await?;
        let action = objective
            .actions
            .into_iter()
            .find(|x| x.action_id == a.action_id)
            .ok_or_else(action_not_found)?;
        Ok(Response::new(pb::UpdateActionResponse {
            action: Some(action),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert!(objective_transition(EN_COURS, REALISE));
        assert!(objective_transition(ABANDONNE, EN_COURS));
        assert!(!objective_transition(REALISE, ABANDONNE));
        assert!(action_transition(PREVUE, REALISEE));
        assert!(!action_transition(EN_COURS, PREVUE));
        assert!(!action_transition(REALISEE, EN_COURS));
        assert!(!action_transition(ANNULEE, PREVUE));
        let today = "2026-03-02";
        assert!(person_transition(PREVUE, EN_COURS, "", today));
        assert!(person_transition(EN_COURS, REALISEE, "", today));
        assert!(person_transition(REALISEE, PREVUE, today, today));
        assert!(!person_transition(REALISEE, PREVUE, "2026-03-01", today));
        assert!(!person_transition(PREVUE, ANNULEE, "", today));
        assert!(!person_transition(ANNULEE, PREVUE, today, today));
    }

    #[test]
    fn end_dates_follow_the_status() {
        assert!(end_date_for(REALISEE, None, "", &[REALISEE], ANNULEE).is_err());
        assert!(end_date_for(PREVUE, Some("2026-02-01"), "", &[REALISEE], ANNULEE).is_err());
        assert_eq!(
            end_date_for(REALISEE, Some("2026-02-01"), "", &[REALISEE], ANNULEE).ok(),
            Some("2026-02-01".to_owned())
        );
        assert!(end_date_for(ANNULEE, None, "", &[REALISEE], ANNULEE).is_ok_and(|d| !d.is_empty()));
    }
}
