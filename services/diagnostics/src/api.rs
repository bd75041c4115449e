//! The référentiel's gRPC methods.

use std::sync::Arc;

use eva_platform::auth::{Role, require_role};
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_proto::diagnostics::v1 as pb;
use tonic::{Request, Response, Status};

use crate::referentiel::{self, Referentiel, Referentiels};

/// The référentiel is not personal data: every signed-in account reads it.
const READERS: &[Role] = &[
    Role::Person,
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Analyst,
    Role::Operator,
];

pub struct ReferentielApi {
    pub referentiels: Arc<Referentiels>,
}

impl ReferentielApi {
    fn is_current(&self, r: &Referentiel, today: time::Date) -> bool {
        self.referentiels
            .current(today)
            .is_some_and(|c| c.version == r.version)
    }
}

fn published_on(r: &Referentiel) -> String {
    r.valid_from
        .format(eva_platform::consent::DATE_FORMAT)
        .unwrap_or_default()
}

/// The whole version, as the API shows it.
pub fn to_proto(r: &Referentiel, current: bool) -> pb::Referentiel {
    pb::Referentiel {
        version: r.version.clone(),
        published_on: published_on(r),
        current,
        levels: r
            .levels
            .iter()
            .map(|l| pb::LevelDefinition {
                level: l.level.to_proto() as i32,
                code: l.level.code().to_owned(),
                label_fr: l.label_fr.clone(),
                label_en: l.label_en.clone(),
                description_fr: l.description_fr.clone(),
            })
            .collect(),
        domains: r
            .domains
            .iter()
            .map(|d| pb::Domain {
                domain_id: d.id.clone(),
                label_fr: d.label_fr.clone(),
                label_en: d.label_en.clone(),
                description_fr: d.description_fr.clone(),
                sensitive: d.sensitive,
                france_travail_code: d.france_travail_code.clone().unwrap_or_default(),
                data_inclusion_thematiques: d.data_inclusion_thematiques.clone(),
                items: d
                    .items
                    .iter()
                    .map(|i| pb::Item {
                        item_id: i.id.clone(),
                        label_fr: i.label_fr.clone(),
                        label_en: i.label_en.clone(),
                        help_fr: i.help_fr.clone(),
                        data_inclusion_thematiques: i.data_inclusion_thematiques.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::referentiel_service_server::ReferentielService for ReferentielApi {
    async fn get_referentiel(
        &self,
        req: Request<pb::GetReferentielRequest>,
    ) -> Result<Response<pb::GetReferentielResponse>, Status> {
        require_role(&req, READERS)?;
        let version = req.into_inner().version;
        let version = version.trim();
        let today = referentiel::today();
        let found = if version.is_empty() {
            self.referentiels.current(today)
        } else {
            self.referentiels.get(version)
        };
        let r = found.ok_or_else(|| {
            Status::not_found(format!(
                "version : version du référentiel inconnue « {version} » / version: unknown référentiel version"
            ))
        })?;
        Ok(Response::new(pb::GetReferentielResponse {
            referentiel: Some(to_proto(r, self.is_current(r, today))),
        }))
    }

    async fn list_referentiel_versions(
        &self,
        req: Request<pb::ListReferentielVersionsRequest>,
    ) -> Result<Response<pb::ListReferentielVersionsResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let today = referentiel::today();
        let mut newest_first = self.referentiels.newest_first().peekable();
        if let Some(after) = &page.after {
            if self.referentiels.get(after).is_none() {
                return Err(invalid_field(
                    "page_token",
                    "jeton de page inconnu / unknown page token",
                ));
            }
            while newest_first.next_if(|v| &v.version != after).is_some() {}
            newest_first.next();
        }
        let rows: Vec<_> = newest_first
            .take(page.fetch_limit() as usize)
            .map(|v| pb::ReferentielVersion {
                version: v.version.clone(),
                published_on: published_on(v),
                current: self.is_current(v, today),
            })
            .collect();
        let (versions, next_page_token) = page.finish(rows, |v| v.version.clone());
        Ok(Response::new(pb::ListReferentielVersionsResponse {
            versions,
            next_page_token,
        }))
    }
}
