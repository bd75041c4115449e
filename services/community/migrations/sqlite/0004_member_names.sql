-- Members' names as identity gives them to the member themself (GetMe, with their
-- own token) when they join, create a space or list its members: the space's
-- members see who is there. `name_key` is the name in lower case, for ordering.
ALTER TABLE space_members ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE space_members ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
ALTER TABLE space_members ADD COLUMN structure_id TEXT NOT NULL DEFAULT '';
ALTER TABLE space_members ADD COLUMN structure_name TEXT NOT NULL DEFAULT '';
CREATE INDEX space_members_role ON space_members (space_id, role);
