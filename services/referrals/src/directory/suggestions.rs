//! Services suggested for a diagnostic's barriers.
//!
//! The diagnostic is read from the diagnostics service with the caller's
//! own token and purpose `accompagnement` (the counselor's reading), so the
//! diagnostics service decides what the caller sees and logs the read;
//! withheld domains bring nothing. Each item rated `frein` or
//! `frein_majeur` (the counselor's rating, else the person's) stands for
//! the data·inclusion thématiques the référentiel maps it to. Services with
//! one of those thématiques, in the territory, come best first: the most
//! barriers met (a `frein_majeur` counts twice), then places available,
//! then by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use eva_platform::auth::require_role;
use eva_platform::pagination::Page;
use eva_platform::sealing::Sealer;
use eva_proto::diagnostics::v1 as dpb;
use eva_proto::diagnostics::v1::diagnostic_service_client::DiagnosticServiceClient;
use eva_proto::diagnostics::v1::referentiel_service_client::ReferentielServiceClient;
use eva_proto::identity::v1::ConsentPurpose;
use eva_proto::referrals::v1 as pb;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::store::{Search, Territory};
use super::{DirectoryApi, ItemThematiques, PROFESSIONALS, check_id, internal, parse_territory};

/// Most services weighed for one diagnostic.
const MAX_CANDIDATES: i64 = 10_000;

/// One barrier of the diagnostic: an item, its domain, its weight.
#[derive(Debug, Clone)]
struct Barrier {
    item_id: String,
    domain_id: String,
    weight: u32,
}

fn weight(level: i32) -> u32 {
    match dpb::Level::try_from(level) {
        Ok(dpb::Level::FreinMajeur) => 2,
        Ok(dpb::Level::Frein) => 1,
        _ => 0,
    }
}

impl DirectoryApi {
    /// The items of a référentiel version, read once per version.
    async fn items_of(
        &self,
        md: &MetadataMap,
        version: &str,
    ) -> Result<Arc<ItemThematiques>, Status> {
        if let Some(known) = self.referentiels.read().await.get(version) {
            return Ok(known.clone());
        }
        let mut client = ReferentielServiceClient::new(self.diagnostics.clone());
        let r = client
            .get_referentiel(Sealer::request(
                md,
                dpb::GetReferentielRequest {
                    version: version.to_owned(),
                },
            ))
            .await?
            .into_inner();
        let referentiel = r
            .referentiel
            .ok_or_else(|| internal("empty référentiel answer"))?;
        let mut items = ItemThematiques::new();
        for d in referentiel.domains {
            for i in d.items {
                let themes = if i.data_inclusion_thematiques.is_empty() {
                    d.data_inclusion_thematiques.clone()
                } else {
                    i.data_inclusion_thematiques
                };
                items.insert(i.item_id, (d.domain_id.clone(), themes));
            }
        }
        let items = Arc::new(items);
        self.referentiels
            .write()
            .await
            .insert(version.to_owned(), items.clone());
        Ok(items)
    }

    /// Where the caller works: the first of its structures the projection
    /// knows a commune or département for.
    async fn home_territory(&self, structures: &[String]) -> Result<Option<Territory>, Status> {
        for s in structures {
            let Some(row) = self.projections.structure(s).await.map_err(internal)? else {
                continue;
            };
            if !row.commune_insee.is_empty()
                && let Ok(Some(t)) = parse_territory(&row.commune_insee)
            {
                return Ok(Some(t));
            }
            if !row.departement.is_empty()
                && let Ok(Some(t)) = parse_territory(&row.departement)
            {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

pub(super) async fn suggest(
    api: &DirectoryApi,
    req: Request<pb::SuggestServicesRequest>,
) -> Result<Response<pb::SuggestServicesResponse>, Status> {
    let caller = require_role(&req, PROFESSIONALS)?.clone();
    let md = req.metadata().clone();
    let r = req.into_inner();
    check_id("diagnostic_id", &r.diagnostic_id)?;
    let page = Page::parse(r.page_size, &r.page_token)?;
    let offset = page.offset()?;
    let territory = match parse_territory(&r.territory)? {
        Some(t) => Some(t),
        None => api.home_territory(&caller.structures).await?,
    };

    let mut diagnostics = DiagnosticServiceClient::new(api.diagnostics.clone());
    let diagnostic = diagnostics
        .get_diagnostic(Sealer::request(
            &md,
            dpb::GetDiagnosticRequest {
                diagnostic_id: r.diagnostic_id.clone(),
                purpose: ConsentPurpose::Accompagnement as i32,
            },
        ))
        .await?
        .into_inner()
        .diagnostic
        .ok_or_else(|| internal("empty diagnostic answer"))?;
    let items = api.items_of(&md, &diagnostic.referentiel_version).await?;

    // Thématique → the barriers it would address.
    let mut barriers: BTreeMap<String, Vec<Barrier>> = BTreeMap::new();
    for d in &diagnostic.domains {
        if d.access != dpb::DomainAccess::Visible as i32 {
            continue;
        }
        for i in &d.items {
            let level = if i.counselor_level != dpb::Level::Unspecified as i32 {
                i.counselor_level
            } else {
                i.person_level
            };
            let w = weight(level);
            if w == 0 {
                continue;
            }
            let Some((domain_id, themes)) = items.get(&i.item_id) else {
                continue;
            };
            for t in themes {
                barriers.entry(t.clone()).or_default().push(Barrier {
                    item_id: i.item_id.clone(),
                    domain_id: domain_id.clone(),
                    weight: w,
                });
            }
        }
    }
    if barriers.is_empty() {
        return Ok(Response::new(pb::SuggestServicesResponse::default()));
    }
    let search = Search {
        thematiques: barriers.keys().cloned().collect(),
        territory,
        ..Search::default()
    };
    let candidates = api
        .store
        .search(&search, None, MAX_CANDIDATES)
        .await
        .map_err(internal)?;

    let mut ranked: Vec<(u32, u8, String, pb::ServiceSuggestion)> = candidates
        .into_iter()
        .map(|service| {
            let mut met: HashMap<&str, u32> = HashMap::new();
            let mut domains = BTreeSet::new();
            let mut matched = Vec::new();
            for t in &service.thematiques {
                if let Some(bs) = barriers.get(t) {
                    matched.push(t.clone());
                    for b in bs {
                        met.insert(&b.item_id, b.weight);
                        domains.insert(b.domain_id.clone());
                    }
                }
            }
            let score: u32 = met.values().sum();
            let places = match service.available_places {
                Some(n) if n > 0 => 0,
                None => 1,
                Some(_) => 2,
            };
            let name = service.name.to_lowercase();
            (
                score,
                places,
                name,
                pb::ServiceSuggestion {
                    service: Some(service),
                    domains: domains.into_iter().collect(),
                    matched_thematiques: matched,
                },
            )
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then_with(|| {
                let id = |x: &pb::ServiceSuggestion| {
                    x.service
                        .as_ref()
                        .map(|s| s.service_id.clone())
                        .unwrap_or_default()
                };
                id(&a.3).cmp(&id(&b.3))
            })
    });
    let rows: Vec<pb::ServiceSuggestion> = ranked
        .into_iter()
        .map(|r| r.3)
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(page.fetch_limit() as usize)
        .collect();
    let (suggestions, next_page_token) = page.finish_at(rows, offset);
    Ok(Response::new(pb::SuggestServicesResponse {
        suggestions,
        next_page_token,
    }))
}
