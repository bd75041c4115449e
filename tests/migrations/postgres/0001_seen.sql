-- A test projection that counts how many times each event was applied.
CREATE TABLE seen (
    event_id TEXT    PRIMARY KEY,
    marker   TEXT    NOT NULL,
    applied  BIGINT  NOT NULL
);
