//! Anonymous quality-of-work-life check-ins of counselors, once per calendar
//! month. Only "this user answered this month" is kept (to refuse a second
//! one); the answers leave at once in `CheckinSubmitted`, with the month and
//! the département of the counselor's structure, and no user or structure id
//! (the event has no such field).

use eva_platform::auth::{Role, require_role};
use eva_platform::db::Db;
use eva_platform::follows::Follows;
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::outbox::{self, Event};
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::checkin_service_server::{CheckinService, CheckinServiceServer};
use tonic::{Request, Response, Status};

use crate::SERVICE;
use crate::notifications::storage;

/// Subject of `CheckinSubmitted`.
pub const CHECKIN_SUBMITTED: &str = "eva.community.checkin.submitted";

/// The state behind `CheckinService`.
#[derive(Clone)]
pub struct Checkins {
    db: Db,
}

/// `CheckinService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db) -> CheckinServiceServer<Checkins> {
    CheckinServiceServer::new(Checkins { db })
}

/// The calendar month of now (UTC), `YYYY-MM`.
pub fn current_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// Refuses a score outside 1–5, naming the field.
pub fn check(c: &pb::Checkin) -> Result<(), Status> {
    for (field, value) in [
        ("checkin.workload", c.workload),
        ("checkin.isolation", c.isolation),
        ("checkin.support", c.support),
    ] {
        if !(1..=5).contains(&value) {
            return Err(invalid_field(
                field,
                &format!("note entre 1 et 5 attendue, reçu {value} / score must be 1 to 5"),
            ));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl CheckinService for Checkins {
    async fn submit_checkin(
        &self,
        req: Request<pb::SubmitCheckinRequest>,
    ) -> Result<Response<pb::SubmitCheckinResponse>, Status> {
        let p = require_role(&req, &[Role::Counselor])?.clone();
        let checkin = req
            .into_inner()
            .checkin
            .ok_or_else(|| invalid_field("checkin", "réponses requises / answers required"))?;
        check(&checkin)?;
        let month = current_month();
        let mut tx = self.db.begin().await.map_err(storage)?;
        let done = on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO checkin_months (user_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&p.user_id)
        .bind(&month)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))
        .map_err(storage)?;
        if done == 0 {
            return Err(Status::already_exists(
                "vous avez déjà répondu ce mois-ci / you already answered this month",
            ));
        }
        let mut departement = String::new();
        for s in &p.structures {
            if let Some(row) = Follows::structure_in(&mut tx, s).await.map_err(storage)? {
                departement = row.departement;
                break;
            }
        }
        let event = pb::CheckinSubmitted {
            month: month.clone(),
            checkin: Some(checkin),
            departement,
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(SERVICE, CHECKIN_SUBMITTED, None, &event),
        )
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(Response::new(pb::SubmitCheckinResponse { month }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_bad_score() {
        let bad = pb::Checkin {
            workload: 3,
            isolation: 6,
            support: 1,
        };
        let e = check(&bad).err().map(|s| s.message().to_owned());
        assert!(e.is_some());
        assert!(
            check(&pb::Checkin {
                workload: 1,
                isolation: 5,
                support: 3
            })
            .is_ok()
        );
        assert_eq!(current_month().len(), 7);
    }
}
