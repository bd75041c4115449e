//! SKELETON — to be written.

use async_trait::async_trait;
use eva_platform::bus::{StreamSpec, streams};
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{DbError, Tx};

use crate::catalogue::IndicatorId;
use crate::feed::Feed;
use crate::model::{Figure, Query};
use crate::store::Store;

/// Statistics' own pseudonyms of people.
#[derive(Clone)]
pub struct Pseudonyms {
    key: Vec<u8>,
}

impl Pseudonyms {
    pub async fn load(_store: &Store) -> Result<Self, DbError> {
        Ok(Self { key: Vec::new() })
    }

    pub fn of(&self, person_id: &str) -> String {
        format!("p:{}{person_id}", self.key.len())
    }
}

pub struct PeopleFeed {
    pub pseudonyms: Pseudonyms,
}

#[async_trait]
impl Feed for PeopleFeed {
    fn stream(&self) -> StreamSpec {
        streams::IDENTITY
    }

    fn durable(&self) -> &'static str {
        "statistics-people"
    }

    fn subjects(&self) -> &'static [&'static str] {
        &["eva.identity.accompaniment.>", "eva.identity.person.>"]
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
