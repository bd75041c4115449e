//! Referrals' storage, on SQLite or PostgreSQL (see `eva_platform::db`).
//! Each part of the service keeps its queries beside it (`referral/store.rs`,
//! `directory/store.rs`, `partners/store.rs`); this file holds the
//! migrations. Who follows whom and the structures are the platform's
//! projection (`eva_platform::follows`).

use eva_platform::db::{Db, Migrations};
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
