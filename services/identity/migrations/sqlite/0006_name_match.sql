-- Blind indexes of a person's last name alone and of "first last", so community
-- can screen posts for names of people a structure follows (MatchFollowedNames)
-- without decrypting any name. Rows written before this migration have '' and
-- are indexed by the first MatchFollowedNames that meets them, or their next write.
ALTER TABLE people ADD COLUMN last_name_bidx TEXT NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN full_name_bidx TEXT NOT NULL DEFAULT '';
