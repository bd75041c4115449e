//! SKELETON — to be written.

use eva_platform::auth::{Role, require_role};
use eva_proto::statistics::v1 as pb;
use tonic::{Request, Response, Status};

use crate::store::Store;

pub struct Api {
    pub store: Store,
    pub rule: crate::disclosure::Rule,
}

/// Statistics are for the département's analysts and for operators.
pub const READERS: &[Role] = &[Role::Analyst, Role::Operator];

#[tonic::async_trait]
impl pb::indicator_service_server::IndicatorService for Api {
    async fn list_indicators(
        &self,
        req: Request<pb::ListIndicatorsRequest>,
    ) -> Result<Response<pb::ListIndicatorsResponse>, Status> {
        require_role(&req, READERS)?;
        Ok(Response::new(pb::ListIndicatorsResponse::default()))
    }

    async fn get_indicator(
        &self,
        req: Request<pb::GetIndicatorRequest>,
    ) -> Result<Response<pb::GetIndicatorResponse>, Status> {
        require_role(&req, READERS)?;
        Ok(Response::new(pb::GetIndicatorResponse::default()))
    }
}
