//! Community's storage, on SQLite or PostgreSQL (see `eva_platform::db`).
//! Each part keeps its queries beside it; this file holds the migrations.

use eva_platform::db::Migrations;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};
