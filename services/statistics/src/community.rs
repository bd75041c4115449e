//! SKELETON — to be written.

use async_trait::async_trait;
use eva_platform::bus::{StreamSpec, streams};
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{DbError, Tx};

use crate::catalogue::IndicatorId;
use crate::feed::Feed;
use crate::model::{Figure, Query};
use crate::store::Store;

pub struct CommunityFeed;

#[async_trait]
impl Feed for CommunityFeed {
    fn stream(&self) -> StreamSpec {
        streams::COMMUNITY
    }

    fn durable(&self) -> &'static str {
        "statistics-community"
    }

    fn subjects(&self) -> &'static [&'static str] {
        &["eva.community.>"]
    }

    async fn apply(
        &self,
        _tx: &mut Tx,
        _gens: &[i64],
        _events: &[Envelope],
    ) -> Result<(), ApplyError> {
        Ok(())
    }
}

pub async fn figures(_store: &Store, _id: IndicatorId, _q: &Query) -> Result<Vec<Figure>, DbError> {
    Ok(Vec::new())
}
