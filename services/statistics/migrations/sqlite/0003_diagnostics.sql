-- Diagnostics (eva.diagnostics.*): barrier prevalence, rating gap, barrier
-- resolution, diagnostics shared.

-- Référentiel entries seen in events, coded as small integers so facts and
-- counters stay compact: (domain, item) an item, (domain, '') a domain,
-- ('', '') "any domain". A code never changes once given; the table has no
-- generation (like `territories`): a rebuild reuses the codes.
CREATE TABLE diagnostic_dictionary (
    code   INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    item   TEXT NOT NULL,
    UNIQUE (domain, item)
);

-- One row per event applied, so its contributions can be taken away (and
-- put back) when its person's choice about statistics changes. `event_id`:
-- the event's UUID, 16 bytes. `pseudonym_key`: the first 8 bytes of the
-- pseudonym's SHA-256, what the facts are looked up by (an index of the
-- 64-character pseudonym would be several times larger). `items` is a run of
-- 3-byte records: dictionary code (u16, little-endian), then for a shared
-- diagnostic the counselor's level | the person's level << 4, for a
-- superseded one the counselor's evolution (proto enum values); only items
-- that count are kept. `excluded`: stored but not counted.
CREATE TABLE diagnostic_facts (
    gen            INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    pseudonym      TEXT    NOT NULL,
    pseudonym_key  INTEGER NOT NULL,
    kind           INTEGER NOT NULL CHECK (kind IN (1, 2)), -- 1 shared, 2 superseded
    excluded       BOOLEAN NOT NULL,
    month          TEXT    NOT NULL,
    commune        TEXT    NOT NULL,
    epci           TEXT    NOT NULL,
    departement    TEXT    NOT NULL,
    structure_kind TEXT    NOT NULL,
    items          BLOB    NOT NULL,
    PRIMARY KEY (gen, event_id)
);
CREATE INDEX diagnostic_facts_pseudonym ON diagnostic_facts (gen, pseudonym_key);

-- Diagnostics shared (counted ones), per month and recording context.
CREATE TABLE diagnostic_counts (
    gen            INTEGER NOT NULL,
    month          TEXT    NOT NULL,
    commune        TEXT    NOT NULL,
    epci           TEXT    NOT NULL,
    departement    TEXT    NOT NULL,
    structure_kind TEXT    NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (gen, month, commune, epci, departement, structure_kind)
) WITHOUT ROWID;

-- Per measure (barrier, gap, evolution), month and recording context, one
-- vector of counters: little-endian i32 at (code × categories + category),
-- categories in the order of the measure (see diagnostics::contributions).
-- One row per context and month instead of one per item and category keeps
-- ingestion at a few writes per batch and a query to at most a few hundred
-- rows read by primary key.
CREATE TABLE diagnostic_item_counts (
    gen            INTEGER NOT NULL,
    measure        TEXT    NOT NULL CHECK (measure IN ('barrier', 'gap', 'evolution')),
    month          TEXT    NOT NULL,
    commune        TEXT    NOT NULL,
    epci           TEXT    NOT NULL,
    departement    TEXT    NOT NULL,
    structure_kind TEXT    NOT NULL,
    counts         BLOB    NOT NULL,
    PRIMARY KEY (gen, measure, month, commune, epci, departement, structure_kind)
);
