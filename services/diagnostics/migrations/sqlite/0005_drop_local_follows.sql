-- Who follows whom and the structures' kind and territory now live in the
-- platform's projection (eva_accompaniments, eva_structures, filled from the
-- start of identity's stream by the durable consumers
-- diagnostics-follows-accompaniments and diagnostics-follows-structures).
DROP TABLE accompaniments;
DROP TABLE structures;
